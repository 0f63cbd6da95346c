package processor

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// job is one received request, from intake to its one reply.
type job struct {
	ctx      context.Context
	cancel   context.CancelFunc
	span     trace.Span
	req      micro.Request
	body     *contracts.Request
	received time.Time
	timing   scheduler.Timing
	embedder Embedder // the model serving the request, resolved at intake
	release  func()   // hands the model back when the request is answered
	answered bool     // guards against a second reply
	// stopProgress ends the acknowledgement heartbeats the caller asked
	// for (contracts.HeaderAck); publish calls it before the final reply.
	stopProgress func()
	// uncounted: not a similarity request, so not in the similarity
	// endpoint's metrics (embed requests).
	uncounted bool
	// abandon ends ctx with errCallerGone (contracts.SubjectCancel); nil
	// when the request has no reply subject.
	abandon context.CancelCauseFunc
}

// errCallerGone ends a request's context when its caller cancelled it.
var errCallerGone = errors.New("the caller cancelled the request")

// setContext gives j its context: the request's deadline, ended early when
// the caller cancels the request over contracts.SubjectCancel.
func (p *Processor) setContext(ctx context.Context, j *job, deadline time.Time) {
	ctx, cancelDeadline := context.WithDeadline(ctx, deadline)
	ctx, cancel := context.WithCancelCause(ctx)
	j.ctx, j.cancel = ctx, func() { cancel(nil); cancelDeadline() }
	if reply := j.req.Reply(); reply != "" {
		j.abandon = cancel
		p.callers.Store(reply, j)
	}
}

// onCancel drops the requests whose reply subjects m lists (one per line):
// their texts not yet running leave the queue, and they are answered
// cancelled (to an inbox nobody reads any more).
func (p *Processor) onCancel(m *nats.Msg) {
	for _, reply := range strings.Split(string(m.Data), "\n") {
		if v, ok := p.callers.Load(reply); ok {
			v.(*job).abandon(errCallerGone)
		}
	}
}

// handle is the intake. It runs on the subscription: it starts the
// request's span, counts it in flight, sets its deadline and hands it to its
// own goroutine (intake), which decodes and validates the body. Nothing on
// the subscription costs more than reading headers, so a burst of large
// requests is acknowledged (or refused) at once, in parallel on every core;
// admission (code overloaded) happens in the scheduler, which alone knows
// the queued tokens.
func (p *Processor) handle(r micro.Request) {
	received := time.Now()
	hdr := nats.Header(r.Headers())
	ctx, span := p.startSpan(r, hdr, p.cfg.Subject)
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
	p.setContext(ctx, j, received.Add(timeout))
	if _, _, err := contracts.AckInterval(hdr); err != nil {
		p.fail(j, contracts.FieldError("header "+contracts.HeaderAck, 0, "%v", err))
		return
	}
	go p.intake(j, hdr)
}

// intake decodes and validates j's body, resolves its model, acknowledges
// it and processes it.
func (p *Processor) intake(j *job, hdr nats.Header) {
	r, span := j.req, j.span
	body, err := contracts.DecodeRequest(r.Data(), p.cfg.Limits)
	if err != nil {
		p.fail(j, err)
		return
	}
	if body.RequestID == "" {
		body.RequestID = hdr.Get(contracts.HeaderRequestID)
	}
	j.body = body
	j.embedder, j.release = p.cfg.Embedder, func() {}
	if p.cfg.Models != nil {
		if j.embedder, j.release, err = p.cfg.Models.Resolve(body.Model); err != nil {
			p.fail(j, err)
			return
		}
	} else if body.Model != "" {
		if info := j.embedder.Info(); body.Model != info.Name && body.Model != contracts.ModelRef(info.Name, info.Version) {
			p.fail(j, contracts.Errorf(contracts.CodeNotFound, "model %q is not served; available: %s", body.Model, contracts.ModelRef(info.Name, info.Version)))
			return
		}
	}
	span.SetAttributes(attribute.String("simmatch.request_id", body.RequestID),
		attribute.Int("simmatch.queries", len(body.Query)),
		attribute.Int("simmatch.descriptions", len(body.ProductDescriptions)))
	// Admitted: acknowledge at once and beat while queued or running, for
	// callers that asked (they re-send a request whose processor went silent).
	j.stopProgress = contracts.StartProgress(p.cfg.NATS, r.Reply(), hdr)
	p.process(j)
}

// process embeds the request's distinct texts through the Embedder, ranks
// and replies: exactly one reply, whatever happens.
func (p *Processor) process(j *job) {
	defer j.release()
	defer func() {
		if v := recover(); v != nil {
			p.cfg.Logger.ErrorContext(j.ctx, "processor: panic while handling a request", "panic", v, "request_id", j.body.RequestID)
			p.fail(j, contracts.Errorf(contracts.CodeInternal, "processor failed on this request (request id %s)", j.body.RequestID))
		}
	}()
	if j.body.Catalog != "" {
		p.processCatalog(j)
		return
	}
	texts, qi, di := distinctTexts(j.body)
	vecs, err := j.embedder.Embed(scheduler.WithTiming(j.ctx, &j.timing), texts)
	j.span.SetAttributes(attribute.Int64("simmatch.queue_wait_us", j.timing.Queue.Microseconds()),
		attribute.Int64("simmatch.inference_us", j.timing.Inference.Microseconds()))
	if err != nil {
		p.fail(j, embedError(j.ctx, err))
		return
	}
	if len(vecs) != len(texts) {
		p.fail(j, contracts.Errorf(contracts.CodeModelError, "model returned %d embeddings for %d texts", len(vecs), len(texts)))
		return
	}
	resp := p.rank.rank(j.ctx, j.body, j.embedder.Info(), vecs, qi, di)
	p.respond(j, resp)
}

// embedError maps an Embedder error to the wire: simmatch errors (the
// scheduler's overloaded) pass as they are, an ended deadline is a timeout,
// anything else a model error.
func embedError(ctx context.Context, err error) error {
	var e *contracts.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(context.Cause(ctx), errCallerGone):
		return &contracts.Error{Code: contracts.CodeCancelled, Message: "the caller cancelled the request"}
	case ctx.Err() != nil:
		return &contracts.Error{Code: contracts.CodeTimeout, Message: "the request's deadline passed before its embeddings were ready"}
	default:
		return contracts.Errorf(contracts.CodeModelError, "embed texts: %v", err)
	}
}

// distinctTexts lists every distinct text of req once, with the position
// of each query (qi) and description (di) in that list.
func distinctTexts(req *contracts.Request) (texts []string, qi, di []int) {
	texts = make([]string, 0, len(req.Query)+len(req.ProductDescriptions))
	pos := make(map[string]int, cap(texts))
	at := func(t string) int {
		if i, ok := pos[t]; ok {
			return i
		}
		pos[t] = len(texts)
		texts = append(texts, t)
		return len(texts) - 1
	}
	qi = make([]int, len(req.Query))
	for i, q := range req.Query {
		qi[i] = at(q)
	}
	di = make([]int, len(req.ProductDescriptions))
	for i, d := range req.ProductDescriptions {
		di[i] = at(d)
	}
	return texts, qi, di
}

// startSpan starts the SERVER span of a request received on subject, as a
// child of the trace context its headers carry.
func (p *Processor) startSpan(r micro.Request, hdr nats.Header, subject string) (context.Context, trace.Span) {
	ctx := p.cfg.Propagator.Extract(context.Background(), contracts.HeaderCarrier(hdr))
	return p.tracer.Start(ctx, "process "+subject, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.name", "process"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", r.Subject()),
			attribute.String("messaging.consumer.group.name", p.cfg.QueueGroup),
			attribute.Int("messaging.message.body.size", len(r.Data())),
		))
}
