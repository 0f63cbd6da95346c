package bridge

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/promreg"
)

// routeUnmatched is the route label of requests that match no route, so that
// scanners probing random paths cannot create a series per path.
const routeUnmatched = "unmatched"

// durationBuckets span a /health answer (well under a millisecond) to the
// longest /predict a caller may wait for (DefaultRequestTimeout and more).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// httpMetrics are the bridge's simmatch_http_* collectors (docs/metrics.md).
type httpMetrics struct {
	requests *prometheus.CounterVec   // route, method, status, outcome
	byKey    *prometheus.CounterVec   // key, outcome
	duration *prometheus.HistogramVec // route, method
	inFlight prometheus.Gauge
	retries  *prometheus.CounterVec // reason
	// inFlightBytes and inFlightBudget are the cost gate's (costgate.go);
	// nil without one.
	inFlightBytes, inFlightBudget prometheus.Collector
}

// newHTTPMetrics registers the bridge's collectors on reg.
// costs, when not nil, is the cost gate whose bytes in flight and budget are
// exported.
func newHTTPMetrics(reg prometheus.Registerer, costs ...*costGate) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_http_requests_total",
			Help: "Answered HTTP requests, by route pattern, method, status and outcome (ok or the error code).",
		}, []string{"route", "method", "status", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "simmatch_http_request_duration_seconds",
			Help:    "Time from receiving an HTTP request to the end of its answer, as the bridge sees it.",
			Buckets: durationBuckets,
		}, []string{"route", "method"}),
		byKey: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_http_key_requests_total",
			Help: "Answered HTTP requests that came with a valid API key, by the key's name (from the keys file) and outcome.",
		}, []string{"key", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "simmatch_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_bridge_nats_retries_total",
			Help: "NATS requests sent again, by reason: no_ack (no processor acknowledged), silent (its heartbeats stopped), no_processor.",
		}, []string{"reason"}),
	}
	for _, r := range []contracts.RetryReason{contracts.RetryNoAck, contracts.RetrySilent, contracts.RetryNoProcessor} {
		m.retries.WithLabelValues(string(r))
	}
	all := []prometheus.Collector{m.requests, m.byKey, m.duration, m.inFlight, m.retries}
	if len(costs) > 0 && costs[0] != nil {
		c := costs[0]
		m.inFlightBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_bridge_inflight_bytes",
			Help: "Bytes of request bodies in flight to the processors on the model routes (the cost gate's), the reserve for small requests included.",
		}, func() float64 { return float64(c.load()) })
		m.inFlightBudget = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_bridge_inflight_budget_bytes",
			Help: "The cost gate's budget: bytes of request bodies that may be in flight to the processors, besides the reserve of a quarter more for small requests (0: no bound yet).",
		}, func() float64 { b, _ := c.budget(time.Now()); return float64(b) })
		all = append(all, m.inFlightBytes, m.inFlightBudget)
	}
	if err := promreg.RegisterAll(reg, all...); err != nil {
		return nil, fmt.Errorf("bridge: register metrics: %w", err)
	}
	return m, nil
}

// unregister removes the collectors again, so a failed New leaves reg as it
// found it. It is a no-op on a nil receiver.
func (m *httpMetrics) unregister(reg prometheus.Registerer) {
	if m == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.requests, m.byKey, m.duration, m.inFlight, m.retries, m.inFlightBytes, m.inFlightBudget} {
		if c != nil {
			reg.Unregister(c)
		}
	}
}

// middleware records every request once it is answered, by the chi route
// pattern it matched. It sits inside requestID, whose reqInfo tells it the
// error code answered, and outside the recoverer, so a panic counts as the
// 500 it becomes.
func (m *httpMetrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		// Deferred, like the access log, so an aborted answer counts too.
		defer func() {
			m.inFlight.Dec()
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // net/http's answer when the handler wrote nothing
			}
			route := routeUnmatched
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			method := methodLabel(r.Method)
			info := infoFrom(r.Context())
			out := outcome(info.err, status)
			m.requests.WithLabelValues(route, method, strconv.Itoa(status), out).Inc()
			if info.key != "" {
				m.byKey.WithLabelValues(info.key, out).Inc()
			}
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(ww, r)
	})
}

// outcome is the outcome label: the error code answered, else "ok". The two
// answers that carry no code get their own values: a caller that went away
// (499) is "client_closed", and a 5xx written outside writeError (only
// /metrics can do that) is "internal".
func outcome(e *contracts.Error, status int) string {
	switch {
	case e != nil:
		return string(e.Code)
	case status == statusClientClosedRequest:
		return "client_closed"
	case status >= 500:
		return string(contracts.CodeInternal)
	}
	return "ok"
}

// methodLabel keeps the method label to the standard methods: any token is a
// valid method, and each would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

// metricsHandler serves g in the Prometheus text format. A collector that
// fails is logged and left out; the rest is still served, so one broken
// collector does not blind the whole scrape.
func metricsHandler(g prometheus.Gatherer, logger *slog.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}
