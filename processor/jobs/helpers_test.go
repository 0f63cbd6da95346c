package jobs_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/scheduler"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	hammer = "Heavy-duty claw hammer with a non-slip grip handle."
	saw    = "High-performance circular saw with laser guide."
)

// realModel is the real all-MiniLM-L6-v2, loaded once per test binary.
func realModel(t testing.TB) *processor.Model {
	t.Helper()
	return testenv.SharedModel(t, "fp32", func(dir, lib string) (*processor.Model, error) {
		return processor.LoadModel(processor.ModelOptions{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2", Version: "1"})
	})
}

func connect(t testing.TB, ns *server.Server) *nats.Conn { t.Helper(); return testenv.Connect(t, ns) }

// startProcessor starts what a processor node runs for jobs: a scheduler
// for the real model (its settings changed by smod), a processor on its own
// connection, and a jobs worker (cfg, on a connection of its own unless
// cfg.NATS is set) embedding through the same scheduler. Cleanup stops the
// worker first, then the processor, then the scheduler, as node.Stop does.
func startProcessor(t testing.TB, ns *server.Server, smod func(*scheduler.Config), cfg jobs.Config) *jobs.Worker {
	t.Helper()
	scfg := scheduler.Config{Model: realModel(t)}
	if smod != nil {
		smod(&scfg)
	}
	s, err := scheduler.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	stopWith(t, s.Close)
	p, err := processor.Start(processor.Config{NATS: connect(t, ns), Embedder: s})
	if err != nil {
		t.Fatal(err)
	}
	stopWith(t, p.Stop)
	if cfg.NATS == nil {
		cfg.NATS = connect(t, ns)
	}
	cfg.Embedder = s
	w, err := jobs.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopWith(t, w.Stop)
	return w
}

// stopWith calls stop when the test ends, with 30s to do its job.
func stopWith(t testing.TB, stop func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Error(err)
		}
	})
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

// postTo posts a JSON body to url and returns the answer with its body read.
func postTo(t testing.TB, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	return readAnswer(t, resp, err)
}

func getURL(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	return readAnswer(t, resp, err)
}

func readAnswer(t testing.TB, resp *http.Response, err error) (*http.Response, []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
