package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/simmatch/simmatch/cmd/internal/catalogcmd"
	"github.com/simmatch/simmatch/cmd/internal/loadcmd"
)

const overview = `simmatch ranks product descriptions by their similarity to queries, with a
sentence-embedding model (all-MiniLM-L6-v2) served over NATS and HTTP.

Usage:
  simmatch [serve] [flags]                run the all-in-one service: embedded NATS, a
                                          processor and the HTTP bridge (default :8000)
  simmatch match [flags] QUERY...         rank product descriptions for queries
  simmatch match -source C -target C      match one stored catalog against another (a job)
  simmatch dedupe -catalog C -threshold T find a catalog's near-duplicates (a job)
  simmatch embed [flags] [TEXT...]        print the embeddings of texts (stdin: one per line)
  simmatch jobs submit|status|results|cancel
                                          asynchronous jobs: many queries, results later
  simmatch catalog import|export ...      stored catalogs: load a JSONL/CSV file, write one out
  simmatch catalog search [flags] QUERY...
                                          search a catalog: dense, keyword (BM25) or hybrid,
                                          with filters, pages, counts, facets, explain
  simmatch load [flags]                   load generator (= simmatch-load)
  simmatch secrets [-dir DIR]             generate NATS passwords, a CA and a TLS
                                          certificate (docker compose's first start)
  simmatch help [COMMAND]                 this text, or a command's flags

The client commands (match, embed, jobs) talk to a running service at
$SIMMATCH_URL (flag -url; default http://localhost:8000), with the API key
$SIMMATCH_API_KEY (-api-key) and, for https, the CA file $SIMMATCH_CA_FILE
(-ca-file). catalog talks to NATS ($NATS_URL, NATS_USER..., NATS_CA_FILE),
naming catalogs as the tenant $SIMMATCH_TENANT (-tenant) does, if set.
-json prints machine-readable output. Every command takes -help.
`

// serveUsage heads `simmatch serve -help`.
const serveUsage = `Usage: simmatch [serve] [flags]

Runs the all-in-one service: an embedded NATS server (with JetStream in
-data-dir), one processor with the model and the HTTP bridge. It stops
cleanly on SIGINT or SIGTERM.
`

// command is a subcommand of simmatch.
type command struct {
	run func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve": {func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
			return serve(ctx, args, getenv, stdout, nil)
		}},
		"match":   {runMatch},
		"dedupe":  {runDedupe},
		"embed":   {runEmbed},
		"jobs":    {runJobs},
		"load":    {runLoad},
		"secrets": {runSecrets},
		"catalog": {func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
			return catalogcmd.Run(ctx, args, getenv, stdout, os.Stderr)
		}},
	}
}

// run is simmatch's main: the subcommand named by args[0], or serve when
// args is empty or starts with a flag (so `simmatch -http-addr :9000` and
// the container's plain `simmatch` keep running the service).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return serve(ctx, args, getenv, stdout, nil)
	}
	name := args[0]
	if isHelp(name) || name == "help" {
		if name == "help" && len(args) > 1 {
			if c, ok := commands()[args[1]]; ok {
				return c.run(ctx, []string{"-help"}, getenv, stdout)
			}
			return usageError(fmt.Errorf("no command %q", args[1]))
		}
		fmt.Fprint(stdout, overview)
		return nil
	}
	c, ok := commands()[name]
	if !ok {
		return usageError(fmt.Errorf("no command %q; run `simmatch help` for the list", name))
	}
	return c.run(ctx, args[1:], getenv, stdout)
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// errUsage marks errors in how a command was called (exit status 2).
type errUsage struct{ error }

func (e errUsage) Unwrap() error { return e.error }

func usageError(err error) error { return errUsage{err} }

// exitCode is 2 for usage errors (as the flag package), 1 otherwise, and 0
// for -help.
func exitCode(err error) int {
	var u errUsage
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

// runLoad is the load generator (the same as the simmatch-load command).
func runLoad(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return loadcmd.Run(ctx, "simmatch load", args, getenv, stdout)
}
