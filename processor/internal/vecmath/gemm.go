package vecmath

import (
	"math"
	"sync"
	"time"
)

// Float32 arithmetic for passes that score many queries at once: one row
// read for four queries, float32 accumulation, FMA throughput rather than
// memory speed. The results are estimates (float32 sums in an order of the
// kernel's choosing); a caller that needs Dot's exact scores rescores its
// candidates with Dot, and uses DotF32Bound to decide which ones.

// DotF32x4Rows sets dst[4*r+j] to the dot product of q[j] and row r of the
// row-major matrix m (rows of d = len(q[0]) floats), for each r <
// len(dst)/4, accumulated in float32: four queries against consecutive rows,
// each row read once for the four. On amd64 with AVX2 and FMA, and d a
// positive multiple of 8, an assembly kernel scores three rows at a time
// (twelve 8-lane accumulators, VFMADD231PS); elsewhere Go does the same
// sums in the same order, but may round differently (Go does not promise to
// fuse a multiply and an add). Either way each result is within
// DotF32Bound(d) * sum_i |q[j][i] * row[i]| of the exact dot product, and a
// row's results depend only on the row and the queries, not on its place
// in m or on len(dst). It panics when len(dst) is not a multiple of 4, when
// a query is shorter than d, or when m holds fewer than len(dst)/4*d floats.
func DotF32x4Rows(dst []float32, q [4][]float32, m []float32) {
	if len(dst)%4 != 0 {
		panic("vecmath: DotF32x4Rows: len(dst) is not a multiple of 4")
	}
	d := len(q[0])
	rows := len(dst) / 4
	for j := range q {
		q[j] = q[j][:d:d]
	}
	m = m[:rows*d]
	if rows == 0 {
		return
	}
	if F32x4Fast(d) {
		dotF32x4RowsAVX2(&dst[0], &q[0][0], &q[1][0], &q[2][0], &q[3][0], &m[0], d, rows)
		return
	}
	dotF32x4RowsGeneric(dst, q, m)
}

// F32x4Fast reports whether DotF32x4Rows runs its assembly kernel for
// queries of d floats (amd64 with AVX2 and FMA, d a positive multiple of
// 8); the Go code is far slower than Dot.
func F32x4Fast(d int) bool { return useAVX2 && d > 0 && d%8 == 0 }

func dotF32x4RowsGeneric(dst []float32, q [4][]float32, m []float32) {
	d := len(q[0])
	for r := range len(dst) / 4 {
		row := m[r*d : (r+1)*d : (r+1)*d]
		for j := range 4 {
			dst[4*r+j] = dotF32(q[j], row)
		}
	}
}

// dotF32 is the kernel's sum for one query and one row: lane l sums the
// products of the elements i = l mod 8 in order, the lanes are added as
// ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)); elements past the last multiple of
// 8 (which the kernel never sees) are added last, one by one.
func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s [8]float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		x, y := a[i:i+8:i+8], b[i:i+8:i+8]
		for l := range 8 {
			s[l] += x[l] * y[l]
		}
	}
	sum := ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
	for ; i < len(a); i++ {
		sum += a[i] * b[i]
	}
	return sum
}

// DotF32Bound is gamma_n = n*u / (1 - n*u) for u = 2^-24, the unit
// roundoff of float32: a dot product of n float32 pairs accumulated in
// float32, in any order and with or without fused multiply-adds, differs
// from the exact value by at most gamma_n * sum_i |a_i * b_i| (Higham,
// Accuracy and Stability of Numerical Algorithms, 3.1), which Cauchy-Schwarz
// bounds by gamma_n * |a| * |b|; add n * 2^-149 when products or partial
// sums may be subnormal, and the sum must not overflow. For n = 384 it is
// about 2.29e-5. It is +Inf when n*u >= 1.
func DotF32Bound(n int) float64 {
	nu := float64(n) * 0x1p-24
	if nu >= 1 {
		return math.Inf(1)
	}
	return nu / (1 - nu)
}

// PeakGFLOPS measures the float32 FMA peak of this machine: workers
// goroutines each run a register-only loop of independent 8-lane FMAs
// (twelve chains, enough to hide the FMA latency on both ports) for about
// dur, and the result is their total flops (2 per lane per FMA) per second,
// in GFLOP/s. It is the yardstick of the GEMM-like passes ("% of peak").
// Without AVX2 and FMA it times the Go float32 loop of DotF32x4Rows on
// L1-resident data instead.
func PeakGFLOPS(workers int, dur time.Duration) float64 {
	workers = max(workers, 1)
	const iters = 1 << 16
	flops := make([]float64, workers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for w := range workers {
		wg.Go(func() {
			if useAVX2 {
				for time.Now().Before(deadline) {
					fmaPeakAVX2(iters)
					flops[w] += iters * 12 * 16
				}
				return
			}
			const d, rows = 64, 16
			var q [4][]float32
			for j := range q {
				q[j] = make([]float32, d)
			}
			m, dst := make([]float32, d*rows), make([]float32, 4*rows)
			for time.Now().Before(deadline) {
				dotF32x4RowsGeneric(dst, q, m)
				flops[w] += 2 * 4 * d * rows
			}
		})
	}
	wg.Wait()
	var total float64
	for _, f := range flops {
		total += f
	}
	return total / time.Since(start).Seconds() / 1e9
}
