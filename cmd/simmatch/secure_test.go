package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
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

	// /ready (public) names the processor's default model and its catalogs.
	var ready struct {
		DefaultModel string `json:"default_model"`
		Catalogs     *contracts.CatalogsState
	}
	testenv.WaitFor(t, 30*time.Second, "/ready", func() bool {
		resp, err := c.Get(base + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&ready) == nil
	})
	if ready.DefaultModel != "all-MiniLM-L6-v2@fp32" || ready.Catalogs == nil || !ready.Catalogs.Listed || len(ready.Catalogs.Loading) != 0 {
		t.Fatalf("/ready: %+v, want the default model and the catalogs listed", ready)
	}

	// The CLI against the same service: SIMMATCH_API_KEY and SIMMATCH_CA_FILE.
	caFile := filepath.Join(dir, "ca.crt")
	testenv.WriteFile(t, caFile, ca.PEM)
	cli := func(env map[string]string, args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := run(ctx, args, func(k string) string {
			if k == "SIMMATCH_URL" {
				return base
			}
			return env[k]
		}, &out)
		return out.String(), err
	}
	match := []string{"match", "-d", "Claw hammer", "-d", "Circular saw", "cut wood"}
	t.Run("cli without the CA", func(t *testing.T) {
		_, err := cli(map[string]string{"SIMMATCH_API_KEY": key}, match...)
		if err == nil || !strings.Contains(err.Error(), "SIMMATCH_CA_FILE") {
			t.Fatalf("err %v, want a TLS failure naming SIMMATCH_CA_FILE", err)
		}
	})
	t.Run("cli without a key", func(t *testing.T) {
		_, err := cli(map[string]string{"SIMMATCH_CA_FILE": caFile}, match...)
		if !errors.Is(err, contracts.ErrUnauthorized) || !strings.Contains(err.Error(), "an API key is required") ||
			!strings.Contains(err.Error(), "set SIMMATCH_API_KEY or -api-key") || exitCode(err) != 1 {
			t.Fatalf("err %v, want 401 saying to set SIMMATCH_API_KEY", err)
		}
	})
	t.Run("cli with a wrong key", func(t *testing.T) {
		_, err := cli(map[string]string{"SIMMATCH_CA_FILE": caFile}, append([]string{match[0], "-api-key", "sk-wrong"}, match[1:]...)...)
		if !errors.Is(err, contracts.ErrUnauthorized) || !strings.Contains(err.Error(), "the API key is not valid") || strings.Contains(err.Error(), "sk-wrong") {
			t.Fatalf("err %v, want 401 not valid, without the key", err)
		}
	})
	okEnv := map[string]string{"SIMMATCH_CA_FILE": caFile, "SIMMATCH_API_KEY": key}
	t.Run("cli match with the key", func(t *testing.T) {
		out, err := cli(okEnv, match...)
		if err != nil || !strings.Contains(out, "1. ") || strings.Index(out, "Circular saw") > strings.Index(out, "Claw hammer") {
			t.Fatalf("%v\n%s", err, out)
		}
		// The flags do the same as the variables.
		out, err = cli(nil, append([]string{match[0], "-api-key", key, "-ca-file", caFile}, match[1:]...)...)
		if err != nil || !strings.Contains(out, "Circular saw") {
			t.Fatalf("flags: %v\n%s", err, out)
		}
	})
	t.Run("cli embed with the key", func(t *testing.T) {
		out, err := cli(okEnv, "embed", "hello")
		var v []float64
		if err != nil || json.Unmarshal([]byte(out), &v) != nil || len(v) != 384 {
			t.Fatalf("%v %.100s", err, out)
		}
	})
	t.Run("cli jobs without the scope", func(t *testing.T) {
		_, err := cli(okEnv, "jobs", "submit", "-d", "Circular saw", "cut wood")
		if !errors.Is(err, contracts.ErrForbidden) || !strings.Contains(err.Error(), "scope") {
			t.Fatalf("err %v, want 403 naming the scope", err)
		}
	})
	t.Run("cli half a client certificate", func(t *testing.T) {
		_, err := cli(map[string]string{"SIMMATCH_CA_FILE": caFile, "SIMMATCH_CLIENT_CERT_FILE": cert}, match...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), "go together") {
			t.Fatalf("err %v, want a usage error", err)
		}
	})
	stop()
}
