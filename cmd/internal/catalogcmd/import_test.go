package catalogcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/catalog"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startStack runs JetStream and one processor with catalogs and the real
// model; it returns a client, a JetStream handle and the embedder's counter.
func startStack(t *testing.T) (*contracts.Client, jetstream.JetStream, *proctest.CountingEmbedder) {
	t.Helper()
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	c, emb := startProcessor(t, ns)
	nc := testenv.Connect(t, ns, nats.MaxReconnects(-1))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return c, js, emb
}

// startProcessor runs one processor with catalogs and the real model on ns
// (which has JetStream); it returns a client and the embedder's counter.
func startProcessor(t *testing.T, ns *server.Server) (*contracts.Client, *proctest.CountingEmbedder) {
	t.Helper()
	emb := &proctest.CountingEmbedder{Embedder: proctest.RealModel(t)}
	pnc := testenv.Connect(t, ns)
	svc, err := catalog.New(catalog.Config{NATS: pnc, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.Start(processor.Config{NATS: pnc, Embedder: emb, Catalogs: svc})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StopAtEnd(t, p.Stop)
	nc := testenv.Connect(t, ns, nats.MaxReconnects(-1))
	c, err := contracts.NewClient(nc, contracts.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return c, emb
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// An import interrupted after its first batch resumes from its checkpoint
// and embeds each product once; a rerun is idempotent; export gives the
// products back.
func TestImportResumesAfterInterrupt(t *testing.T) {
	c, js, emb := startStack(t)
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf(`{"id": "p%d", "description": "Product number %d, a fine thing", "metadata": {"n": "%d"}}`, i, i, i))
	}
	file := writeFile(t, "products.jsonl", strings.Join(lines, "\n")+"\n\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	im := &Importer{Client: c, Catalog: "shop", File: file, BatchSize: 3, Progress: &out, afterBatch: func(int) { cancel() }}
	n, err := im.Run(ctx)
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Fatalf("interrupted run: %d, %v; want 3 products and context.Canceled", n, err)
	}
	if _, err := os.Stat(file + ".shop.import-state"); err != nil {
		t.Fatalf("no checkpoint after the interrupt: %v", err)
	}

	im = &Importer{Client: c, Catalog: "shop", File: file, BatchSize: 3, Progress: &out}
	n, err = im.Run(context.Background())
	if err != nil || n != 7 {
		t.Fatalf("resumed run: %d, %v; want the 7 products left", n, err)
	}
	if got := emb.Texts.Load(); got != 10 {
		t.Errorf("embedded %d texts for 10 products", got)
	}
	if !strings.Contains(out.String(), "resuming at line 4") || !strings.Contains(out.String(), "ETA") {
		t.Errorf("progress output lacks the resume line or the ETA:\n%s", out.String())
	}
	if _, err := os.Stat(file + ".shop.import-state"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkpoint left after a complete import: %v", err)
	}
	// Idempotent: importing again changes nothing.
	if n, err := (&Importer{Client: c, Catalog: "shop", File: file, BatchSize: 4}).Run(context.Background()); err != nil || n != 10 {
		t.Fatalf("rerun: %d, %v", n, err)
	}
	var exp bytes.Buffer
	n, err = Export(context.Background(), js, "shop", &exp)
	if err != nil || n != 10 {
		t.Fatalf("export: %d, %v", n, err)
	}
	seen := map[string]contracts.Product{}
	for _, l := range strings.Split(strings.TrimSpace(exp.String()), "\n") {
		var p contracts.Product
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatal(err)
		}
		seen[p.ID] = p
	}
	if len(seen) != 10 || seen["p7"].Metadata["n"] != "7" || seen["p7"].Description != "Product number 7, a fine thing" {
		t.Fatalf("export = %v", seen)
	}
}

func TestImportErrorsNameTheLine(t *testing.T) {
	c, _, _ := startStack(t)
	tests := []struct {
		name, file, content, want string
		imported                  int
	}{
		{"empty description", "a.jsonl", "{\"id\":\"a\",\"description\":\"x\"}\n{\"id\":\"b\",\"description\":\"y\"}\n\n{\"id\":\"c\",\"description\":\" \"}\n", "a.jsonl:4: description: must not be empty", 2},
		{"not json", "b.jsonl", "{\"id\":\"a\",\"description\":\"x\"}\nnope\n", "b.jsonl:2: want a JSON object", 1},
		{"unknown field", "c.jsonl", "{\"id\":\"a\",\"desc\":\"x\"}\n", "c.jsonl:1: want a JSON object", 0},
		{"csv without id", "d.csv", "name,description\na,b\n", "d.csv:1: the CSV header", 0},
		{"csv short row", "e.csv", "id,description,color\na,b,red\n\"c\",d\n", "e.csv:3:", 1},
		{"csv bad metadata", "f.csv", "id,description,metadata\na,b,{}\nc,d,nope\n", "f.csv:3: metadata column", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, tt.file, tt.content)
			n, err := (&Importer{Client: c, Catalog: "errs", File: file, BatchSize: 2}).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if n != tt.imported {
				t.Errorf("imported %d products before the error, want %d", n, tt.imported)
			}
		})
	}
}

func TestImportCSVMetadata(t *testing.T) {
	c, _, _ := startStack(t)
	file := writeFile(t, "p.csv", "id,description,color,metadata\n"+
		"h1,\"Claw hammer, steel\",red,\"{\"\"dept\"\":\"\"tools\"\"}\"\n"+
		"h2,\"Multi-line\ndescription\",,\n")
	if n, err := (&Importer{Client: c, Catalog: "csv", File: file}).Run(context.Background()); err != nil || n != 2 {
		t.Fatalf("import: %d, %v", n, err)
	}
	got, err := c.GetProduct(context.Background(), &contracts.ProductRequest{Catalog: "csv", ID: "h1"})
	if err != nil || got.Product.Description != "Claw hammer, steel" || got.Product.Metadata["color"] != "red" || got.Product.Metadata["dept"] != "tools" {
		t.Fatalf("h1 = %+v, %v", got, err)
	}
	got, err = c.GetProduct(context.Background(), &contracts.ProductRequest{Catalog: "csv", ID: "h2"})
	if err != nil || got.Product.Description != "Multi-line\ndescription" || got.Product.Metadata != nil {
		t.Fatalf("h2 = %+v, %v", got, err)
	}
}

func TestRunArguments(t *testing.T) {
	getenv := func(string) string { return "" }
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"frobnicate"}, `unknown catalog command "frobnicate"`},
		{[]string{"import", "--catalog", "shop"}, "want -catalog NAME and one FILE"},
		{[]string{"import", "f.jsonl"}, "want -catalog NAME and one FILE"},
		{[]string{"export"}, "want -catalog NAME"},
	}
	for _, tt := range tests {
		err := Run(context.Background(), tt.args, getenv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Run(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
}
