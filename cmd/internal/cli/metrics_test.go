package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewRegistry(t *testing.T) {
	reg := NewRegistry("bridge")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		got[f.GetName()] = true
		switch f.GetName() {
		case "simmatch_build_info":
			labels := map[string]string{}
			for _, l := range f.GetMetric()[0].GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["component"] != "bridge" || labels["go_version"] != runtime.Version() || labels["version"] == "" {
				t.Errorf("build info labels %v", labels)
			}
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 1 {
				t.Errorf("build info = %v, want 1", v)
			}
		case "simmatch_uptime_seconds":
			if v := f.GetMetric()[0].GetGauge().GetValue(); v <= 0 {
				t.Errorf("uptime = %v, want > 0", v)
			}
		}
	}
	// The standard collectors the dashboards use (docs/metrics.md).
	for _, name := range []string{"simmatch_build_info", "simmatch_uptime_seconds", "go_goroutines",
		"go_memstats_heap_inuse_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if !got[name] {
			t.Errorf("%s is not registered", name)
		}
	}
}

func TestServeMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeMetrics(ctx, ln, NewRegistry("processor"), func() bool { return true }, slog.New(slog.DiscardHandler))
	}()
	base := "http://" + ln.Addr().String()

	tests := []struct {
		name, path string
		status     int
		contains   string
	}{
		{"metrics", "/metrics", 200, `simmatch_build_info{component="processor"`},
		{"health", "/health", 200, `{"status":"ok"}`},
		{"nothing else", "/predict", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("status %d, body %.200s: want %d containing %q", resp.StatusCode, body, tt.status, tt.contains)
			}
		})
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeMetrics: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeMetrics did not return after its context ended")
	}
}

// The bridge's SIMMATCH_METRICS_ADDR: /metrics on a listener of its own,
// gone when the context ends; unset, no listener.
func TestBridgeServeMetrics(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	if addr, stop, err := (Bridge{}).ServeMetrics(context.Background(), NewRegistry("bridge"), logger); err != nil || addr != "" {
		t.Fatalf("unset: addr %q, err %v; want no listener", addr, err)
	} else {
		stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, stop, err := Bridge{MetricsAddr: "127.0.0.1:0"}.ServeMetrics(ctx, NewRegistry("bridge"), logger)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `simmatch_build_info{component="bridge"`) {
		t.Fatalf("status %d, body %.200s", resp.StatusCode, body)
	}
	cancel()
	stop()
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Fatal("the metrics listener still answers after its context ended")
	}
	if _, _, err := (Bridge{MetricsAddr: "127.0.0.1:-1"}).ServeMetrics(context.Background(), NewRegistry("bridge"), logger); err == nil || !strings.Contains(err.Error(), "SIMMATCH_METRICS_ADDR") {
		t.Fatalf("a bad address: %v, want an error naming SIMMATCH_METRICS_ADDR", err)
	}
}
