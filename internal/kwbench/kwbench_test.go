package kwbench

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/registry"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/simmatch/simmatch/processor/catalog/keyword"
)

const seed = 1

// simmatchTokenizer is keyword.Tokenize as a bleve tokenizer, so both
// engines index exactly the same terms.
type simmatchTokenizer struct{}

func (simmatchTokenizer) Tokenize(input []byte) analysis.TokenStream {
	terms := keyword.Tokenize(string(input))
	out := make(analysis.TokenStream, len(terms))
	for i, t := range terms {
		out[i] = &analysis.Token{Term: []byte(t), Position: i + 1, Type: analysis.AlphaNumeric}
	}
	return out
}

func init() {
	if err := registry.RegisterTokenizer("simmatch", func(map[string]interface{}, *registry.Cache) (analysis.Tokenizer, error) {
		return simmatchTokenizer{}, nil
	}); err != nil {
		panic(err)
	}
}

// bleveMapping indexes one field, "text" (description and metadata values),
// with the simmatch tokenizer and BM25 scoring; nothing stored, no term
// vectors, no _all field, no doc values.
func bleveMapping() (*mapping.IndexMappingImpl, error) {
	m := bleve.NewIndexMapping()
	if err := m.AddCustomAnalyzer("simmatch", map[string]interface{}{"type": custom.Name, "tokenizer": "simmatch"}); err != nil {
		return nil, err
	}
	m.DefaultAnalyzer = "simmatch"
	m.ScoringModel = index.BM25Scoring
	m.StoreDynamic, m.IndexDynamic, m.DocValuesDynamic = false, false, false
	f := bleve.NewTextFieldMapping()
	f.Analyzer = "simmatch"
	f.Store, f.IncludeTermVectors, f.IncludeInAll, f.DocValues = false, false, false, false
	d := bleve.NewDocumentStaticMapping()
	d.AddFieldMappingsAt("text", f)
	m.DefaultMapping = d
	return m, nil
}

func rows(b *testing.B) int {
	if s := os.Getenv("SIMMATCH_KW_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SIMMATCH_KW_ROWS=%q: want a positive integer", s)
		}
		return n
	}
	return 1000000
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// engine is one index under test: build indexes products 0..n-1, top runs a
// top-10 query and returns the number of rows matching it.
type engine struct {
	name  string
	build func(n int) (top func(q string) int, closeFn func(), err error)
}

type result struct {
	name              string
	n                 int
	build             time.Duration
	heap              uint64
	p50, p99, mean    time.Duration
	matched, disagree int
}

var engines = []engine{
	{"simmatch keyword", func(n int) (func(string) int, func(), error) {
		x := keyword.New()
		for i := range n {
			x.Set(i, keyword.SyntheticProductAt(seed, i).Fields()...)
		}
		x.Compact()
		hits := make([]keyword.Hit, 0, 10)
		return func(q string) int {
			hits = x.Top(q, 10, hits)
			return len(hits)
		}, func() { runtime.KeepAlive(x) }, nil
	}},
	{"bleve NewMemOnly", func(n int) (func(string) int, func(), error) {
		m, err := bleveMapping()
		if err != nil {
			return nil, nil, err
		}
		idx, err := bleve.NewMemOnly(m)
		if err != nil {
			return nil, nil, err
		}
		return bleveFill(idx, n)
	}},
	{"bleve scorch in memory", func(n int) (func(string) int, func(), error) {
		m, err := bleveMapping()
		if err != nil {
			return nil, nil, err
		}
		idx, err := bleve.NewUsing("", m, scorch.Name, scorch.Name, nil)
		if err != nil {
			return nil, nil, err
		}
		return bleveFill(idx, n)
	}},
}

func bleveFill(idx bleve.Index, n int) (func(string) int, func(), error) {
	const batchSize = 10000
	batch := idx.NewBatch()
	for i := range n {
		p := keyword.SyntheticProductAt(seed, i)
		if err := batch.Index(p.ID, map[string]interface{}{"text": strings.Join(p.Fields(), " ")}); err != nil {
			return nil, nil, err
		}
		if batch.Size() == batchSize || i == n-1 {
			if err := idx.Batch(batch); err != nil {
				return nil, nil, err
			}
			batch.Reset()
		}
	}
	top := func(q string) int {
		mq := bleve.NewMatchQuery(q)
		mq.SetField("text")
		mq.Analyzer = "simmatch"
		res, err := idx.Search(bleve.NewSearchRequestOptions(mq, 10, 0, false))
		if err != nil {
			panic(err)
		}
		return len(res.Hits)
	}
	return top, func() { idx.Close() }, nil
}

// BenchmarkCompare builds each engine over the same SIMMATCH_KW_ROWS
// synthetic products (default 1,000,000), one after the other, and times
// the same 1,000 queries on each (after 100 warm-up queries). Engines:
// SIMMATCH_KW_ENGINES, a comma-separated list of name prefixes (default all).
// Run once with -benchtime 1x: the iteration count is ignored.
func BenchmarkCompare(b *testing.B) {
	n := rows(b)
	queries := keyword.SyntheticQueries(1000, n, seed)
	want := os.Getenv("SIMMATCH_KW_ENGINES")
	var results []result
	for b.Loop() {
		results = results[:0]
		for _, e := range engines {
			if want != "" && !slices.ContainsFunc(strings.Split(want, ","), func(p string) bool { return strings.HasPrefix(e.name, strings.TrimSpace(p)) }) {
				continue
			}
			before := heap()
			start := time.Now()
			top, closeFn, err := e.build(n)
			if err != nil {
				b.Fatalf("%s: %v", e.name, err)
			}
			r := result{name: e.name, n: n, build: time.Since(start)}
			after := heap()
			if after > before {
				r.heap = after - before
			}
			for _, q := range queries[:100] {
				top(q)
			}
			took := make([]time.Duration, len(queries))
			var total time.Duration
			for i, q := range queries {
				t0 := time.Now()
				if top(q) > 0 {
					r.matched++
				}
				took[i] = time.Since(t0)
				total += took[i]
			}
			slices.Sort(took)
			r.p50, r.p99, r.mean = took[len(took)/2], took[len(took)*99/100], total/time.Duration(len(took))
			closeFn()
			results = append(results, r)
			fmt.Fprintf(os.Stderr, "kwbench: %s done (build %v)\n", e.name, r.build.Round(time.Second))
		}
	}
	fmt.Printf("\n%d synthetic products, %d queries (top 10), GOMAXPROCS=%d, %s/%s\n", n, len(queries), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("| %-24s | %10s | %10s | %14s | %9s | %9s | %9s | %8s |\n", "engine", "build", "heap MiB", "MiB per 1M", "p50", "p99", "mean", "matched")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 26), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 16), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 10))
	for _, r := range results {
		mib := float64(r.heap) / (1 << 20)
		fmt.Printf("| %-24s | %10v | %10.1f | %14.1f | %9v | %9v | %9v | %8d |\n", r.name, r.build.Round(time.Millisecond), mib, mib*1e6/float64(r.n),
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.mean.Round(time.Microsecond), r.matched)
	}
}
