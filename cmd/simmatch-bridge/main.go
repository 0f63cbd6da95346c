// Command simmatch-bridge is the HTTP API of simmatch: it validates REST
// requests (POST /predict, GET /health, GET /ready, ...) and turns them into
// NATS requests to the processors. It serves its Prometheus metrics on
// GET /metrics of the same port. It builds with CGO_ENABLED=0.
//
// With SIMMATCH_API_KEYS_FILE it requires API keys, with
// SIMMATCH_TLS_CERT_FILE it serves HTTPS; see docs/security.md.
// `simmatch-bridge -hash-key < keyfile` prints a key's hash for the keys file.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-bridge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	var (
		common  cli.Common
		bs      cli.Bridge
		limits  contracts.Limits
		hashKey bool
	)
	f := cli.NewFlags("simmatch-bridge", getenv, stdout)
	f.Common(&common, true)
	f.Bridge(&bs)
	f.Limits(&limits)
	f.Bool(&hashKey, "hash-key", "", false, "read an API key on stdin, print its SHA-256 for the keys file, and exit")
	if err := f.Parse(args); err != nil {
		return err
	}
	if hashKey {
		return printKeyHash(stdin, stdout)
	}
	logger, stopTracing, err := cli.Observe(ctx, common, "simmatch-bridge", getenv, stdout)
	if err != nil {
		return err
	}
	defer stopTracing()

	sec, err := bs.Security(ctx, logger)
	if err != nil {
		return err
	}
	nc, err := cli.ConnectNATS(common, "simmatch-bridge", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := cli.NewRegistry("bridge")
	h, err := bridge.New(bs.Config(sec, nc, limits, logger, reg))
	if err != nil {
		return err
	}
	_, stopMetrics, err := bs.ServeMetrics(ctx, reg, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	ln, url, err := sec.Listen(bs.HTTPAddr)
	if err != nil {
		return err
	}
	logger.Info("bridge listening", "url", url)
	return bridge.Serve(ctx, ln, h, common.ShutdownTimeout, logger)
}

// minKeyLen is the shortest API key -hash-key accepts: a key is a password
// nobody types, so it can be long and random.
const minKeyLen = 16

// printKeyHash reads a key (one line) from stdin and prints its hash, as
// the keys file stores it.
func printKeyHash(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the key from stdin: %w", err)
	}
	key := strings.TrimSpace(line)
	if len(key) < minKeyLen || strings.ContainsAny(key, " \t") {
		return fmt.Errorf("-hash-key: want a key of at least %d characters without spaces on stdin, e.g. from `openssl rand -hex 32`", minKeyLen)
	}
	_, err = fmt.Fprintln(stdout, bridge.HashKey(key))
	return err
}
