package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/simmatch/simmatch/internal/testenv"
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
