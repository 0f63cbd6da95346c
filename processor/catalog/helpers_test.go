package catalog_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/scheduler"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// node is one processor with catalogs on its own connection, and a client
// on another.
type node struct {
	svc    *catalog.Service
	proc   *processor.Processor
	emb    *proctest.CountingEmbedder
	client *contracts.Client
}

// startNode starts a processor with the real model and a catalog service,
// connected to url, stopped when the test ends (or by stop).
func startNode(t testing.TB, url string, mod func(*catalog.Config)) *node {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The processors' own path: the model behind the scheduler.
	sched, err := scheduler.New(scheduler.Config{Model: proctest.RealModel(t), Pool: scheduler.NewPool(runtime.GOMAXPROCS(0))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the node's stop (cleanups run last first)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sched.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	emb := &proctest.CountingEmbedder{Embedder: sched}
	cfg := catalog.Config{NATS: nc, Embedder: emb}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := catalog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.Start(processor.Config{NATS: nc, Embedder: emb, Catalogs: svc})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{svc: svc, proc: p, emb: emb, client: newClient(t, url)}
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *node) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.proc.Stop(ctx); err != nil {
		t.Error(err)
	}
}

func newClient(t testing.TB, url string) *contracts.Client {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := contracts.NewClient(nc, contracts.WithTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

// shop is a small catalog with metadata to filter on.
var shop = []contracts.Product{
	{ID: "hammer", Description: "Steel claw hammer with a fiberglass handle, 16 oz.", Metadata: map[string]string{"dept": "tools"}},
	{ID: "saw", Description: "Hand saw with a 20-inch blade for cutting wood.", Metadata: map[string]string{"dept": "tools"}},
	{ID: "hose", Description: "Garden hose with adjustable spray nozzle, 50 ft.", Metadata: map[string]string{"dept": "garden"}},
	{ID: "espresso", Description: "Espresso machine with milk frother and 15-bar pump.", Metadata: map[string]string{"dept": "kitchen"}},
	{ID: "kettle", Description: "Electric kettle, 1.7 litres, stainless steel, auto shut-off.", Metadata: map[string]string{"dept": "kitchen"}},
	{ID: "rake", Description: "Leaf rake with 24 flexible steel tines.", Metadata: map[string]string{"dept": "garden"}},
}

// vectors is an Embed call's vectors, for tests about the vectors alone.
func vectors(r embedding.Result, err error) ([][]float32, error) { return r.Vectors, err }
