package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// match -source/-target and dedupe run jobs with a progress line on
// stderr and write JSON lines or CSV.
func TestCLIMatchAndDedupe(t *testing.T) {
	base := startServe(t)
	var progress bytes.Buffer
	stderr = &progress
	t.Cleanup(func() { stderr = os.Stderr })
	upsertHTTP := func(name, body string) {
		t.Helper()
		if status, resp := httpDo(t, "POST", base+"/v1/catalogs/"+name+"/products", body); status != 200 {
			t.Fatalf("upsert %s: %d %s", name, status, resp)
		}
	}
	upsertHTTP("shop", `{"products": [
		{"id": "saw", "description": "Circular saw with laser guide", "metadata": {"brand": "Bosch"}},
		{"id": "hammer", "description": "Steel claw hammer with fiberglass handle", "metadata": {"brand": "Stanley"}},
		{"id": "kettle", "description": "Electric kettle, 1.7 litres, stainless steel", "metadata": {"brand": "Philips"}},
		{"id": "kettle-2", "description": "Electric kettle 1.7 litres stainless steel - Philips", "metadata": {"brand": "Philips"}}]}`)
	upsertHTTP("feed", `{"products": [
		{"id": "f1", "description": "BOSCH laser-guided circular saw", "metadata": {"brand": "Bosch"}},
		{"id": "f2", "description": "STANLEY claw hammer, fibreglass grip", "metadata": {"brand": "Stanley"}}]}`)

	out := filepath.Join(t.TempDir(), "m.csv")
	if _, err := runCLI(t, base, "match", "-source", "feed", "-target", "shop", "-top-k", "2", "-block-on", "brand", "-format", "csv", "-o", out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || lines[0] != "source_id,rank,id,score" || !strings.HasPrefix(lines[1], "f1,1,saw,") || !strings.HasPrefix(lines[2], "f2,1,hammer,") {
		t.Errorf("match csv:\n%s", data)
	}
	if p := progress.String(); !strings.Contains(p, "2/2 rows") || !strings.Contains(p, "rows/s") || !strings.Contains(p, "ETA") {
		t.Errorf("progress: %q", p)
	}

	res, err := runCLI(t, base, "dedupe", "-catalog", "shop", "-threshold", "0.5")
	if err != nil {
		t.Fatal(err)
	}
	var c contracts.DedupeCluster
	if err := json.Unmarshal([]byte(strings.TrimSpace(res)), &c); err != nil || strings.Join(c.Cluster, ",") != "kettle,kettle-2" || len(c.Pairs) != 1 {
		t.Errorf("dedupe: %v %q", err, res)
	}

	if _, err := runCLI(t, base, "match", "-source", "feed"); exitCode(err) != 2 {
		t.Errorf("match -source alone: %v", err)
	}
	if _, err := runCLI(t, base, "dedupe", "-catalog", "shop"); exitCode(err) != 2 {
		t.Errorf("dedupe without -threshold: %v", err)
	}
	if _, err := runCLI(t, base, "match", "-source", "feed", "-target", "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("match against a missing catalog: %v", err)
	}
}

func TestProgressLine(t *testing.T) {
	st := &contracts.JobStatus{ID: "j", State: contracts.JobRunning, Done: 250, Total: 1000}
	got := progressLine(st, 5*time.Second)
	for _, want := range []string{"250/1000 rows", " 25%", "50 rows/s", "ETA 15s"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q lacks %q", got, want)
		}
	}
	if got := progressLine(&contracts.JobStatus{ID: "j", State: contracts.JobQueued}, time.Second); !strings.Contains(got, "planning") {
		t.Errorf("queued: %q", got)
	}
}
