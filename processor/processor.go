package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/embed"
)

// ServiceVersion is the version the micro service announces ($SRV.INFO).
const ServiceVersion = "0.1.0"

// Embedder turns texts into embeddings. *Model is the real one; tests about
// transport behaviour may use another.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Info() contracts.ModelInfo
}

// Config configures a Processor. NATS and Embedder are required.
type Config struct {
	// NATS is the processor's own connection: Stop waits for its
	// subscriptions to drain, so do not share it with other subscribers.
	NATS *nats.Conn
	// Embedder computes the embeddings.
	Embedder Embedder
	// Subject and QueueGroup default to contracts.SubjectSimilarity and contracts.DefaultQueueGroup.
	Subject, QueueGroup string
	// Workers is how many requests run at once; default GOMAXPROCS.
	Workers int
	// QueueSize is how many accepted requests may wait for a worker; more
	// are refused at once with code overloaded. Default 64 per worker;
	// requests whose deadline passes while queued are answered "timeout"
	// without running the model.
	QueueSize int
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
	// collectors of deploy/METRICS.md; nil means no metrics are kept.
	// Registering fails, and so does Start, if the names are already taken.
	Metrics prometheus.Registerer
	// SimilarityThreshold is the score at or above which a match counts in
	// simmatch_model_matches_above_threshold_total; nil means
	// DefaultSimilarityThreshold. It does not filter any answer.
	SimilarityThreshold *float64
	// MetricsTopK is how many of each query's best scores
	// simmatch_model_topk_similarity averages; 0 means DefaultMetricsTopK.
	MetricsTopK int
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
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 64 * c.Workers
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

// Processor serves similarity requests until Stop.
type Processor struct {
	cfg      Config
	svc      micro.Service
	tracer   trace.Tracer
	metrics  *metrics // nil when Config.Metrics is nil
	jobs     chan *job
	inflight sync.WaitGroup // accepted requests not yet answered
	pending  atomic.Int64   // the same, as a number
	workers  sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

type job struct {
	ctx      context.Context
	cancel   context.CancelFunc
	span     trace.Span
	req      micro.Request
	body     *contracts.Request
	received time.Time
	accepted time.Time // when it entered the queue
}

// Start subscribes the processor to its subject in its queue group and starts the workers.
func Start(cfg Config) (*Processor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Processor{
		cfg:    cfg,
		tracer: cfg.TracerProvider.Tracer("github.com/simmatch/simmatch/processor"),
		jobs:   make(chan *job, cfg.QueueSize),
	}
	info := cfg.Embedder.Info()
	if cfg.Metrics != nil {
		m, err := newMetrics(cfg.Metrics, p, info)
		if err != nil {
			return nil, err
		}
		p.metrics = m
	}
	svc, err := startService(cfg, p, info)
	if err != nil {
		p.metrics.unregister(cfg.Metrics)
		return nil, err
	}
	p.svc = svc
	for range cfg.Workers {
		p.workers.Go(p.work)
	}
	cfg.Logger.Info("processor started", "subject", cfg.Subject, "queue_group", cfg.QueueGroup,
		"workers", cfg.Workers, "queue_size", cfg.QueueSize, "model", info.Name, "model_version", info.Version)
	return p, nil
}

// startService adds the micro service and its endpoint, and flushes so the
// server knows the subscription.
func startService(cfg Config, p *Processor, info contracts.ModelInfo) (micro.Service, error) {
	svc, err := micro.AddService(cfg.NATS, micro.Config{
		Name:        contracts.ServiceName,
		Version:     ServiceVersion,
		Description: "simmatch similarity processor: ranks product descriptions for queries",
		QueueGroup:  cfg.QueueGroup,
		Metadata: map[string]string{
			"model.name":       info.Name,
			"model.version":    info.Version,
			"model.dimensions": fmt.Sprint(info.Dimensions),
			"api":              contracts.APIVersion,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("processor: add micro service: %w", err)
	}
	err = svc.AddEndpoint("similarity", micro.HandlerFunc(p.handle),
		micro.WithEndpointSubject(cfg.Subject),
		micro.WithEndpointQueueGroup(cfg.QueueGroup),
		// The handler only decodes and enqueues, so it keeps up; the limits
		// are generous so a burst is refused as "overloaded" by the queue,
		// never by a slow-consumer error that would stop the service.
		micro.WithEndpointPendingLimits(1<<16, 256<<20),
	)
	if err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("processor: add endpoint %s: %w", cfg.Subject, err)
	}
	// Flush so the server knows the subscription before Start returns:
	// a request sent right after must find this processor.
	if err := cfg.NATS.Flush(); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("processor: flush subscription: %w", err)
	}
	return svc, nil
}

// handle runs on the subscription: decode, validate, enqueue. It never blocks
// on the model.
func (p *Processor) handle(r micro.Request) {
	received := time.Now()
	hdr := nats.Header(r.Headers())
	ctx := p.cfg.Propagator.Extract(context.Background(), contracts.HeaderCarrier(hdr))
	ctx, span := p.tracer.Start(ctx, "process "+p.cfg.Subject, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.name", "process"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", r.Subject()),
			attribute.String("messaging.consumer.group.name", p.cfg.QueueGroup),
			attribute.Int("messaging.message.body.size", len(r.Data())),
		))
	p.inflight.Add(1)
	p.pending.Add(1)
	j := &job{span: span, req: r, received: received}

	timeout, ok, err := contracts.Timeout(hdr)
	if err != nil {
		j.ctx, j.cancel = context.WithCancel(ctx)
		p.fail(j, contracts.FieldError("header "+contracts.HeaderTimeout, 0, "%v", err))
		return
	}
	if !ok {
		timeout = p.cfg.DefaultTimeout
	}
	j.ctx, j.cancel = context.WithDeadline(ctx, received.Add(timeout))

	body, err := contracts.DecodeRequest(r.Data(), p.cfg.Limits)
	if err != nil {
		p.fail(j, err)
		return
	}
	if body.RequestID == "" {
		body.RequestID = hdr.Get(contracts.HeaderRequestID)
	}
	j.body = body
	span.SetAttributes(attribute.String("simmatch.request_id", body.RequestID),
		attribute.Int("simmatch.queries", len(body.Query)),
		attribute.Int("simmatch.descriptions", len(body.ProductDescriptions)))

	j.accepted = time.Now()
	select {
	case p.jobs <- j:
	default:
		p.fail(j, &contracts.Error{Code: contracts.CodeOverloaded,
			Message: fmt.Sprintf("all %d workers are busy and %d requests are queued; retry later or add processors", p.cfg.Workers, p.cfg.QueueSize)})
	}
}

func (p *Processor) work() {
	for j := range p.jobs {
		p.process(j)
	}
}

func (p *Processor) process(j *job) {
	defer func() {
		if v := recover(); v != nil {
			p.cfg.Logger.ErrorContext(j.ctx, "processor: panic while handling a request", "panic", v, "request_id", j.body.RequestID)
			p.fail(j, contracts.Errorf(contracts.CodeInternal, "processor failed on this request (request id %s)", j.body.RequestID))
		}
	}()
	j.span.SetAttributes(attribute.Int64("simmatch.queue_wait_us", time.Since(j.received).Microseconds()))
	p.metrics.pickedUp(j.accepted)
	if err := j.ctx.Err(); err != nil {
		p.fail(j, &contracts.Error{Code: contracts.CodeTimeout, Message: "the request's deadline passed while it waited for a worker"})
		return
	}
	resp, err := p.match(j.ctx, j.body)
	if err != nil {
		p.fail(j, err)
		return
	}
	p.respond(j, resp)
}

// match embeds every distinct text of the request once and ranks the
// descriptions for each query.
func (p *Processor) match(ctx context.Context, req *contracts.Request) (*contracts.Response, error) {
	texts := make([]string, 0, len(req.Query)+len(req.ProductDescriptions))
	pos := make(map[string]int, cap(texts))
	at := func(t string) int {
		if i, ok := pos[t]; ok {
			return i
		}
		pos[t] = len(texts)
		texts = append(texts, t)
		return len(texts) - 1
	}
	qi := make([]int, len(req.Query))
	for i, q := range req.Query {
		qi[i] = at(q)
	}
	di := make([]int, len(req.ProductDescriptions))
	for i, d := range req.ProductDescriptions {
		di[i] = at(d)
	}

	ectx := ctx
	if p.metrics != nil {
		ectx = embed.WithObserver(ctx, p.metrics)
	}
	vecs, err := p.cfg.Embedder.Embed(ectx, texts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &contracts.Error{Code: contracts.CodeTimeout, Message: "the request's deadline passed during inference"}
		}
		return nil, contracts.Errorf(contracts.CodeModelError, "embed texts: %v", err)
	}
	if len(vecs) != len(texts) {
		return nil, contracts.Errorf(contracts.CodeModelError, "model returned %d embeddings for %d texts", len(vecs), len(texts))
	}

	_, span := p.tracer.Start(ctx, "rank", trace.WithAttributes(
		attribute.Int("simmatch.queries", len(req.Query)),
		attribute.Int("simmatch.descriptions", len(req.ProductDescriptions))))
	defer span.End()
	start := time.Now()
	descs := make([][]float32, len(di))
	norms := make([]float64, len(di))
	for i, k := range di {
		descs[i] = vecs[k]
		norms[i] = norm(vecs[k])
	}
	resp := &contracts.Response{Results: make([]contracts.Result, len(req.Query)), Model: p.cfg.Embedder.Info(), RequestID: req.RequestID}
	for i, q := range req.Query {
		scores := scoreAll(vecs[qi[i]], descs, norms)
		resp.Results[i] = contracts.Result{Query: q, Matches: rankScores(scores, req.ProductDescriptions, req.TopK, req.Threshold)}
		p.metrics.scored(scores)
	}
	p.metrics.ObserveStage(StageRank, time.Since(start))
	return resp, nil
}

func (p *Processor) respond(j *job, resp *contracts.Response) {
	defer p.finish(j, "")
	if err := j.req.RespondJSON(resp); err != nil {
		j.span.RecordError(err)
		j.span.SetStatus(codes.Error, "reply failed")
		p.cfg.Logger.WarnContext(j.ctx, "processor: reply failed", "err", err, "request_id", resp.RequestID)
	}
}

func (p *Processor) fail(j *job, err error) {
	e := contracts.AsError(err)
	if j.body != nil && e.RequestID == "" {
		e = &contracts.Error{Code: e.Code, Message: e.Message, Field: e.Field, Limit: e.Limit, RequestID: j.body.RequestID}
	}
	defer p.finish(j, e.Code)
	j.span.SetStatus(codes.Error, e.Message)
	j.span.SetAttributes(attribute.String("error.type", string(e.Code)))
	if e.Code == contracts.CodeInternal || e.Code == contracts.CodeModelError {
		p.cfg.Logger.ErrorContext(j.ctx, "processor: request failed", "code", e.Code, "err", e.Message, "request_id", e.RequestID)
	}
	if rerr := j.req.Error(string(e.Code), e.Message, e.Marshal()); rerr != nil {
		p.cfg.Logger.WarnContext(j.ctx, "processor: error reply failed", "err", rerr, "code", e.Code, "request_id", e.RequestID)
	}
}

// finish ends a request once its reply is sent; code is the error code
// answered, empty for a success. Every reply passes here, whichever
// goroutine sent it, so the metrics see every outcome.
func (p *Processor) finish(j *job, code contracts.Code) {
	p.metrics.answered(code, j.received)
	j.cancel()
	j.span.End()
	p.pending.Add(-1)
	p.inflight.Done()
}

// InFlight is the number of received requests not yet answered (queued or running).
func (p *Processor) InFlight() int64 { return p.pending.Load() }

// Stop stops taking requests, answers every request already accepted, and
// stops the workers. It gives up when ctx ends. It does not close the NATS
// connection, which the caller owns.
func (p *Processor) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx) })
	return p.stopErr
}

func (p *Processor) stop(ctx context.Context) error {
	if err := p.svc.Stop(); err != nil {
		return fmt.Errorf("processor: stop service: %w", err)
	}
	// micro drains the subscriptions; messages already delivered to this
	// client still reach handle. Wait until the drain has finished, then
	// until every accepted request has been answered.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for p.cfg.NATS.NumSubscriptions() > 0 && !p.cfg.NATS.IsClosed() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("processor: drain subscriptions: %w", ctx.Err())
		case <-tick.C:
		}
	}
	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(p.jobs)
		p.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.cfg.Logger.Info("processor stopped: every accepted request was answered")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("processor: wait for in-flight requests: %w", ctx.Err())
	}
}

// Info describes the running micro service (id, subject, queue group, model).
func (p *Processor) Info() micro.Info { return p.svc.Info() }

// Stats are the micro service's per-endpoint counters ($SRV.STATS). micro
// counts a request when it arrives, but only sees errors and processing time
// of replies sent inside its handler; replies sent by the workers are not in
// NumErrors or ProcessingTime.
func (p *Processor) Stats() micro.Stats { return p.svc.Stats() }
