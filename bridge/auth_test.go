package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// Test keys: long random-looking strings that must never show up in a log.
const (
	keyPredict = "sk-predict-6f1d0c2b9e8a4c7d"
	keyAdmin   = "sk-admin-0a9b8c7d6e5f4a3b"
	keyAll     = "sk-all-5e4d3c2b1a0f9e8d"
	keyLimited = "sk-limited-1c2d3e4f5a6b7c8d"
	keyUnknown = "sk-unknown-9f8e7d6c5b4a3f2e"
)

// testKeysFile is a keys file granting the keys above, with comments and
// blank lines as users write them.
func testKeysFile() string {
	return fmt.Sprintf(`# simmatch API keys: <name> <sha256 hex> <scopes> [rate=] [burst=]

reader   %s predict
ops %s admin
  root %s *
limited %s predict,jobs rate=1 burst=2
`, HashKey(keyPredict), HashKey(keyAdmin), HashKey(keyAll), HashKey(keyLimited))
}

// writeKeys writes content to a keys file in dir and returns its path.
func writeKeys(t testing.TB, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "keys")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// openKeys writes content and opens a KeyStore on it, logging to logs.
func openKeys(t testing.TB, content string, logs *logRecorder) *KeyStore {
	t.Helper()
	ks, err := OpenKeyStore(writeKeys(t, t.TempDir(), content), slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

const goodPredict = `{"query": ["What can I use to cut wood?"], "product_descriptions": ["Claw hammer", "Circular saw"]}`

func TestAuth(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	reg := prometheus.NewRegistry()
	logs := &logRecorder{}
	ks := openKeys(t, testKeysFile(), logs)
	b := startBridge(t, ns, func(c *Config) { c.Keys, c.Metrics, c.Gatherer, c.Logger = ks, reg, reg, slog.New(logs) })

	tests := []struct {
		name       string
		method     string
		path       string
		hdr        []string
		status     int
		code       contracts.Code
		wantKey    string // the api_key in the access log
		challenged bool   // WWW-Authenticate expected
	}{
		{"no key", "POST", "/predict", nil, 401, contracts.CodeUnauthorized, "", true},
		{"unknown bearer key", "POST", "/predict", []string{"Authorization", "Bearer " + keyUnknown}, 401, contracts.CodeUnauthorized, "", true},
		{"unknown X-API-Key", "POST", "/v1/predict", []string{"X-API-Key", keyUnknown}, 401, contracts.CodeUnauthorized, "", true},
		{"basic auth is not a key", "POST", "/predict", []string{"Authorization", "Basic " + keyPredict}, 401, contracts.CodeUnauthorized, "", true},
		{"empty bearer", "POST", "/predict", []string{"Authorization", "Bearer "}, 401, contracts.CodeUnauthorized, "", true},
		{"the hash is not the key", "POST", "/predict", []string{"X-API-Key", HashKey(keyPredict)}, 401, contracts.CodeUnauthorized, "", true},
		{"bearer predict key", "POST", "/predict", []string{"Authorization", "Bearer " + keyPredict}, 200, "", "reader", false},
		{"bearer scheme is case-insensitive", "POST", "/v1/predict", []string{"Authorization", "bearer " + keyPredict}, 200, "", "reader", false},
		{"X-API-Key predict key", "POST", "/v1/predict", []string{"X-API-Key", keyPredict}, 200, "", "reader", false},
		{"star scope", "POST", "/predict", []string{"X-API-Key", keyAll}, 200, "", "root", false},
		{"wrong scope", "POST", "/predict", []string{"Authorization", "Bearer " + keyAdmin}, 403, contracts.CodeForbidden, "ops", true},
		{"unknown path without a key", "GET", "/v1/secret", nil, 401, contracts.CodeUnauthorized, "", true},
		{"unknown path with a key", "GET", "/v1/secret", []string{"X-API-Key", keyAdmin}, 404, contracts.CodeNotFound, "ops", false},
		{"health is public", "GET", "/health", nil, 200, "", "", false},
		{"ready is public (no micro service here: 503, not 401)", "GET", "/ready", nil, 503, contracts.CodeNoProcessor, "", false},
		{"metrics are public", "GET", "/metrics", nil, 200, "", "", false},
		{"openapi is public", "GET", "/openapi.yaml", nil, 200, "", "", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("auth-%d", i)
			body := ""
			if tt.method == "POST" {
				body = goodPredict
			}
			req, err := http.NewRequest(tt.method, b.URL+tt.path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(headerRequestID, id)
			for j := 0; j+1 < len(tt.hdr); j += 2 {
				req.Header.Set(tt.hdr[j], tt.hdr[j+1])
			}
			resp, got := do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, clip(got))
			}
			if tt.code != "" {
				if e := decodeError(t, resp, got); e.Code != tt.code || e.RequestID != id {
					t.Fatalf("error %+v, want code %s and request id %s", e, tt.code, id)
				}
			}
			if ch := resp.Header.Get("WWW-Authenticate"); (ch != "") != tt.challenged || (ch != "" && !strings.HasPrefix(ch, "Bearer ")) {
				t.Fatalf("WWW-Authenticate %q, want one: %v", ch, tt.challenged)
			}
			var line logLine
			waitFor(t, 2*time.Second, "the access-log line", func() bool {
				var ok bool
				line, ok = logs.access(id)
				return ok
			})
			if line.Attrs["api_key"] != tt.wantKey {
				t.Fatalf("access log api_key %q, want %q", line.Attrs["api_key"], tt.wantKey)
			}
		})
	}

	// Keys and texts never reach the logs, not even at debug level.
	for _, l := range logs.all() {
		s := l.Msg + fmt.Sprint(l.Attrs)
		for _, secret := range []string{keyPredict, keyAdmin, keyAll, keyUnknown, "Circular saw", "cut wood"} {
			if strings.Contains(s, secret) {
				t.Errorf("log line leaks %q: %s", secret, s)
			}
		}
	}
	// The key's name is a metric label, counted per outcome.
	fams := testenv.Families(t, b.URL)
	for _, w := range []struct {
		key, outcome string
		n            float64
	}{{"reader", "ok", 3}, {"root", "ok", 1}, {"ops", "forbidden", 1}, {"ops", "not_found", 1}} {
		if got := testenv.MetricValue(t, fams, "simmatch_http_key_requests_total", map[string]string{"key": w.key, "outcome": w.outcome}); got != w.n {
			t.Errorf("simmatch_http_key_requests_total{key=%s,outcome=%s} = %v, want %v", w.key, w.outcome, got, w.n)
		}
	}
	if got := sum(fams["simmatch_http_key_requests_total"]); got != 6 {
		t.Errorf("simmatch_http_key_requests_total sums to %v, want 6", got)
	}
}

func TestPublicPathsConfigurable(t *testing.T) {
	ns := startNATS(t)
	reg := prometheus.NewRegistry()
	ks := openKeys(t, testKeysFile(), &logRecorder{})
	b := startBridge(t, ns, func(c *Config) {
		c.Keys, c.Metrics, c.Gatherer, c.PublicPaths = ks, reg, reg, []string{"/health"}
	})
	if resp, _ := b.get(t, "/health"); resp.StatusCode != 200 {
		t.Fatalf("/health: %d, want 200", resp.StatusCode)
	}
	resp, body := b.get(t, "/metrics")
	if resp.StatusCode != 401 || decodeError(t, resp, body).Code != contracts.CodeUnauthorized {
		t.Fatalf("/metrics without a key: %d, want 401", resp.StatusCode)
	}
	// Any valid key may scrape: /metrics declares no scope.
	req, _ := http.NewRequest("GET", b.URL+"/metrics", nil)
	req.Header.Set("X-API-Key", keyAdmin)
	if resp, _ := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("/metrics with a key: %d, want 200", resp.StatusCode)
	}
}

func TestAuthOffWithoutKeys(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	b := startBridge(t, ns, nil)
	if resp, body := b.post(t, "/predict", "application/json", goodPredict); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	ks := openKeys(t, testKeysFile(), &logRecorder{})
	// Every key but "limited" (rate=1 burst=2 in the file) gets 1000/s.
	b := startBridge(t, ns, func(c *Config) { c.Keys, c.RateLimit = ks, RateLimit{Rate: 1000, Burst: 1000} })
	post := func(key string) *http.Response {
		resp, _ := b.post(t, "/predict", "application/json", goodPredict, "X-API-Key", key)
		return resp
	}
	for i := range 2 {
		if resp := post(keyLimited); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d", i+1, resp.StatusCode)
		}
	}
	resp, body := b.post(t, "/predict", "application/json", goodPredict, "X-API-Key", keyLimited)
	if resp.StatusCode != 429 || decodeError(t, resp, body).Code != contracts.CodeRateLimited {
		t.Fatalf("third request: %d %s, want 429 rate_limited", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1 (one token at 1/s)", ra)
	}
	// Another key has its own bucket.
	if resp := post(keyPredict); resp.StatusCode != 200 {
		t.Fatalf("other key: %d, want 200", resp.StatusCode)
	}
	// Public paths are not limited.
	for range 5 {
		if resp, _ := b.get(t, "/health"); resp.StatusCode != 200 {
			t.Fatalf("/health: %d", resp.StatusCode)
		}
	}
}

func TestRateLimitGlobalWithoutKeys(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	b := startBridge(t, ns, func(c *Config) { c.RateLimit = RateLimit{Rate: 0.25, Burst: 1} })
	if resp, body := b.post(t, "/predict", "application/json", goodPredict); resp.StatusCode != 200 {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	resp, body := b.post(t, "/v1/predict", "application/json", goodPredict)
	if resp.StatusCode != 429 || decodeError(t, resp, body).Code != contracts.CodeRateLimited {
		t.Fatalf("second: %d %s, want 429", resp.StatusCode, body)
	}
	// At 0.25/s the next token is up to 4 s away.
	if ra := resp.Header.Get("Retry-After"); ra != "4" && ra != "3" {
		t.Fatalf("Retry-After %q, want 4 (or 3 if a second passed)", ra)
	}
}

func TestKeysReload(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	logs := &logRecorder{}
	dir := t.TempDir()
	path := writeKeys(t, dir, fmt.Sprintf("reader %s predict\n", HashKey(keyPredict)))
	ks, err := OpenKeyStore(path, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ks.Watch(ctx, 5*time.Millisecond)
	b := startBridge(t, ns, func(c *Config) { c.Keys = ks })
	status := func(key string) int {
		resp, _ := b.post(t, "/predict", "application/json", goodPredict, "X-API-Key", key)
		return resp.StatusCode
	}
	if status(keyAll) != 401 {
		t.Fatal("a key not in the file was accepted")
	}

	// A changed file is picked up by polling.
	writeKeys(t, dir, fmt.Sprintf("reader %s predict\nroot %s *\n", HashKey(keyPredict), HashKey(keyAll)))
	waitFor(t, 5*time.Second, "the new key to work", func() bool { return status(keyAll) == 200 })

	// A broken file keeps the previous keys and logs the line, not its content.
	writeKeys(t, dir, fmt.Sprintf("reader %s predict\nroot %s *\nbad %s predict,sudo\n", HashKey(keyPredict), HashKey(keyAll), HashKey(keyAdmin)))
	waitFor(t, 5*time.Second, "the error log", func() bool {
		for _, l := range logs.all() {
			if l.Level == slog.LevelError && strings.Contains(l.Attrs["err"], "line 3") && strings.Contains(l.Attrs["err"], `scope "sudo"`) {
				return true
			}
		}
		return false
	})
	if status(keyAll) != 200 || status(keyPredict) != 200 || status(keyAdmin) != 401 {
		t.Fatal("a broken file changed the keys in force")
	}
	if err := ks.Reload(); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("Reload: %v, want an error naming line 3", err)
	}

	// A mounted Kubernetes secret changes by swapping the ..data symlink.
	mount := t.TempDir()
	for i, content := range []string{
		fmt.Sprintf("ops %s admin\n", HashKey(keyAdmin)),
		fmt.Sprintf("reader %s predict\n", HashKey(keyPredict)),
	} {
		gen := filepath.Join(mount, fmt.Sprintf("..gen%d", i))
		if err := os.Mkdir(gen, 0o700); err != nil {
			t.Fatal(err)
		}
		writeKeys(t, gen, content)
		tmp := filepath.Join(mount, "..data_tmp")
		if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := os.Symlink(filepath.Join("..data", "keys"), filepath.Join(mount, "keys")); err != nil {
				t.Fatal(err)
			}
		}
	}
	mounted, err := OpenKeyStore(filepath.Join(mount, "keys"), slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if mounted.Lookup(keyPredict) == nil || mounted.Lookup(keyAdmin) != nil {
		t.Fatal("the mounted file's current generation is not the one loaded")
	}
	gen := filepath.Join(mount, "..gen2")
	if err := os.Mkdir(gen, 0o700); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, gen, fmt.Sprintf("ops %s admin\n", HashKey(keyAdmin)))
	if err := os.Symlink(filepath.Base(gen), filepath.Join(mount, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := mounted.Reload(); err != nil {
		t.Fatal(err)
	}
	if mounted.Lookup(keyAdmin) == nil || mounted.Lookup(keyPredict) != nil {
		t.Fatal("the symlink swap was not picked up")
	}
}

// A tenant's rate= (quotas file) is one bucket for all its keys, checked
// before the body is read; another tenant and an admin have their own.
func TestRateLimitPerTenant(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	const keyA1, keyA2, keyB, keyRoot = "sk-acme-one-0a1b2c3d4e5f6a7b", "sk-acme-two-8c9d0e1f2a3b4c5d", "sk-globex-6e7f8a9b0c1d2e3f", "sk-root-4a5b6c7d8e9f0a1b"
	keys := openKeys(t, fmt.Sprintf("a1 %s predict tenant=acme\na2 %s predict tenant=acme\nb %s predict tenant=globex\nroot %s *\n",
		HashKey(keyA1), HashKey(keyA2), HashKey(keyB), HashKey(keyRoot)), &logRecorder{})
	q, err := ParseQuotas([]byte("* rate=1 burst=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, ns, func(c *Config) { c.Keys, c.Quotas = keys, q })
	post := func(key string) (*http.Response, []byte) {
		return b.post(t, "/predict", "application/json", goodPredict, "X-API-Key", key)
	}
	for i, key := range []string{keyA1, keyA2} {
		if resp, body := post(key); resp.StatusCode != 200 {
			t.Fatalf("acme's request %d within the burst: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := post(keyA1)
	e := decodeError(t, resp, body)
	if resp.StatusCode != 429 || e.Code != contracts.CodeRateLimited || e.Field != "rate" || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(e.Message, "tenant acme: rate limit of 1 requests/s (burst 2)") {
		t.Fatalf("acme's third request (two keys): %d %s, Retry-After %q; want 429 rate_limited naming the tenant's rate", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	for _, key := range []string{keyB, keyRoot, keyRoot, keyRoot} {
		if resp, body := post(key); resp.StatusCode != 200 {
			t.Fatalf("another tenant or the admin: %d %s", resp.StatusCode, body)
		}
	}
}
