package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Known traffic through the bridge and straight to the processor gives exact
// counts on the bridge's /metrics, which serves one registry shared by both,
// as in the all-in-one.
func TestMetricsCountKnownTraffic(t *testing.T) {
	ns := startNATS(t)
	reg := prometheus.NewRegistry()
	p := startProcessorWith(t, ns, func(c *scheduler.Config) { c.Pool, c.MaxQueuedTokens = scheduler.NewPool(1), 4096 },
		func(c *processor.Config) { c.Metrics = reg })
	srv := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.Metrics, c.Gatherer = reg, reg })

	// Five distinct texts per request: 2 queries x 3 descriptions.
	const good = `{"query": ["What can I use to cut wood?", "I need to drive nails into a board"],
		"product_descriptions": ["` + hammer + `", "` + saw + `", "Garden hose with adjustable spray nozzle, 50 ft."]}`
	const requests, queries, descs, texts = 3, 2, 3, 5
	var scores [][]float64 // per query answered
	for range requests {
		resp, body := postJSON(t, srv.URL, good)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var got contracts.Response
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		for _, r := range got.Results {
			var s []float64
			for _, m := range r.Matches {
				s = append(s, m.Score)
			}
			scores = append(scores, s)
		}
	}
	if resp, _ := postJSON(t, srv.URL, `{"query": [`); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed JSON: status %d", resp.StatusCode)
	}
	if resp, _ := postJSON(t, srv.URL, `{"query": [], "product_descriptions": ["a"]}`); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("empty query: status %d", resp.StatusCode)
	}
	// The bridge refuses invalid requests itself; sent straight over NATS,
	// the processor answers one.
	reply, err := connect(t, ns).Request(contracts.SubjectSimilarity, []byte(`{"query": [], "product_descriptions": ["a"]}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get(contracts.HeaderErrorCode); code != string(contracts.CodeInvalidRequest) {
		t.Fatalf("direct invalid request answered %q, want invalid_request", code)
	}
	// With the processor gone, the bridge answers no_processor.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, body := postJSON(t, srv.URL, good); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without a processor: status %d: %s", resp.StatusCode, body)
	}

	fams := testenv.Families(t, srv.URL)
	httpLabels := func(status, outcome string) map[string]string {
		return map[string]string{"route": "/predict", "method": "POST", "status": status, "outcome": outcome}
	}
	subject := func(outcome string) map[string]string {
		return map[string]string{"subject": contracts.SubjectSimilarity, "outcome": outcome}
	}
	modelLabels := map[string]string{"model": "all-MiniLM-L6-v2", "model_version": "1"}
	stage := func(s string) map[string]string { return map[string]string{"stage": s} }
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"simmatch_http_requests_total", httpLabels("200", "ok"), requests},
		{"simmatch_http_requests_total", httpLabels("400", "malformed_json"), 1},
		{"simmatch_http_requests_total", httpLabels("422", "invalid_request"), 1},
		{"simmatch_http_requests_total", httpLabels("503", "no_processor"), 1},
		{"simmatch_http_request_duration_seconds", map[string]string{"route": "/predict", "method": "POST"}, requests + 3},
		{"simmatch_http_requests_in_flight", nil, 1}, // this scrape

		{"simmatch_processor_requests_total", subject("ok"), requests},
		{"simmatch_processor_requests_total", subject("invalid_request"), 1},
		{"simmatch_processor_requests_total", nil, requests + 1},
		{"simmatch_processor_request_duration_seconds", map[string]string{"subject": contracts.SubjectSimilarity}, requests + 1},
		{"simmatch_processor_queue_wait_seconds", nil, requests},
		{"simmatch_processor_stage_duration_seconds", stage("tokenize"), requests},
		{"simmatch_processor_stage_duration_seconds", stage("inference"), requests}, // 5 texts, one lane: one batch
		{"simmatch_processor_stage_duration_seconds", stage("pooling"), requests},
		{"simmatch_processor_stage_duration_seconds", stage("rank"), requests},
		{"simmatch_processor_batch_size", nil, requests},
		{"simmatch_processor_batch_tokens", nil, requests},
		{"simmatch_processor_texts_total", nil, requests * texts},
		{"simmatch_processor_in_flight", nil, 0},
		{"simmatch_processor_queue_depth", nil, 0},
		{"simmatch_processor_queue_capacity", nil, 4096},
		{"simmatch_processor_workers", nil, 1},

		{"simmatch_model_info", map[string]string{"model": "all-MiniLM-L6-v2", "model_version": "1", "dimensions": "384"}, 1},
		{"simmatch_model_matches_total", modelLabels, requests * queries * descs},
		{"simmatch_model_similarity_score", modelLabels, requests * queries * descs},
		{"simmatch_model_topk_similarity", modelLabels, requests * queries},
		{"simmatch_model_matches_above_threshold_total", modelLabels, float64(countAtLeast(scores, processor.DefaultSimilarityThreshold))},
		{"simmatch_model_similarity_threshold", modelLabels, processor.DefaultSimilarityThreshold},
	}
	for _, w := range want {
		if got := testenv.MetricValue(t, fams, w.name, w.labels); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	if got := histSum(fams, "simmatch_processor_batch_size"); got != requests*texts {
		t.Errorf("batch size sum %v, want %d texts embedded", got, requests*texts)
	}
	var all, topK float64
	for _, s := range scores {
		s = slices.Clone(s)
		slices.Sort(s)
		slices.Reverse(s)
		top := s[:min(processor.DefaultMetricsTopK, len(s))]
		var sum float64
		for _, x := range top {
			sum += x
		}
		topK += sum / float64(len(top))
		for _, x := range s {
			all += x
		}
	}
	if got := histSum(fams, "simmatch_model_similarity_score"); math.Abs(got-all) > 1e-9 {
		t.Errorf("score sum %v, want %v, the sum of the answered scores", got, all)
	}
	if got := histSum(fams, "simmatch_model_topk_similarity"); math.Abs(got-topK) > 1e-9 {
		t.Errorf("top-K average sum %v, want %v", got, topK)
	}
}

// Error replies sent by the workers, after the subscription's handler has
// returned, are counted too: a request that waited in the queue past its
// deadline is answered "timeout" by the worker that picks it up.
func TestMetricsCountWorkerErrors(t *testing.T) {
	ns := startNATS(t)
	reg := prometheus.NewRegistry()
	// One lane, and a budget that makes the big request one long batch.
	startProcessorWith(t, ns, func(c *scheduler.Config) { c.Pool, c.MaxBatchTokens = scheduler.NewPool(1), 1<<16 },
		func(c *processor.Config) { c.Metrics = reg })
	nc := connect(t, ns)
	c, err := contracts.NewClient(nc, contracts.WithTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	// Keep the one lane busy for a while with many texts.
	big := &contracts.Request{Query: contracts.Queries{"cut wood"}}
	for i := range 200 {
		big.ProductDescriptions = append(big.ProductDescriptions, fmt.Sprintf("Catalog item %d: a sturdy workshop tool, model %d, with a two-year warranty.", i, i*7))
	}
	bigDone := make(chan error, 1)
	go func() {
		_, err := c.Match(context.Background(), big)
		bigDone <- err
	}()
	waitFor(t, 30*time.Second, "the big request to run", func() bool {
		fams := testenv.Gather(t, reg)
		return testenv.MetricValue(t, fams, "simmatch_processor_in_flight", nil) == 1 &&
			testenv.MetricValue(t, fams, "simmatch_processor_lanes_busy", nil) == 1 &&
			testenv.MetricValue(t, fams, "simmatch_processor_queue_depth", nil) == 0
	})
	// 1 ms of budget: it passes while the request waits behind the big one.
	msg := nats.NewMsg(contracts.SubjectSimilarity)
	msg.Header.Set(contracts.HeaderTimeout, "1")
	msg.Data = []byte(`{"query": ["saw"], "product_descriptions": ["` + saw + `"]}`)
	reply, err := nc.RequestMsg(msg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get(contracts.HeaderErrorCode); code != string(contracts.CodeTimeout) {
		t.Fatalf("answered %q, want timeout", code)
	}
	if err := <-bigDone; err != nil {
		t.Fatal(err)
	}
	// The reply goes out before the request leaves the in-flight gauge.
	waitFor(t, 10*time.Second, "no request in flight", func() bool {
		return testenv.MetricValue(t, testenv.Gather(t, reg), "simmatch_processor_in_flight", nil) == 0
	})

	fams := testenv.Gather(t, reg)
	subject := func(outcome string) map[string]string {
		return map[string]string{"subject": contracts.SubjectSimilarity, "outcome": outcome}
	}
	for _, w := range []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"simmatch_processor_requests_total", subject("ok"), 1},
		{"simmatch_processor_requests_total", subject("timeout"), 1},
		{"simmatch_processor_queue_wait_seconds", nil, 1}, // the expired request never reached the model
		{"simmatch_processor_texts_dropped_total", nil, 2},
		{"simmatch_processor_stage_duration_seconds", map[string]string{"stage": "rank"}, 1},
		{"simmatch_processor_texts_total", nil, 201},
		{"simmatch_processor_in_flight", nil, 0},
	} {
		if got := testenv.MetricValue(t, fams, w.name, w.labels); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	// micro's own statistics cannot see this error: the worker replied after
	// the handler had returned. That is why the processor counts itself.
}

func TestMetricsConfig(t *testing.T) {
	ns := startNATS(t)
	nc := connect(t, ns)
	custom := -0.5
	tooHigh := 1.5
	tests := []struct {
		name string
		mod  func(*processor.Config)
	}{
		{"threshold above 1", func(c *processor.Config) { c.SimilarityThreshold = &tooHigh }},
		{"negative top K", func(c *processor.Config) { c.MetricsTopK = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := processor.Config{NATS: nc, Embedder: realModel(t), Metrics: prometheus.NewRegistry()}
			tt.mod(&cfg)
			if p, err := processor.Start(cfg); err == nil {
				_ = p.Stop(context.Background())
				t.Fatal("Start accepted the configuration")
			}
		})
	}
	t.Run("names already taken", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		startProcessor(t, ns, func(c *processor.Config) { c.Metrics, c.SimilarityThreshold = reg, &custom })
		_, err := processor.Start(processor.Config{NATS: connect(t, ns), Embedder: realModel(t), Metrics: reg})
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			t.Fatalf("err = %v, want AlreadyRegisteredError", err)
		}
		if got := testenv.MetricValue(t, testenv.Gather(t, reg), "simmatch_model_similarity_threshold", nil); got != custom {
			t.Fatalf("threshold gauge %v, want %v: the failed Start must leave the registry as it was", got, custom)
		}
	})
}

// The processor logs a failed request with the request's context, so the
// command's log handler adds its trace_id, and with its request_id.
func TestFailureLogCarriesTraceAndRequestID(t *testing.T) {
	ns := startNATS(t)
	logs := &ctxRecorder{}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	startProcessor(t, ns, func(c *processor.Config) {
		c.Embedder = failingEmbedder{}
		c.Logger = slog.New(logs)
		c.TracerProvider, c.Propagator = tp, propagation.TraceContext{}
	})
	c := newClient(t, connect(t, ns), tp)
	ctx, span := tp.Tracer("test").Start(context.Background(), "test")
	_, err := c.Match(ctx, &contracts.Request{Query: contracts.Queries{"q"}, ProductDescriptions: []string{"d"}, RequestID: "req-42"})
	span.End()
	if !errors.Is(err, contracts.ErrModelError) {
		t.Fatalf("err = %v, want model_error", err)
	}
	r, ok := logs.find("processor: request failed")
	if !ok {
		t.Fatal("the failure was not logged")
	}
	if sc := trace.SpanContextFromContext(r.ctx); sc.TraceID() != span.SpanContext().TraceID() {
		t.Errorf("logged with trace %v, want the caller's %v", sc.TraceID(), span.SpanContext().TraceID())
	}
	if r.attrs["request_id"] != "req-42" {
		t.Errorf("request_id %q, want req-42", r.attrs["request_id"])
	}
	for k, v := range r.attrs {
		if v == "q" || v == "d" {
			t.Errorf("attribute %s logs a request text", k)
		}
	}
}

type failingEmbedder struct{}

func (failingEmbedder) Embed(context.Context, []string) (embedding.Result, error) {
	return embedding.Result{}, errors.New("embed: run session: out of memory")
}

func (failingEmbedder) Info() contracts.ModelInfo {
	return contracts.ModelInfo{Name: "failing", Version: "0", Dimensions: 3}
}

// ctxRecorder is a slog.Handler that keeps each record with its context.
type ctxRecorder struct {
	mu   sync.Mutex
	recs []ctxRecord
}

type ctxRecord struct {
	ctx   context.Context
	msg   string
	attrs map[string]string
}

func (h *ctxRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *ctxRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *ctxRecorder) WithGroup(string) slog.Handler            { return h }

func (h *ctxRecorder) Handle(ctx context.Context, r slog.Record) error {
	rec := ctxRecord{ctx: ctx, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}

func (h *ctxRecorder) find(msg string) (ctxRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.msg == msg {
			return r, true
		}
	}
	return ctxRecord{}, false
}

func countAtLeast(scores [][]float64, th float64) int {
	n := 0
	for _, s := range scores {
		for _, x := range s {
			if x >= th {
				n++
			}
		}
	}
	return n
}

// histSum is the sum of every observation of a histogram family.
func histSum(fams map[string]*dto.MetricFamily, name string) float64 {
	var s float64
	for _, m := range fams[name].GetMetric() {
		s += m.GetHistogram().GetSampleSum()
	}
	return s
}
