// Command simmatch-processor serves similarity requests from NATS: it joins
// the processors' queue group on similarity.request, so running more of them
// shares the load. SIGTERM drains: every accepted request is answered.
// Prometheus metrics and a liveness probe are served on -metrics-addr
// (/metrics, /health).
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/cmd/internal/procflags"
	"github.com/simmatch/simmatch/processor/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-processor:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains. onReady, when not nil, gets the
// metrics server's base URL (empty without one) once the processor serves.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, onReady func(metricsURL string)) error {
	var (
		common      cli.Common
		ps          procflags.Settings
		metricsAddr string
	)
	f := cli.NewFlags("simmatch-processor", getenv, stdout)
	f.Common(&common, true)
	ps.Register(f)
	f.Limits(&ps.Limits)
	f.String(&metricsAddr, "metrics-addr", "SIMMATCH_METRICS_ADDR", ":9091", "where /metrics and /health are served; empty: nowhere")
	if err := f.Parse(args); err != nil {
		return err
	}
	logger, stopTracing, err := cli.Observe(ctx, common, "simmatch-processor", getenv, stdout)
	if err != nil {
		return err
	}
	defer stopTracing()

	reg := cli.NewRegistry("processor")
	// Ready: the model is loaded, the processor subscribed, NATS connected,
	// and no drain has begun.
	var serving atomic.Bool
	var conn atomic.Pointer[nats.Conn]
	ready := func() bool { nc := conn.Load(); return serving.Load() && nc != nil && nc.IsConnected() }
	metricsURL := ""
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("listen on %s (set SIMMATCH_METRICS_ADDR to use another address): %w", metricsAddr, err)
		}
		// The metrics server outlives the drain below, so the last scrape
		// still sees the in-flight requests go to zero.
		mctx, stopMetrics := context.WithCancel(context.Background())
		merr := make(chan error, 1)
		go func() { merr <- cli.ServeMetrics(mctx, ln, reg, ready, logger) }()
		defer func() {
			stopMetrics()
			if err := <-merr; err != nil {
				logger.Error("metrics server", "err", err)
			}
		}()
		metricsURL = "http://" + ln.Addr().String()
		logger.Info("metrics listening", "addr", ln.Addr().String())
	}

	nc, err := cli.ConnectNATS(common, "simmatch-processor", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	conn.Store(nc)
	n, err := node.Start(nc, ps.Config, logger, reg)
	if err != nil {
		return err
	}
	serving.Store(true)
	if onReady != nil {
		onReady(metricsURL)
	}
	<-ctx.Done()
	serving.Store(false)
	logger.Info("shutting down: draining the processor", "timeout", common.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), common.ShutdownTimeout)
	defer cancel()
	return n.Stop(sctx)
}
