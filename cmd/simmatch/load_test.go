package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/cmd/internal/loadcmd"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/loadgen"
	"github.com/simmatch/simmatch/internal/testenv"
)

// startListeningAllInOne runs the all-in-one on loopback ports (HTTP and NATS) with the model in dir
// and returns its HTTP and NATS URLs; it stops when the test ends.
func startListeningAllInOne(t *testing.T, dir string) (httpURL, natsURL string) {
	t.Helper()
	_, lib := testenv.ModelPaths(t)
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "127.0.0.1:0", "-log-level", "warn", "-data-dir", t.TempDir()}
	env := map[string]string{"SIMMATCH_MODEL_DIR": dir, "SIMMATCH_ORT_LIB": lib}
	httpURL, natsURL, _ = runServe(t, args, func(k string) string { return env[k] }, io.Discard)
	return httpURL, natsURL
}

// The int8 version of the model store serves as all-MiniLM-L6-v2@int8, and
// a short run of the load generator against the all-in-one (HTTP and NATS)
// sees no error: the smoke test of `simmatch-load` in `make test`.
func TestLoadAgainstAllInOneInt8(t *testing.T) {
	base, natsURL := startListeningAllInOne(t, testenv.ModelVersionDir(t, "int8"))

	resp, err := http.Post(base+"/predict", "application/json", strings.NewReader(
		`{"query": "What can I use to cut wood?", "product_descriptions": ["Heavy-duty claw hammer with a non-slip grip handle.", "High-performance circular saw with laser guide."]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got contracts.Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, decode: %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if want := (contracts.ModelInfo{Name: "all-MiniLM-L6-v2", Version: "int8", Dimensions: 384}); got.Model != want {
		t.Errorf("model = %+v, want %+v", got.Model, want)
	}
	if got.Results[0].Matches[0].Index != 1 {
		t.Errorf("int8 ranks %+v; want the saw (index 1) first", got.Results[0].Matches)
	}

	dir := t.TempDir()
	for _, tc := range []struct{ name, target, mix string }{
		{"http fresh", base, loadgen.MixFresh},
		{"http catalog", base, loadgen.MixCatalog},
		{"nats fresh", natsURL, loadgen.MixFresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			var stdout bytes.Buffer
			err := loadcmd.Run(t.Context(), "simmatch-load", []string{"-target", tc.target, "-mix", tc.mix, "-concurrency", "1,4",
				"-duration", "1500ms", "-fail-on-error", "-json", out, "-png", out + ".png", "-label", "smoke"}, func(string) string { return "" }, &stdout)
			t.Log(strings.TrimSpace(stdout.String()))
			if err != nil {
				t.Fatal(err)
			}
			rs, err := loadgen.ReadResults(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 2 || rs[1].Concurrency != 4 || rs[1].OK == 0 || rs[1].ErrorCount() != 0 || rs[1].Latency.P99 <= 0 {
				t.Fatalf("results %+v; want two levels, the second with answers and no errors", rs)
			}
			if st, err := os.Stat(out + ".png"); err != nil || st.Size() < 1000 {
				t.Errorf("plot: %v", err)
			}
		})
	}
}
