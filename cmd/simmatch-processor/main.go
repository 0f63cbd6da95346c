// Command simmatch-processor serves similarity requests from NATS: it joins
// the processors' queue group on similarity.request, so running more of them
// shares the load. SIGTERM drains: every accepted request is answered.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/cmd/internal/procflags"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-processor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		common cli.Common
		ps     procflags.Settings
	)
	f := cli.NewFlags("simmatch-processor", getenv, stdout)
	f.Common(&common, true)
	ps.Register(f)
	f.Limits(&ps.Limits)
	if err := f.Parse(args); err != nil {
		return err
	}
	logger, err := cli.NewLogger(common, stdout)
	if err != nil {
		return err
	}
	shutdownTracing, err := cli.SetupTracing(ctx, "simmatch-processor", getenv)
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())

	nc, err := nats.Connect(common.NATSURL, nats.Name("simmatch-processor"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), cli.NATSLogHandlers(logger))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", common.NATSURL, err)
	}
	defer nc.Close()
	stopProcessor, err := ps.Start(nc, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down: draining the processor", "timeout", common.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), common.ShutdownTimeout)
	defer cancel()
	return stopProcessor(sctx)
}
