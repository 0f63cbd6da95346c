package bridge

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// Known traffic gives exact counts on /metrics, labelled by route pattern,
// never by raw path.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	ns := startNATS(t)
	ranked := rank(t)
	startFake(t, ns, func(m *nats.Msg) {
		var req contracts.Request
		if err := json.Unmarshal(m.Data, &req); err == nil && req.Query[0] == "busy" {
			replyError(t, contracts.CodeOverloaded, "all workers are busy")(m)
			return
		}
		ranked(m)
	})
	reg := prometheus.NewRegistry()
	b := startBridge(t, ns, func(c *Config) { c.Metrics, c.Gatherer = reg, reg })

	const good = `{"query": ["saw"], "product_descriptions": ["a", "b"]}`
	for _, path := range []string{"/predict", "/predict", "/v1/predict"} {
		if resp, body := b.post(t, path, "application/json", good); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, body)
		}
	}
	b.post(t, "/predict", "application/json", `{"query": ["busy"], "product_descriptions": ["a"]}`)
	b.post(t, "/v1/predict", "application/json", `{"query": [`)
	b.post(t, "/predict", "text/plain", good)
	b.get(t, "/health")
	b.get(t, "/nope/1")
	b.get(t, "/nope/2")
	brew, err := http.NewRequest("BREW", b.URL+"/predict", nil)
	if err != nil {
		t.Fatal(err)
	}
	do(t, brew)

	fams := testenv.Families(t, b.URL)
	want := []struct {
		labels map[string]string
		n      float64
	}{
		{map[string]string{"route": "/predict", "method": "POST", "status": "200", "outcome": "ok"}, 2},
		{map[string]string{"route": "/v1/predict", "method": "POST", "status": "200", "outcome": "ok"}, 1},
		{map[string]string{"route": "/predict", "method": "POST", "status": "429", "outcome": "overloaded"}, 1},
		{map[string]string{"route": "/v1/predict", "method": "POST", "status": "400", "outcome": "malformed_json"}, 1},
		{map[string]string{"route": "/predict", "method": "POST", "status": "415", "outcome": "unsupported_media_type"}, 1},
		{map[string]string{"route": "/health", "method": "GET", "status": "200", "outcome": "ok"}, 1},
		{map[string]string{"route": "unmatched", "method": "GET", "status": "404", "outcome": "not_found"}, 2},
		{map[string]string{"route": "unmatched", "method": "other", "status": "405", "outcome": "method_not_allowed"}, 1},
	}
	total := 0.0
	for _, w := range want {
		if got := testenv.MetricValue(t, fams, "simmatch_http_requests_total", w.labels); got != w.n {
			t.Errorf("simmatch_http_requests_total%v = %v, want %v", w.labels, got, w.n)
		}
		total += w.n
	}
	if got := sum(fams["simmatch_http_requests_total"]); got != total {
		t.Errorf("simmatch_http_requests_total sums to %v, want %v: a request counted under unexpected labels", got, total)
	}
	if got := testenv.MetricValue(t, fams, "simmatch_http_request_duration_seconds", map[string]string{"route": "/predict", "method": "POST"}); got != 4 {
		t.Errorf("duration count for POST /predict = %v, want 4", got)
	}
	// The scrape itself is the one request in flight while it is gathered.
	if got := testenv.MetricValue(t, fams, "simmatch_http_requests_in_flight", nil); got != 1 {
		t.Errorf("in flight during the scrape = %v, want 1", got)
	}

	// The first scrape is counted once answered.
	fams = testenv.Families(t, b.URL)
	if got := testenv.MetricValue(t, fams, "simmatch_http_requests_total", map[string]string{"route": "/metrics", "method": "GET", "status": "200", "outcome": "ok"}); got != 1 {
		t.Errorf("GET /metrics counted %v times, want 1", got)
	}
}

// A panic counts as the 500 internal the recoverer answers, and the in-flight
// gauge comes back down.
func TestMetricsCountPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(requestID, m.middleware, recoverer(slog.New(&logRecorder{})))
	r.Get("/boom/{id}", func(http.ResponseWriter, *http.Request) { panic("boom") })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/boom/7", nil))

	byName := testenv.Gather(t, reg)
	if got := testenv.MetricValue(t, byName, "simmatch_http_requests_total", map[string]string{"route": "/boom/{id}", "method": "GET", "status": "500", "outcome": "internal"}); got != 1 {
		t.Errorf("panic counted %v times as 500 internal on /boom/{id}, want 1", got)
	}
	if got := testenv.MetricValue(t, byName, "simmatch_http_requests_in_flight", nil); got != 0 {
		t.Errorf("in flight = %v after the request, want 0", got)
	}
}

func TestMetricsConfig(t *testing.T) {
	ns := startNATS(t)
	t.Run("no gatherer, no route", func(t *testing.T) {
		b := startBridge(t, ns, func(c *Config) { c.Metrics = prometheus.NewRegistry() })
		resp, body := b.get(t, "/metrics")
		if e := decodeError(t, resp, body); resp.StatusCode != 404 || e.Code != contracts.CodeNotFound {
			t.Fatalf("GET /metrics without a Gatherer: %d %+v, want 404 not_found", resp.StatusCode, e)
		}
	})
	t.Run("gatherer without bridge metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total", Help: "another component's"}))
		b := startBridge(t, ns, func(c *Config) { c.Gatherer = reg })
		fams := testenv.Families(t, b.URL)
		if _, ok := fams["other_total"]; !ok || len(fams) != 1 {
			t.Fatalf("served %v, want only other_total", keys(fams))
		}
	})
	t.Run("names already taken", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		startBridge(t, ns, func(c *Config) { c.Metrics = reg })
		_, err := New(Config{NATS: connect(t, ns), Metrics: reg})
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) || !strings.HasPrefix(err.Error(), "bridge: ") {
			t.Fatalf("err = %v, want a bridge error wrapping AlreadyRegisteredError", err)
		}
	})
}

// sum adds up every series of a counter family.
func sum(f *dto.MetricFamily) float64 {
	var s float64
	for _, m := range f.GetMetric() {
		s += m.GetCounter().GetValue()
	}
	return s
}

func keys(fams map[string]*dto.MetricFamily) []string {
	var ks []string
	for k := range fams {
		ks = append(ks, k)
	}
	return ks
}

// A request whose processor never acknowledges it (killed right after
// taking it) is sent again, and the retry is counted by reason.
func TestMetricsCountRetries(t *testing.T) {
	ns := startNATS(t)
	ranked := rank(t)
	var n atomic.Int32
	startFake(t, ns, func(m *nats.Msg) {
		if n.Add(1) == 1 {
			return // swallowed: no acknowledgement, no answer
		}
		ranked(m)
	})
	reg := prometheus.NewRegistry()
	b := startBridge(t, ns, func(c *Config) { c.Metrics, c.Gatherer, c.AckTimeout = reg, reg, 50*time.Millisecond })
	if resp, body := b.post(t, "/predict", "application/json", `{"query": ["saw"], "product_descriptions": ["a", "b"]}`); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	fams := testenv.Families(t, b.URL)
	for reason, want := range map[string]float64{"no_ack": 1, "silent": 0, "no_processor": 0} {
		if got := testenv.MetricValue(t, fams, "simmatch_bridge_nats_retries_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("retries{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// With MetricsScope and keys, GET /metrics needs that scope: 401 without a
// key (even though /metrics is in the default public paths), 403 with a key
// that lacks it, 200 with it or with *. Without MetricsScope it stays public,
// and without authentication the scope changes nothing.
func TestMetricsScope(t *testing.T) {
	ns := startNATS(t)
	keys := "m " + HashKey("key-m") + " metrics\n" +
		"p " + HashKey("key-p") + " predict\n" +
		"all " + HashKey("key-all") + " *\n"
	var scope Scope
	get := func(b *testBridge, key string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, b.URL+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, body := do(t, req)
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), "simmatch_http_") {
			t.Errorf("GET /metrics: 200 without the simmatch_http_* metrics: %s", clip(body))
		}
		if resp.StatusCode == http.StatusForbidden && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="`+string(scope)+`"`) {
			t.Errorf("403 with WWW-Authenticate %q, want scope=%q", resp.Header.Get("WWW-Authenticate"), scope)
		}
		return resp.StatusCode
	}
	start := func(s Scope, withKeys bool) *testBridge {
		scope = s
		reg := prometheus.NewRegistry()
		return startBridge(t, ns, func(c *Config) {
			c.Metrics, c.Gatherer, c.MetricsScope = reg, reg, scope
			if withKeys {
				c.Keys = openKeys(t, keys, &logRecorder{})
			}
		})
	}

	t.Run("scoped", func(t *testing.T) {
		b := start(ScopeMetrics, true)
		for key, want := range map[string]int{"": 401, "key-p": 403, "key-m": 200, "key-all": 200, "wrong": 401} {
			if got := get(b, key); got != want {
				t.Errorf("GET /metrics with key %q: %d, want %d", key, got, want)
			}
		}
		if resp, _ := b.get(t, "/health"); resp.StatusCode != 200 {
			t.Errorf("GET /health without a key: %d, want 200 (the other public paths stay public)", resp.StatusCode)
		}
	})
	t.Run("admin", func(t *testing.T) {
		b := start(ScopeAdmin, true)
		for key, want := range map[string]int{"": 401, "key-m": 403, "key-all": 200} {
			if got := get(b, key); got != want {
				t.Errorf("GET /metrics with key %q: %d, want %d", key, got, want)
			}
		}
	})
	t.Run("public by default", func(t *testing.T) {
		b := start("", true)
		if got := get(b, ""); got != 200 {
			t.Errorf("GET /metrics without a key and without MetricsScope: %d, want 200", got)
		}
	})
	t.Run("no authentication", func(t *testing.T) {
		b := start(ScopeMetrics, false)
		if got := get(b, ""); got != 200 {
			t.Errorf("GET /metrics without authentication: %d, want 200", got)
		}
	})
	t.Run("unknown scope", func(t *testing.T) {
		for _, s := range []Scope{"metric", ScopeAll} {
			if _, err := New(Config{NATS: connect(t, ns), MetricsScope: s}); err == nil {
				t.Errorf("MetricsScope %q: New succeeded, want an error", s)
			}
		}
	})
}
