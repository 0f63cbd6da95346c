package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

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
