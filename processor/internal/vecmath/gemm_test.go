package vecmath

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// exactDot is the dot product in float64 and its sum of |products|: each
// float32 product is exact in float64, so the only error is the float64
// summation's, at most gamma_n(2^-53) * abs.
func exactDot(a, b []float32) (dot, abs float64) {
	for i := range a {
		p := float64(a[i]) * float64(b[i])
		dot += p
		abs += math.Abs(p)
	}
	return dot, abs
}

// within reports whether got is within DotF32Bound(n) * abs of the exact
// dot (the bound this test checks, for every length n, including those
// that are not a multiple of 8), with the float64 reference's own error
// (gamma_n(2^-53) * abs) and the subnormal term (n * 2^-149) added.
func within(got float32, dot, abs float64, n int) bool {
	g64 := float64(n) * 0x1p-53 / (1 - float64(n)*0x1p-53)
	return math.Abs(float64(got)-dot) <= (DotF32Bound(n)+g64)*abs+float64(n)*0x1p-149
}

// Kernel and Go code both stay within the documented bound of the exact dot
// product for every length, random, cancelling (large terms of both signs
// summing near zero) and scaled inputs, and the kernel gives each row the
// same results wherever it is in m (three-row blocks and the single-row
// tail alike).
func TestDotF32x4RowsBound(t *testing.T) {
	if !useAVX2 {
		t.Log("no AVX2+FMA on this machine: DotF32x4Rows is the Go code")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	fills := map[string]func(i int) float32{
		"normal": func(int) float32 { return float32(rng.NormFloat64()) },
		"cancel": func(i int) float32 {
			return float32((1 + rng.Float64()*1e-3) * float64(1-2*(i%2)) * math.Pow(2, float64(rng.IntN(20))))
		},
		"tiny": func(int) float32 { return float32(rng.NormFloat64() * 1e-20) },
		"huge": func(int) float32 { return float32(rng.NormFloat64() * 1e15) },
	}
	for name, fill := range fills {
		for _, d := range []int{1, 7, 8, 16, 24, 40, 64, 100, 384, 385, 1024} {
			for _, rows := range []int{0, 1, 2, 3, 4, 5, 7, 31} {
				var q [4][]float32
				for j := range q {
					q[j] = make([]float32, d+j) // longer queries: only d elements count
					for i := range q[j] {
						q[j][i] = fill(i)
					}
				}
				m := make([]float32, rows*d+5)
				for i := range m {
					m[i] = fill(i)
				}
				for _, f := range []struct {
					name string
					fn   func(dst []float32, q [4][]float32, m []float32)
				}{{"DotF32x4Rows", DotF32x4Rows}, {"generic", func(dst []float32, q [4][]float32, m []float32) {
					for j := range q {
						q[j] = q[j][:len(q[0])]
					}
					dotF32x4RowsGeneric(dst, q, m)
				}}} {
					dst := make([]float32, 4*rows)
					f.fn(dst, q, m)
					for r := range rows {
						for j := range 4 {
							dot, abs := exactDot(q[j][:d], m[r*d:(r+1)*d])
							if !within(dst[4*r+j], dot, abs, d) {
								t.Fatalf("%s %s d=%d rows=%d: row %d query %d = %v, exact %v, |error| %g > bound %g",
									f.name, name, d, rows, r, j, dst[4*r+j], dot, math.Abs(float64(dst[4*r+j])-dot), DotF32Bound(d)*abs)
							}
						}
					}
				}
				// Each row alone, at the start of m, gives the same floats.
				dst := make([]float32, 4*rows)
				DotF32x4Rows(dst, q, m)
				one := make([]float32, 4)
				for r := range rows {
					DotF32x4Rows(one, q, m[r*d:])
					for j := range 4 {
						if math.Float32bits(one[j]) != math.Float32bits(dst[4*r+j]) {
							t.Fatalf("%s d=%d rows=%d: row %d query %d = %v alone, %v in the block", name, d, rows, r, j, one[j], dst[4*r+j])
						}
					}
				}
			}
		}
	}
}

// The bound's value at 384 dims, and +Inf past 2^24 terms.
func TestDotF32Bound(t *testing.T) {
	if b := DotF32Bound(384); b < 2.288e-5 || b > 2.29e-5 {
		t.Fatalf("DotF32Bound(384) = %g, want about 2.289e-5", b)
	}
	if b := DotF32Bound(1 << 24); !math.IsInf(b, 1) {
		t.Fatalf("DotF32Bound(2^24) = %g, want +Inf", b)
	}
}

// Unaligned slices (offsets into larger arrays) give the aligned results.
func TestDotF32x4RowsUnaligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	const d, rows = 384, 10
	buf := make([]float32, 8*d+rows*d+64)
	for i := range buf {
		buf[i] = float32(rng.NormFloat64())
	}
	var q [4][]float32
	for j := range q {
		q[j] = append([]float32(nil), buf[j*d:(j+1)*d]...)
	}
	m := append([]float32(nil), buf[8*d:8*d+rows*d]...)
	want := make([]float32, 4*rows)
	DotF32x4Rows(want, q, m)
	for off := 1; off < 16; off++ {
		var qo [4][]float32
		for j := range qo {
			qo[j] = buf[j*d+off : (j+1)*d+off]
			copy(qo[j], q[j])
		}
		mo := buf[8*d+off : 8*d+off+rows*d]
		copy(mo, m)
		got := make([]float32, 4*rows+1)[1:]
		DotF32x4Rows(got, qo, mo)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("offset %d: result %d = %v, aligned %v", off, i, got[i], want[i])
			}
		}
	}
}

func TestDotF32x4RowsPanics(t *testing.T) {
	q := [4][]float32{make([]float32, 8), make([]float32, 8), make([]float32, 7), make([]float32, 8)}
	for name, f := range map[string]func(){
		"dst not 4n":  func() { DotF32x4Rows(make([]float32, 5), q, make([]float32, 64)) },
		"short query": func() { DotF32x4Rows(make([]float32, 4), q, make([]float32, 64)) },
		"short m": func() {
			ok := [4][]float32{make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 8)}
			DotF32x4Rows(make([]float32, 12), ok, make([]float32, 16))
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// BenchmarkDotF32x4Rows is 4 and 8 queries against 4096 rows of 384 dims
// (6 MiB: from L3 or memory, as a pass first reads a block) and against a
// 192-row block 21 times (from L2, as a pass's other quads of probes read
// it), in GFLOP/s (2 flops
// a multiply-add), beside Dot on the same work and the register-only FMA
// peak of one core.
func BenchmarkDotF32x4Rows(b *testing.B) {
	const d, rows = 384, 4096
	rng := rand.New(rand.NewPCG(1, 1))
	m := make([]float32, rows*d)
	for i := range m {
		m[i] = float32(rng.NormFloat64())
	}
	qs := make([][]float32, 8)
	for j := range qs {
		qs[j] = make([]float32, d)
		for i := range qs[j] {
			qs[j][i] = float32(rng.NormFloat64())
		}
	}
	dst := make([]float32, 4*rows)
	gflops := func(b *testing.B, nq int) {
		b.ReportMetric(2*float64(nq)*rows*d*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	for _, nq := range []int{4, 8} {
		b.Run("kernel/q="+itoa(nq), func(b *testing.B) {
			for b.Loop() {
				for j := 0; j < nq; j += 4 {
					DotF32x4Rows(dst, [4][]float32{qs[j], qs[j+1], qs[j+2], qs[j+3]}, m)
				}
			}
			gflops(b, nq)
		})
		// A catalog pass's block: 192 rows (288 KiB), L2-resident.
		b.Run("kernel-block192/q="+itoa(nq), func(b *testing.B) {
			const block = 192
			for b.Loop() {
				for range rows / block {
					for j := 0; j < nq; j += 4 {
						DotF32x4Rows(dst[:4*block], [4][]float32{qs[j], qs[j+1], qs[j+2], qs[j+3]}, m[:block*d])
					}
				}
			}
			b.ReportMetric(2*float64(nq)*float64(rows/block*block)*d*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run("generic/q="+itoa(nq), func(b *testing.B) {
			for b.Loop() {
				for j := 0; j < nq; j += 4 {
					dotF32x4RowsGeneric(dst, [4][]float32{qs[j], qs[j+1], qs[j+2], qs[j+3]}, m)
				}
			}
			gflops(b, nq)
		})
		b.Run("Dot/q="+itoa(nq), func(b *testing.B) {
			var s float64
			for b.Loop() {
				for r := range rows {
					row := m[r*d : (r+1)*d]
					for j := range nq {
						s += Dot(qs[j], row)
					}
				}
			}
			_ = s
			gflops(b, nq)
		})
	}
	b.Run("peak/1-core", func(b *testing.B) {
		var g float64
		for b.Loop() {
			g = PeakGFLOPS(1, 100*time.Millisecond)
		}
		b.ReportMetric(g, "GFLOP/s")
	})
	b.Run("peak/all-cores", func(b *testing.B) {
		var g float64
		for b.Loop() {
			g = PeakGFLOPS(runtime.GOMAXPROCS(0), 100*time.Millisecond)
		}
		b.ReportMetric(g, "GFLOP/s")
	})
}

func itoa(n int) string { return string(rune('0' + n)) }
