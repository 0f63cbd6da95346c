package catalog

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/embedding"
)

// noInference stands in for the model where loading is measured: loading a
// catalog must never embed, and this embedder fails if it is asked to.
type noInference struct{}

func (noInference) Embed(context.Context, []string) (embedding.Result, error) {
	return embedding.Result{}, errors.New("catalog load ran inference")
}

func (noInference) Info() contracts.ModelInfo {
	return contracts.ModelInfo{Name: "all-MiniLM-L6-v2", Version: "1", Dimensions: 384}
}

// BenchmarkCatalogLoad is what a restarted or new processor does before it
// serves a catalog: read every record from JetStream into the matrix.
// SIMMATCH_BENCH_LOAD_ROWS products (default 100,000; `make bench-catalog`).
func BenchmarkCatalogLoad(b *testing.B) {
	n := 100_000
	if v := os.Getenv("SIMMATCH_BENCH_LOAD_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("SIMMATCH_BENCH_LOAD_ROWS=%q: want a positive integer", v)
		}
	}
	ns := testenv.StartNATS(b, testenv.WithJetStream(b, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, err := New(Config{NATS: testenv.Connect(b, ns), Embedder: noInference{}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop(ctx)
	if err := w.create(ctx, "big", noInference{}.Info()); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	vec := make([]float32, 384)
	for lo := 0; lo < n; lo += publishChunk {
		var futs []jetstream.PubAckFuture
		for i := lo; i < min(lo+publishChunk, n); i++ {
			for j := range vec {
				vec[j] = float32(rng.NormFloat64())
			}
			p := contracts.Product{ID: "p" + strconv.Itoa(i), Description: "Product number " + strconv.Itoa(i) + ", a sturdy thing for home and garden",
				Metadata: map[string]string{"dept": strconv.Itoa(i % 10)}}
			msg, err := encodeRecord("big", p, map[string][]float32{modelKey(noInference{}.Info()): vec})
			if err != nil {
				b.Fatal(err)
			}
			f, err := w.js.PublishMsgAsync(msg)
			if err != nil {
				b.Fatal(err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		s, err := New(Config{NATS: testenv.Connect(b, ns), Embedder: noInference{}})
		if err != nil {
			b.Fatal(err)
		}
		f, _, err := s.sync(ctx, "big")
		if err != nil {
			b.Fatal(err)
		}
		if idx, _, _ := f.view(); idx.Len() != n {
			b.Fatalf("loaded %d products, want %d", idx.Len(), n)
		}
		if err := s.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "products/s")
}
