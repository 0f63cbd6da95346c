package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

const (
	hammer = "Heavy-duty claw hammer with a non-slip grip handle."
	saw    = "High-performance circular saw with laser guide."
	// original is the original service's example request.
	original = `{"query": ["What can I use to cut wood?"], "product_descriptions": ["` + hammer + `", "` + saw + `"]}`
)

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Bad requests are answered by the bridge alone: the right status, code,
// field and limit, and no NATS message.
func TestPredictBadInputs(t *testing.T) {
	ns := startNATS(t)
	fake := startFake(t, ns, rank(t))
	lim := contracts.Limits{MaxQueries: 2, MaxDescriptions: 3, MaxTextChars: 50, MaxBodyBytes: 4096}
	b := startBridge(t, ns, func(c *Config) { c.Limits = lim })

	const appJSON = "application/json"
	tests := []struct {
		name   string
		ct     string
		body   string
		status int
		code   contracts.Code
		field  string
		limit  int
	}{
		{"malformed json", appJSON, `{"query": [`, 400, contracts.CodeMalformedJSON, "", 0},
		{"syntax error", appJSON, `{"query": "a" "product_descriptions": ["b"]}`, 400, contracts.CodeMalformedJSON, "", 0},
		{"empty body", appJSON, ``, 400, contracts.CodeMalformedJSON, "", 0},
		{"data after the object", appJSON, `{"query": "a", "product_descriptions": ["b"]} {}`, 400, contracts.CodeMalformedJSON, "", 0},
		{"invalid utf-8", appJSON, "{\"query\": \"a\xff\", \"product_descriptions\": [\"b\"]}", 400, contracts.CodeMalformedJSON, "", 0},
		{"not an object", appJSON, `[1, 2]`, 422, contracts.CodeInvalidRequest, "", 0},
		{"query is a number", appJSON, `{"query": 5, "product_descriptions": ["b"]}`, 422, contracts.CodeInvalidRequest, "query", 0},
		{"descriptions is a string", appJSON, `{"query": "a", "product_descriptions": "x"}`, 422, contracts.CodeInvalidRequest, "product_descriptions", 0},
		{"top_k is a string", appJSON, `{"query": "a", "product_descriptions": ["b"], "top_k": "a"}`, 422, contracts.CodeInvalidRequest, "top_k", 0},
		{"top_k is zero", appJSON, `{"query": "a", "product_descriptions": ["b"], "top_k": 0}`, 422, contracts.CodeInvalidRequest, "top_k", 0},
		{"threshold out of range", appJSON, `{"query": "a", "product_descriptions": ["b"], "threshold": 2}`, 422, contracts.CodeInvalidRequest, "threshold", 0},
		{"missing query", appJSON, `{"product_descriptions": ["b"]}`, 422, contracts.CodeInvalidRequest, "query", 0},
		{"empty query list", appJSON, `{"query": [], "product_descriptions": ["b"]}`, 422, contracts.CodeInvalidRequest, "query", 0},
		{"missing descriptions", appJSON, `{"query": "a"}`, 422, contracts.CodeInvalidRequest, "product_descriptions", 0},
		{"empty descriptions", appJSON, `{"query": "a", "product_descriptions": []}`, 422, contracts.CodeInvalidRequest, "product_descriptions", 0},
		{"blank description", appJSON, `{"query": "a", "product_descriptions": ["b", "  "]}`, 422, contracts.CodeInvalidRequest, "product_descriptions[1]", 0},
		{"too many queries", appJSON, `{"query": ["a", "b", "c"], "product_descriptions": ["b"]}`, 422, contracts.CodeInvalidRequest, "query", 2},
		{"too many descriptions", appJSON, `{"query": "a", "product_descriptions": ["a", "b", "c", "d"]}`, 422, contracts.CodeInvalidRequest, "product_descriptions", 3},
		{"query too long", appJSON, `{"query": "` + strings.Repeat("é", 51) + `", "product_descriptions": ["b"]}`, 422, contracts.CodeInvalidRequest, "query[0]", 50},
		{"description too long", appJSON, `{"query": "a", "product_descriptions": ["b", "` + strings.Repeat("x", 51) + `"]}`, 422, contracts.CodeInvalidRequest, "product_descriptions[1]", 50},
		{"request_id too long", appJSON, `{"query": "a", "product_descriptions": ["b"], "request_id": "` + strings.Repeat("r", 129) + `"}`, 422, contracts.CodeInvalidRequest, "request_id", 128},
		{"unknown field", appJSON, `{"query": "a", "product_descriptions": ["b"], "topk": 1}`, 422, contracts.CodeInvalidRequest, "topk", 0},
		{"body too large", appJSON, `{"query": "a", "product_descriptions": ["` + strings.Repeat("b", 5000) + `"]}`, 413, contracts.CodePayloadTooLarge, "", 4096},
		{"text/plain", "text/plain", original, 415, contracts.CodeUnsupportedMediaType, "", 0},
		{"form", "application/x-www-form-urlencoded", original, 415, contracts.CodeUnsupportedMediaType, "", 0},
		{"missing content type", "", original, 415, contracts.CodeUnsupportedMediaType, "", 0},
		{"unparsable content type", "application/json; charset", original, 415, contracts.CodeUnsupportedMediaType, "", 0},
		{"latin-1 charset", "application/json; charset=iso-8859-1", original, 415, contracts.CodeUnsupportedMediaType, "", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fake.received())
			resp, body := b.post(t, "/predict", tt.ct, tt.body, "X-Request-Id", "bad-"+strconv.Itoa(i))
			e := decodeError(t, resp, body)
			if resp.StatusCode != tt.status || e.Code != tt.code || e.Field != tt.field || e.Limit != tt.limit {
				t.Errorf("got %d %+v, want %d code %s field %q limit %d", resp.StatusCode, e, tt.status, tt.code, tt.field, tt.limit)
			}
			if e.Message == "" {
				t.Error("error has no message")
			}
			if e.RequestID != "bad-"+strconv.Itoa(i) || resp.Header.Get("X-Request-Id") != e.RequestID {
				t.Errorf("request id: body %q, header %q, want bad-%d in both", e.RequestID, resp.Header.Get("X-Request-Id"), i)
			}
			if resp.Header.Get("Retry-After") != "" {
				t.Error("a bad request must not invite a retry")
			}
			// A good request after the bad one is the first message the
			// processor sees: NATS keeps the order of one connection's
			// messages, so the bad one was never sent.
			barrier := fmt.Sprintf("barrier-%d", i)
			resp, body = b.post(t, "/predict", "application/json",
				`{"query": "a", "product_descriptions": ["b"], "request_id": "`+barrier+`"}`)
			if resp.StatusCode != 200 {
				t.Fatalf("barrier request: %d %s", resp.StatusCode, body)
			}
			got := fake.received()[before:]
			if len(got) != 1 || got[0].Header.Get(contracts.HeaderRequestID) != barrier {
				ids := make([]string, len(got))
				for j, m := range got {
					ids[j] = m.Header.Get(contracts.HeaderRequestID)
				}
				t.Fatalf("processor received %v, want only %s", ids, barrier)
			}
		})
	}
}

func TestPredictSuccess(t *testing.T) {
	ns := startNATS(t)
	fake := startFake(t, ns, rank(t))
	b := startBridge(t, ns, func(c *Config) { c.RequestTimeout = 3 * time.Second })

	tests := []struct {
		name      string
		path      string
		ct        string
		body      string
		header    string // X-Request-Id sent
		wantID    string // "" means generated
		wantQuery []string
	}{
		{"original request", "/predict", "application/json", original, "", "", []string{"What can I use to cut wood?"}},
		{"v1 path", "/v1/predict", "application/json", original, "", "", []string{"What can I use to cut wood?"}},
		{"query as a string", "/predict", "application/json", `{"query": "cut wood", "product_descriptions": ["` + hammer + `", "` + saw + `"]}`, "", "", []string{"cut wood"}},
		{"two queries", "/predict", "application/json", `{"query": ["cut wood", "drive nails"], "product_descriptions": ["` + hammer + `", "` + saw + `"]}`, "", "", []string{"cut wood", "drive nails"}},
		{"charset and case", "/predict", "Application/JSON; charset=UTF-8", original, "", "", []string{"What can I use to cut wood?"}},
		{"X-Request-Id header", "/predict", "application/json", original, "from-header", "from-header", []string{"What can I use to cut wood?"}},
		{"body request_id wins", "/predict", "application/json", `{"query": "q", "product_descriptions": ["a", "b"], "request_id": "from-body"}`, "from-header", "from-body", []string{"q"}},
		{"invalid X-Request-Id is replaced", "/predict", "application/json", original, "has space", "", []string{"What can I use to cut wood?"}},
		{"options", "/predict", "application/json", `{"query": "q", "product_descriptions": ["a", "b"], "top_k": 1, "threshold": 0.5}`, "", "", []string{"q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.header != "" {
				hdr = []string{"X-Request-Id", tt.header}
			}
			resp, body := b.post(t, tt.path, tt.ct, tt.body, hdr...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			// The body's shape, key by key, as a client without our types sees it.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"results", "model", "request_id"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("body has no %q: %s", k, body)
				}
			}
			var got contracts.Response
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if len(got.Results) != len(tt.wantQuery) {
				t.Fatalf("%d results, want %d: %s", len(got.Results), len(tt.wantQuery), body)
			}
			for i, res := range got.Results {
				if res.Query != tt.wantQuery[i] || len(res.Matches) == 0 || res.Matches[0].Score != 1 {
					t.Errorf("result %d: %+v", i, res)
				}
			}
			if got.Model.Name != "fake" || got.Model.Dimensions != 3 {
				t.Errorf("model %+v", got.Model)
			}
			id := resp.Header.Get("X-Request-Id")
			if got.RequestID != id || id == "" || (tt.wantID != "" && id != tt.wantID) {
				t.Errorf("request id: body %q, header %q, want %q", got.RequestID, id, tt.wantID)
			}
			if tt.wantID == "" && (id == tt.header || !validRequestID(id)) {
				t.Errorf("generated request id %q", id)
			}
			if tid := resp.Header.Get("Trace-Id"); !traceIDPattern.MatchString(tid) {
				t.Errorf("Trace-Id %q, want 32 hex digits", tid)
			}
			// What crossed NATS: the request id and the time left to answer.
			msgs := fake.received()
			m := msgs[len(msgs)-1]
			if m.Header.Get(contracts.HeaderRequestID) != id {
				t.Errorf("NATS %s = %q, want %q", contracts.HeaderRequestID, m.Header.Get(contracts.HeaderRequestID), id)
			}
			left, ok, err := contracts.Timeout(m.Header)
			if !ok || err != nil || left <= 0 || left > 3*time.Second {
				t.Errorf("NATS timeout header: %v %v %v, want (0, 3s]", left, ok, err)
			}
		})
	}
}

func TestPredictProcessorFailures(t *testing.T) {
	tests := []struct {
		name       string
		handle     func(t testing.TB) func(*nats.Msg) // nil: no processor at all
		timeout    time.Duration
		status     int
		code       contracts.Code
		retryAfter string // "": none
		maxTime    time.Duration
	}{
		{"no processor", nil, 10 * time.Second, 503, contracts.CodeNoProcessor, "1", 5 * time.Second},
		{"slower than the deadline", func(testing.TB) func(*nats.Msg) { return silent }, 200 * time.Millisecond, 504, contracts.CodeTimeout, "", 5 * time.Second},
		{"model error", func(t testing.TB) func(*nats.Msg) { return replyError(t, contracts.CodeModelError, "inference failed") }, 10 * time.Second, 500, contracts.CodeModelError, "", 5 * time.Second},
		{"overloaded", func(t testing.TB) func(*nats.Msg) { return replyError(t, contracts.CodeOverloaded, "queue full") }, 10 * time.Second, 429, contracts.CodeOverloaded, "1", 5 * time.Second},
		{"overloaded, with the processor's estimate", func(t testing.TB) func(*nats.Msg) {
			return replyErrorValue(t, &contracts.Error{Code: contracts.CodeOverloaded, Message: "queue full", RetryAfterMs: 2100})
		}, 10 * time.Second, 429, contracts.CodeOverloaded, "3", 5 * time.Second},
		{"internal", func(t testing.TB) func(*nats.Msg) { return replyError(t, contracts.CodeInternal, "bug") }, 10 * time.Second, 500, contracts.CodeInternal, "", 5 * time.Second},
		{"garbage reply", func(t testing.TB) func(*nats.Msg) {
			return func(m *nats.Msg) { _ = m.Respond([]byte("not json")) }
		}, 10 * time.Second, 500, contracts.CodeInternal, "", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t)
			if tt.handle != nil {
				startFake(t, ns, tt.handle(t))
			}
			b := startBridge(t, ns, func(c *Config) { c.RequestTimeout = tt.timeout })
			start := time.Now()
			resp, body := b.post(t, "/predict", "application/json", original, "X-Request-Id", "fail-1")
			took := time.Since(start)
			e := decodeError(t, resp, body)
			if resp.StatusCode != tt.status || e.Code != tt.code {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, e, tt.status, tt.code)
			}
			if !errors.Is(e, &contracts.Error{Code: tt.code}) || e.RequestID != "fail-1" {
				t.Errorf("error %+v: want code %s and request id fail-1", e, tt.code)
			}
			if ra := resp.Header.Get("Retry-After"); ra != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", ra, tt.retryAfter)
			}
			if ms := resp.Header.Get("Retry-After-Ms"); (ms != "") != (e.RetryAfterMs > 0) || (ms != "" && ms != strconv.Itoa(e.RetryAfterMs)) {
				t.Errorf("Retry-After-Ms %q with retry_after_ms %d in the body", ms, e.RetryAfterMs)
			}
			if took > tt.maxTime {
				t.Errorf("took %v, want under %v", took, tt.maxTime)
			}
			l, ok := b.logs.access("fail-1")
			if !ok || l.Attrs["error_code"] != string(tt.code) || l.Attrs["status"] != strconv.Itoa(tt.status) {
				t.Errorf("access log %+v, want status %d and error_code %s", l, tt.status, tt.code)
			}
		})
	}
}

// The body limit is the configured one or the NATS server's max_payload less
// room for headers, whichever is smaller: a body the bridge accepts fits.
func TestBodyLimitFollowsNATSMaxPayload(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.MaxPayload = 16 << 10 })
	startFake(t, ns, rank(t))
	b := startBridge(t, ns, nil) // default limits: 1 MiB
	want := 16<<10 - natsHeaderRoom

	body := func(size int) string {
		head := `{"query": "q", "product_descriptions": ["`
		return head + strings.Repeat("é", (size-len(head)-3)/2) + `"]}`
	}
	for _, chunked := range []bool{false, true} {
		var r io.Reader = strings.NewReader(body(want + 2))
		if chunked { // the length is not known up front: the limit applies while reading
			r = io.MultiReader(r)
		}
		req, err := http.NewRequest(http.MethodPost, b.URL+"/predict", r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, data := do(t, req)
		e := decodeError(t, resp, data)
		if resp.StatusCode != 413 || e.Code != contracts.CodePayloadTooLarge || e.Limit != want {
			t.Fatalf("chunked %v: got %d %+v, want 413 payload_too_large limit %d", chunked, resp.StatusCode, e, want)
		}
	}
	if resp, data := b.post(t, "/predict", "application/json", body(want-1)); resp.StatusCode != 200 {
		t.Fatalf("a body under the limit: %d %s", resp.StatusCode, data)
	}
}

// A caller that goes away gets no error logged against the service, and the
// bridge keeps serving.
func TestPredictClientGone(t *testing.T) {
	ns := startNATS(t)
	fake := startFake(t, ns, silent)
	b := startBridge(t, ns, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL+"/predict", strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "gone-1")
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the processor to get the request", func() bool { return len(fake.received()) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want context.Canceled", err)
	}
	var l logLine
	waitFor(t, 5*time.Second, "the access log line", func() bool {
		var ok bool
		l, ok = b.logs.access("gone-1")
		return ok
	})
	if l.Attrs["status"] != strconv.Itoa(statusClientClosedRequest) || l.Level >= slog.LevelWarn {
		t.Errorf("access log %+v, want status 499 below Warn", l)
	}
	for _, l := range b.logs.all() {
		if l.Level >= slog.LevelWarn {
			t.Errorf("logged %v %q %v", l.Level, l.Msg, l.Attrs)
		}
	}
}

// Concurrent requests each get their own answer, exactly once.
func TestPredictConcurrent(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	startFake(t, ns, rank(t))
	b := startBridge(t, ns, nil)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("c-%d", i)
			body := fmt.Sprintf(`{"query": "q%d", "product_descriptions": ["a", "b"], "request_id": %q}`, i, id)
			resp, err := http.Post(b.URL+"/predict", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var got contracts.Response
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
				t.Errorf("request %d: status %d, %v", i, resp.StatusCode, err)
				return
			}
			if got.RequestID != id || got.Results[0].Query != fmt.Sprintf("q%d", i) {
				t.Errorf("request %d got the answer of %s", i, got.RequestID)
			}
		})
	}
	wg.Wait()
}
