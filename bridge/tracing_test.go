package bridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
)

func TestTracing(t *testing.T) {
	const incoming = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name        string
		path        string
		traceparent string // sent by the caller
		wantTrace   string // "" means a new trace
	}{
		{"new trace", "/predict", "", ""},
		{"v1 path", "/v1/predict", "", ""},
		{"caller's trace continues", "/predict", "00-" + incoming + "-00f067aa0ba902b7-01", incoming},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			ns := startNATS(t)
			fake := startFake(t, ns, rank(t))
			b := startBridge(t, ns, func(c *Config) { c.TracerProvider, c.Propagator = tp, propagation.TraceContext{} })

			var hdr []string
			if tt.traceparent != "" {
				hdr = []string{"traceparent", tt.traceparent}
			}
			resp, body := b.post(t, tt.path, "application/json", original, hdr...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			traceID := resp.Header.Get("Trace-Id")
			if !traceIDPattern.MatchString(traceID) || (tt.wantTrace != "" && traceID != tt.wantTrace) {
				t.Fatalf("Trace-Id %q, want %q", traceID, tt.wantTrace)
			}

			// The SERVER span ends after the answer is written; wait for it.
			var server, client sdktrace.ReadOnlySpan
			waitFor(t, 5*time.Second, "the server span to end", func() bool {
				for _, s := range rec.Ended() {
					switch s.SpanKind() {
					case trace.SpanKindServer:
						server = s
					case trace.SpanKindClient:
						client = s
					}
				}
				return server != nil
			})
			if server.Name() != tt.path {
				t.Errorf("server span %q, want the route %q", server.Name(), tt.path)
			}
			if client == nil || client.Name() != "send "+contracts.SubjectSimilarity {
				t.Fatalf("client span %v, want send %s", client, contracts.SubjectSimilarity)
			}
			if server.SpanContext().TraceID().String() != traceID || client.SpanContext().TraceID().String() != traceID {
				t.Errorf("trace ids: server %s, client %s, header %s", server.SpanContext().TraceID(), client.SpanContext().TraceID(), traceID)
			}
			if client.Parent().SpanID() != server.SpanContext().SpanID() {
				t.Errorf("client span's parent %s, want the server span %s", client.Parent().SpanID(), server.SpanContext().SpanID())
			}
			if tt.traceparent != "" && server.Parent().SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("server span's parent %s, want the caller's span", server.Parent().SpanID())
			}
			// The trace context crossed NATS in the W3C header.
			m := fake.received()[0]
			if tp := m.Header.Get("traceparent"); !strings.Contains(tp, traceID) {
				t.Errorf("NATS traceparent %q does not carry trace %s", tp, traceID)
			}
			if l, ok := b.logs.access(resp.Header.Get("X-Request-Id")); !ok || l.Attrs["trace_id"] != traceID {
				t.Errorf("access log %+v, want trace_id %s", l, traceID)
			}
		})
	}
}

// With tracing off (the global no-op provider) requests work and carry no Trace-Id.
func TestTracingOff(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	b := startBridge(t, ns, func(c *Config) { c.TracerProvider = nil })
	resp, body := b.post(t, "/predict", "application/json", original)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Trace-Id"); got != "" {
		t.Errorf("Trace-Id %q without tracing", got)
	}
}

func TestTraceIDHeader(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	valid := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"span in context", trace.ContextWithSpanContext(context.Background(), valid), tid.String()},
		{"no span", context.Background(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			var called bool
			h := traceIDHeader(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
			h.ServeHTTP(w, httptest.NewRequestWithContext(tt.ctx, http.MethodGet, "/x", nil))
			if !called {
				t.Fatal("next not called")
			}
			if got := w.Header().Get("Trace-Id"); got != tt.want {
				t.Errorf("Trace-Id %q, want %q", got, tt.want)
			}
		})
	}
}

// Routed requests get a span named by their route; requests that match no
// route get none, rather than one misleadingly named "/".
func TestTracingRoutes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ns := startNATS(t)
	b := startBridge(t, ns, func(c *Config) { c.TracerProvider = tp })
	tests := []struct {
		method, path, span string
	}{
		{http.MethodGet, "/nope", ""},
		{http.MethodGet, "/predict", ""}, // 405
		{http.MethodGet, "/health", "/health"},
		{http.MethodGet, "/ready", "/ready"},
		{http.MethodGet, "/openapi.yaml", "/openapi.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := len(rec.Ended())
			req, err := http.NewRequest(tt.method, b.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, _ := do(t, req)
			if tt.span == "" {
				// net/http sends a small answer only after the whole handler
				// chain returned, so a span would have ended by now.
				if n := len(rec.Ended()); n != before || resp.Header.Get("Trace-Id") != "" {
					t.Errorf("%d new spans, Trace-Id %q: want none", n-before, resp.Header.Get("Trace-Id"))
				}
				return
			}
			waitFor(t, 5*time.Second, "the server span", func() bool { return len(rec.Ended()) > before })
			s := rec.Ended()[before]
			if s.Name() != tt.span || s.SpanKind() != trace.SpanKindServer || s.SpanContext().TraceID().String() != resp.Header.Get("Trace-Id") {
				t.Errorf("span %q kind %v trace %s, want %q SERVER trace %s", s.Name(), s.SpanKind(), s.SpanContext().TraceID(), tt.span, resp.Header.Get("Trace-Id"))
			}
		})
	}
}
