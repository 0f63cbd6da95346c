package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// startNATS runs a real NATS server in-process on a random port.
func startNATS(t testing.TB, mod ...func(*server.Options)) *server.Server {
	t.Helper()
	opts := make([]testenv.NATSOption, len(mod))
	for i, m := range mod {
		opts[i] = m
	}
	return testenv.StartNATS(t, opts...)
}

func connect(t testing.TB, ns *server.Server) *nats.Conn { t.Helper(); return testenv.Connect(t, ns) }

// testBridge is a bridge served over a real HTTP listener, with a recording
// tracer provider and a captured log.
type testBridge struct {
	*httptest.Server
	srv  *Server
	nc   *nats.Conn
	logs *logRecorder
}

// startBridge serves a bridge on its own NATS connection to ns; mod may
// change the config before New.
func startBridge(t testing.TB, ns *server.Server, mod func(*Config)) *testBridge {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logs := &logRecorder{}
	cfg := Config{NATS: connect(t, ns), TracerProvider: tp, Logger: slog.New(logs)}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testBridge{Server: srv, srv: h, nc: cfg.NATS, logs: logs}
}

// post sends body to path with content type ct and returns the answer with its body read.
func (b *testBridge) post(t testing.TB, path, ct, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func (b *testBridge) get(t testing.TB, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// decodeError decodes an error answer, failing the test when it is not one.
func decodeError(t testing.TB, resp *http.Response, body []byte) *contracts.Error {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d: Content-Type %q, want application/json; body %s", resp.StatusCode, ct, clip(body))
	}
	var eb contracts.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error == nil {
		t.Fatalf("status %d: body is not an ErrorBody (%v): %s", resp.StatusCode, err, clip(body))
	}
	return eb.Error
}

// clip shortens a body for a failure message.
func clip(body []byte) string {
	if len(body) > 300 {
		return string(body[:300]) + "..."
	}
	return string(body)
}

// fakeProcessor stands in for the processors where a test is about the
// bridge's transport behaviour: it joins the processors' queue group and
// answers with handle.
type fakeProcessor struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

// startFake subscribes handle on contracts.SubjectSimilarity in the
// processors' queue group on its own connection; every message is recorded
// before handle runs.
func startFake(t testing.TB, ns *server.Server, handle func(*nats.Msg)) *fakeProcessor {
	t.Helper()
	nc := connect(t, ns)
	f := &fakeProcessor{}
	_, err := nc.QueueSubscribe(contracts.SubjectSimilarity, contracts.DefaultQueueGroup, func(m *nats.Msg) {
		f.mu.Lock()
		f.msgs = append(f.msgs, m)
		f.mu.Unlock()
		handle(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The server knows the subscription once the flush returns, so the
	// bridge's first request cannot miss it.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// received returns the messages received so far.
func (f *fakeProcessor) received() []*nats.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*nats.Msg(nil), f.msgs...)
}

// rank answers a deterministic ranking: every description, in reverse catalog
// order, with score 1/(position+1). It echoes the request id.
func rank(t testing.TB) func(*nats.Msg) {
	return func(m *nats.Msg) {
		var req contracts.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("fake processor: decode request: %v", err)
			return
		}
		resp := contracts.Response{
			Model:     contracts.ModelInfo{Name: "fake", Version: "test", Dimensions: 3},
			RequestID: req.RequestID,
		}
		for _, q := range req.Query {
			res := contracts.Result{Query: q, Matches: []contracts.Match{}}
			for i := len(req.ProductDescriptions) - 1; i >= 0; i-- {
				pos := len(res.Matches)
				res.Matches = append(res.Matches, contracts.Match{Index: i, Description: req.ProductDescriptions[i], Score: 1 / float64(pos+1)})
			}
			resp.Results = append(resp.Results, res)
		}
		data, err := json.Marshal(resp)
		if err != nil {
			t.Errorf("fake processor: %v", err)
			return
		}
		if err := m.Respond(data); err != nil {
			t.Errorf("fake processor: respond: %v", err)
		}
	}
}

// replyError answers like a micro service that failed: the error headers and
// an ErrorBody.
func replyError(t testing.TB, code contracts.Code, message string) func(*nats.Msg) {
	return replyErrorValue(t, &contracts.Error{Code: code, Message: message})
}

// replyErrorValue answers every request with e.
func replyErrorValue(t testing.TB, e *contracts.Error) func(*nats.Msg) {
	return func(m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(contracts.HeaderErrorCode, string(e.Code))
		reply.Header.Set(contracts.HeaderError, e.Message)
		reply.Data = e.Marshal()
		if err := m.RespondMsg(reply); err != nil {
			t.Errorf("fake processor: respond: %v", err)
		}
	}
}

// silent never answers.
func silent(*nats.Msg) {}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// logRecorder is a slog.Handler that keeps every record, for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// all returns the records so far, each as its message and attributes.
func (h *logRecorder) all() []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]logLine, 0, len(h.records))
	for _, r := range h.records {
		l := logLine{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
		r.Attrs(func(a slog.Attr) bool {
			l.Attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, l)
	}
	return out
}

// access returns the access-log line of the request with id, if logged.
func (h *logRecorder) access(id string) (logLine, bool) {
	for _, l := range h.all() {
		if l.Msg == "http request" && l.Attrs["request_id"] == id {
			return l, true
		}
	}
	return logLine{}, false
}

type logLine struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}
