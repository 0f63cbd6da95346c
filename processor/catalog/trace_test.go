package catalog_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Every door is one trace through the one pipeline: the bridge's HTTP
// SERVER span, the client's CLIENT span and the processor's SERVER span, in
// a chain, and the answer carries the processor's timing headers.
func TestOneTracePerDoor(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.TraceContext{}
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sched, err := scheduler.New(scheduler.Config{Model: proctest.RealModel(t), Pool: scheduler.NewPool(runtime.GOMAXPROCS(0)), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sched.Close(context.Background()) })
	svc, err := catalog.New(catalog.Config{NATS: nc, Embedder: sched})
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.Start(processor.Config{NATS: nc, Embedder: sched, Catalogs: svc, TracerProvider: tp, Propagator: prop})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	// One attempt: a late acknowledgement on a loaded machine would send the
	// request again, and the trace would hold two processor spans.
	h, err := bridge.New(bridge.Config{NATS: testenv.Connect(t, ns), TracerProvider: tp, Propagator: prop, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	bulk, _ := json.Marshal(map[string]any{"products": shop})
	if code, body := call(t, "POST", srv.URL+"/v1/catalogs/shop/products", string(bulk)); code != 200 {
		t.Fatalf("upsert: %d %s", code, body)
	}

	for _, door := range []struct{ path, route, subject, body string }{
		{"/v1/catalogs/shop/search", "/v1/catalogs/{catalog}/search", "simmatch.catalog.search", `{"query": "make coffee", "top_k": 1}`},
		{"/v1/embeddings", "/v1/embeddings", "simmatch.embed", `{"input": ["make coffee"], "model": "all-MiniLM-L6-v2"}`},
		{"/v1/catalogs/shop/products", "/v1/catalogs/{catalog}/products", "simmatch.catalog.upsert", `{"products": [{"id": "kettle", "description": "Electric kettle"}]}`},
	} {
		t.Run(door.path, func(t *testing.T) {
			resp, err := http.Post(srv.URL+door.path, "application/json", strings.NewReader(door.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for _, h := range []string{"X-Queue-Time", "X-Inference-Time", "X-Total-Time"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("no %s header", h)
				}
			}
			traceID := resp.Header.Get("Trace-Id")
			names := []string{door.route, "send " + door.subject, "process " + door.subject}
			var spans map[string][]sdktrace.ReadOnlySpan
			testenv.WaitFor(t, 10*time.Second, "the trace's spans to end", func() bool {
				spans = map[string][]sdktrace.ReadOnlySpan{}
				for _, s := range rec.Ended() {
					if s.SpanContext().TraceID().String() == traceID {
						spans[s.Name()] = append(spans[s.Name()], s)
					}
				}
				return len(spans[names[0]]) > 0 && len(spans[names[2]]) > 0
			})
			kinds := []trace.SpanKind{trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindServer}
			for i, name := range names {
				if len(spans[name]) != 1 || spans[name][0].SpanKind() != kinds[i] {
					t.Fatalf("trace %s: %d spans %q (want one of kind %v); spans: %v", traceID, len(spans[name]), name, kinds[i], spans)
				}
				if i > 0 && spans[name][0].Parent().SpanID() != spans[names[i-1]][0].SpanContext().SpanID() {
					t.Errorf("span %q is not a child of %q", name, names[i-1])
				}
			}
		})
	}
}

// Every subject of the pipeline refuses a body that is not valid UTF-8 with
// the same malformed_json naming the byte, as the bridge's routes do.
func TestInvalidUTF8OnEverySubject(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	startNode(t, ns.ClientURL(), nil)
	nc := testenv.Connect(t, ns)
	for subject, body := range map[string]string{
		contracts.SubjectSimilarity:    `{"query": ["BAD"], "product_descriptions": ["a saw"]}`,
		contracts.SubjectEmbed:         `{"input": ["BAD"]}`,
		contracts.SubjectCatalogUpsert: `{"catalog": "shop", "products": [{"id": "a", "description": "BAD"}]}`,
		contracts.SubjectCatalogGet:    `{"catalog": "shop", "id": "BAD"}`,
		contracts.SubjectCatalogDelete: `{"catalog": "shop", "id": "BAD"}`,
		contracts.SubjectCatalogList:   `{"request_id": "BAD"}`,
		contracts.SubjectCatalogDrop:   `{"catalog": "BAD"}`,
		contracts.SubjectCatalogSearch: `{"catalog": "shop", "query": ["BAD"]}`,
	} {
		m, err := nc.Request(subject, []byte(strings.ReplaceAll(body, "BAD", "\xff")), 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if code := m.Header.Get(contracts.HeaderErrorCode); code != string(contracts.CodeMalformedJSON) || !strings.Contains(m.Header.Get(contracts.HeaderError), "UTF-8") {
			t.Errorf("%s: %q %q, want malformed_json naming UTF-8", subject, code, m.Header.Get(contracts.HeaderError))
		}
	}
}
