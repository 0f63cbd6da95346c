package testenv

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// Loading the real model takes a second and hundreds of MB, so a test binary
// loads each variant once and every test shares it (Embed and RunBatch are
// safe for concurrent use). The loaders stay with the callers: this package
// cannot import the processor, whose own tests import it.
var (
	sharedMu sync.Mutex
	shared   = map[string]io.Closer{}
)

// SharedModel returns the value load made for key, calling load (with the
// real model's directory and ONNX Runtime library) the first time. Close
// them all with Main.
func SharedModel[T io.Closer](t testing.TB, key string, load func(dir, lib string) (T, error)) T {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if v, ok := shared[key]; ok {
		return v.(T)
	}
	dir, lib := ModelPaths(t)
	v, err := load(dir, lib)
	if err != nil {
		t.Fatalf("load the real model (%s): %v", key, err)
	}
	shared[key] = v
	return v
}

// Main is a TestMain body: warnings-only logs (request logs would drown the
// test output), run the tests, close the shared models, exit.
func Main(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := m.Run()
	sharedMu.Lock()
	for _, v := range shared {
		v.Close()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// StopAtEnd calls stop (a Stop, Close or Drain taking a context) with a 30s
// deadline when the test ends; an error fails the test.
func StopAtEnd(t testing.TB, stop func(context.Context) error) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Error(err)
		}
	})
}
