package bridge

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
		t.Cleanup(func() { _ = svc.Stop() })
		// Its models status answer says what it has loaded; the test changes it.
		var mu sync.Mutex
		status := contracts.ProcessorModels{Processor: "p1",
			Models:   []contracts.ModelVersionStatus{{Name: "all-MiniLM-L6-v2", Version: "fp32", State: contracts.ModelLoading}},
			Catalogs: &contracts.CatalogsState{Loading: []string{}}}
		sub, err := nc.Subscribe(contracts.SubjectModelsStatus, func(m *nats.Msg) {
			mu.Lock()
			b, _ := json.Marshal(status)
			mu.Unlock()
			_ = m.Respond(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		if err := nc.Flush(); err != nil { // the server knows the service's subscriptions
			t.Fatal(err)
		}
		set := func(change func(*contracts.ProcessorModels)) {
			mu.Lock()
			change(&status)
			mu.Unlock()
		}

		notReady(t, "processor p1: no default model serving (all-MiniLM-L6-v2@fp32 is loading); the stored catalogs are not listed yet")
		set(func(p *contracts.ProcessorModels) {
			p.Models[0].State, p.Models[0].Default, p.DefaultModel = contracts.ModelServing, true, "all-MiniLM-L6-v2@fp32"
			p.Catalogs = &contracts.CatalogsState{Listed: true, Following: 2, Loading: []string{"shop", "tools"}}
		})
		notReady(t, "processor p1: catalogs loading: shop, tools")
		set(func(p *contracts.ProcessorModels) { p.Catalogs.Loading = nil })
		resp, body := b.get(t, "/ready")
		var st readyBody
		if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != 200 || st.Status != "ready" ||
			st.DefaultModel != "all-MiniLM-L6-v2@fp32" || st.Processor != "p1" || st.Catalogs == nil || st.Catalogs.Following != 2 {
			t.Fatalf("got %d %s, want 200 ready with p1's model and catalogs", resp.StatusCode, body)
		}
		// A processor without catalogs (SIMMATCH_CATALOGS=off) is ready with its model.
		set(func(p *contracts.ProcessorModels) { p.Catalogs = nil })
		if resp, body := b.get(t, "/ready"); resp.StatusCode != 200 {
			t.Fatalf("no catalogs: got %d %s, want 200", resp.StatusCode, body)
		}
	})

	t.Run("nats connection closed", func(t *testing.T) {
		b.nc.Close()
		notReady(t, "NATS connection is closed")
	})
}

// Once the processors have said they are not ready, /ready answers without
// waiting out its whole timeout for an answer that will not come.
func TestReadyDoesNotWaitOutItsTimeout(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, func(c *Config) { c.ReadyTimeout = 30 * time.Second })
	nc := connect(t, ns)
	svc, err := micro.AddService(nc, micro.Config{Name: contracts.ServiceName, Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	sub, err := nc.Subscribe(contracts.SubjectModelsStatus, func(m *nats.Msg) {
		b, _ := json.Marshal(contracts.ProcessorModels{Processor: "p1",
			Models: []contracts.ModelVersionStatus{{Name: "all-MiniLM-L6-v2", Version: "fp32", State: contracts.ModelLoading}}})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, body := b.get(t, "/ready")
	if took := time.Since(start); resp.StatusCode != 503 || !strings.Contains(string(body), "processor p1: no default model serving") || took > 15*time.Second {
		t.Fatalf("got %d %s after %v, want 503 naming p1 well before the 30 s timeout", resp.StatusCode, body, took)
	}
}
