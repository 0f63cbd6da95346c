package keyword

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// benchRows is the synthetic catalog's size for BenchmarkScore:
// SIMMATCH_KW_ROWS, default 200,000 (internal/kwbench measures a million).
func benchRows(b *testing.B) int {
	if s := os.Getenv("SIMMATCH_KW_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SIMMATCH_KW_ROWS=%q: want a positive integer", s)
		}
		return n
	}
	return 200000
}

// BenchmarkScore times a top-10 query (Score and a 10-row heap) over a
// synthetic catalog, one query per iteration from a fixed mix, and reports
// the p50 and p99 per query.
func BenchmarkScore(b *testing.B) {
	rows := benchRows(b)
	x := New()
	for i := range rows {
		x.Set(i, SyntheticProductAt(1, i).Fields()...)
	}
	x.Compact()
	queries := SyntheticQueries(1000, rows, 1)
	hits := make([]Hit, 0, 10)
	var took []time.Duration
	b.ResetTimer()
	i := 0
	for b.Loop() {
		start := time.Now()
		hits = x.Top(queries[i%len(queries)], 10, hits)
		took = append(took, time.Since(start))
		i++
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns/query")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns/query")
	b.ReportMetric(float64(x.Bytes())/float64(rows), "index-B/row")
}
