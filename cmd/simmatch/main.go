// Command simmatch is the all-in-one (`simmatch serve`, the default): an
// embedded NATS server, one processor with the real model and the HTTP
// bridge (default :8000) in one process. GET /metrics on the bridge's port
// serves the bridge's and the processor's metrics together.
// More processors can join from other processes through the embedded
// server's listen address (-nats-listen).
//
// Its other subcommands are clients of a running service: match, embed, jobs
// and catalog import|export (see `simmatch help`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/cmd/internal/procflags"
	"github.com/simmatch/simmatch/processor/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, errorLine(err))
		}
		os.Exit(exitCode(err))
	}
}

// errorLine is err as printed on stderr: prefixed with "simmatch:" once
// (the service's own errors already are).
func errorLine(err error) string {
	if msg := err.Error(); strings.HasPrefix(msg, "simmatch: ") {
		return msg
	}
	return "simmatch: " + err.Error()
}

// serve starts the all-in-one and blocks until ctx ends. ready, when not
// nil, gets the bridge's base URL and the NATS URL once both serve.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready func(httpURL, natsURL string)) error {
	var (
		common     cli.Common
		bs         cli.Bridge
		ps         procflags.Settings
		natsListen string
		dataDir    string
	)
	f := cli.NewFlags("simmatch", getenv, stdout)
	f.Common(&common, false)
	f.Bridge(&bs)
	ps.Register(f)
	f.Limits(&ps.Limits)
	f.String(&natsListen, "nats-listen", "SIMMATCH_NATS_LISTEN", "127.0.0.1:4222", "where the embedded NATS server listens for other processors and clients; beyond loopback it requires the user and password it writes to <data-dir>/nats-credentials (0600); empty: in-process only")
	f.String(&dataDir, "data-dir", "SIMMATCH_DATA_DIR", "data", "where the embedded NATS keeps JetStream (catalogs); survives restarts")
	f.SetUsage(serveUsage)
	if err := f.Parse(args); err != nil {
		return err
	}
	ps.OwnDefault = modelGiven(f)
	logger, stopTracing, err := cli.Observe(ctx, common, "simmatch", getenv, stdout)
	if err != nil {
		return err
	}
	defer stopTracing()

	// Keys and certificates first: a broken file fails before the model loads.
	sec, err := bs.Security(ctx, logger)
	if err != nil {
		return err
	}
	ns, creds, err := startNATS(natsListen, dataDir)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	connect := func(name string) (*nats.Conn, error) {
		opts := []nats.Option{nats.InProcessServer(ns), nats.Name(name), cli.NATSLogHandlers(logger)}
		if creds != nil {
			opts = append(opts, nats.UserInfo(creds.User, creds.Password))
		}
		return nats.Connect("", opts...)
	}
	if creds != nil {
		logger.Info("the embedded NATS listens beyond loopback: clients need the user and password in the credentials file",
			"nats_listen", natsListen, "credentials_file", creds.Path)
	}

	// The processor has its own connection: its drain waits for that
	// connection's subscriptions to end.
	pnc, err := connect("simmatch-processor")
	if err != nil {
		return fmt.Errorf("connect processor to embedded NATS: %w", err)
	}
	defer pnc.Close()
	// One registry: the bridge serves its own and the processor's metrics.
	reg := cli.NewRegistry("all-in-one")
	n, err := node.Start(pnc, ps.Config, logger, reg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), common.ShutdownTimeout)
		defer cancel()
		if err := n.Stop(sctx); err != nil {
			logger.Error("processor shutdown", "err", err)
		}
	}()

	bnc, err := connect("simmatch-bridge")
	if err != nil {
		return fmt.Errorf("connect bridge to embedded NATS: %w", err)
	}
	defer bnc.Close()
	h, err := bridge.New(bs.Config(sec, bnc, ps.Limits, logger, reg))
	if err != nil {
		return err
	}
	_, stopMetrics, err := bs.ServeMetrics(ctx, reg, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	ln, httpURL, err := sec.Listen(bs.HTTPAddr)
	if err != nil {
		return err
	}
	natsURL := "in-process only"
	if natsListen != "" {
		natsURL = ns.ClientURL()
	}
	logger.Info("simmatch ready", "http", httpURL, "nats", natsURL)
	if ready != nil {
		ready(httpURL, natsURL)
	}
	// Serve returns after in-flight HTTP requests are answered; the deferred
	// calls then drain the processor and stop NATS, in that order.
	return bridge.Serve(ctx, ln, h, common.ShutdownTimeout, logger)
}

// modelGiven reports whether the all-in-one's model was given explicitly
// (-model-dir, -model-name or -model-version, or their SIMMATCH_* variables).
// The all-in-one owns the desired model state in its data directory: a model
// given at start becomes the recorded default, over one recorded by an
// earlier run or a switch. Started without one, it follows the recorded
// default. (A simmatch-processor joining a fleet always follows it.)
func modelGiven(f *cli.Flags) bool {
	return f.Explicit("model-dir") || f.Explicit("model-name") || f.Explicit("model-version")
}

// startNATS starts the embedded NATS server, keeping JetStream in dataDir.
// When listen reaches beyond loopback, the server requires the user and
// password of embeddedNATSCredentials, which it returns; nil otherwise.
func startNATS(listen, dataDir string) (*server.Server, *natsCredentials, error) {
	// JetStream cannot start on a directory it cannot write, and the
	// embedded server's own log is off: say so here, plainly.
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("data directory (SIMMATCH_DATA_DIR, -data-dir) %s: %w", dataDir, err)
	}
	probe, err := os.CreateTemp(dataDir, ".write-probe-*")
	if err != nil {
		return nil, nil, fmt.Errorf("data directory (SIMMATCH_DATA_DIR, -data-dir) %s is not writable: %w", dataDir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	opts := &server.Options{ServerName: "simmatch-embedded", NoSigs: true, MaxPayload: 8 << 20,
		JetStream: true, StoreDir: dataDir}
	if listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, nil, fmt.Errorf("-nats-listen %q: want host:port: %w", listen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, nil, fmt.Errorf("-nats-listen %q: bad port", listen)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	var creds *natsCredentials
	if listen != "" && beyondLoopback(listen) {
		c, err := embeddedNATSCredentials(dataDir)
		if err != nil {
			return nil, nil, err
		}
		creds, opts.Username, opts.Password = &c, c.User, c.Password
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, nil, errors.New("embedded NATS did not start within 10s (is the -nats-listen port in use?)")
	}
	return ns, creds, nil
}
