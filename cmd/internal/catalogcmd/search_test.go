package catalogcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// tools differ by model number, brand and price.
var tools = []contracts.Product{
	{ID: "d1", Description: "DeWalt DCD771C2 20V MAX cordless drill/driver kit, 1/2-inch chuck", Metadata: map[string]string{"brand": "DeWalt", "category": "drills", "price": "99"}},
	{ID: "d2", Description: "DeWalt DCD777C2 20V MAX brushless cordless drill/driver kit, 1/2-inch chuck", Metadata: map[string]string{"brand": "DeWalt", "category": "drills", "price": "139"}},
	{ID: "d4", Description: "Bosch GSR12V-300FCB22 12V max FlexiClick 5-in-1 drill/driver system", Metadata: map[string]string{"brand": "Bosch", "category": "drills", "price": "199"}},
	{ID: "d5", Description: "Makita XFD131 18V LXT brushless cordless 1/2-inch driver-drill kit", Metadata: map[string]string{"brand": "Makita", "category": "drills", "price": "169"}},
	{ID: "s1", Description: "DeWalt DCS391B 20V MAX 6-1/2-inch cordless circular saw, tool only", Metadata: map[string]string{"brand": "DeWalt", "category": "saws", "price": "129"}},
	{ID: "h1", Description: "Estwing E3-16C 16 oz curved claw hammer with shock reduction grip", Metadata: map[string]string{"brand": "Estwing", "category": "hammers", "price": "35"}},
}

// startSearchStack runs the stack of startStack with the tools catalog
// stored; it returns the NATS server to point the command at.
func startSearchStack(t *testing.T) *server.Server {
	t.Helper()
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	c, _ := startProcessor(t, ns)
	if _, err := c.UpsertProducts(context.Background(), &contracts.UpsertRequest{Catalog: "tools", Products: tools}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// search runs `simmatch catalog search` against ns and returns its output.
func search(t *testing.T, ns *server.Server, args ...string) (string, error) {
	t.Helper()
	getenv := func(k string) string {
		if k == "NATS_URL" {
			return ns.ClientURL()
		}
		return ""
	}
	var out bytes.Buffer
	err := Run(context.Background(), append([]string{"search"}, args...), getenv, &out, io.Discard)
	return out.String(), err
}

// A hybrid search with --explain prints both ranks of the model number's
// product; --json prints the service's answer; filters, count, facets and
// group_by reach the service and come back in the table.
func TestSearchCommand(t *testing.T) {
	ns := startSearchStack(t)

	out, err := search(t, ns, "--catalog", "tools", "--mode", "hybrid", "--explain", "--top-k", "3", "DCD771C2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hybrid --explain:\n%s", out)
	if !strings.Contains(out, "query: DCD771C2  [hybrid (rrf), catalog tools]") || !strings.Contains(out, "dense rank") || !strings.Contains(out, "keyword rank") {
		t.Fatalf("no header with the mode and the explain columns:\n%s", out)
	}
	// The first row: rank 1, d1, then the fused score, dense score and
	// rank, keyword score and rank 1 (the only product with the term).
	row := regexp.MustCompile(`(?m)^1\s+d1\s+(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+1\s+DeWalt DCD771C2`)
	if !row.MatchString(out) {
		t.Fatalf("first row is not d1 with a dense rank and keyword rank 1:\n%s", out)
	}
	// Products without the term have no keyword rank.
	if !regexp.MustCompile(`(?m)^[23]\s+\S+\s+\S+\s+\S+\s+\d+\s+\S+\s+-\s+`).MatchString(out) {
		t.Errorf("no row with a dense rank and no keyword rank (-):\n%s", out)
	}

	out, err = search(t, ns, "--catalog", "tools", "--mode", "hybrid", "--explain", "--top-k", "1", "--json", "DCD771C2")
	if err != nil {
		t.Fatal(err)
	}
	var resp contracts.SearchResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	m := resp.Results[0].Matches
	if len(m) != 1 || m[0].ID != "d1" || m[0].Explain == nil || m[0].Explain.DenseRank == nil || m[0].Explain.KeywordRank == nil || *m[0].Explain.KeywordRank != 1 {
		t.Fatalf("--json matches = %s", out)
	}

	out, err = search(t, ns, "--catalog", "tools", "--filter-json", `{"price": {"$gte": 100}}`, "--filter", "brand=DeWalt",
		"--count", "--facet", "category", "--group-by", "category", "cordless drill")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filter, count, facet, group-by:\n%s", out)
	// DeWalt at 100 or more: d2 (drills) and s1 (saws); d1 costs 99.
	for _, want := range []string{"total: 2\n", "facet category: drills 1, saws 1\n", "group"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " d1 ") || !strings.Contains(out, " d2 ") || !strings.Contains(out, " s1 ") {
		t.Errorf("want d2 and s1 only:\n%s", out)
	}

	out, err = search(t, ns, "--catalog", "tools", "--offset", "1", "--top-k", "1", "--mode", "keyword", "cordless")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^2\s+\S+`).MatchString(out) {
		t.Errorf("a page from offset 1 does not start at rank 2:\n%s", out)
	}
}

// Errors come out in the service's words, naming the field.
func TestSearchCommandErrors(t *testing.T) {
	ns := startSearchStack(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"comparison with a word", []string{"--filter-json", `{"price": {"$gt": "cheap"}}`}, `invalid_request: filter.price.$gt: compares numbers, and "cheap" is not one`},
		{"unknown operator", []string{"--filter-json", `{"price": {"$between": [1, 2]}}`}, "filter.price.$between: unknown operator"},
		{"not json", []string{"--filter-json", `{price`}, "-filter-json: want a JSON object"},
		{"filter without =", []string{"--filter", "brand"}, `-filter "brand": want KEY=VALUE`},
		{"threshold in keyword mode", []string{"--mode", "keyword", "--threshold", "0.3"}, "threshold: is a cosine similarity"},
		{"rrf-k in dense mode", []string{"--rrf-k", "10"}, "rrf_k: applies to mode hybrid only"},
		{"unknown catalog", []string{"--catalog", "nope"}, "not_found: "},
		{"page beyond the candidates", []string{"--mode", "hybrid", "--candidates", "5", "--offset", "3"}, "offset: offset + top_k is 13, beyond the 5 candidates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--catalog", "tools"}, tt.args...)
			out, err := search(t, ns, append(args, "drill")...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q (output %q)", err, tt.want, out)
			}
			// The service's words, its code first, without a prefix of
			// the client's (the command's main adds "simmatch: ").
			if strings.HasPrefix(err.Error(), "simmatch:") {
				t.Errorf("err = %q starts with the client's prefix", err)
			}
		})
	}
}
