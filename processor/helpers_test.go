package processor_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
)

// The real model is loaded once per test binary: Embed is safe for
// concurrent use, so every processor in these tests shares it.
var (
	modelOnce sync.Once
	model     *processor.Model
	modelErr  error
)

func TestMain(m *testing.M) {
	// Request logs would drown test and benchmark output; warnings still show.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := m.Run()
	if model != nil {
		model.Close()
	}
	os.Exit(code)
}

func realModel(t testing.TB) *processor.Model {
	t.Helper()
	modelOnce.Do(func() {
		dir, lib := os.Getenv("SIMMATCH_MODEL_DIR"), os.Getenv("SIMMATCH_ORT_LIB")
		if dir == "" || lib == "" {
			modelErr = fmt.Errorf("SIMMATCH_MODEL_DIR and SIMMATCH_ORT_LIB must point at the real model and ONNX Runtime: run the tests with `make test`")
			return
		}
		model, modelErr = processor.LoadModel(processor.ModelOptions{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2", Version: "1"})
	})
	if modelErr != nil {
		t.Fatal(modelErr)
	}
	return model
}

// startNATS runs a real NATS server in-process on a random loopback port.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startProcessor starts a processor with the real model on its own connection.
func startProcessor(t testing.TB, ns *server.Server, mod func(*processor.Config)) *processor.Processor {
	t.Helper()
	cfg := processor.Config{NATS: connect(t, ns), Embedder: realModel(t)}
	if mod != nil {
		mod(&cfg)
	}
	p, err := processor.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return p
}

// startBridge serves the real bridge over a real HTTP listener on loopback.
func startBridge(t testing.TB, ns *server.Server, mod func(*bridge.Config)) *httptest.Server {
	t.Helper()
	cfg := bridge.Config{NATS: connect(t, ns)}
	if mod != nil {
		mod(&cfg)
	}
	h, err := bridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t testing.TB, nc *nats.Conn, tp trace.TracerProvider) *contracts.Client {
	t.Helper()
	opts := []contracts.ClientOption{contracts.WithPropagator(propagation.TraceContext{})}
	if tp != nil {
		opts = append(opts, contracts.WithTracerProvider(tp))
	}
	c, err := contracts.NewClient(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
