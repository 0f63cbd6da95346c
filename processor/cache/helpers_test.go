package cache

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
)

// The real model, loaded once per test binary per version (Embed is safe
// for concurrent use).
var (
	modelsMu sync.Mutex
	models   = map[string]*processor.Model{}
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	code := m.Run()
	for _, mod := range models {
		mod.Close()
	}
	os.Exit(code)
}

// realModel is all-MiniLM-L6-v2 announcing version.
func realModel(t testing.TB, version string) *processor.Model {
	t.Helper()
	modelsMu.Lock()
	defer modelsMu.Unlock()
	if m, ok := models[version]; ok {
		return m
	}
	dir, lib := testenv.ModelPaths(t)
	m, err := processor.LoadModel(processor.ModelOptions{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2", Version: version})
	if err != nil {
		t.Fatal(err)
	}
	models[version] = m
	return m
}

// counting passes every call to the real model and counts what reaches it.
type counting struct {
	Embedder
	calls, texts atomic.Int64
	// gate, when set, holds each call until it is closed or the call's
	// context ends; entered gets a value when a call reaches it.
	gate    chan struct{}
	entered chan struct{}
}

func (c *counting) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	c.calls.Add(1)
	c.texts.Add(int64(len(texts)))
	if c.gate != nil {
		if c.entered != nil {
			select {
			case c.entered <- struct{}{}:
			default:
			}
		}
		select {
		case <-c.gate:
		case <-ctx.Done():
			return embedding.Result{}, ctx.Err()
		}
	}
	return c.Embedder.Embed(ctx, texts)
}

// switchable is a model that can be replaced while running (as a model
// store would), so tests can change the model version under a cache.
type switchable struct {
	cur atomic.Pointer[processor.Model]
}

func (s *switchable) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	return s.cur.Load().Embed(ctx, texts)
}
func (s *switchable) Info() contracts.ModelInfo { return s.cur.Load().Info() }

func newCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

func embed(t testing.TB, e Embedder, texts ...string) [][]float32 {
	t.Helper()
	v, err := vectors(e.Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(texts) {
		t.Fatalf("%d embeddings for %d texts", len(v), len(texts))
	}
	return v
}

// sameBits fails unless a and b are bit for bit the same vectors.
func sameBits(t testing.TB, what string, a, b [][]float32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d vs %d vectors", what, len(a), len(b))
	}
	for i := range a {
		if len(a[i]) != len(b[i]) || len(a[i]) == 0 {
			t.Fatalf("%s: vector %d has %d vs %d dimensions", what, i, len(a[i]), len(b[i]))
		}
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("%s: vector %d differs at %d: %v vs %v", what, i, j, a[i][j], b[i][j])
			}
		}
	}
}

// texts are n distinct product descriptions of equal length, unique to prefix.
func texts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s waterproof hiking boot, size %03d", prefix, i)
	}
	return out
}

// vectors is an Embed call's vectors, for tests about the vectors alone.
func vectors(r embedding.Result, err error) ([][]float32, error) { return r.Vectors, err }
