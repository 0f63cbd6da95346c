// Package scheduler sits between the processor's intake and the model: it
// tokenizes each request on arrival, admits it against a budget of queued
// tokens and its deadline, and forms batches from the texts of every waiting
// request, grouped by length under a padded-token budget. A batch starts as
// soon as a lane of the shared Pool is free (continuous batching); a lone
// request is spread over the idle lanes. A Scheduler is a processor.Embedder.
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
	running int     // tokens in batches now running
	rate    float64 // real tokens per second of one lane (moving average of full batches); 0: not measured yet
	// tokensPerByte (moving average) and longest (tokens of the longest
	// encoding) calibrate precheck's estimate; 0: not measured yet.
	tokensPerByte float64
	longest       int
	// tokenizing is the estimated tokens of requests past precheck and not
	// yet judged by admit.
	tokenizing int
	refusals   uint64 // requests refused as overloaded, ever
	closing    bool

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
	if cfg.MaxBatchTokens < 0 || cfg.MaxQueuedTokens < 0 || cfg.MaxWait < 0 {
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
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.dispatch(ctx)
	return s, nil
}

const tracerName = "github.com/simmatch/simmatch/processor/scheduler"

// Info identifies the model.
func (s *Scheduler) Info() contracts.ModelInfo { return s.info }

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
	tpb := s.tokensPerByte
	if tpb <= 0 {
		tpb = defaultTokensPerByte
	}
	return Load{Ahead: s.timeFor(s.running + s.q.tokens + s.tokenizing), PerKB: s.timeFor(int(1024 * tpb)),
		Queued: s.q.tokens + s.tokenizing, MaxQueued: s.cfg.MaxQueuedTokens, TokensPerKB: 1024 * tpb, Refusals: s.refusals}
}

// MaxBatchTokens is the batch budget in use (padded tokens).
func (s *Scheduler) MaxBatchTokens() int { return s.cfg.MaxBatchTokens }

// Pool is the lanes the scheduler runs on.
func (s *Scheduler) Pool() *Pool { return s.cfg.Pool }

// Embed returns one embedding per text, in order, each the same as if the
// text had been embedded alone. It refuses at once, with a *contracts.Error
// of code overloaded, a request that the queue cannot hold or that could not
// finish before ctx's deadline at the measured speed. When ctx ends first,
// its texts not yet running are dropped, Embed returns ctx's error at once,
// and the batches already running finish for their other requests.
func (s *Scheduler) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	arrived := time.Now()
	est, err := s.precheck(ctx, texts, arrived)
	if err != nil {
		return nil, err
	}
	r, err := s.tokenize(ctx, texts)
	s.mu.Lock()
	s.tokenizing -= est
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	r.arrived = arrived
	if err := s.admit(r, est); err != nil {
		return nil, err
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
	if t := timingFrom(ctx); t != nil && !r.started.IsZero() {
		t.Queue = r.started.Sub(r.arrived)
		t.Inference = time.Since(r.started)
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.out, nil
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
	s.calibrate(texts, r)
	span.SetAttributes(attribute.Int("simmatch.batch.size", len(texts)), attribute.Int("simmatch.tokens", r.pendingTokens))
	return r, nil
}

// calibrate updates the tokens per byte and the longest encoding that
// precheck estimates with, from r's freshly tokenized texts.
func (s *Scheduler) calibrate(texts []string, r *request) {
	bytes, longest := 0, 0
	for i, t := range texts {
		bytes += len(t)
		longest = max(longest, len(r.encs[i].IDs))
	}
	if bytes == 0 {
		return
	}
	tpb := float64(r.pendingTokens-2*len(texts)) / float64(bytes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokensPerByte == 0 {
		s.tokensPerByte = tpb
	} else {
		s.tokensPerByte = 0.8*s.tokensPerByte + 0.2*tpb
	}
	s.longest = max(s.longest, longest)
}

// admit queues r, or refuses it with code overloaded. est is the estimate
// r passed the pre-check with.
func (s *Scheduler) admit(r *request, est int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return contracts.Errorf(contracts.CodeNoProcessor, "the processor is shutting down; retry on another one")
	}
	if s.q.tokens > 0 {
		// A request the pre-check let through is judged on the estimate it
		// passed with, unless its texts are denser than the estimate's
		// margin allows: the estimate is then short by at most the margin,
		// which admission's headroom absorbs, and a refusal now would
		// waste the tokenizing (under overload, the cores of the admitted).
		judged := r
		if float64(r.pendingTokens)*precheckMargin <= float64(est) {
			judged = &request{pendingTokens: est, deadline: r.deadline, arrived: r.arrived}
		}
		if err := s.judge(judged, s.q.tokens, time.Now()); err != nil {
			return err
		}
	}
	s.q.push(r)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// precheck's estimate of a request's tokens: bytes times the tokens per
// byte measured on the texts tokenized so far, times precheckMargin, plus
// [CLS] and [SEP], each text capped at the longest encoding seen. Before
// anything is measured it assumes 8 bytes per token, under the real count
// for nearly any text.
const (
	defaultTokensPerByte = 1.0 / 8
	precheckMargin       = 0.85
)

// precheck refuses, before any tokenizing, a request that admit would
// refuse even with a low estimate of its tokens. Under overload most
// requests are refused, and tokenizing each of them first took the cores
// that the admitted requests needed (a refusal then took up to a second).
// The estimate is calibrated on the measured tokens per byte, so nearly
// every refusal happens here; the margin keeps it under the real count for
// texts denser than the average, which admit then judges exactly.
//
// A request that passes holds its estimate in s.tokenizing until admit has
// judged it (Embed releases it), and precheck counts those as queued: when
// the queue has just emptied into the lanes, one request is let through to
// the tokenizer, not every request that arrives in the meantime.
func (s *Scheduler) precheck(ctx context.Context, texts []string, arrived time.Time) (est int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if err == nil {
			s.tokenizing += est
		}
	}()
	tpb := s.tokensPerByte
	if tpb <= 0 {
		tpb = defaultTokensPerByte
	}
	sum := 0.0
	for _, t := range texts {
		n := float64(len(t))*tpb*precheckMargin + 2 // [CLS] and [SEP]
		if s.longest > 0 {
			n = min(n, float64(s.longest))
		}
		sum += n
	}
	est = int(sum)
	if s.closing || s.q.tokens+s.tokenizing == 0 {
		return est, nil // admit answers these
	}
	// The requests being tokenized count as this one's own tokens (they
	// will be queued ahead of it or just after): that errs towards refusing.
	r := &request{pendingTokens: est + s.tokenizing, arrived: arrived}
	r.deadline, _ = ctx.Deadline()
	if err := s.judge(r, s.q.tokens, arrived); err != nil {
		return 0, err
	}
	return est, nil
}

// judge refuses r, with code overloaded and an estimate of when the same
// request would fit, when adding it to the queued tokens would go over the
// queue's budget or make a deadline miss; nil when r may be queued. s.mu is
// held.
func (s *Scheduler) judge(r *request, queued int, now time.Time) error {
	if over := queued + r.pendingTokens - s.cfg.MaxQueuedTokens; over > 0 {
		s.refusals++
		s.metrics.refused("queue_full")
		e := contracts.Errorf(contracts.CodeOverloaded,
			"the processor's queue holds %d tokens and this request adds about %d, over its limit of %d; retry later or add processors",
			queued, r.pendingTokens, s.cfg.MaxQueuedTokens)
		e.RetryAfterMs = contracts.RetryAfterMs(s.timeFor(over))
		return e
	}
	if msg, wait := s.wouldMiss(r, now); msg != "" {
		s.refusals++
		s.metrics.refused("deadline")
		e := contracts.Errorf(contracts.CodeOverloaded, "%s; retry later or add processors", msg)
		e.RetryAfterMs = contracts.RetryAfterMs(wait)
		return e
	}
	return nil
}

// timeFor is how long the lanes take for tokens at the measured speed, with
// admission's headroom; 0 before the speed is measured. s.mu is held.
func (s *Scheduler) timeFor(tokens int) time.Duration {
	if s.rate <= 0 {
		return 0
	}
	// Plan on 1.5 times the measured time per token: the speed moves (other
	// processes, longer texts) and a request admitted then late wastes its
	// compute. The headroom costs no throughput: the lanes stay busy as long
	// as a batch per lane is queued, far less than a third of any deadline.
	return time.Duration(admissionHeadroom * float64(tokens) * float64(time.Second) / (s.rate * float64(s.cfg.Pool.Size())))
}

// admissionHeadroom is how many times the measured time admission plans for.
const admissionHeadroom = 1.5

// wouldMiss says why admitting r would make a request miss its deadline
// (r itself, or one already queued that would make it otherwise), and how
// long until it would not, or "" when every deadline still holds or the
// speed is not measured yet. Batches
// serve the earliest deadline first, so a queued request finishes once the
// running batches and every request queued before it are done; r adds its
// own tokens to that for each request it may delay (counted for all of
// them, which errs towards refusing).
func (s *Scheduler) wouldMiss(r *request, now time.Time) (msg string, wait time.Duration) {
	if s.rate <= 0 {
		return "", 0
	}
	dur := s.timeFor
	own := r.pendingTokens
	ahead := s.running
	for _, o := range s.q.reqs[:s.q.position(r)] {
		ahead += o.pendingTokens
	}
	if need := dur(ahead + own); !r.deadline.IsZero() && now.Add(need).After(r.deadline) {
		left := r.deadline.Sub(now)
		return fmt.Sprintf("the processor would need about %v to answer (%d tokens queued, %d running), more than the %v left before the request's deadline",
			need.Round(time.Millisecond), s.q.tokens, s.running, left.Round(time.Millisecond)), need - max(left, 0)
	}
	ahead = s.running
	for _, o := range s.q.reqs {
		ahead += o.pendingTokens
		if o.deadline.IsZero() {
			continue
		}
		// Only protect a request that would make it now: one already late
		// must not block every admission until it expires.
		if fits := !now.Add(dur(ahead)).After(o.deadline); fits && now.Add(dur(ahead+own)).After(o.deadline) {
			return fmt.Sprintf("admitting it would make a request already queued miss its deadline (%d tokens queued, %d running)",
				s.q.tokens, s.running), dur(ahead)
		}
	}
	return "", 0
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
	// Small batches cost mostly fixed overhead per run: they would make the
	// rate look low and admission refuse work the lanes could do. Under
	// load, which is when admission matters, batches are full; until one
	// has run, admission goes by the queue's token budget alone.
	if err == nil && d > 0 && b.padded() >= s.cfg.MaxBatchTokens/4 {
		r := float64(b.tokens) / d.Seconds()
		if s.rate == 0 {
			s.rate = r
		} else {
			s.rate = 0.8*s.rate + 0.2*r
		}
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
