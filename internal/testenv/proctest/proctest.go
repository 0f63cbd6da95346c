// Package proctest is the test set-up of the tests that run the processor
// from outside it: the shared real model and an embedder that counts. It
// imports the processor, so it lives beside testenv, which the processor's
// own tests import.
package proctest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
)

// RealModel is the real all-MiniLM-L6-v2, loaded once per test binary
// (testenv.SharedModel; testenv.Main closes it).
func RealModel(t testing.TB) *processor.Model {
	t.Helper()
	return testenv.SharedModel(t, "fp32", func(dir, lib string) (*processor.Model, error) {
		return processor.LoadModel(processor.ModelOptions{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2", Version: "1"})
	})
}

// BGEModel is the real bge-small-en-v1.5 fp32 (the second model family of
// the model store), loaded once per test binary.
func BGEModel(t testing.TB) *processor.Model {
	t.Helper()
	return testenv.SharedModel(t, "bge-small-en-v1.5@fp32", func(_, lib string) (*processor.Model, error) {
		return processor.LoadModel(processor.ModelOptions{Dir: testenv.FamilyDir(t, "bge-small-en-v1.5", "fp32"), Library: lib, Name: "bge-small-en-v1.5", Version: "fp32"})
	})
}

// CountingEmbedder counts the texts it passes to Embedder.
type CountingEmbedder struct {
	processor.Embedder
	// Texts is the number of texts embedded so far.
	Texts atomic.Int64
}

// Embed counts texts and embeds them with c.Embedder.
func (c *CountingEmbedder) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	c.Texts.Add(int64(len(texts)))
	return c.Embedder.Embed(ctx, texts)
}

// Keys writes content as a keys file (one "<name> <sha256> <scopes>
// [tenant=...]" line per key: bridge.HashKey) and opens it.
func Keys(t testing.TB, content string) *bridge.KeyStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := bridge.OpenKeyStore(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// StartBridge serves the real bridge on a connection to ns over a real HTTP
// listener on loopback; mod, when not nil, edits its configuration.
func StartBridge(t testing.TB, ns *server.Server, mod func(*bridge.Config)) *httptest.Server {
	t.Helper()
	cfg := bridge.Config{NATS: testenv.Connect(t, ns)}
	if mod != nil {
		mod(&cfg)
	}
	h, err := bridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// Post posts a JSON body to url and returns the answer with its body read.
func Post(t testing.TB, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	return readAnswer(t, resp, err)
}

// Get gets url and returns the answer with its body read.
func Get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	return readAnswer(t, resp, err)
}

// Do sends req and returns the answer with its body read.
func Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	return readAnswer(t, resp, err)
}

func readAnswer(t testing.TB, resp *http.Response, err error) (*http.Response, []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
