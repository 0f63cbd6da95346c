package main

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// The all-in-one serves HTTPS with SIMMATCH_TLS_* and requires the keys of
// SIMMATCH_API_KEYS_FILE, with the real model behind.
func TestAllInOneSecured(t *testing.T) {
	const key = "sk-aio-8d6b4f2a0c9e7b5d"
	dir := t.TempDir()
	ca := testenv.NewCA(t, "ca")
	cert, certKey := ca.Server(t, "simmatch").WriteFiles(t, dir, "server")
	keys := filepath.Join(dir, "keys")
	testenv.WriteFile(t, keys, []byte("app "+bridge.HashKey(key)+" predict\n"))
	env := map[string]string{
		"SIMMATCH_API_KEYS_FILE": keys,
		"SIMMATCH_TLS_CERT_FILE": cert,
		"SIMMATCH_TLS_KEY_FILE":  certKey,
		"SIMMATCH_MODEL_DIR":     os.Getenv("SIMMATCH_MODEL_DIR"),
		"SIMMATCH_ORT_LIB":       os.Getenv("SIMMATCH_ORT_LIB"),
	}
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "127.0.0.1:0", "-log-level", "warn", "-workers", "1", "-data-dir", t.TempDir()}
	base, _, stop := runServe(t, args, func(k string) string { return env[k] }, io.Discard)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base URL %s, want https", base)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	post := func(hdr ...string) (int, contracts.Response) {
		req, err := http.NewRequest("POST", base+"/predict", strings.NewReader(
			`{"query": ["What can I use to cut wood?"], "product_descriptions": ["Heavy-duty claw hammer with a non-slip grip handle.", "High-performance circular saw with laser guide."]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got contracts.Response
		_ = json.NewDecoder(resp.Body).Decode(&got)
		return resp.StatusCode, got
	}
	if status, _ := post(); status != http.StatusUnauthorized {
		t.Fatalf("without a key: %d, want 401", status)
	}
	status, got := post("Authorization", "Bearer "+key)
	if status != 200 || len(got.Results) != 1 || got.Results[0].Matches[0].Index != 1 {
		t.Fatalf("with the key: %d %+v, want 200 with the saw first", status, got)
	}
	stop()
}
