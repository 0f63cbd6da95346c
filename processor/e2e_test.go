package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/scheduler"
)

const (
	hammer = "Heavy-duty claw hammer with a non-slip grip handle."
	saw    = "High-performance circular saw with laser guide."
)

// postJSON posts a /predict body to the bridge at url.
func postJSON(t testing.TB, url, body string) (*http.Response, []byte) {
	t.Helper()
	return proctest.Post(t, url+"/predict", body)
}

func TestRESTRanksSawAboveHammer(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	srv := proctest.StartBridge(t, ns, nil)

	resp, body := postJSON(t, srv.URL, `{"query": ["What can I use to cut wood?"], "product_descriptions": ["`+hammer+`", "`+saw+`"]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got contracts.Response
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 1 || len(got.Results[0].Matches) != 2 {
		t.Fatalf("want 1 result with 2 matches, got %s", body)
	}
	m := got.Results[0].Matches
	if m[0].Description != saw || m[0].Index != 1 || m[1].Index != 0 {
		t.Fatalf("ranking = %+v, want the saw (index 1) first", m)
	}
	if !(m[0].Score > m[1].Score) || m[0].Score > 1 || m[1].Score < -1 {
		t.Fatalf("scores %v, %v: want saw > hammer, both cosines", m[0].Score, m[1].Score)
	}
	if got.Model != (contracts.ModelInfo{Name: "all-MiniLM-L6-v2", Version: "1", Dimensions: 384}) {
		t.Fatalf("model = %+v", got.Model)
	}
	if got.RequestID == "" || got.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("request_id %q, X-Request-Id %q: want the same non-empty id", got.RequestID, resp.Header.Get("X-Request-Id"))
	}
}

func TestTopKAndThreshold(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	c := newClient(t, connect(t, ns), nil)
	descs := []string{hammer, saw, "Garden hose, 50 ft", "Handsaw for wood, 20 inch", saw}
	all, err := c.Match(context.Background(), &contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: descs})
	if err != nil {
		t.Fatal(err)
	}
	ms := all.Results[0].Matches
	if len(ms) != len(descs) {
		t.Fatalf("got %d matches, want %d", len(ms), len(descs))
	}
	// The duplicate saw description ties exactly: catalog order breaks the tie.
	for i := 1; i < len(ms); i++ {
		if ms[i].Score > ms[i-1].Score || (ms[i].Score == ms[i-1].Score && ms[i].Index < ms[i-1].Index) {
			t.Fatalf("matches not sorted by score then index: %+v", ms)
		}
	}
	k, th := 2, ms[2].Score
	got, err := c.Match(context.Background(), &contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: descs, TopK: &k})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Results[0].Matches) != fmt.Sprint(ms[:2]) {
		t.Fatalf("top_k 2 = %+v, want %+v", got.Results[0].Matches, ms[:2])
	}
	got, err = c.Match(context.Background(), &contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: descs, Threshold: &th})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Results[0].Matches) != fmt.Sprint(ms[:3]) {
		t.Fatalf("threshold %v = %+v, want %+v", th, got.Results[0].Matches, ms[:3])
	}
}

// cases are queries whose best match among catalog is known.
var cases = []struct{ query, best string }{
	{"What can I use to cut wood?", saw},
	{"I need to drive nails into a board", hammer},
	{"something to water my garden plants", "Garden hose with adjustable spray nozzle, 50 ft."},
	{"make espresso at home", "Espresso machine with milk frother and 15-bar pump."},
}

var catalog = []string{hammer, saw, "Garden hose with adjustable spray nozzle, 50 ft.", "Espresso machine with milk frother and 15-bar pump."}

func TestTwoProcessorsShareLoad(t *testing.T) {
	ns := startNATS(t)
	p1 := startProcessor(t, ns, nil)
	p2 := startProcessor(t, ns, nil)
	// A late acknowledgement on a loaded machine makes the client send a
	// request again: count those, so every request the processors saw is
	// accounted for.
	var resent atomic.Int64
	c, err := contracts.NewClient(connect(t, ns), contracts.WithRetryHook(func(contracts.RetryReason) { resent.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			tc := cases[i%len(cases)]
			descs := make([]string, len(catalog))
			for j := range catalog { // rotate so the answer's index varies
				descs[j] = catalog[(j+i)%len(catalog)]
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp, err := c.Match(ctx, &contracts.Request{Query: contracts.Queries{tc.query}, ProductDescriptions: descs, RequestID: fmt.Sprint("req-", i)})
			if err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			best := resp.Results[0].Matches[0]
			if best.Description != tc.best || descs[best.Index] != tc.best || resp.RequestID != fmt.Sprint("req-", i) {
				errs <- fmt.Errorf("request %d (%q): best %+v, want %q", i, tc.query, best, tc.best)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n1, n2 := p1.Stats().Endpoints[0].NumRequests, p2.Stats().Endpoints[0].NumRequests
	t.Logf("processor 1 served %d, processor 2 served %d (%d sent again)", n1, n2, resent.Load())
	if n1 == 0 || n2 == 0 || n1+n2 != n+int(resent.Load()) {
		t.Fatalf("served %d + %d, want both > 0 and %d in all (%d requests and %d sent again)", n1, n2, n+int(resent.Load()), n, resent.Load())
	}
}

func TestTypedClientWithoutBridge(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	c := newClient(t, connect(t, ns), nil)
	resp, err := c.Match(context.Background(), &contracts.Request{
		Query:               contracts.Queries{"What can I use to cut wood?", "I need to drive nails into a board"},
		ProductDescriptions: []string{hammer, saw},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 2 || resp.Results[0].Query != "What can I use to cut wood?" {
		t.Fatalf("results = %+v, want one per query in order", resp.Results)
	}
	if resp.Results[0].Matches[0].Description != saw || resp.Results[1].Matches[0].Description != hammer {
		t.Fatalf("best matches %q, %q: want saw then hammer", resp.Results[0].Matches[0].Description, resp.Results[1].Matches[0].Description)
	}
	// A bad request sent straight to the processor gets a typed error too.
	_, err = c.Match(context.Background(), &contracts.Request{Query: contracts.Queries{"x"}})
	var e *contracts.Error
	if !errors.As(err, &e) || e.Code != contracts.CodeInvalidRequest || e.Field != "product_descriptions" {
		t.Fatalf("err = %v, want invalid_request on product_descriptions", err)
	}
}

func TestBadInputs(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, func(c *processor.Config) {
		c.Limits = contracts.Limits{MaxQueries: 2, MaxDescriptions: 3, MaxTextChars: 80, MaxBodyBytes: 4096}
	})
	srv := proctest.StartBridge(t, ns, func(c *bridge.Config) {
		c.Limits = contracts.Limits{MaxQueries: 2, MaxDescriptions: 3, MaxTextChars: 80, MaxBodyBytes: 4096}
	})
	nc := connect(t, ns)
	tests := []struct {
		name        string
		body        string
		contentType string
		status      int
		code        contracts.Code
		field       string
	}{
		{"malformed json", `{"query": [`, "", 400, contracts.CodeMalformedJSON, ""},
		{"not an object", `[1,2]`, "", 422, contracts.CodeInvalidRequest, ""},
		{"query wrong type", `{"query": 5, "product_descriptions": ["a"]}`, "", 422, contracts.CodeInvalidRequest, "query"},
		{"descriptions wrong type", `{"query": "a", "product_descriptions": "b"}`, "", 422, contracts.CodeInvalidRequest, "product_descriptions"},
		{"top_k wrong type", `{"query": "a", "product_descriptions": ["b"], "top_k": "3"}`, "", 422, contracts.CodeInvalidRequest, "top_k"},
		{"empty query list", `{"query": [], "product_descriptions": ["b"]}`, "", 422, contracts.CodeInvalidRequest, "query"},
		{"empty descriptions", `{"query": "a", "product_descriptions": []}`, "", 422, contracts.CodeInvalidRequest, "product_descriptions"},
		{"blank text", `{"query": "a", "product_descriptions": ["b", "  "]}`, "", 422, contracts.CodeInvalidRequest, "product_descriptions[1]"},
		{"too many queries", `{"query": ["a","b","c"], "product_descriptions": ["b"]}`, "", 422, contracts.CodeInvalidRequest, "query"},
		{"too many descriptions", `{"query": "a", "product_descriptions": ["a","b","c","d"]}`, "", 422, contracts.CodeInvalidRequest, "product_descriptions"},
		{"text too long", `{"query": "` + strings.Repeat("é", 81) + `", "product_descriptions": ["b"]}`, "", 422, contracts.CodeInvalidRequest, "query[0]"},
		{"body too large", `{"query": "a", "product_descriptions": ["` + strings.Repeat("b", 5000) + `"]}`, "", 413, contracts.CodePayloadTooLarge, ""},
		{"wrong content type", `{"query": "a", "product_descriptions": ["b"]}`, "text/plain", 415, contracts.CodeUnsupportedMediaType, ""},
		{"unknown field", `{"query": "a", "product_descriptions": ["b"], "topk": 1}`, "", 422, contracts.CodeInvalidRequest, "topk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			resp, err := http.Post(srv.URL+"/predict", ct, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb contracts.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil {
				t.Fatalf("status %d, body not an error JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tt.status || eb.Error.Code != tt.code || eb.Error.Field != tt.field {
				t.Fatalf("got %d %+v, want %d %s field %q", resp.StatusCode, eb.Error, tt.status, tt.code, tt.field)
			}
			if tt.code == contracts.CodeUnsupportedMediaType || tt.code == contracts.CodePayloadTooLarge {
				return // HTTP-only checks
			}
			// The same bytes sent straight to the processor, bypassing the
			// bridge, get the same code: the processor protects itself.
			reply, err := nc.Request(contracts.SubjectSimilarity, []byte(tt.body), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, err = contracts.DecodeReply(reply)
			var e *contracts.Error
			if !errors.As(err, &e) || e.Code != tt.code || e.Field != tt.field {
				t.Fatalf("processor answered %v, want %s field %q", err, tt.code, tt.field)
			}
		})
	}
	// Garbage on the wire does not hurt the processor either.
	for _, junk := range [][]byte{nil, {0xff, 0xfe}, bytes.Repeat([]byte("{"), 3000)} {
		if _, err := nc.Request(contracts.SubjectSimilarity, junk, 10*time.Second); err != nil {
			t.Fatalf("junk %q: %v", junk[:min(len(junk), 8)], err)
		}
	}
	resp, body := postJSON(t, srv.URL, `{"query": ["cut wood"], "product_descriptions": ["`+hammer+`", "`+saw+`"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after bad inputs the service answered %d: %s", resp.StatusCode, body)
	}
}

func TestNoProcessorIs503AtOnce(t *testing.T) {
	ns := startNATS(t)
	srv := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.RequestTimeout = 20 * time.Second })
	start := time.Now()
	resp, body := postJSON(t, srv.URL, `{"query": "cut wood", "product_descriptions": ["saw"]}`)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"no_processor"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s (Retry-After %q), want 503 no_processor with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: no responders must be reported at once, not after the 20s timeout", d)
	}
}

func TestSlowerThanDeadlineIs504(t *testing.T) {
	ns := startNATS(t)
	p := startProcessorWith(t, ns, func(c *scheduler.Config) { c.Pool = scheduler.NewPool(1) }, nil)
	srv := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.RequestTimeout = 50 * time.Millisecond })
	descs := make([]string, 600)
	for i := range descs {
		descs[i] = fmt.Sprintf("Product %d: a long description of a cordless drill with many features, batteries, a case and a charger, model %d", i, i*7)
	}
	b, _ := json.Marshal(contracts.Request{Query: contracts.Queries{"drill"}, ProductDescriptions: descs})
	resp, body := postJSON(t, srv.URL, string(b))
	if resp.StatusCode != 504 || !strings.Contains(string(body), `"timeout"`) {
		t.Fatalf("got %d %s, want 504 timeout", resp.StatusCode, body)
	}
	// The processor gave up on the expired request and keeps serving.
	waitFor(t, 30*time.Second, "the processor to finish the expired request", func() bool {
		return p.Stats().Endpoints[0].NumRequests == 1 && p.InFlight() == 0
	})
	c := newClient(t, connect(t, ns), nil)
	if _, err := c.Match(context.Background(), &contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: []string{saw}}); err != nil {
		t.Fatal(err)
	}
}

// Stopping a processor during a burst loses nothing: every request it
// accepted is answered, the rest go to the other processor.
func TestDrainDuringBurst(t *testing.T) {
	ns := startNATS(t)
	p1 := startProcessor(t, ns, nil)
	startProcessor(t, ns, nil)
	c := newClient(t, connect(t, ns), nil)

	const n = 120
	var wg sync.WaitGroup
	var ok atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp, err := c.Match(ctx, &contracts.Request{Query: contracts.Queries{cases[i%len(cases)].query}, ProductDescriptions: catalog})
			if err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			if resp.Results[0].Matches[0].Description != cases[i%len(cases)].best {
				errs <- fmt.Errorf("request %d: wrong answer", i)
				return
			}
			ok.Add(1)
		})
	}
	waitFor(t, 30*time.Second, "processor 1 to accept requests", func() bool { return p1.Stats().Endpoints[0].NumRequests >= 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pendingAtStop := p1.InFlight()
	if err := p1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if p1.InFlight() != 0 {
		t.Fatalf("after Stop, %d requests are still unanswered", p1.InFlight())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ok.Load() != n {
		t.Fatalf("%d of %d requests answered correctly", ok.Load(), n)
	}
	t.Logf("the stopped processor had %d requests queued or running when Stop began; all were answered", pendingAtStop)
}

func TestTraceEndToEnd(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.TraceContext{}
	ns := startNATS(t)
	startProcessor(t, ns, func(c *processor.Config) { c.TracerProvider, c.Propagator = tp, prop })
	// One attempt: on a loaded machine a late acknowledgement would make the
	// bridge send the request again, and the trace would hold two processor spans.
	srv := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.TracerProvider, c.Propagator, c.MaxAttempts = tp, prop, 1 })

	resp, body := postJSON(t, srv.URL, `{"query": "cut wood", "product_descriptions": ["`+saw+`"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	traceID := resp.Header.Get("Trace-Id")
	var spans map[string]sdktrace.ReadOnlySpan
	waitFor(t, 10*time.Second, "the processor and batch spans to end", func() bool {
		spans = map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			spans[s.Name()] = s
		}
		return spans["process similarity.request"] != nil && spans["/predict"] != nil && spans["batch"] != nil
	})
	server, client, process := spans["/predict"], spans["send similarity.request"], spans["process similarity.request"]
	if client == nil {
		t.Fatalf("no CLIENT span; spans: %v", keys(spans))
	}
	if server.SpanContext().TraceID().String() != traceID {
		t.Fatalf("Trace-Id header %q, HTTP span trace %s", traceID, server.SpanContext().TraceID())
	}
	wantKinds := map[string]trace.SpanKind{"/predict": trace.SpanKindServer, "send similarity.request": trace.SpanKindClient, "process similarity.request": trace.SpanKindServer}
	for name, kind := range wantKinds {
		if spans[name].SpanKind() != kind {
			t.Errorf("span %s kind %v, want %v", name, spans[name].SpanKind(), kind)
		}
	}
	// The model runs in batches shared by requests: the batch span starts
	// its own trace, linked to the span of each request it serves.
	batch := spans["batch"]
	if batch == nil {
		t.Fatalf("no batch span; spans: %v", keys(spans))
	}
	if batch.Parent().IsValid() || len(batch.Links()) != 1 || batch.Links()[0].SpanContext.SpanID() != process.SpanContext().SpanID() {
		t.Errorf("batch span: parent %v, links %v; want a root linked to the process span %s", batch.Parent(), batch.Links(), process.SpanContext().SpanID())
	}
	for _, name := range []string{"inference", "pooling"} {
		if s := spans[name]; s == nil || s.Parent().SpanID() != batch.SpanContext().SpanID() {
			t.Errorf("span %q is not a child of the batch span", name)
		}
	}
	parent := map[string]sdktrace.ReadOnlySpan{"send similarity.request": server, "process similarity.request": client, "rank": process, "tokenize": process}
	for name, p := range parent {
		s := spans[name]
		if s == nil {
			t.Fatalf("no %q span; spans: %v", name, keys(spans))
		}
		if s.SpanContext().TraceID() != server.SpanContext().TraceID() || s.Parent().SpanID() != p.SpanContext().SpanID() {
			t.Errorf("span %q: trace %s parent %s, want trace %s parent %q (%s)", name, s.SpanContext().TraceID(), s.Parent().SpanID(), server.SpanContext().TraceID(), p.Name(), p.SpanContext().SpanID())
		}
	}
	if !process.Parent().IsRemote() {
		t.Error("the processor span's parent should come from the NATS headers (remote)")
	}
}

func keys(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
