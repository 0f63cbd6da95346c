package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1..100 ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p95 of 1..100", hundred, 95, ms(95)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the max", hundred, 100, ms(100)},
		{"tiny p is the min", hundred, 0.001, ms(1)},
		{"p50 of two rounds up to the first", []time.Duration{ms(1), ms(9)}, 50, ms(1)},
		{"p51 of two is the second", []time.Duration{ms(1), ms(9)}, 51, ms(9)},
		{"p99 of ten is the max", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
		{"p90 of ten", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	got := Summarize([]time.Duration{ms(30), ms(10), ms(20), ms(40)})
	want := Latency{Count: 4, P50: 20, P95: 40, P99: 40, Max: 40, Mean: 25}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("Summarize(nil) is not zero")
	}
}

func TestGeneratedMixes(t *testing.T) {
	for _, tc := range []struct {
		mix          string
		descriptions int
	}{{MixFresh, 10}, {MixOverload, 200}} {
		t.Run(tc.mix, func(t *testing.T) {
			m, err := NewMix(tc.mix, 42, "")
			if err != nil {
				t.Fatal(err)
			}
			again, _ := NewMix(tc.mix, 42, "")
			other, _ := NewMix(tc.mix, 43, "")
			seen := map[string]bool{}
			for i := range int64(300) {
				r := m.Request(i)
				if len(r.Query) != 1 || len(r.ProductDescriptions) != tc.descriptions {
					t.Fatalf("request %d: %d queries, %d descriptions; want 1 and %d", i, len(r.Query), len(r.ProductDescriptions), tc.descriptions)
				}
				if err := r.Validate(contracts.DefaultLimits); err != nil {
					t.Fatalf("request %d is invalid: %v", i, err)
				}
				if a := again.Request(i); a.Query[0] != r.Query[0] || a.ProductDescriptions[3] != r.ProductDescriptions[3] {
					t.Fatalf("request %d differs between two mixes with the same seed", i)
				}
				if other.Request(i).Query[0] == r.Query[0] {
					t.Errorf("request %d: seeds 42 and 43 give the same query %q", i, r.Query[0])
				}
				for _, s := range append([]string{r.Query[0]}, r.ProductDescriptions...) {
					if seen[s] {
						t.Fatalf("request %d repeats %q", i, s)
					}
					seen[s] = true
					if n := len(strings.Fields(s)); n < 4 || n > 30 {
						t.Errorf("%q has %d words; want a product-like sentence", s, n)
					}
				}
			}
		})
	}
}

// Descriptions never repeat over a long run (300,000 texts: a 16-client
// benchmark of several minutes).
func TestSentencesAreDistinct(t *testing.T) {
	g := NewSentences(7)
	seen := make(map[string]struct{}, 300_000)
	for n := range int64(300_000) {
		s := g.Description(n)
		if _, dup := seen[s]; dup {
			t.Fatalf("description %d repeats %q", n, s)
		}
		seen[s] = struct{}{}
	}
	qs := make(map[string]struct{}, 100_000)
	for n := range int64(100_000) {
		q := g.Query(n)
		if _, dup := qs[q]; dup {
			t.Fatalf("query %d repeats %q", n, q)
		}
		qs[q] = struct{}{}
	}
}

func TestCatalogMix(t *testing.T) {
	m, err := NewMix(MixCatalog, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.Request(0), m.Request(1)
	if len(a.ProductDescriptions) != 46 || len(Catalog()) != 46 {
		t.Fatalf("catalog has %d descriptions, want 46", len(a.ProductDescriptions))
	}
	if a.Query[0] == b.Query[0] {
		t.Errorf("two requests share the query %q", a.Query[0])
	}
	if a.ProductDescriptions[45] != b.ProductDescriptions[45] {
		t.Error("the catalog changed between requests")
	}
	if Texts(a) != 47 {
		t.Errorf("Texts = %d, want 47", Texts(a))
	}
}

func TestCustomMix(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	arr := write("a.json", `[{"query":"q1","product_descriptions":["a","b"]},{"query":["q2","q3"],"product_descriptions":["c"]}]`)
	lines := write("b.jsonl", "{\"query\":\"q1\",\"product_descriptions\":[\"a\"]}\n\n{\"query\":\"q2\",\"product_descriptions\":[\"b\",\"c\"]}\n")
	for _, f := range []string{arr, lines} {
		m, err := NewMix(MixCustom, 0, f)
		if err != nil {
			t.Fatal(err)
		}
		if m.Request(0).Query[0] != "q1" || m.Request(1).Query[0] != "q2" || m.Request(2).Query[0] != "q1" {
			t.Errorf("%s: requests are not sent in turn", filepath.Base(f))
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"empty", "", "holds no requests"},
		{"bad line", "{\"query\":\"q\",\"product_descriptions\":[\"a\"]}\nnot json\n", "line 2"},
		{"missing descriptions", `[{"query":"q"}]`, "request 1: needs query and product_descriptions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMix(MixCustom, 0, write(tc.name, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := NewMix(MixCustom, 0, ""); err == nil {
		t.Error("custom mix without a file: no error")
	}
	if _, err := NewMix("nope", 0, ""); err == nil || !strings.Contains(err.Error(), "unknown mix") {
		t.Errorf("unknown mix: err = %v", err)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8000", "http://localhost:8000/predict", "nats://127.0.0.2:4222", "http://[::1]:80",
		"nats://127.0.0.1:4222,nats://127.0.0.1:4223"} {
		if err := CheckLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8000", "http://example.com", "nats://192.168.1.2:4222", "http://0.0.0.0:8000",
		"nats://127.0.0.1:4222,nats://10.1.1.1:4222"} {
		if err := CheckLoopback(bad); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: err = %v, want ErrNotLoopback", bad, err)
		}
	}
	_, err := Run(context.Background(), Config{Target: "http://10.0.0.1:8000", Mix: &customMix{}, Requests: 1})
	if !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Run to a private address: err = %v, want ErrNotLoopback", err)
	}
}

// Run counts answers by outcome: this test is about loadgen's bookkeeping,
// so the server is a plain handler that rejects every third request.
func TestRunCountsOutcomes(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/predict" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		var req contracts.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.ProductDescriptions) != 10 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write(contracts.Errorf(contracts.CodeOverloaded, "full").Marshal())
			return
		}
		w.Write([]byte(`{"results":[]}`))
	}))
	defer srv.Close()
	mix, _ := NewMix(MixFresh, 1, "")
	res, err := Run(context.Background(), Config{Target: srv.URL, Mix: mix, Concurrency: 4, Requests: 30, Label: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.OK != 20 || res.Errors["429 overloaded"] != 10 || res.ErrorCount() != 10 {
		t.Fatalf("requests %d ok %d errors %v; want 30, 20, 10 x 429 overloaded", res.Requests, res.OK, res.Errors)
	}
	if res.Texts != 20*11 || res.Latency.Count != 20 || res.ErrorLatency.Count != 10 || res.RequestsPerSecond <= 0 {
		t.Errorf("texts %d, latency count %d, error latency count %d, req/s %v", res.Texts, res.Latency.Count, res.ErrorLatency.Count, res.RequestsPerSecond)
	}

	// Open loop: a rate bounded by a request count sends exactly that many.
	n.Store(0)
	res, err = Run(context.Background(), Config{Target: srv.URL, Mix: mix, Rate: 500, Concurrency: 8, Requests: 12})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Requests + res.Errors["client saturated"]; got != 12 {
		t.Errorf("open loop: %d requests answered or not sent, want 12", got)
	}
}

func TestPlotLatency(t *testing.T) {
	var rs []*Result
	for i, c := range []int{1, 4, 16} {
		rs = append(rs, &Result{Label: "simmatch", Mix: MixFresh, Concurrency: c, RequestsPerSecond: float64(10 * (i + 1)),
			Latency: Latency{P50: float64(20 * (i + 1)), P99: float64(50 * (i + 1))}})
		rs = append(rs, &Result{Label: "replica", Mix: MixFresh, Concurrency: c, RequestsPerSecond: float64(5 * (i + 1)),
			Latency: Latency{P50: float64(40 * (i + 1)), P99: float64(90 * (i + 1))}})
	}
	var buf bytes.Buffer
	if err := PlotLatency(&buf, "test", rs); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 960 || b.Dy() != 600 {
		t.Errorf("plot is %v", b)
	}
	// The first series' colour is drawn somewhere.
	found := false
	for y := 0; y < 600 && !found; y++ {
		for x := 0; x < 960; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r>>8 == 31 && g>>8 == 119 && b>>8 == 180 {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no point of the first series in the plot")
	}
	if err := PlotLatency(&buf, "empty", nil); err == nil {
		t.Error("empty plot: no error")
	}
}

func TestCompareTable(t *testing.T) {
	rs := []*Result{
		{Label: "replica", Mix: MixFresh, Concurrency: 16, RequestsPerSecond: 10, TextsPerSecond: 110},
		{Label: "simmatch-fp32", Mix: MixFresh, Concurrency: 16, RequestsPerSecond: 25, TextsPerSecond: 275},
		{Label: "replica", Mix: MixCatalog, Concurrency: 1, Latency: Latency{P50: 100}},
		{Label: "simmatch-fp32", Mix: MixCatalog, Concurrency: 1, Latency: Latency{P50: 40}},
		{Label: "simmatch-fp32", Mix: MixOverload, Concurrency: 2, RequestsPerSecond: 2},
		{Label: "simmatch-fp32", Mix: MixOverload, Concurrency: 64, RequestsPerSecond: 1.9, Errors: map[string]int64{"429 overloaded": 5}},
	}
	var buf bytes.Buffer
	CompareTable(&buf, rs, "replica", []string{"simmatch-fp32"}, map[string]Ceiling{"fp32": {SentencesPerSecond: 500, Config: "x"}})
	out := buf.String()
	for _, want := range []string{"2.50x", "0.40x", "0.55 of it", "0.95 of the same mix at 2 clients", "429 overloaded:5"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// A closed-loop client waits what a refusal asks for before its next
// request (Retry-After-Ms first, else Retry-After), unless told not to.
func TestRunHonoursRetryAfter(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Retry-After-Ms", "200")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write(contracts.Errorf(contracts.CodeOverloaded, "full").Marshal())
	}))
	defer srv.Close()
	mix, _ := NewMix(MixFresh, 1, "")
	res, err := Run(context.Background(), Config{Target: srv.URL, Mix: mix, Concurrency: 2, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// 2 clients, one request per 200 ms each: about 10 in the second.
	if res.Requests < 6 || res.Requests > 14 || res.Errors["429 overloaded"] != res.Requests {
		t.Errorf("honouring Retry-After-Ms 200: %d requests (%v) in 1 s; want about 10", res.Requests, res.Errors)
	}
	res, err = Run(context.Background(), Config{Target: srv.URL, Mix: mix, Concurrency: 2, Duration: time.Second, IgnoreRetryAfter: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 50 || !res.IgnoreRetryAfter {
		t.Errorf("ignoring Retry-After: %d requests in 1 s; want them sent back to back", res.Requests)
	}
	if got := retryAfter(http.Header{"Retry-After": {"2"}}); got != 2*time.Second {
		t.Errorf("Retry-After 2 alone: %v, want 2s", got)
	}
}

// Warm-up requests are sent by the same clients, without a break; those
// answered during it are not counted; the measured part is Duration long.
func TestRunWarmup(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select { // 10 ms of service time, cut short when the client goes
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
		w.Write([]byte(`{"results":[]}`))
	}))
	defer srv.Close()
	mix, _ := NewMix(MixFresh, 1, "")
	res, err := Run(context.Background(), Config{Target: srv.URL, Mix: mix, Concurrency: 2, Warmup: 300 * time.Millisecond, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// About 60 requests each way; the measured ones are about half of all.
	if sent := n.Load(); res.Requests < sent/4 || res.Requests > sent*3/4 || res.Seconds > 0.35 {
		t.Errorf("%d requests counted of %d sent, over %.2fs; want about half, over 0.3s", res.Requests, sent, res.Seconds)
	}
	res, err = Run(context.Background(), Config{Target: srv.URL, Mix: mix, Concurrency: 2, Warmup: 100 * time.Millisecond, Requests: 7})
	if err != nil {
		t.Fatal(err)
	}
	// The 7 sent after the warm-up, and those in flight when it ended.
	if res.Requests < 7 || res.Requests > 7+2 {
		t.Errorf("with a warm-up, %d requests counted, want the 7 asked for (and up to 2 sent before the end of the warm-up)", res.Requests)
	}
}

// APIKey is sent as a bearer token: a bridge with keys answers the run.
func TestRunSendsAPIKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-load-0123456789abcdef" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(contracts.Errorf(contracts.CodeUnauthorized, "an API key is required").Marshal())
			return
		}
		w.Write([]byte(`{"results":[]}`))
	}))
	defer srv.Close()
	mix, _ := NewMix(MixFresh, 1, "")
	for _, tt := range []struct {
		key      string
		ok, errs int64
	}{{"sk-load-0123456789abcdef", 5, 0}, {"", 0, 5}} {
		res, err := Run(context.Background(), Config{Target: srv.URL, Mix: mix, Concurrency: 1, Requests: 5, APIKey: tt.key})
		if err != nil {
			t.Fatal(err)
		}
		if res.OK != tt.ok || res.Errors["401 unauthorized"] != tt.errs {
			t.Errorf("key %q: ok %d, errors %v; want %d ok, %d x 401", tt.key, res.OK, res.Errors, tt.ok, tt.errs)
		}
	}
}
