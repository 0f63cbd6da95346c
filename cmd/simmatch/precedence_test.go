package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// TestModelGivenAtStartWins starts the all-in-one three times on one data
// directory: with fp32, then with the int8 model directory given explicitly
// (it becomes the recorded default though fp32 was recorded), then with no
// model given (it follows the recorded int8, not its built-in fp32).
func TestModelGivenAtStartWins(t *testing.T) {
	root, name := testenv.ModelStore(t)
	fp32, _ := testenv.ModelPaths(t)
	int8 := testenv.ModelVersionDir(t, "int8")
	// The built-in default, models/<name>/fp32, is relative: run where the
	// store is models/.
	dir := t.TempDir()
	if err := os.Symlink(root, filepath.Join(dir, "models")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	data := t.TempDir()

	// start runs the all-in-one until the returned function stops it; env
	// is its environment (besides SIMMATCH_ORT_LIB).
	start := func(env map[string]string, args ...string) (base string, logs *testenv.LogBuffer, stop func()) {
		t.Helper()
		logs = &testenv.LogBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		args = append([]string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-log-format", "text", "-data-dir", data}, args...)
		go func() {
			done <- serve(ctx, args, func(k string) string {
				if k == "SIMMATCH_ORT_LIB" {
					return os.Getenv(k)
				}
				return env[k]
			}, logs, func(httpURL, natsURL string) { ready <- httpURL })
		}()
		select {
		case base = <-ready:
		case err := <-done:
			cancel()
			t.Fatalf("serve returned early: %v\n%s", err, logs)
		case <-time.After(2 * time.Minute):
			cancel()
			t.Fatal("not ready after 2m")
		}
		return base, logs, func() {
			t.Helper()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("serve did not return after cancel")
			}
		}
	}
	version := func(base string) string {
		t.Helper()
		resp, err := http.Post(base+"/predict", "application/json", strings.NewReader(
			`{"query": ["What can I use to cut wood?"], "product_descriptions": ["Claw hammer.", "Circular saw."]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got contracts.Response
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/predict: status %d, decode: %v", resp.StatusCode, err)
		}
		return got.Model.Version
	}

	base, _, stop := start(map[string]string{"SIMMATCH_MODEL_DIR": fp32})
	if v := version(base); v != "fp32" {
		t.Fatalf("first start (fp32): serves %q", v)
	}
	stop()

	// fp32 is recorded; the int8 given now replaces it.
	base, logs, stop := start(nil, "-model-dir", int8)
	if v := version(base); v != "int8" {
		t.Fatalf("second start (-model-dir int8 over a recorded fp32): serves %q\n%s", v, logs)
	}
	if l := logs.String(); !strings.Contains(l, "the model given at start is now the recorded default") ||
		!strings.Contains(l, "model="+name+"@int8") || !strings.Contains(l, "was="+name+"@fp32") {
		t.Errorf("second start: the log does not say int8 replaced the recorded fp32:\n%s", l)
	}
	stop()

	// No model given: the built-in fp32 loads, then the recorded int8 wins.
	base, logs, stop = start(nil)
	defer stop()
	testenv.WaitFor(t, 2*time.Minute, "the third start (no model given) to serve the recorded int8", func() bool {
		return version(base) == "int8"
	})
	if l := logs.String(); strings.Contains(l, "is now the recorded default") {
		t.Errorf("third start (no model given) recorded its default:\n%s", l)
	}
}
