package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/simmatch/simmatch/contracts"
)

func TestHealth(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	// Alive even with no processor and, below, without NATS.
	for _, stage := range []string{"connected", "nats closed"} {
		resp, body := b.get(t, "/health")
		var st statusBody
		if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 || st.Status != "ok" {
			t.Fatalf("%s: %d %s", stage, resp.StatusCode, body)
		}
		b.nc.Close()
	}
}

func TestReady(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, func(c *Config) { c.ReadyTimeout = 200 * time.Millisecond })

	notReady := func(t *testing.T, want string) {
		t.Helper()
		resp, body := b.get(t, "/ready")
		e := decodeError(t, resp, body)
		if resp.StatusCode != 503 || e.Code != contracts.CodeNoProcessor || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("got %d %+v (Retry-After %q), want 503 no_processor with Retry-After", resp.StatusCode, e, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not name %q", e.Message, want)
		}
	}

	t.Run("no processor", func(t *testing.T) { notReady(t, "no processor is running") })

	t.Run("no ping answer in time", func(t *testing.T) {
		nc := connect(t, ns)
		sub, err := nc.SubscribeSync("$SRV.PING." + contracts.ServiceName)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		notReady(t, "within 200ms")
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("took %v with a ReadyTimeout of 200ms", took)
		}
		if err := sub.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a processor answers pings", func(t *testing.T) {
		nc := connect(t, ns)
		svc, err := micro.AddService(nc, micro.Config{Name: contracts.ServiceName, Version: "0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil { // the server knows the service's subscriptions
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
		resp, body := b.get(t, "/ready")
		var st statusBody
		if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 || st.Status != "ready" {
			t.Fatalf("got %d %s, want 200 ready", resp.StatusCode, body)
		}
	})

	t.Run("nats connection closed", func(t *testing.T) {
		b.nc.Close()
		notReady(t, "NATS connection is closed")
	})
}
