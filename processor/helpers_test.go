package processor_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/scheduler"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// realModel is the real all-MiniLM-L6-v2, loaded once per test binary.
func realModel(t testing.TB) *processor.Model { t.Helper(); return proctest.RealModel(t) }

// startNATS runs a real NATS server in-process on a random loopback port.
func startNATS(t testing.TB) *server.Server { t.Helper(); return testenv.StartNATS(t) }

func connect(t testing.TB, ns *server.Server) *nats.Conn { t.Helper(); return testenv.Connect(t, ns) }

// startProcessor starts a processor with the real model, behind its own
// scheduler, on its own connection.
func startProcessor(t testing.TB, ns *server.Server, mod func(*processor.Config)) *processor.Processor {
	t.Helper()
	return startProcessorWith(t, ns, nil, mod)
}

// startProcessorWith is startProcessor with the scheduler's settings
// changed by smod. The scheduler shares the processor's Metrics and
// TracerProvider, as in the commands.
func startProcessorWith(t testing.TB, ns *server.Server, smod func(*scheduler.Config), mod func(*processor.Config)) *processor.Processor {
	t.Helper()
	cfg := processor.Config{NATS: connect(t, ns)}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.Embedder == nil {
		cfg.Embedder = startScheduler(t, func(c *scheduler.Config) {
			c.Metrics, c.TracerProvider = cfg.Metrics, cfg.TracerProvider
			if smod != nil {
				smod(c)
			}
		})
	}
	p, err := processor.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StopAtEnd(t, p.Stop)
	return p
}

// startScheduler starts a scheduler for the real model; Cleanup closes it
// (after the processor's Stop, which was registered later).
func startScheduler(t testing.TB, mod func(*scheduler.Config)) *scheduler.Scheduler {
	t.Helper()
	cfg := scheduler.Config{Model: realModel(t)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := scheduler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StopAtEnd(t, s.Close)
	return s
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
	testenv.WaitFor(t, timeout, what, cond)
}

// vectors is an Embed call's vectors, for tests about the vectors alone.
func vectors(r embedding.Result, err error) ([][]float32, error) { return r.Vectors, err }
