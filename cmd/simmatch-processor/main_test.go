package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/cache"
)

// The processor command serves its metrics and a liveness probe on
// -metrics-addr, counts what it answers there, and stops both cleanly.
func TestProcessorServesMetrics(t *testing.T) {
	ns := testenv.StartNATS(t)
	args := []string{"-nats-url", ns.ClientURL(), "-metrics-addr", "127.0.0.1:0", "-log-level", "warn", "-workers", "1"}
	getenv := func(k string) string {
		if k == "SIMMATCH_MODEL_DIR" || k == "SIMMATCH_ORT_LIB" {
			return os.Getenv(k)
		}
		return ""
	}
	base, stop := testenv.RunCommand(t, func(ctx context.Context, ready func(string)) error {
		return run(ctx, args, getenv, io.Discard, ready)
	})

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := contracts.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The second request is answered from the embedding cache.
	for range 2 {
		if _, err := c.Match(t.Context(), &contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: []string{"a saw"}}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := nc.Request("$SRV.STATS."+contracts.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil || len(stats.Endpoints) == 0 || stats.Endpoints[0].Name != "similarity" {
		t.Fatalf("$SRV.STATS: %s (%v)", msg.Data, err)
	}
	var data struct {
		Cache  cache.Stats
		Models []contracts.ModelVersionStatus
	}
	if err := json.Unmarshal(stats.Endpoints[0].Data, &data); err != nil || data.Cache.Local.Hits != 2 || data.Cache.Local.Misses != 2 {
		t.Fatalf("$SRV.STATS endpoint data %s (%v): want the cache's 2 hits and 2 misses", stats.Endpoints[0].Data, err)
	}
	if len(data.Models) != 1 || data.Models[0].Version != "fp32" || !data.Models[0].Default {
		t.Fatalf("$SRV.STATS endpoint data %s: want the model versions, fp32 the default", stats.Endpoints[0].Data)
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if status, body := get("/health"); status != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/health: %d %s", status, body)
	}
	if status, body := get("/ready"); status != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/ready: %d %s", status, body)
	}
	status, body := get("/metrics")
	for _, want := range []string{
		`simmatch_build_info{component="processor"`,
		`simmatch_processor_requests_total{outcome="ok",subject="similarity.request"} 2`,
		`simmatch_processor_texts_total{model="all-MiniLM-L6-v2",model_version="fp32"} 2`,
		`simmatch_cache_hits_total{tier="local"} 2`,
		`simmatch_cache_misses_total{tier="local"} 2`,
		`simmatch_cache_capacity_bytes{tier="local"} 2.68435456e+08`,
		`simmatch_processor_workers{model="all-MiniLM-L6-v2",model_version="fp32"} 1`,
		`simmatch_model_matches_total{model="all-MiniLM-L6-v2",model_version="fp32"} 2`,
		`process_resident_memory_bytes `,
	} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (status %d) lacks %q", status, want)
		}
	}

	stop()
	if _, err := http.Get(base + "/health"); err == nil {
		t.Error("the metrics server still answers after run returned")
	}
}
