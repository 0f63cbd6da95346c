package catalogcmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/catalog"
)

// Export writes every product of a catalog to w as JSON lines, the format
// import reads back.
func Export(ctx context.Context, js jetstream.JetStream, name string, w io.Writer) (int, error) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n, err := catalog.Export(ctx, js, name, func(p contracts.Product) error { return enc.Encode(p) })
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return n, err
}

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var natsURL, tenant, name, output string
	var auth cli.NATSAuth
	f := cli.NewFlags("simmatch catalog export", getenv, stderr)
	natsFlags(f, &natsURL, &auth, &tenant)
	f.String(&name, "catalog", "", "", "catalog to export")
	f.String(&output, "output", "", "", "file to write (default: standard output)")
	if err := f.Parse(args); err != nil {
		return err
	}
	if name == "" || len(f.Args()) > 0 {
		return errors.New("want -catalog NAME\n" + Usage)
	}
	stored := name
	if tenant != "" {
		if err := contracts.ValidateTenant(tenant); err != nil {
			return fmt.Errorf("-tenant: %w", err)
		}
		ns := contracts.TenantNamespace(tenant)
		if err := ns.Check("catalog", name); err != nil {
			return fmt.Errorf("-catalog: %v", contracts.AsError(err).Message)
		}
		stored = ns.Qualify(name)
	}
	nc, err := connect(natsURL, auth)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	w := stdout
	if output != "" {
		file, err := os.Create(output)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	n, err := Export(ctx, js, stored, w)
	if err != nil {
		return contracts.TenantNamespace(tenant).FixError(err, name)
	}
	fmt.Fprintf(stderr, "exported %d products of catalog %s\n", n, name)
	return nil
}
