package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// The all-in-one starts embedded NATS, a processor with the real model and
// the bridge, answers /predict, and shuts down cleanly when its context ends.
func TestAllInOne(t *testing.T) {
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "127.0.0.1:0", "-log-level", "warn", "-data-dir", t.TempDir()}
	base, _, stop := runServe(t, args, func(k string) string {
		if strings.HasPrefix(k, "SIMMATCH_MODEL_DIR") || k == "SIMMATCH_ORT_LIB" {
			return os.Getenv(k)
		}
		return ""
	}, io.Discard)

	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/predict", "application/json", strings.NewReader(
		`{"query": ["What can I use to cut wood?"], "product_descriptions": ["Heavy-duty claw hammer with a non-slip grip handle.", "High-performance circular saw with laser guide."]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got contracts.Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, decode: %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if got.Results[0].Matches[0].Index != 1 {
		t.Fatalf("matches = %+v, want the saw (index 1) first", got.Results[0].Matches)
	}

	stop()
}

// Through run, as main calls it: arguments that start with a flag run the
// all-in-one (serve is the default subcommand).
func TestAllInOneReportsBadConfiguration(t *testing.T) {
	err := run(context.Background(), []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-data-dir", t.TempDir()}, func(k string) string {
		if k == "SIMMATCH_ORT_LIB" {
			return os.Getenv(k)
		}
		if k == "SIMMATCH_MODEL_DIR" {
			return t.TempDir()
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no ONNX graph") {
		t.Fatalf("err = %v, want a clear message about the missing model", err)
	}
}
