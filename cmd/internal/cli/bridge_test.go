package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

func TestBridgeSecurityFlags(t *testing.T) {
	env := map[string]string{
		"SIMMATCH_PUBLIC_PATHS":  "/health, /ready",
		"SIMMATCH_RATE_LIMIT":    "2.5",
		"SIMMATCH_RATE_BURST":    "5",
		"SIMMATCH_METRICS_SCOPE": "metrics",
	}
	b, cfg, logs := bridgeFromEnv(t, env)
	if cfg.Keys != nil || strings.Join(cfg.PublicPaths, ",") != "/health,/ready" || cfg.RateLimit != (bridge.RateLimit{Rate: 2.5, Burst: 5}) ||
		cfg.MetricsScope != bridge.ScopeMetrics {
		t.Fatalf("config %+v", cfg)
	}
	if !strings.Contains(logs.String(), "no API keys file") {
		t.Fatalf("no warning that the API is open: %s", logs.String())
	}
	b.PublicPaths = "none"
	if sec, err := b.Security(t.Context(), slog.New(slog.DiscardHandler)); err != nil || sec.publicPaths == nil || len(sec.publicPaths) != 0 {
		t.Fatalf("none: %v %v, want an empty non-nil list", sec.publicPaths, err)
	}
	for _, bad := range []Bridge{
		{PublicPaths: "health"},
		{APIKeysFile: filepath.Join(t.TempDir(), "missing")},
		{TLSCertFile: "only-a-cert.pem"},
		{RateLimit: -1},
		{MetricsScope: "metric"},
		{MetricsScope: "*"},
	} {
		if _, err := bad.Security(t.Context(), slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}

// SIGHUP reloads the keys file at once, without waiting for the poll.
func TestBridgeSecuritySIGHUP(t *testing.T) {
	const key = "sk-hup-3e5a7c9b1d2f4a6c"
	path := filepath.Join(t.TempDir(), "keys")
	testenv.WriteFile(t, path, []byte("# none yet\n"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sec, err := Bridge{APIKeysFile: path, ReloadInterval: time.Hour}.Security(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if sec.keys.Len() != 0 {
		t.Fatalf("%d keys, want 0", sec.keys.Len())
	}
	testenv.WriteFile(t, path, []byte("app "+bridge.HashKey(key)+" predict\n"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the SIGHUP reload", func() bool { return sec.keys.Len() == 1 })
}

func TestBridgeSecurityListenTLS(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	cert, key := ca.Server(t, "bridge").WriteFiles(t, t.TempDir(), "bridge")
	sec, err := Bridge{TLSCertFile: cert, TLSKeyFile: key, ReloadInterval: time.Hour}.Security(t.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, url, err := sec.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("url %s, want https", url)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %+v", resp.TLS)
	}
}

// bridgeFromEnv parses the bridge's settings from env alone, builds their
// security, and returns them, the bridge's configuration and the log.
func bridgeFromEnv(t *testing.T, env map[string]string) (Bridge, bridge.Config, *bytes.Buffer) {
	t.Helper()
	var b Bridge
	f := NewFlags("test", func(k string) string { return env[k] }, io.Discard)
	f.Bridge(&b)
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	sec, err := b.Security(t.Context(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b, b.Config(sec, nil, contracts.DefaultLimits, nil, nil), &logs
}
