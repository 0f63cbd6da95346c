package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
)

// ServiceVersion is the version the micro service announces ($SRV.INFO).
const ServiceVersion = "0.1.0"

// Embedder turns texts into embeddings, returned with their token counts
// and timing (embedding.Result). The processor embeds through a
// *scheduler.Scheduler (which batches across requests); *Model is one too,
// without batching across requests; tests about transport behaviour may use another.
type Embedder = embedding.Embedder

// Resolver picks the Embedder of the model a request names ("name",
// "name@version", or "" for the default model). The processor resolves each
// request once, at intake, and calls release when it has answered, so a
// version is never freed under a request it serves (processor/models).
type Resolver interface {
	Resolve(model string) (e Embedder, release func(), err error)
}

// Catalogs serves stored catalogs next to the similarity endpoint
// (package processor/catalog implements it).
type Catalogs interface {
	// Endpoints are the catalog operations, served through the processor's pipeline.
	Endpoints() []Endpoint
	// Predict answers a similarity request that names a catalog.
	Predict(ctx context.Context, req *contracts.Request) (*contracts.Response, error)
	// Stop answers the catalog requests in flight and stops following the
	// catalogs; the processor calls it after its micro service stopped.
	Stop(ctx context.Context) error
}

// Config configures a Processor. NATS and Embedder are required.
type Config struct {
	// NATS is the connection the processor subscribes on. It may be shared:
	// Stop tracks the processor's own requests, not the connection's.
	NATS *nats.Conn
	// Embedder computes the embeddings: normally a scheduler.Scheduler,
	// which owns batching, admission (code overloaded) and the model's
	// threads. The processor does not close it.
	Embedder Embedder
	// Models, when set, serves requests that name a model: each request is
	// embedded by the Embedder Models resolves for it (its error, such as
	// not_found, is the answer). Nil: every request uses Embedder.
	Models Resolver
	// Subject and QueueGroup default to contracts.SubjectSimilarity and contracts.DefaultQueueGroup.
	Subject, QueueGroup string
	// Limits bound each request; default contracts.DefaultLimits.
	Limits contracts.Limits
	// DefaultTimeout applies to requests that carry no timeout header; default 30s.
	DefaultTimeout time.Duration
	// TracerProvider and Propagator default to the global ones.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Logger defaults to slog.Default(). Request-scoped lines are logged with
	// the request's context (which holds its span) and carry request_id.
	Logger *slog.Logger
	// Metrics receives the simmatch_processor_* and simmatch_model_*
	// collectors of docs/metrics.md that the processor keeps (the
	// scheduler registers the queue and batch ones); nil means none.
	// Registering fails, and so does Start, if the names are already taken.
	Metrics prometheus.Registerer
	// SimilarityThreshold is the score at or above which a match counts in
	// simmatch_model_matches_above_threshold_total; nil means
	// DefaultSimilarityThreshold. It does not filter any answer.
	SimilarityThreshold *float64
	// MetricsTopK is how many of each query's best scores
	// simmatch_model_topk_similarity averages; 0 means DefaultMetricsTopK.
	MetricsTopK int
	// StatsData, when set, is called on every $SRV.STATS request; its result
	// is each endpoint's "data" (e.g. the live model versions and the
	// embedding cache's counters).
	StatsData func() any
	// Catalogs, when not nil, serves the simmatch.catalog.* endpoints and
	// requests that name a catalog; without it those are answered not_found.
	Catalogs Catalogs
}

func (c *Config) validate() error {
	if c.NATS == nil {
		return errors.New("processor: Config.NATS is required")
	}
	if c.Embedder == nil {
		return errors.New("processor: Config.Embedder is required")
	}
	if c.Subject == "" {
		c.Subject = contracts.SubjectSimilarity
	}
	if c.QueueGroup == "" {
		c.QueueGroup = contracts.DefaultQueueGroup
	}
	if c.Limits == (contracts.Limits{}) {
		c.Limits = contracts.DefaultLimits
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 30 * time.Second
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = otel.GetTextMapPropagator()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SimilarityThreshold == nil {
		th := DefaultSimilarityThreshold
		c.SimilarityThreshold = &th
	}
	if th := *c.SimilarityThreshold; !(th >= -1 && th <= 1) {
		return fmt.Errorf("processor: Config.SimilarityThreshold %v: want a cosine score in [-1, 1]", th)
	}
	if c.MetricsTopK < 0 {
		return fmt.Errorf("processor: Config.MetricsTopK %d: want a positive number", c.MetricsTopK)
	}
	if c.MetricsTopK == 0 {
		c.MetricsTopK = DefaultMetricsTopK
	}
	return nil
}

// Processor serves similarity requests until Stop. Each request flows one
// way: intake (decode, validate, deadline) -> Embedder (the scheduler:
// admission, batching, model) -> ranker -> reply.
type Processor struct {
	cfg      Config
	svc      micro.Service
	tracer   trace.Tracer
	metrics  *metrics // nil when Config.Metrics is nil
	rank     ranker
	inflight sync.WaitGroup // received requests not yet answered
	pending  atomic.Int64   // the same, as a number
	// callers maps a request's reply subject to its *call while it is
	// answered, for contracts.SubjectCancel.
	callers   sync.Map
	cancelSub *nats.Subscription
	stopLoad  chan struct{} // closed by Stop: ends the load reports
	stopOnce  sync.Once
	stopErr   error
}

// Start subscribes the processor to its subject in its queue group.
func Start(cfg Config) (*Processor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Processor{
		cfg:    cfg,
		tracer: cfg.TracerProvider.Tracer("github.com/simmatch/simmatch/processor"),
	}
	info := cfg.Embedder.Info()
	if cfg.Metrics != nil {
		m, err := newMetrics(cfg.Metrics, p, info)
		if err != nil {
			return nil, err
		}
		p.metrics = m
	}
	p.rank = ranker{tracer: p.tracer, metrics: p.metrics}
	svc, err := startService(cfg, p)
	if err != nil {
		p.metrics.unregister(cfg.Metrics)
		return nil, err
	}
	p.svc = svc
	if p.cancelSub, err = cfg.NATS.Subscribe(contracts.SubjectCancel, p.onCancel); err != nil {
		_ = svc.Stop()
		p.metrics.unregister(cfg.Metrics)
		return nil, fmt.Errorf("processor: subscribe to %s: %w", contracts.SubjectCancel, err)
	}
	p.stopLoad = make(chan struct{})
	go p.reportLoad(p.stopLoad)
	cfg.Logger.Info("processor started", "subject", cfg.Subject, "queue_group", cfg.QueueGroup,
		"model", info.Name, "model_version", info.Version)
	return p, nil
}

// startService adds the micro service and its endpoints: similarity,
// embeddings and, when on, the catalogs. micro fixes the service's metadata
// at start, so it names the model only when the processor serves one model
// for good (no Config.Models): with a registry, versions switch, and
// simmatch.models.status says which are live.
func startService(cfg Config, p *Processor) (micro.Service, error) {
	var stats micro.StatsHandler
	if cfg.StatsData != nil {
		stats = func(*micro.Endpoint) any { return cfg.StatsData() }
	}
	md := map[string]string{"api": contracts.APIVersion}
	if cfg.Models == nil {
		info := cfg.Embedder.Info()
		md["model.name"], md["model.version"], md["model.dimensions"] = info.Name, info.Version, fmt.Sprint(info.Dimensions)
	}
	svc, err := micro.AddService(cfg.NATS, micro.Config{
		Name:         contracts.ServiceName,
		Version:      ServiceVersion,
		Description:  "simmatch similarity processor: ranks product descriptions for queries",
		QueueGroup:   cfg.QueueGroup,
		Metadata:     md,
		StatsHandler: stats,
	})
	if err != nil {
		return nil, fmt.Errorf("processor: add micro service: %w", err)
	}
	p.svc = svc
	eps := p.endpoints()
	if cfg.Catalogs != nil {
		eps = append(eps, cfg.Catalogs.Endpoints()...)
	}
	if err := p.Add(eps...); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	return svc, nil
}

// InFlight is the number of received requests not yet answered (queued or running).
func (p *Processor) InFlight() int64 { return p.pending.Load() }

// Stop stops taking requests, answers every request already received, and
// returns. It gives up when ctx ends. It closes neither the NATS connection
// nor the Embedder, which the caller owns; the connection may be shared.
func (p *Processor) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx) })
	return p.stopErr
}

func (p *Processor) stop(ctx context.Context) error {
	close(p.stopLoad) // a draining processor must not be counted as refusing
	if err := p.svc.Stop(); err != nil {
		return fmt.Errorf("processor: stop service: %w", err)
	}
	// The service unsubscribed; messages the server sent before that may
	// still be on their way. A flush round trip brings them into the
	// connection's buffers, and a barrier runs after every buffered message
	// has been handed to handle, which counts it in inflight. Neither
	// depends on the connection's other subscriptions.
	nc := p.cfg.NATS
	if !nc.IsClosed() {
		if err := nc.FlushWithContext(ctx); err != nil && ctx.Err() != nil {
			return fmt.Errorf("processor: flush unsubscribe: %w", err)
		}
		delivered := make(chan struct{})
		if err := nc.Barrier(func() { close(delivered) }); err == nil {
			select {
			case <-delivered:
			case <-ctx.Done():
				return fmt.Errorf("processor: wait for delivered requests: %w", ctx.Err())
			}
		}
	}
	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		_ = p.cancelSub.Unsubscribe()
		// Catalogs stop last: requests naming a catalog were answered above.
		if p.cfg.Catalogs != nil {
			if err := p.cfg.Catalogs.Stop(ctx); err != nil {
				return err
			}
		}
		p.cfg.Logger.Info("processor stopped: every received request was answered")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("processor: wait for %d in-flight requests: %w", p.InFlight(), ctx.Err())
	}
}

// Info describes the running micro service (id, subject, queue group, model).
func (p *Processor) Info() micro.Info { return p.svc.Info() }

// Stats are the micro service's per-endpoint counters ($SRV.STATS). micro
// counts a request when it arrives, but only sees errors and processing time
// of replies sent inside its handler; replies sent later are not in
// NumErrors or ProcessingTime.
func (p *Processor) Stats() micro.Stats { return p.svc.Stats() }
