// Command simmatch-bridge is the HTTP API of simmatch: it validates REST
// requests (POST /predict, GET /health, GET /ready, ...) and turns them into
// NATS requests to the processors. It serves its Prometheus metrics on
// GET /metrics of the same port. It builds with CGO_ENABLED=0.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-bridge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		common cli.Common
		bs     cli.Bridge
		limits contracts.Limits
	)
	f := cli.NewFlags("simmatch-bridge", getenv, stdout)
	f.Common(&common, true)
	f.Bridge(&bs)
	f.Limits(&limits)
	if err := f.Parse(args); err != nil {
		return err
	}
	logger, err := cli.NewLogger(common, stdout)
	if err != nil {
		return err
	}
	shutdownTracing, err := cli.SetupTracing(ctx, "simmatch-bridge", getenv)
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())

	nc, err := nats.Connect(common.NATSURL, nats.Name("simmatch-bridge"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), cli.NATSLogHandlers(logger))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", cli.RedactURLs(common.NATSURL), err)
	}
	defer nc.Close()
	reg := cli.NewRegistry("bridge")
	h, err := bridge.New(bridge.Config{NATS: nc, Limits: limits, RequestTimeout: bs.RequestTimeout, Logger: logger,
		Metrics: reg, Gatherer: reg})
	if err != nil {
		return err
	}
	logger.Info("bridge listening", "addr", bs.HTTPAddr)
	return bridge.ListenAndServe(ctx, bs.HTTPAddr, h, common.ShutdownTimeout, logger)
}
