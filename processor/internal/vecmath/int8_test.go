package vecmath

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"unsafe"
)

// The kernel and the Go code compute the same integer for every length and
// for random, extreme (±127) and zero inputs, and both equal the plain sum.
func TestDotInt8KernelEqualsGeneric(t *testing.T) {
	if !useAVX2 {
		t.Log("no AVX2+FMA on this machine: DotInt8 is dotInt8Generic")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	fills := map[string]func(i int) (int8, int8){
		"random": func(int) (int8, int8) {
			return int8(rng.IntN(255) - 127), int8(rng.IntN(255) - 127)
		},
		"max*max":  func(int) (int8, int8) { return 127, 127 },
		"max*min":  func(int) (int8, int8) { return 127, -127 },
		"min*min":  func(int) (int8, int8) { return -127, -127 },
		"extremes": func(int) (int8, int8) { return int8(127 * (2*rng.IntN(2) - 1)), int8(127 * (2*rng.IntN(2) - 1)) },
		"alternate": func(i int) (int8, int8) {
			if i%2 == 0 {
				return 127, -127
			}
			return -127, -127
		},
		"zeros": func(i int) (int8, int8) { return 0, int8(i%255 - 127) },
	}
	for name, fill := range fills {
		for n := 0; n <= 1000; n++ {
			a, b := make([]int8, n), make([]int8, n+3) // b may be longer
			var want int64
			for i := range a {
				a[i], b[i] = fill(i)
				want += int64(a[i]) * int64(b[i])
			}
			g := dotInt8Generic(a, b)
			if got := DotInt8(a, b); got != g {
				t.Fatalf("%s n=%d: DotInt8 = %d, dotInt8Generic = %d", name, n, got, g)
			}
			if int64(g) != want {
				t.Fatalf("%s n=%d: dotInt8Generic = %d, want %d", name, n, g, want)
			}
		}
	}
}

// Unaligned slices (offsets into a larger array) give the same results.
func TestDotInt8Unaligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	buf := make([]int8, 2048)
	for i := range buf {
		buf[i] = int8(rng.IntN(255) - 127)
	}
	for off := range 33 {
		for _, n := range []int{31, 32, 33, 64, 95, 384, 1000} {
			a, b := buf[off:off+n], buf[1024+off/2:]
			if got, want := DotInt8(a, b), dotInt8Generic(a, b); got != want {
				t.Fatalf("off=%d n=%d: DotInt8 = %d, want %d", off, n, got, want)
			}
		}
	}
}

// DotInt8Rows gives each row's DotInt8, with and without the kernel.
func TestDotInt8Rows(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	for _, d := range []int{0, 1, 31, 32, 33, 64, 96, 384, 385, 1000} {
		for rows := range 6 {
			q, m := make([]int8, d), make([]int8, rows*d+7) // m may be longer
			for i := range q {
				q[i] = int8(127 * (2*rng.IntN(2) - 1))
			}
			for i := range m {
				m[i] = int8(rng.IntN(255) - 127)
			}
			got, gen := make([]int32, rows), make([]int32, rows)
			DotInt8Rows(got, q, m)
			dotInt8RowsGeneric(q, m, gen)
			for r := range rows {
				want := dotInt8Generic(q, m[r*d:(r+1)*d])
				if got[r] != want || gen[r] != want {
					t.Fatalf("d=%d row %d of %d: DotInt8Rows %d, generic %d, want %d", d, r, rows, got[r], gen[r], want)
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for a short matrix")
		}
	}()
	DotInt8Rows(make([]int32, 3), make([]int8, 32), make([]int8, 95))
}

func TestQuantizeInt8(t *testing.T) {
	if s := QuantizeInt8(nil, nil); s != 0 {
		t.Errorf("empty: scale %v", s)
	}
	dst := []int8{1, 2, 3}
	if s := QuantizeInt8(dst, make([]float32, 3)); s != 0 || dst[0] != 0 || dst[1] != 0 || dst[2] != 0 {
		t.Errorf("zero vector: scale %v, %v", s, dst)
	}
	dst = []int8{1, 2, 3}
	if s := QuantizeInt8(dst, []float32{math.SmallestNonzeroFloat32, 0, -math.SmallestNonzeroFloat32 * 10}); s != 0 || dst[0] != 0 || dst[1] != 0 || dst[2] != 0 {
		t.Errorf("subnormal vector: scale %v, %v", s, dst)
	}
	dst = make([]int8, 4)
	s := QuantizeInt8(dst, []float32{-2.54, 1.27, 0.009, 0.0101})
	if s != float32(2.54)/127 || !slices.Equal(dst, []int8{-127, 64, 0, 1}) {
		t.Errorf("scale %v (want %v), %v", s, float32(2.54)/127, dst)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, 384)
	q := make([]int8, 384)
	for range 1000 {
		e := rng.IntN(60) - 30
		for i := range v {
			v[i] = float32(rng.NormFloat64() * math.Pow(2, float64(e)))
		}
		s := QuantizeInt8(q, v)
		var m float32
		for _, x := range v {
			m = max(m, abs32(x))
		}
		if s != m/127 {
			t.Fatalf("scale %v, want %v", s, m/127)
		}
		seen := false
		for i, x := range v {
			if q[i] == -128 {
				t.Fatal("-128")
			}
			seen = seen || q[i] == 127 || q[i] == -127
			if d := math.Abs(float64(x) - float64(q[i])*float64(s)); d > float64(s)*0.5001 {
				t.Fatalf("v[%d]=%v q=%d scale=%v: error %v > scale/2", i, x, q[i], s, d)
			}
		}
		if !seen {
			t.Fatal("the largest element does not map to ±127")
		}
	}
}

// embeddings makes n unit vectors of dims: isotropic Gaussian ("gaussian");
// plus a common mean direction so unrelated vectors have cosines about 0.2
// like MiniLM's ("mean"); the same with a per-dimension spread that varies
// 10x across dimensions and a few outlier dimensions ("anisotropic"); or
// "mean" vectors drawn around n/20 cluster centers, so that a query's
// nearest rows are a tight group of near-equal scores, like the variants of
// one product in a catalog ("clustered").
func embeddings(rng *rand.Rand, kind string, n, dims int) [][]float32 {
	if kind == "clustered" {
		centers := embeddings(rng, "mean", max(1, n/20), dims)
		out := embeddings(rng, "gaussian", n, dims)
		for _, v := range out {
			c := centers[rng.IntN(len(centers))]
			var s float64
			for j := range v {
				v[j] = c[j] + 0.8*v[j] // cosine to the center ≈ 0.78
				s += float64(v[j]) * float64(v[j])
			}
			for j := range v {
				v[j] = float32(float64(v[j]) / math.Sqrt(s))
			}
		}
		return out
	}
	mean := make([]float64, dims)
	spread := make([]float64, dims)
	for j := range dims {
		mean[j] = rng.NormFloat64()
		spread[j] = 1
		if kind == "anisotropic" {
			spread[j] = math.Exp(rng.NormFloat64() * 0.6)
			if j%97 == 0 {
				spread[j] = 4
			}
		}
	}
	normalize := func(v []float64) {
		var s float64
		for _, x := range v {
			s += x * x
		}
		for j := range v {
			v[j] /= math.Sqrt(s)
		}
	}
	normalize(mean)
	c := 0.0
	if kind != "gaussian" {
		c = 0.5 // cos ≈ c²/(1+c²) = 0.2
	}
	out := make([][]float32, n)
	g := make([]float64, dims)
	for i := range out {
		for j := range g {
			g[j] = rng.NormFloat64() * spread[j]
		}
		normalize(g)
		for j := range g {
			g[j] += c * mean[j]
		}
		normalize(g)
		v := make([]float32, dims)
		for j := range v {
			v[j] = float32(g[j])
		}
		out[i] = v
	}
	return out
}

// The int8 first pass with oversampling recovers the exact top-10. For an
// exact top-10 row, rescoring the best C rows by int8 score in fp32 keeps
// it if and only if its int8 rank is below C, so the recall of every C
// comes from the int8 ranks of the exact top-10. The test asserts a recall
// of 0.99 at C = 40 and logs the smallest C reaching 0.99 and 0.999.
// SIMMATCH_RECALL_ROWS and SIMMATCH_RECALL_QUERIES (default 20,000 and 50)
// run it at a larger size by hand.
func TestInt8Recall(t *testing.T) {
	const dims, k = 384, 10
	n, queries := envInt(t, "SIMMATCH_RECALL_ROWS", 20000), envInt(t, "SIMMATCH_RECALL_QUERIES", 50)
	for _, kind := range []string{"gaussian", "mean", "anisotropic", "clustered"} {
		rng := rand.New(rand.NewPCG(11, 12))
		all := embeddings(rng, kind, n+queries, dims)
		rows, qs := all[:n], all[n:]
		q8 := make([]int8, n*dims)
		scales := make([]float32, n)
		for r, v := range rows {
			scales[r] = QuantizeInt8(q8[r*dims:(r+1)*dims], v)
		}
		var ranks []int // int8 rank of each exact top-10 row, over all queries
		var cosSum float64
		qq := make([]int8, dims)
		order := make([]int, n)
		exact, approx := make([]float64, n), make([]float64, n)
		for _, q := range qs {
			qs := QuantizeInt8(qq, q)
			for r := range n {
				exact[r] = Dot(q, rows[r])
				approx[r] = float64(qs) * float64(scales[r]) * float64(DotInt8(qq, q8[r*dims:(r+1)*dims]))
				cosSum += exact[r]
			}
			byScore := func(s []float64) func(a, b int) int {
				return func(a, b int) int {
					if c := cmp.Compare(s[b], s[a]); c != 0 {
						return c
					}
					return a - b
				}
			}
			for i := range order {
				order[i] = i
			}
			slices.SortFunc(order, byScore(approx))
			rankOf := make([]int, n)
			for i, r := range order {
				rankOf[r] = i
			}
			slices.SortFunc(order, byScore(exact))
			for _, r := range order[:k] {
				ranks = append(ranks, rankOf[r])
			}
		}
		recall := func(c int) float64 {
			hit := 0
			for _, r := range ranks {
				if r < c {
					hit++
				}
			}
			return float64(hit) / float64(len(ranks))
		}
		need := func(target float64) int {
			for c := k; ; c++ {
				if recall(c) >= target {
					return c
				}
			}
		}
		t.Logf("rows=%d queries=%d %-11s mean cosine %.3f; recall@10 with C candidates: C=10 %.4f, C=20 %.4f, C=40 %.4f; "+
			"C for 0.99: %d (%.1fx), for 0.999: %d (%.1fx), for 1: %d (max int8 rank of an exact top-10 row + 1)",
			n, queries, kind, cosSum/float64(n*queries), recall(10), recall(20), recall(40),
			need(0.99), float64(need(0.99))/k, need(0.999), float64(need(0.999))/k, need(1))
		if r := recall(40); r < 0.99 {
			t.Errorf("%s: recall@10 with 40 candidates = %.4f, want >= 0.99", kind, r)
		}
	}
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func BenchmarkDotInt8(b *testing.B) {
	x, y := make([]int8, 384), make([]int8, 384)
	for i := range x {
		x[i], y[i] = int8(i%255-127), int8(127-i%255)
	}
	b.Run("384/kernel", func(b *testing.B) {
		var s int32
		for b.Loop() {
			s += DotInt8(x, y)
		}
		_ = s
	})
	b.Run("384/generic", func(b *testing.B) {
		var s int32
		for b.Loop() {
			s += dotInt8Generic(x, y)
		}
		_ = s
	})
	m := make([]int8, 256*384)
	for i := range m {
		m[i] = int8(i%255 - 127)
	}
	dst := make([]int32, 256)
	b.Run("384/rows-per-row", func(b *testing.B) {
		for b.Loop() {
			DotInt8Rows(dst, x, m)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/256, "ns/row")
	})
	fx, fy := make([]float32, 384), make([]float32, 384)
	for i := range fx {
		fx[i], fy[i] = float32(i), float32(384-i)
	}
	b.Run("384/float32-Dot", func(b *testing.B) {
		var s float64
		for b.Loop() {
			s += Dot(fx, fy)
		}
		_ = s
	})
}

// best keeps the k highest scores seen (a min-heap by score; rows are
// unique so the order of equal scores does not matter here).
type best struct {
	k    int
	rows []int
	s    []float64
}

func (h *best) push(row int, s float64) {
	if len(h.s) == h.k {
		if s <= h.s[0] {
			return
		}
		h.s[0], h.rows[0] = s, row
	} else {
		h.s, h.rows = append(h.s, s), append(h.rows, row)
		for i := len(h.s) - 1; i > 0; {
			p := (i - 1) / 2
			if h.s[p] <= h.s[i] {
				return
			}
			h.s[p], h.s[i] = h.s[i], h.s[p]
			h.rows[p], h.rows[i] = h.rows[i], h.rows[p]
			i = p
		}
		return
	}
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(h.s) && h.s[l] < h.s[m] {
			m = l
		}
		if l+1 < len(h.s) && h.s[l+1] < h.s[m] {
			m = l + 1
		}
		if m == i {
			return
		}
		h.s[m], h.s[i] = h.s[i], h.s[m]
		h.rows[m], h.rows[i] = h.rows[i], h.rows[m]
		i = m
	}
}

// parallel runs f on w contiguous row ranges of [0, n) and returns the
// merged best k.
func parallel(n, w, k int, f func(lo, hi int, h *best)) *best {
	parts := make([]best, w)
	var wg sync.WaitGroup
	for i := range w {
		parts[i].k = k
		wg.Go(func() { f(i*n/w, (i+1)*n/w, &parts[i]) })
	}
	wg.Wait()
	all := &best{k: k}
	for _, p := range parts {
		for j := range p.s {
			all.push(p.rows[j], p.s[j])
		}
	}
	return all
}

// BenchmarkScanInt8 compares, on one matrix in one run, the top-10 scan of
// a 384-dim query over SIMMATCH_BENCH_CATALOG_ROWS rows (default 1,000,000)
// with GOMAXPROCS goroutines: fp32 (Dot per row, as the catalog scan), int8
// (DotInt8 per row times the row's scale, top-40 kept), the same with
// DotInt8Rows over blocks of 256 rows, and that followed by the fp32
// rescoring of the 40 candidates (the whole two-pass search); and the plain
// read of the int8 matrix, the ceiling. Compare the ns/op of the three;
// MiB/1M-rows is the memory each scan reads.
func BenchmarkScanInt8(b *testing.B) {
	const dims, k, cands = 384, 10, 40
	n := envInt(b, "SIMMATCH_BENCH_CATALOG_ROWS", 1_000_000)
	w := runtime.GOMAXPROCS(0)
	m32 := make([]float32, n*dims)
	m8 := make([]int8, n*dims)
	scales := make([]float32, n)
	var wg sync.WaitGroup
	for i := range w {
		lo, hi := i*n/w, (i+1)*n/w
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for r := lo; r < hi; r++ {
				row := m32[r*dims : (r+1)*dims]
				for j := range row {
					row[j] = float32(rng.Int32N(1<<16)-1<<15) / (1 << 15)
				}
				scales[r] = QuantizeInt8(m8[r*dims:(r+1)*dims], row)
			}
		})
	}
	wg.Wait()
	q := make([]float32, dims)
	rng := rand.New(rand.NewPCG(99, 7))
	for j := range q {
		q[j] = float32(rng.NormFloat64())
	}
	q8 := make([]int8, dims)
	qs := QuantizeInt8(q8, q)
	mib := func(bytes int) float64 { return float64(bytes) / float64(n) * 1e6 / (1 << 20) }

	b.Run(fmt.Sprintf("fp32/rows=%d/workers=%d", n, w), func(b *testing.B) {
		for b.Loop() {
			parallel(n, w, k, func(lo, hi int, h *best) {
				for r := lo; r < hi; r++ {
					h.push(r, Dot(q, m32[r*dims:(r+1)*dims:(r+1)*dims]))
				}
			})
		}
		b.ReportMetric(mib(n*dims*4), "MiB/1M-rows")
	})
	// The memory-read ceiling: Sum over the int8 matrix's bytes (seen as
	// float32s), in w parts.
	b.Run(fmt.Sprintf("read-int8-bytes/rows=%d/workers=%d", n, w), func(b *testing.B) {
		f := unsafe.Slice((*float32)(unsafe.Pointer(&m8[0])), len(m8)/4)
		var sink float32
		for b.Loop() {
			parallel(n, w, 1, func(lo, hi int, h *best) {
				h.push(0, float64(Sum(f[lo*dims/4:hi*dims/4])))
			})
		}
		_ = sink
		b.ReportMetric(mib(n*dims), "MiB/1M-rows")
	})
	int8Scan := func() *best {
		return parallel(n, w, cands, func(lo, hi int, h *best) {
			for r := lo; r < hi; r++ {
				h.push(r, float64(qs)*float64(scales[r])*float64(DotInt8(q8, m8[r*dims:(r+1)*dims:(r+1)*dims])))
			}
		})
	}
	b.Run(fmt.Sprintf("int8-top40/rows=%d/workers=%d", n, w), func(b *testing.B) {
		for b.Loop() {
			int8Scan()
		}
		b.ReportMetric(mib(n*(dims+4)), "MiB/1M-rows")
	})
	int8RowsScan := func() *best {
		return parallel(n, w, cands, func(lo, hi int, h *best) {
			var dots [256]int32
			for r := lo; r < hi; r += len(dots) {
				d := dots[:min(len(dots), hi-r)]
				DotInt8Rows(d, q8, m8[r*dims:])
				for i, v := range d {
					h.push(r+i, float64(qs)*float64(scales[r+i])*float64(v))
				}
			}
		})
	}
	b.Run(fmt.Sprintf("int8rows-top40/rows=%d/workers=%d", n, w), func(b *testing.B) {
		for b.Loop() {
			int8RowsScan()
		}
		b.ReportMetric(mib(n*(dims+4)), "MiB/1M-rows")
	})
	b.Run(fmt.Sprintf("int8rows+rescore/rows=%d/workers=%d", n, w), func(b *testing.B) {
		for b.Loop() {
			c := int8RowsScan()
			top := &best{k: k}
			for _, r := range c.rows {
				top.push(r, Dot(q, m32[r*dims:(r+1)*dims]))
			}
		}
		b.ReportMetric(mib(n*(dims+4)), "MiB/1M-rows")
	})
}
