// Command simmatch-load drives simmatch (the bridge over HTTP or the
// processors over NATS) with a request mix at a fixed concurrency or an
// open-loop rate, and prints throughput, errors and latency percentiles;
// `simmatch-load report FILES` prints the comparison table of
// `make bench-compare`. Loopback targets only unless -allow-remote.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/simmatch/simmatch/cmd/internal/loadcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := loadcmd.Run(ctx, "simmatch-load", os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-load:", err)
		os.Exit(1)
	}
}
