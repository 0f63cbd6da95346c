package cache

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// BenchmarkEmbed compares, side by side, embedding a request's 32 texts
// through the model (every text a miss), from the shared bucket (the
// in-process tier off) and from the in-process tier:
//
//	make bench BENCH=BenchmarkEmbed  (or go test -run '^$' -bench Embed ./processor/cache/)
//
// The ratio of the miss's ns/op to a hit's is the cache's speed-up.
func BenchmarkEmbed(b *testing.B) {
	const n = 32
	m := realModel(b, "1")
	ns := testenv.StartNATS(b, testenv.WithJetStream(b, ""))
	batch := func(i int) []string { return texts(fmt.Sprintf("bench %d", i), n) }
	report := func(b *testing.B) {
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "texts/s")
	}

	b.Run("miss-model", func(b *testing.B) {
		c := newCache(b, Config{Inner: m, Bytes: DefaultBytes})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := c.Embed(context.Background(), batch(i)); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("hit-shared", func(b *testing.B) {
		// Fill the bucket through one cache, read it through another
		// with no in-process tier.
		fill := newCache(b, Config{Inner: m, Shared: &SharedConfig{NATS: testenv.Connect(b, ns)}})
		testenv.WaitFor(b, 10*time.Second, "the bucket", func() bool { return fill.Stats().Shared.Ready })
		in := batch(-1)
		embed(b, fill, in...)
		testenv.WaitFor(b, 10*time.Second, "the bucket writes", func() bool { return fill.Stats().Shared.Puts == n })
		c := newCache(b, Config{Inner: m, Shared: &SharedConfig{NATS: testenv.Connect(b, ns)}})
		testenv.WaitFor(b, 10*time.Second, "the bucket", func() bool { return c.Stats().Shared.Ready })
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Embed(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
		if st := c.Stats().Shared; st.Misses != 0 || st.Hits == 0 {
			b.Fatalf("shared stats %+v: want hits only", st)
		}
		report(b)
	})
	b.Run("hit-local", func(b *testing.B) {
		c := newCache(b, Config{Inner: m, Bytes: DefaultBytes})
		in := batch(-2)
		embed(b, c, in...)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Embed(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}

// BenchmarkCatalog is the original service's real use, side by side with the
// cache off and on (in front of the scheduler, as the commands wire it): 16
// clients over NATS, each request a new query against the same 46-product
// catalog sent inline. Compare requests/s:
//
//	go test -run '^$' -bench Catalog -benchtime 100x ./processor/cache/
func BenchmarkCatalog(b *testing.B) {
	catalog := make([]string, 46)
	for i := range catalog {
		catalog[i] = fmt.Sprintf("Product %d: %s with a two-year warranty, free returns and next-day delivery.",
			i, []string{"cordless drill", "claw hammer", "circular saw", "garden hose", "LED desk lamp", "wool scarf"}[i%6])
	}
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", on), func(b *testing.B) {
			sched, err := scheduler.New(scheduler.Config{Model: realModel(b, "1")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = sched.Close(context.Background()) })
			var emb Embedder = sched
			if on {
				emb = newCache(b, Config{Inner: emb, Bytes: DefaultBytes})
			}
			ns := testenv.StartNATS(b)
			p, err := processor.Start(processor.Config{NATS: testenv.Connect(b, ns), Embedder: emb})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Stop(context.Background()) })
			// Without the cache, 16 waiting requests of 47 texts take long on
			// 2 cores: the timeout is generous so the run measures throughput.
			client, err := contracts.NewClient(testenv.Connect(b, ns), contracts.WithTimeout(2*time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					q := fmt.Sprintf("what can I use to cut wood, question %d?", seq.Add(1))
					if _, err := client.Match(context.Background(), &contracts.Request{
						Query: contracts.Queries{q}, ProductDescriptions: catalog}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
