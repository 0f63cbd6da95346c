package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/internal/testenv"
)

// runServe runs serve with args, getenv and out until stop (or the end of the
// test) and returns the bridge's and the NATS URL once both serve (see
// testenv.RunCommand).
func runServe(t *testing.T, args []string, getenv func(string) string, out io.Writer) (httpURL, natsURL string, stop func()) {
	t.Helper()
	type urls struct{ h, n string }
	u, stop := testenv.RunCommand(t, func(ctx context.Context, ready func(urls)) error {
		return serve(ctx, args, getenv, out, func(h, n string) { ready(urls{h, n}) })
	})
	return u.h, u.n, stop
}

// startKeyed runs the all-in-one with the real model and one API key (name,
// key, comma-separated scopes) in a keys file, until stop or the end of the
// test, and returns the bridge's base URL.
func startKeyed(t *testing.T, name, key, scopes string, moreKeys ...string) (base string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	lines := append([]string{name + " " + bridge.HashKey(key) + " " + scopes}, moreKeys...)
	if err := os.WriteFile(keys, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SIMMATCH_API_KEYS_FILE": keys,
		"SIMMATCH_MODEL_DIR":     os.Getenv("SIMMATCH_MODEL_DIR"),
		"SIMMATCH_ORT_LIB":       os.Getenv("SIMMATCH_ORT_LIB"),
	}
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-log-level", "warn", "-data-dir", filepath.Join(dir, "data")}
	base, _, stop = runServe(t, args, func(k string) string { return env[k] }, io.Discard)
	return base, stop
}
