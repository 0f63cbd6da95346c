// Package catalogcmd is `simmatch catalog`: import a JSON lines or CSV file
// into a catalog (batched, with a progress bar, resumable and idempotent),
// export a catalog as JSON lines, and search one (dense, keyword or hybrid,
// with filters, pages, counts, facets and groups). Run is the subcommand's
// entry point.
package catalogcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

// Usage describes the subcommand.
const Usage = `usage:
  simmatch catalog import --catalog NAME [flags] FILE   (FILE: .jsonl or .csv)
  simmatch catalog export --catalog NAME [--output FILE]
  simmatch catalog search --catalog NAME [--mode dense|keyword|hybrid] [flags] QUERY...
-tenant (SIMMATCH_TENANT) names the catalogs as that tenant does through the bridge.
Run "simmatch catalog import -h" (or export, search) for the flags`

// Run runs `simmatch catalog <import|export|search> ...` with args after
// "catalog". Progress goes to stderr; export writes to stdout unless -output
// is set; search writes its results to stdout.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(Usage)
	}
	switch args[0] {
	case "import":
		return runImport(ctx, args[1:], getenv, stderr)
	case "export":
		return runExport(ctx, args[1:], getenv, stdout, stderr)
	case "search":
		return runSearch(ctx, args[1:], getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown catalog command %q\n%s", args[0], Usage)
}

// natsFlags registers -nats-url, the NATS credentials (NATS_USER, ...)
// and -tenant.
func natsFlags(f *cli.Flags, url *string, auth *cli.NATSAuth, tenant *string) {
	f.String(url, "nats-url", "NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	f.NATSAuth(auth)
	f.String(tenant, "tenant", "SIMMATCH_TENANT", "", "name catalogs as this tenant does: the catalogs its API keys reach through the bridge (a namespace, not a permission: the NATS credentials may act as any tenant); empty: stored names (acme=shop), every tenant's")
}

// clientOptions are the contracts client's options: opts, and the tenant's
// namespace when tenant is set.
func clientOptions(tenant string, opts ...contracts.ClientOption) []contracts.ClientOption {
	if tenant != "" {
		opts = append(opts, contracts.WithTenant(tenant))
	}
	return opts
}

// connect fails at once when NATS is not reachable: a command line tool
// should say so rather than wait.
func connect(url string, auth cli.NATSAuth) (*nats.Conn, error) {
	opts, err := auth.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name("simmatch catalog"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s (set NATS_URL or -nats-url): %w", cli.RedactURLs(url), err)
	}
	return nc, nil
}
