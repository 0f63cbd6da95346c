package catalog_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
)

// catalog46 is a 46-product catalog, the size of the original service's example use.
func catalog46() []contracts.Product {
	kinds := []string{"claw hammer", "circular saw", "garden hose", "espresso machine", "electric kettle", "leaf rake",
		"cordless drill", "office chair", "desk lamp", "running shoes", "yoga mat", "rain jacket", "backpack",
		"coffee grinder", "chef's knife", "cast iron skillet", "bluetooth speaker", "noise-cancelling headphones",
		"mechanical keyboard", "wireless mouse", "water bottle", "camping tent", "sleeping bag"}
	var ps []contracts.Product
	for i := range 46 {
		k := kinds[i%len(kinds)]
		ps = append(ps, contracts.Product{ID: fmt.Sprintf("p%02d", i),
			Description: fmt.Sprintf("%s, model %d: durable, well reviewed, ships in two days", k, 100+i)})
	}
	return ps
}

// BenchmarkSearch46 compares, in one run, a search of the stored 46-product
// catalog with /predict carrying the same 46 descriptions inline (which
// embeds them on every call, as the original service does), over NATS to
// one processor with the real model, at 1 and 16 clients. Each request has
// a new query. It reports requests/s and the median latency.
func BenchmarkSearch46(b *testing.B) {
	ns := testenv.StartNATS(b, testenv.WithJetStream(b, ""))
	n := startNode(b, ns.ClientURL(), nil)
	// Benchmarks run for as long as -benchtime asks: no 60-second test context.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ps := catalog46()
	if _, err := n.client.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop46", Products: ps}); err != nil {
		b.Fatal(err)
	}
	descs := make([]string, len(ps))
	for i, p := range ps {
		descs[i] = p.Description
	}
	var seq atomic.Int64
	calls := map[string]func() error{
		"catalog": func() error {
			q := fmt.Sprintf("something to buy for the house, idea %d", seq.Add(1))
			_, err := n.client.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop46", Query: contracts.Queries{q}, TopK: ptr(5)})
			return err
		},
		"inline": func() error {
			q := fmt.Sprintf("something to buy for the house, idea %d", seq.Add(1))
			_, err := n.client.Match(ctx, &contracts.Request{Query: contracts.Queries{q}, ProductDescriptions: descs, TopK: ptr(5)})
			return err
		},
	}
	for _, clients := range []int{1, 16} {
		for _, mode := range []string{"catalog", "inline"} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode, clients), func(b *testing.B) {
				call := calls[mode]
				var (
					mu   sync.Mutex
					lats []time.Duration
				)
				timed := func() {
					start := time.Now()
					if err := call(); err != nil {
						b.Error(err)
					}
					d := time.Since(start)
					mu.Lock()
					lats = append(lats, d)
					mu.Unlock()
				}
				if clients == 1 {
					for b.Loop() {
						timed()
					}
				} else {
					b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							timed()
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
				slices.Sort(lats)
				if len(lats) > 0 {
					b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
				}
			})
		}
	}
}

// BenchmarkUpsert compares, in one run, storing products through a
// processor (embed, then write each with its embedding to JetStream) with
// the model alone embedding the same descriptions in the same batches: the
// import's products/s against raw ONNX Runtime sentences/s.
func BenchmarkUpsert(b *testing.B) {
	ns := testenv.StartNATS(b, testenv.WithJetStream(b, ""))
	n := startNode(b, ns.ClientURL(), nil)
	// Benchmarks run for as long as -benchtime asks: no 60-second test context.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const batch = 256
	mk := func(round, i int) contracts.Product {
		return contracts.Product{ID: fmt.Sprintf("p%d-%d", round, i),
			Description: fmt.Sprintf("Product %d of round %d: a sturdy tool with a two-year warranty, ships in two days", i, round)}
	}
	round := 0
	b.Run("raw-embed", func(b *testing.B) {
		for b.Loop() {
			round++
			texts := make([]string, batch)
			for i := range texts {
				texts[i] = mk(round, i).Description
			}
			if _, err := proctest.RealModel(b).Embed(ctx, texts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "products/s")
	})
	b.Run("upsert", func(b *testing.B) {
		for b.Loop() {
			round++
			ps := make([]contracts.Product, batch)
			for i := range ps {
				ps[i] = mk(round, i)
			}
			if _, err := n.client.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "bulk", Products: ps}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "products/s")
	})
}
