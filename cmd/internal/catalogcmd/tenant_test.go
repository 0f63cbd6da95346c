package catalogcmd

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// With -tenant (or SIMMATCH_TENANT) import, search and export name the
// tenant's catalogs, as its API keys do through the bridge: the catalog is
// stored qualified, and another tenant's of the same name is not reached.
func TestCatalogCommandsTakeTheTenant(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	admin, _ := startProcessor(t, ns)
	ctx := context.Background()
	if _, err := admin.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "globex=tools", Products: tools[:1]}); err != nil {
		t.Fatal(err)
	}
	run := func(tenant string, args ...string) (string, string, error) {
		getenv := func(k string) string {
			switch k {
			case "NATS_URL":
				return ns.ClientURL()
			case "SIMMATCH_TENANT":
				return tenant
			}
			return ""
		}
		var out, errOut bytes.Buffer
		err := Run(ctx, args, getenv, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	file := writeFile(t, "tools.jsonl", `{"id": "h1", "description": "Estwing curved claw hammer"}
{"id": "s1", "description": "DeWalt cordless circular saw"}
`)
	if _, _, err := run("", "import", "-tenant", "acme", "-catalog", "tools", "-state", filepath.Join(t.TempDir(), "state"), file); err != nil {
		t.Fatal(err)
	}
	l, err := admin.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil || len(l.Catalogs) != 2 || l.Catalogs[0].Name != "acme=tools" || l.Catalogs[0].Products != 2 {
		t.Fatalf("stored catalogs %+v, %v; want acme=tools with 2 products beside globex=tools", l, err)
	}
	out, _, err := run("acme", "search", "-catalog", "tools", "-top-k", "5", "hammer")
	if err != nil || !strings.Contains(out, "h1") || !strings.Contains(out, "catalog tools]") || strings.Contains(out, "d1") {
		t.Fatalf("acme searches tools (SIMMATCH_TENANT) = %q, %v; want its h1 and s1 only", out, err)
	}
	out, _, err = run("", "search", "-tenant", "globex", "-catalog", "tools", "-top-k", "5", "hammer")
	if err != nil || !strings.Contains(out, "d1") || strings.Contains(out, "h1") {
		t.Fatalf("globex searches tools = %q, %v; want its d1 only", out, err)
	}
	out, errOut, err := run("acme", "export", "-catalog", "tools")
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"h1"`) || !strings.Contains(errOut, "catalog tools") {
		t.Fatalf("acme exports tools = %q (%q), %v", out, errOut, err)
	}
	_, _, err = run("initech", "export", "-catalog", "tools")
	if !strings.Contains(err.Error(), `"tools" does not exist`) || strings.Contains(err.Error(), "initech=") {
		t.Fatalf("initech exports tools: %v; want not found naming tools", err)
	}
	if _, _, err := run("acme", "search", "-catalog", "globex=tools", "hammer"); err == nil {
		t.Fatal("acme reached globex=tools")
	}
}
