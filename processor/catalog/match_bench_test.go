package catalog

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// matchBenchRows is the catalog size of BenchmarkDedupe:
// SIMMATCH_BENCH_MATCH_ROWS, default 100,000 (`make bench-match ROWS=...`).
func matchBenchRows(b *testing.B) int {
	if v := os.Getenv("SIMMATCH_BENCH_MATCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SIMMATCH_BENCH_MATCH_ROWS=%q: want a positive integer", v)
		}
		return n
	}
	return 100_000
}

// BenchmarkDedupe is an N x N dedupe of random unit vectors (384 dims), as
// a processor works through a dedupe job: chunks of 512 source rows, each
// answered in passes of MatchPass queries over the whole matrix (every
// core), max_neighbors 50, threshold 0.9. It reports the wall time of the
// whole dedupe, its GFLOP/s (2 N N dims / time) beside the float32 FMA
// peak measured in the same run (vecmath.PeakGFLOPS: register-only FMAs on
// every core), the fraction of that peak, and the memory (the matrix, and
// the process's peak RSS). The sub-benchmarks vary MatchPass, with the
// float32 kernel (pass=...) and with the exact per-probe pass
// (exact/pass=..., F32Probes out of reach); the log line also gives
// vecmath.Dot's own peak (L1-resident vectors, every core).
func BenchmarkDedupe(b *testing.B) {
	const dims = 384
	n := matchBenchRows(b)
	rng := rand.New(rand.NewPCG(11, 11))
	x := NewIndex(dims)
	x.matrix = make([]float32, 0, n*dims)
	vec := make([]float32, dims)
	ids := make([]string, n)
	for i := range n {
		var s float64
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
			s += float64(vec[j]) * float64(vec[j])
		}
		for j := range vec {
			vec[j] /= float32(math.Sqrt(s))
		}
		ids[i] = strconv.Itoa(i)
		x.Upsert(uint64(i+1), contracts.Product{ID: ids[i]}, vec)
	}
	peak := vecmath.PeakGFLOPS(runtime.GOMAXPROCS(0), time.Second)
	b.Logf("N=%d dims=%d GOMAXPROCS=%d; measured float32 FMA peak (register-only, every core): %.1f GFLOP/s; vecmath.Dot peak (L1-resident, every core): %.1f GFLOP/s; matrix %.0f MiB",
		n, dims, runtime.GOMAXPROCS(0), peak, dotPeak(dims), float64(x.MatrixBytes())/(1<<20))
	th := 0.9
	for _, c := range []struct {
		name  string
		pass  int
		exact bool
	}{{"pass=32", 32, false}, {"pass=128", 128, false}, {"pass=512", 512, false}, {"exact/pass=128", 128, true}} {
		b.Run(c.name, func(b *testing.B) {
			old, oldF32 := MatchPass, F32Probes
			MatchPass = c.pass
			if c.exact {
				F32Probes = math.MaxInt
			}
			defer func() { MatchPass, F32Probes = old, oldF32 }()
			pairs := 0
			b.ResetTimer()
			for range b.N {
				pairs = 0
				for lo := 0; lo < n; lo += contracts.DefaultMatchChunkSize {
					spec := MatchSpec{IDs: ids[lo:min(lo+contracts.DefaultMatchChunkSize, n)], TopK: contracts.DefaultDedupeNeighbors, Threshold: &th, Dedupe: true}
					rows, err := matchIndexes(context.Background(), x, x, spec)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range rows {
						pairs += len(r.Matches)
					}
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			gflops := 2 * float64(n) * float64(n) * dims / sec / 1e9
			b.ReportMetric(sec, "s/dedupe")
			b.ReportMetric(gflops, "GFLOP/s")
			b.ReportMetric(peak, "peak-GFLOP/s")
			b.ReportMetric(100*gflops/peak, "%-of-peak")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(pairs), "pairs")
		})
	}
}

// dotPeak is the GFLOP/s of vecmath.Dot on two L1-resident vectors, one
// goroutine per core, for a second.
func dotPeak(dims int) float64 {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	counts := make([]int64, workers)
	deadline := time.Now().Add(time.Second)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			a, c := make([]float32, dims), make([]float32, dims)
			for i := range a {
				a[i], c[i] = float32(i%7)/7, float32(i%5)/5
			}
			var sink float64
			var k int64
			for time.Now().Before(deadline) {
				for range 1000 {
					sink += vecmath.Dot(a, c)
				}
				k += 1000
			}
			counts[w] = k
			if sink == 42 {
				println()
			}
		})
	}
	wg.Wait()
	var total int64
	for _, k := range counts {
		total += k
	}
	return float64(total) * 2 * float64(dims) / time.Since(start).Seconds() / 1e9
}

// peakRSS is the process's peak resident set (VmHWM), or 0 off Linux.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
