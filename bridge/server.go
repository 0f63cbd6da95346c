package bridge

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/riandyrn/otelchi"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// serverName names the HTTP server in the spans' attributes.
const serverName = "simmatch-bridge"

// Server is the bridge's HTTP handler. It is safe for concurrent use.
type Server struct {
	cfg     Config
	client  *contracts.Client
	metrics *httpMetrics // nil when Config.Metrics is nil
	handler http.Handler
	public  map[string]bool // Config.PublicPaths
	limiter *security.Limiter
	models  *contracts.ModelControl
	jobs    *jobstore.Jobs
	gate    *loadGate
	flood   *floodGuard
	quota   *quotaGate // nil without Config.Quotas
	costs   *costGate
}

var _ http.Handler = (*Server)(nil)

// New validates cfg, fills its defaults and returns a Server that sends
// requests over cfg.NATS.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, public: map[string]bool{}, limiter: security.NewLimiter(), flood: newFloodGuard(cfg.Flood)}
	s.costs = &costGate{fixed: int64(s.flood.lim.MaxInFlightBytes), work: s.flood.lim.InFlightWork,
		floodWork: s.flood.lim.FloodInFlightWork, flooding: s.flood.flooding}
	for _, p := range cfg.PublicPaths {
		s.public[p] = true
	}
	if cfg.MetricsScope != "" {
		delete(s.public, "/metrics") // it needs the scope (requireScope below)
	}
	if cfg.Metrics != nil {
		if s.metrics, err = newHTTPMetrics(cfg.Metrics, s.costs); err != nil {
			return nil, err
		}
	}
	opts := []contracts.ClientOption{
		contracts.WithSubject(cfg.Subject),
		contracts.WithTimeout(cfg.RequestTimeout),
		contracts.WithAckTimeout(cfg.AckTimeout),
		contracts.WithHeartbeat(cfg.Heartbeat),
		contracts.WithMaxAttempts(cfg.MaxAttempts),
	}
	if s.metrics != nil {
		opts = append(opts, contracts.WithRetryHook(func(r contracts.RetryReason) {
			s.metrics.retries.WithLabelValues(string(r)).Inc()
		}))
	}
	if cfg.TracerProvider != nil {
		opts = append(opts, contracts.WithTracerProvider(cfg.TracerProvider))
	}
	// The trace context and the request's principal (auth.go).
	opts = append(opts, contracts.WithPropagator(clientPropagator(cfg)))
	if s.client, err = contracts.NewClient(cfg.NATS, opts...); err != nil {
		s.metrics.unregister(cfg.Metrics)
		return nil, err
	}
	if s.jobs, err = jobstore.NewJobs(cfg.NATS, cfg.JobChunkSize); err != nil {
		s.metrics.unregister(cfg.Metrics)
		return nil, err
	}
	if s.gate, err = startLoadGate(cfg.NATS); err != nil {
		s.metrics.unregister(cfg.Metrics)
		return nil, err
	}
	if cfg.Quotas != nil {
		js, err := jetstream.New(cfg.NATS)
		if err != nil {
			s.metrics.unregister(cfg.Metrics)
			return nil, fmt.Errorf("bridge: jetstream: %w", err)
		}
		s.quota = newQuotaGate(cfg.Quotas, js)
	}
	s.costs.reports.Store(s.gate)
	s.models = contracts.NewModelControl(cfg.NATS)
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP answers one HTTP request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// routes is the one place that lists the middlewares and routes. The order of
// the middlewares matters: the request id exists before anything logs, the
// SERVER span before the trace id is read, and the recoverer sits inside the
// metrics, the access log and the span so all three see the 500 it answers.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()

	// Requests that match no route are not traced: otelchi would name their
	// spans "/", mixing scanners' noise with the real root route. Scrapes of
	// /metrics are not traced either: one trace every few seconds per
	// Prometheus server would tell nothing.
	traceOpts := []otelchi.Option{otelchi.WithFilter(func(req *http.Request) bool {
		return req.URL.Path != "/metrics" && r.Match(chi.NewRouteContext(), req.Method, req.URL.Path)
	})}
	if s.cfg.TracerProvider != nil {
		traceOpts = append(traceOpts, otelchi.WithTracerProvider(s.cfg.TracerProvider))
	}
	if s.cfg.Propagator != nil {
		traceOpts = append(traceOpts, otelchi.WithPropagators(s.cfg.Propagator))
	}
	r.Use(
		requestID,
		otelchi.Middleware(serverName, traceOpts...),
		traceIDHeader,
	)
	if s.metrics != nil {
		r.Use(s.metrics.middleware)
	}
	// Authentication comes after the access log and the metrics, which
	// record its 401, 403 and 429 answers with the key's name. It guards
	// every path but Config.PublicPaths, so a route added without a scope
	// still needs a valid key, and an unknown path answers 401 (not 404) to
	// a caller without one.
	r.Use(
		accessLog(s.cfg.Logger),
		recoverer(s.cfg.Logger),
		s.authenticate,
	)
	r.NotFound(notFound)
	r.MethodNotAllowed(methodNotAllowed(r))

	// Operational routes: probes, metrics and docs, public by default
	// (Config.PublicPaths).
	r.Get("/health", health)
	r.Get("/ready", s.ready)
	r.Get("/openapi.yaml", openAPI)
	if s.cfg.Gatherer != nil {
		var h http.Handler = metricsHandler(s.cfg.Gatherer, s.cfg.Logger)
		if s.cfg.MetricsScope != "" {
			h = s.requireScope(s.cfg.MetricsScope)(h)
		}
		r.Method(http.MethodGet, "/metrics", h)
	}
	s.consoleRoutes(r) // the web console's static files, always public (console.go)

	// The API proper: each group declares the scope its routes need.
	r.Group(func(r chi.Router) {
		r.Use(s.requireScope(ScopePredict), s.admitByCost)
		r.Post("/predict", s.predict) // the original service's path
		r.Post("/v1/predict", s.predict)
		s.catalogReadRoutes(r)
		s.interfaceRoutes(r)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.requireScope(ScopeCatalogWrite))
		s.catalogWriteRoutes(r)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.requireScope(ScopeAdmin))
		s.modelRoutes(r)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.requireScope(ScopeJobs))
		s.jobRoutes(r)
	})
	return r
}
