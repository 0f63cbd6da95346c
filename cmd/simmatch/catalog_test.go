package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// startWithData runs the all-in-one on dataDir until the returned stop is called.
func startWithData(t *testing.T, dataDir string) (base string, stop func()) {
	t.Helper()
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-log-level", "warn", "-data-dir", dataDir}
	base, _, stop = runServe(t, args, func(k string) string {
		if k == "SIMMATCH_MODEL_DIR" || k == "SIMMATCH_ORT_LIB" {
			return os.Getenv(k)
		}
		return ""
	}, io.Discard)
	return base, stop
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A catalog stored through the all-in-one is there after a restart on the
// same SIMMATCH_DATA_DIR.
func TestAllInOneKeepsCatalogsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	base, stop := startWithData(t, dir)
	status, body := httpDo(t, "POST", base+"/v1/catalogs/shop/products",
		`{"products": [{"id": "saw", "description": "High-performance circular saw with laser guide."}, {"id": "hammer", "description": "Heavy-duty claw hammer."}]}`)
	if status != 200 {
		t.Fatalf("upsert: %d %s", status, body)
	}
	stop()

	base, stop = startWithData(t, dir)
	defer stop()
	status, body = httpDo(t, "POST", base+"/v1/catalogs/shop/search", `{"query": "What can I use to cut wood?", "top_k": 1}`)
	if status != 200 || !strings.Contains(body, `"id":"saw"`) {
		t.Fatalf("search after restart: %d %s", status, body)
	}
}
