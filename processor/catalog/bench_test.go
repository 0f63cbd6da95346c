package catalog

import (
	"math"
	"slices"
	"time"

	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/simmatch/simmatch/processor/catalog/keyword"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// benchRows is the catalog size of BenchmarkScan: SIMMATCH_BENCH_CATALOG_ROWS,
// default 1,000,000 (`make bench-catalog`).
func benchRows(b *testing.B) int {
	if v := os.Getenv("SIMMATCH_BENCH_CATALOG_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SIMMATCH_BENCH_CATALOG_ROWS=%q: want a positive integer", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkScan compares, on the same matrix in the same run, the top-10
// scan of one query with a plain parallel read of the matrix (the memory
// bandwidth ceiling): their GB/s and the ratio of their times are what to
// compare. It also scans an int8 index of the same rows (rescoring its
// candidates from the rows file) and reports each index's memory per
// million products and the int8 scan's recall@10 against the exact scan.
func BenchmarkScan(b *testing.B) {
	const dims = 384
	n := benchRows(b)
	rng := rand.New(rand.NewPCG(7, 7))
	x := NewIndex(dims)
	x.matrix = make([]float32, 0, n*dims)
	x8, err := NewInt8Index(dims, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	x8.q8 = make([]int8, 0, n*dims)
	vec := make([]float32, dims)
	for i := range n {
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		p := contracts.Product{ID: strconv.Itoa(i)}
		x.Upsert(uint64(i+1), p, vec)
		x8.Upsert(uint64(i+1), p, vec)
	}
	qs := make([][]float32, 50)
	for i := range qs {
		qs[i] = make([]float32, dims)
		for j := range qs[i] {
			qs[i][j] = float32(rng.NormFloat64())
		}
	}
	found := 0
	for _, q := range qs {
		want := map[string]bool{}
		for _, h := range x.Search(Query{Vectors: [][]float32{q}, TopK: 10})[0].Hits {
			want[h.Product.ID] = true
		}
		for _, h := range x8.Search(Query{Vectors: [][]float32{q}, TopK: 10})[0].Hits {
			if want[h.Product.ID] {
				found++
			}
		}
	}
	recall := float64(found) / float64(10*len(qs))
	b.Logf("int8 recall@10 against the exact scan: %.4f (%d queries, %d rows)", recall, len(qs), n)
	bytes := int64(n) * dims * 4
	workers := runtime.GOMAXPROCS(0)
	for _, w := range []int{1, workers} {
		b.Run(fmt.Sprintf("read/rows=%d/workers=%d", n, w), func(b *testing.B) {
			b.SetBytes(bytes)
			var sink float32
			for b.Loop() {
				sink += readAll(x.matrix, w)
			}
			b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			_ = sink
		})
		for _, ix := range []struct {
			name string
			x    *Index
		}{{"fp32", x}, {"int8", x8}} {
			b.Run(fmt.Sprintf("scan-top10-%s/rows=%d/workers=%d", ix.name, n, w), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if len(ix.x.Search(Query{Vectors: [][]float32{qs[i%len(qs)]}, TopK: 10, Workers: w})[0].Hits) != 10 {
						b.Fatal("want 10 hits")
					}
					i++
				}
				b.ReportMetric(float64(ix.x.MatrixBytes())/float64(n)*1e6/(1<<20), "MiB/1M-products")
				if ix.x.Int8() {
					b.ReportMetric(recall, "recall@10")
				}
			})
		}
	}
}

// readAll sums the matrix in w contiguous parts with vecmath.Sum (AVX2
// adds): the least work that still reads every byte.
func readAll(m []float32, w int) float32 {
	sums := make([]float32, w)
	var wg sync.WaitGroup
	for i := range w {
		part := m[i*len(m)/w : (i+1)*len(m)/w]
		wg.Go(func() { sums[i] = vecmath.Sum(part) })
	}
	wg.Wait()
	var s float32
	for _, v := range sums {
		s += v
	}
	return s
}

// BenchmarkSharedPass compares, in one run on the same matrix, 16 clients
// that each search top-10 in a loop, with each search scanning on its own
// (solo) and with concurrent searches sharing passes (shared, the
// default; shared-exact: without the float32 kernel, F32Probes out of
// reach). It reports requests/s.
func BenchmarkSharedPass(b *testing.B) {
	const dims, clients = 384, 16
	n := benchRows(b)
	rng := rand.New(rand.NewPCG(8, 8))
	x := NewIndex(dims)
	x.matrix = make([]float32, 0, n*dims)
	vec := make([]float32, dims)
	for i := range n {
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		x.Upsert(uint64(i+1), contracts.Product{ID: strconv.Itoa(i)}, vec)
	}
	qs := make([][]float32, 64)
	for i := range qs {
		qs[i] = make([]float32, dims)
		for j := range qs[i] {
			qs[i][j] = float32(rng.NormFloat64())
		}
	}
	for _, name := range []string{"solo", "shared", "shared-exact"} {
		b.Run(fmt.Sprintf("%s/rows=%d/clients=%d", name, n, clients), func(b *testing.B) {
			x.solo = name == "solo"
			old := F32Probes
			if name == "shared-exact" {
				F32Probes = math.MaxInt
			}
			defer func() { x.solo, F32Probes = false, old }()
			passes := x.passes.Load()
			for b.Loop() {
				var wg sync.WaitGroup
				for c := range clients {
					wg.Go(func() {
						if len(x.Search(Query{Vectors: [][]float32{qs[c]}, TopK: 10})[0].Hits) != 10 {
							b.Error("want 10 hits")
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(clients*b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(x.passes.Load()-passes)/float64(b.N), "passes/round")
		})
	}
}

// BenchmarkSearchModes compares, in one run on the same catalog
// (SIMMATCH_BENCH_MODE_ROWS synthetic products, default 100,000, random
// 384-dim vectors), the top-10 latency of dense, keyword and hybrid search
// at one client, and reports the keyword index's memory per million
// products. The query embedding is not part of it: it costs the same in
// dense and hybrid.
func BenchmarkSearchModes(b *testing.B) {
	const dims = 384
	n := 100_000
	if v := os.Getenv("SIMMATCH_BENCH_MODE_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("SIMMATCH_BENCH_MODE_ROWS=%q: want a positive integer", v)
		}
	}
	rng := rand.New(rand.NewPCG(4, 4))
	x := NewIndex(dims)
	vec := make([]float32, dims)
	for i, p := range keyword.SyntheticProducts(n, 1) {
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		x.Upsert(uint64(i+1), contracts.Product{ID: p.ID, Description: p.Description, Metadata: p.Metadata}, vec)
	}
	texts := keyword.SyntheticQueries(200, n, 2)
	vecs := make([][]float32, len(texts))
	for i := range vecs {
		vecs[i] = make([]float32, dims)
		for j := range vecs[i] {
			vecs[i][j] = float32(rng.NormFloat64())
		}
	}
	b.Logf("keyword index: %.0f MiB per million products (%d products, %d bytes)",
		float64(x.KeywordBytes())/float64(n)*1e6/(1<<20), n, x.KeywordBytes())
	for _, mode := range []string{contracts.ModeDense, contracts.ModeKeyword, contracts.ModeHybrid} {
		b.Run(fmt.Sprintf("%s/rows=%d", mode, n), func(b *testing.B) {
			var lat []time.Duration
			i := 0
			for b.Loop() {
				q := Query{Texts: texts[i%len(texts) : i%len(texts)+1], Vectors: vecs[i%len(vecs) : i%len(vecs)+1], TopK: 10,
					Options: contracts.SearchOptions{Mode: mode}}
				start := time.Now()
				x.Search(q)
				lat = append(lat, time.Since(start))
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(x.KeywordBytes())/float64(n)*1e6/(1<<20), "kw-MiB/1M")
		})
	}
}
