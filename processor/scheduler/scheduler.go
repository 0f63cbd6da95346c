// Package scheduler sits between the processor's intake and the model: it
// tokenizes each request on arrival, admits it against a budget of queued
// tokens and its deadline, and forms batches from the texts of every waiting
// request, grouped by length under a padded-token budget. A batch starts as
// soon as a lane of the shared Pool is free (continuous batching); a lone
// request is spread over the idle lanes. A Scheduler is an embedding.Embedder;
// admission (admission.go) decides what may join the queue.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/internal/embed"
)

// Runtime is the model a Scheduler runs: *embed.Model (processor.Model).
type Runtime interface {
	// Encode tokenizes one text.
	Encode(text string) (embed.Encoding, error)
	// RunBatch embeds encodings in one run; row i's embedding must not
	// depend on the other rows.
	RunBatch(ctx context.Context, encs []embed.Encoding) ([][]float32, error)
	// Info identifies the model.
	Info() contracts.ModelInfo
}

// Defaults of Config.
const (
	// DefaultMaxBatchTokens bounds a batch at 256 padded tokens (rows x
	// longest text): about 12 product sentences, or one text at
	// all-MiniLM-L6-v2's 256-token maximum. On a CPU small batches are the
	// fastest (their activations stay in cache): fresh texts at 16 clients,
	// end to end, 443 texts/s with fp32 at 256 against 377 at 1,024, and
	// 1,169-1,200 against 1,053 with int8 (which peaks at 128: 1,242). They
	// also let newly arrived requests reach a lane sooner.
	DefaultMaxBatchTokens = 256
	// DefaultMaxQueuedTokens bounds the tokens waiting for a lane: about
	// half a minute of work for two cores on short texts.
	DefaultMaxQueuedTokens = 1 << 17
	// DefaultMaxQueueWait is the processor setting's default: no bound
	// beyond the request's own deadline. A 2 s bound refused requests that
	// two processors of three finish in 3 s under the chaos suite's steady
	// load (TestChaosShort); set it where a short queue matters more.
	DefaultMaxQueueWait = 0
)

// Config configures New. Model is required.
type Config struct {
	// Model runs the batches.
	Model Runtime
	// Pool is the lanes this scheduler runs batches on; schedulers of
	// several models share one. Default: a new pool of one lane per core.
	Pool *Pool
	// MaxBatchTokens bounds rows x longest text of a batch; default DefaultMaxBatchTokens.
	MaxBatchTokens int
	// MaxQueuedTokens bounds the tokens waiting for a lane; a request that
	// would go over it is refused with code overloaded, unless the queue is
	// empty. Default DefaultMaxQueuedTokens.
	MaxQueuedTokens int
	// MaxQueueWait bounds how long an admitted request waits for the work
	// ahead of it (at the measured speed, with admission's headroom): one
	// that would wait longer is refused with code overloaded. A deeper
	// queue adds latency, not throughput, and under a flood it fills with
	// the work of whoever sent first; like TEI's fixed concurrency limit,
	// it keeps every admitted request's wait short. 0: no bound (the
	// processor's setting defaults to DefaultMaxQueueWait).
	MaxQueueWait time.Duration
	// MaxWait is how long a lane may wait for more texts before running a
	// batch that is not full; 0 (the default) runs what is queued at once.
	MaxWait time.Duration
	// Metrics receives the scheduler's simmatch_processor_* collectors
	// (docs/metrics.md); nil keeps none.
	Metrics prometheus.Registerer
	// TracerProvider makes the batch spans when the requests' spans do not
	// record; default the global one.
	TracerProvider trace.TracerProvider
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Scheduler batches the texts of concurrent Embed calls for one model. It
// is safe for concurrent use; Close it when done.
type Scheduler struct {
	cfg     Config
	info    contracts.ModelInfo
	tracer  trace.Tracer
	metrics *metrics

	mu      sync.Mutex
	q       queue
	running int       // tokens in batches now running
	adm     admission // guarded by mu
	closing bool

	wake    chan struct{} // a request was queued, or Close was called
	stop    context.CancelFunc
	stopped chan struct{} // the dispatcher has returned
	batches sync.WaitGroup
}

// New starts a scheduler for cfg.Model.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Model == nil {
		return nil, errors.New("scheduler: Config.Model is required")
	}
	if cfg.Pool == nil {
		cfg.Pool = NewPool(0)
	}
	if cfg.MaxBatchTokens < 0 || cfg.MaxQueuedTokens < 0 || cfg.MaxWait < 0 || cfg.MaxQueueWait < 0 {
		return nil, fmt.Errorf("scheduler: MaxBatchTokens %d, MaxQueuedTokens %d, MaxWait %v: want positive values (0: default)",
			cfg.MaxBatchTokens, cfg.MaxQueuedTokens, cfg.MaxWait)
	}
	if cfg.MaxBatchTokens == 0 {
		cfg.MaxBatchTokens = DefaultMaxBatchTokens
	}
	if cfg.MaxQueuedTokens == 0 {
		cfg.MaxQueuedTokens = DefaultMaxQueuedTokens
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scheduler{
		cfg:     cfg,
		info:    cfg.Model.Info(),
		tracer:  cfg.TracerProvider.Tracer(tracerName),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	if cfg.Metrics != nil {
		m, err := newMetrics(cfg.Metrics, s)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	s.adm = admission{maxQueued: cfg.MaxQueuedTokens, maxBatch: cfg.MaxBatchTokens, maxWait: cfg.MaxQueueWait, margin: deadlineMargin, lanes: cfg.Pool.Size(), metrics: s.metrics}
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.dispatch(ctx)
	return s, nil
}

const tracerName = "github.com/simmatch/simmatch/processor/scheduler"

// Info identifies the model.
func (s *Scheduler) Info() contracts.ModelInfo { return s.info }

// Prompt is the model's prompt for texts of kind (embedding.Prompter); ""
// when the model has none.
func (s *Scheduler) Prompt(kind string) string {
	if p, ok := s.cfg.Model.(embedding.Prompter); ok {
		return p.Prompt(kind)
	}
	return ""
}

// Load is a scheduler's admission state (contracts.LoadReport).
type Load struct {
	// Ahead is how long the work queued and running takes and PerKB how
	// long each KiB of text adds, both with admission's headroom; 0 before
	// the speed is measured.
	Ahead, PerKB time.Duration
	// Queued and MaxQueued are the tokens waiting (and being tokenized)
	// and their budget; TokensPerKB the tokens in a KiB of text.
	Queued, MaxQueued int
	TokensPerKB       float64
	// Refusals counts the requests refused as overloaded so far.
	Refusals uint64
}

// AdmissionLoad is the scheduler's admission state.
func (s *Scheduler) AdmissionLoad() Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adm.load(&s.q, s.running)
}

// MaxBatchTokens is the batch budget in use (padded tokens).
func (s *Scheduler) MaxBatchTokens() int { return s.cfg.MaxBatchTokens }

// Pool is the lanes the scheduler runs on.
func (s *Scheduler) Pool() *Pool { return s.cfg.Pool }

// Embed returns one embedding per text, in order, each the same as if the
// text had been embedded alone, with each text's token count (from the
// tokenizing it is batched by) and the call's Timing. It refuses at once,
// with a *contracts.Error of code overloaded, a request that the queue cannot
// hold or that could not finish before ctx's deadline at the measured speed
// (admission). When ctx ends first, its texts not yet running are dropped,
// Embed returns ctx's error at once, and the batches already running finish
// for their other requests.
func (s *Scheduler) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	if len(texts) == 0 {
		return embedding.Result{}, nil
	}
	arrived := time.Now()
	est, err := s.precheck(ctx, texts, arrived)
	if err != nil {
		return embedding.Result{}, err
	}
	r, err := s.tokenize(ctx, texts)
	s.mu.Lock()
	s.adm.release(est)
	s.mu.Unlock()
	if err != nil {
		return embedding.Result{}, err
	}
	r.arrived = arrived
	return s.serve(ctx, r, est)
}

// EmbedIDs embeds token id sequences (embedding.IDEmbedder), each read as it
// is (special tokens included, within the model's window), batched with the
// other requests' texts as Embed's are.
func (s *Scheduler) EmbedIDs(ctx context.Context, ids [][]int64) (embedding.Result, error) {
	if len(ids) == 0 {
		return embedding.Result{}, nil
	}
	r := &request{ctx: ctx, encs: make([]embed.Encoding, len(ids)), pending: make([]int, len(ids)),
		out: make([][]float32, len(ids)), left: len(ids), done: make(chan struct{}),
		link: trace.LinkFromContext(ctx), arrived: time.Now()}
	r.deadline, _ = ctx.Deadline()
	for i, seq := range ids {
		if len(seq) == 0 {
			return embedding.Result{}, fmt.Errorf("scheduler: sequence %d is empty", i)
		}
		r.encs[i] = embed.Sequence(seq)
		r.pending[i] = i
		r.pendingTokens += len(seq)
	}
	slices.SortStableFunc(r.pending, func(a, b int) int { return r.tokens(a) - r.tokens(b) })
	return s.serve(ctx, r, r.pendingTokens)
}

// TextTokenizer is the model's tokenizer (embedding.TokenizerSource); nil
// when the model does not expose one.
func (s *Scheduler) TextTokenizer() embedding.Tokenizer {
	if t, ok := s.cfg.Model.(embedding.TokenizerSource); ok {
		return t.TextTokenizer()
	}
	return nil
}

// serve admits r (tokenized; est its admission estimate), waits for its
// batches and returns its result.
func (s *Scheduler) serve(ctx context.Context, r *request, est int) (embedding.Result, error) {
	if err := s.admit(r, est); err != nil {
		return embedding.Result{}, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		s.mu.Lock()
		if !r.closed {
			s.abandon(r, ctx.Err())
		}
		s.mu.Unlock()
		<-r.done
	}
	if r.err != nil {
		return embedding.Result{}, r.err
	}
	res := embedding.Result{Vectors: r.out, Tokens: make([]int, len(r.encs))}
	for i := range r.encs {
		res.Tokens[i] = r.tokens(i)
	}
	if !r.started.IsZero() {
		res.Timing = embedding.Timing{Queue: r.started.Sub(r.arrived), Inference: time.Since(r.started)}
	}
	return res, nil
}

// precheck is admission's pre-check of texts, before they are tokenized.
func (s *Scheduler) precheck(ctx context.Context, texts []string, arrived time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adm.precheck(ctx, &s.q, s.running, texts, arrived, !s.closing)
}

func (s *Scheduler) tokenize(ctx context.Context, texts []string) (*request, error) {
	_, span := s.tracerFor(ctx).Start(ctx, embed.StageTokenize, trace.WithAttributes(
		attribute.String("simmatch.model.name", s.info.Name), attribute.String("simmatch.model.version", s.info.Version)))
	defer span.End()
	start := time.Now()
	defer func() { s.metrics.observeStage(embed.StageTokenize, time.Since(start)) }()
	r := &request{ctx: ctx, encs: make([]embed.Encoding, len(texts)), pending: make([]int, len(texts)),
		out: make([][]float32, len(texts)), left: len(texts), done: make(chan struct{}),
		link: trace.LinkFromContext(ctx)}
	r.deadline, _ = ctx.Deadline()
	for i, t := range texts {
		enc, err := s.cfg.Model.Encode(t)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			return nil, fmt.Errorf("scheduler: text %d: %w", i, err)
		}
		r.encs[i] = enc
		r.pending[i] = i
		r.pendingTokens += len(enc.IDs)
	}
	slices.SortStableFunc(r.pending, func(a, b int) int { return r.tokens(a) - r.tokens(b) })
	s.mu.Lock()
	s.adm.calibrate(texts, r)
	s.mu.Unlock()
	span.SetAttributes(attribute.Int("simmatch.batch.size", len(texts)), attribute.Int("simmatch.tokens", r.pendingTokens))
	return r, nil
}

// admit queues r, or refuses it with code overloaded. est is the estimate
// r passed the pre-check with.
func (s *Scheduler) admit(r *request, est int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return contracts.Errorf(contracts.CodeNoProcessor, "the processor is shutting down; retry on another one")
	}
	if err := s.adm.admit(&s.q, s.running, r, est); err != nil {
		return err
	}
	s.q.push(r)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// abandon answers r with err and drops its texts that are not running. A
// running batch is stopped only when none of its requests is left.
func (s *Scheduler) abandon(r *request, err error) {
	if len(r.pending) > 0 {
		s.metrics.dropped(len(r.pending))
	}
	s.q.remove(r)
	for _, b := range r.running {
		b.live--
		if b.live == 0 && b.cancel != nil {
			b.cancel()
		}
	}
	r.running = nil
	s.finish(r, err)
}

// finish answers r; s.mu is held.
func (s *Scheduler) finish(r *request, err error) {
	if r.closed {
		return
	}
	r.closed = true
	r.err = err
	if err == nil {
		s.metrics.queueWait(r.started.Sub(r.arrived))
	}
	close(r.done)
}

// dispatch runs batches until Close: whenever texts are queued and a lane is
// free, it forms a batch from what is queued and runs it on that lane.
func (s *Scheduler) dispatch(ctx context.Context) {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		empty, closing := s.q.texts == 0, s.closing
		s.mu.Unlock()
		if empty {
			if closing {
				return
			}
			<-s.wake
			continue
		}
		if s.cfg.MaxWait > 0 {
			s.waitForMore()
		}
		if !s.cfg.Pool.acquire(ctx) {
			// Close gave up waiting: answer what is still queued.
			s.mu.Lock()
			for _, r := range slices.Clone(s.q.reqs) {
				s.abandon(r, contracts.Errorf(contracts.CodeNoProcessor, "the processor shut down before running this request; retry on another one"))
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		b := s.form()
		s.mu.Unlock()
		if b == nil {
			s.cfg.Pool.release()
			continue
		}
		s.batches.Add(1)
		go s.run(b)
	}
}

// waitForMore lets a batch that is not full wait up to MaxWait from the
// arrival of its oldest request for more texts.
func (s *Scheduler) waitForMore() {
	for {
		s.mu.Lock()
		if len(s.q.reqs) == 0 || s.q.tokens >= s.cfg.MaxBatchTokens || s.closing {
			s.mu.Unlock()
			return
		}
		left := time.Until(s.q.reqs[0].arrived.Add(s.cfg.MaxWait))
		s.mu.Unlock()
		if left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-s.wake:
			t.Stop()
		case <-t.C:
			return
		}
	}
}

// form drops the texts of requests whose context has ended, then takes a
// batch. When lanes are idle, the batch takes only its share of the queued
// tokens so the rest can run on the other lanes at the same time.
func (s *Scheduler) form() *batch {
	for _, r := range slices.Clone(s.q.reqs) {
		if err := r.ctx.Err(); err != nil {
			s.abandon(r, err)
		}
	}
	target := 0
	if idle := s.cfg.Pool.Size() - s.cfg.Pool.Busy() + 1; idle > 1 { // +1: the lane this batch holds
		target = (s.q.tokens + idle - 1) / idle
	}
	b := s.q.form(s.cfg.MaxBatchTokens, target)
	if b == nil {
		return nil
	}
	b.start = time.Now()
	for _, rw := range b.rows {
		if rw.req.started.IsZero() {
			rw.req.started = b.start
		}
	}
	s.running += b.tokens
	return b
}

// run embeds one batch on the lane form's caller holds, and hands each row
// to its request.
func (s *Scheduler) run(b *batch) {
	defer s.batches.Done()
	defer s.cfg.Pool.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, span := s.batchSpan(ctx, b)
	defer span.End()
	s.mu.Lock()
	b.cancel = cancel
	if b.live == 0 { // every request left while the batch was formed
		cancel()
	}
	s.mu.Unlock()
	s.metrics.batch(b)

	var vecs [][]float32
	var err error
	s.cfg.Pool.exec(func() { vecs, err = s.runModel(ctx, b) })
	d := time.Since(b.start)
	if err == nil && len(vecs) != len(b.rows) {
		err = fmt.Errorf("scheduler: model returned %d embeddings for %d texts", len(vecs), len(b.rows))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "batch failed")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.running -= b.tokens
	if err == nil {
		s.adm.measured(b.tokens, b.padded(), d)
	}
	for i, rw := range b.rows {
		r := rw.req
		if r.closed {
			continue
		}
		if err != nil {
			s.q.remove(r)
			s.finish(r, err)
			continue
		}
		r.out[rw.idx] = vecs[i]
		r.left--
		if r.left == 0 {
			s.finish(r, nil)
		}
	}
	for _, rw := range b.rows {
		rw.req.running = slices.DeleteFunc(rw.req.running, func(x *batch) bool { return x == b })
	}
}

// runModel runs the model, turning a panic into an error so one bad batch
// cannot take the process down or leave its requests unanswered.
func (s *Scheduler) runModel(ctx context.Context, b *batch) (vecs [][]float32, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.cfg.Logger.Error("scheduler: panic in a model run", "panic", v, "texts", len(b.rows))
			err = fmt.Errorf("scheduler: model run panicked: %v", v)
		}
	}()
	return s.cfg.Model.RunBatch(embed.WithObserver(ctx, s.metrics.observer()), b.encs)
}

// batchSpan starts the batch's span, a new root linked to the span of every
// request it serves.
func (s *Scheduler) batchSpan(ctx context.Context, b *batch) (context.Context, trace.Span) {
	tracer := s.tracer
	var links []trace.Link
	seen := map[*request]bool{}
	for _, rw := range b.rows {
		if seen[rw.req] {
			continue
		}
		seen[rw.req] = true
		if rw.req.link.SpanContext.IsValid() {
			links = append(links, rw.req.link)
		}
		if sp := trace.SpanFromContext(rw.req.ctx); sp.IsRecording() {
			tracer = sp.TracerProvider().Tracer(tracerName)
		}
	}
	return tracer.Start(ctx, "batch", trace.WithNewRoot(), trace.WithLinks(links...), trace.WithAttributes(
		attribute.String("simmatch.model.name", s.info.Name),
		attribute.String("simmatch.model.version", s.info.Version),
		attribute.Int("simmatch.batch.size", len(b.rows)),
		attribute.Int("simmatch.batch.requests", len(seen)),
		attribute.Int("simmatch.batch.seq_len", b.maxLen),
		attribute.Int("simmatch.tokens", b.tokens),
		attribute.Int("simmatch.batch.padded_tokens", b.padded())))
}

func (s *Scheduler) tracerFor(ctx context.Context) trace.Tracer {
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		return sp.TracerProvider().Tracer(tracerName)
	}
	return s.tracer
}

// Queued is the number of texts and tokens waiting for a lane.
func (s *Scheduler) Queued() (texts, tokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.texts, s.q.tokens
}

// Close stops taking requests, runs every queued text, and returns when the
// last batch has finished (or ctx ends). It does not close the model.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	done := make(chan struct{})
	go func() {
		<-s.stopped
		s.batches.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.metrics.unregister(s.cfg.Metrics)
		return nil
	case <-ctx.Done():
		s.stop()
		return fmt.Errorf("scheduler: close: %w", ctx.Err())
	}
}
