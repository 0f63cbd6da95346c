package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
)

// Endpoint is one subject the processor serves. Every endpoint goes through
// the same pipeline, so every door gets the same guarantees: the body is
// decoded off the subscription, the deadline comes from the caller's header,
// a SERVER span continues the caller's trace, the request is acknowledged
// with heartbeats when the caller asks (contracts.HeaderAck), a caller's
// cancellation (contracts.SubjectCancel) ends its context, a panic becomes an
// internal error, and exactly one reply (with the timing headers, or the
// error model) is counted in the metrics by subject.
type Endpoint struct {
	// Name names the endpoint in $SRV.INFO.
	Name string
	// Subject is the NATS subject.
	Subject string
	// Broadcast endpoints are answered by every processor (no queue group),
	// e.g. a status that callers gather.
	Broadcast bool
	// Timeout is the deadline of requests without a timeout header; 0
	// means Config.DefaultTimeout.
	Timeout time.Duration
	// Slots, when not nil, bounds how many requests run Serve at once (the
	// endpoints sharing it share the bound); a request waits for a slot
	// while its heartbeats go on.
	Slots chan struct{}
	// Serve does the work. Its result is the reply's JSON body, and its
	// Took (contracts.Timed, which every reply type embeds) the timing
	// headers; an error is answered in the error model (a *contracts.Error
	// keeps its code).
	Serve func(ctx context.Context, req Request) (any, error)
}

// Request is what Serve receives: the body and the caller's request id
// (contracts.HeaderRequestID).
type Request struct {
	Data      []byte
	RequestID string
}

// Handle declares an endpoint from a decoder and the plain function that
// does the work.
func Handle[Req, Resp any](name, subject string, decode func([]byte) (Req, error), run func(context.Context, Req) (Resp, error)) Endpoint {
	return Endpoint{Name: name, Subject: subject, Serve: func(ctx context.Context, r Request) (any, error) {
		req, err := decode(r.Data)
		if err != nil {
			return nil, err
		}
		return run(ctx, req)
	}}
}

// call is one received request, from the subscription to its one reply.
type call struct {
	ep        *Endpoint
	ctx       context.Context
	cancel    context.CancelFunc
	span      trace.Span
	req       micro.Request
	requestID string
	received  time.Time
	answered  bool // guards against a second reply
	// stopProgress ends the acknowledgement heartbeats; publish calls it
	// before the final reply.
	stopProgress func()
	// abandon ends ctx with errCallerGone (contracts.SubjectCancel); nil
	// when the request has no reply subject.
	abandon context.CancelCauseFunc
}

// errCallerGone ends a request's context when its caller cancelled it.
var errCallerGone = errors.New("the caller cancelled the request")

// Add serves eps through the pipeline, in the processor's queue group
// unless an endpoint is a broadcast one.
func (p *Processor) Add(eps ...Endpoint) error {
	for i := range eps {
		ep := &eps[i]
		opts := []micro.EndpointOpt{
			micro.WithEndpointSubject(ep.Subject),
			// The handler only reads headers and hands the request on, so
			// it keeps up; the limits are generous so a burst is refused as
			// "overloaded" by admission, never by a slow-consumer error
			// that would stop the service.
			micro.WithEndpointPendingLimits(1<<16, 512<<20),
		}
		if ep.Broadcast {
			opts = append(opts, micro.WithEndpointQueueGroupDisabled())
		} else {
			opts = append(opts, micro.WithEndpointQueueGroup(p.cfg.QueueGroup))
		}
		if err := p.svc.AddEndpoint(ep.Name, micro.HandlerFunc(func(r micro.Request) { p.receive(ep, r) }), opts...); err != nil {
			return errors.Join(errors.New("processor: add endpoint "+ep.Subject), err)
		}
	}
	// Flush so the server knows the subscriptions before Add returns: a
	// request sent right after must find this processor.
	if err := p.cfg.NATS.Flush(); err != nil {
		return errors.Join(errors.New("processor: flush subscriptions"), err)
	}
	return nil
}

// receive runs on the subscription: it starts the span, counts the request
// in flight, sets its deadline and hands it to its own goroutine. Nothing
// here costs more than reading headers, so a burst of large requests is
// acknowledged (or refused) at once, in parallel on every core.
func (p *Processor) receive(ep *Endpoint, r micro.Request) {
	received := time.Now()
	hdr := nats.Header(r.Headers())
	ctx, span := p.startSpan(ep, r, hdr)
	p.inflight.Add(1)
	p.pending.Add(1)
	c := &call{ep: ep, span: span, req: r, received: received, requestID: hdr.Get(contracts.HeaderRequestID)}
	if c.requestID != "" {
		span.SetAttributes(attribute.String("simmatch.request_id", c.requestID))
	}
	timeout, ok, err := contracts.Timeout(hdr)
	if err != nil {
		c.ctx, c.cancel = context.WithCancel(ctx)
		p.fail(c, contracts.FieldError("header "+contracts.HeaderTimeout, 0, "%v", err))
		return
	}
	if !ok {
		timeout = ep.Timeout
		if timeout <= 0 {
			timeout = p.cfg.DefaultTimeout
		}
	}
	p.setContext(ctx, c, received.Add(timeout))
	if _, _, err := contracts.AckInterval(hdr); err != nil {
		p.fail(c, contracts.FieldError("header "+contracts.HeaderAck, 0, "%v", err))
		return
	}
	go p.serve(c, hdr)
}

// setContext gives c its context: the request's deadline, ended early when
// the caller cancels the request over contracts.SubjectCancel.
func (p *Processor) setContext(ctx context.Context, c *call, deadline time.Time) {
	ctx, cancelDeadline := context.WithDeadline(ctx, deadline)
	ctx, cancel := context.WithCancelCause(ctx)
	c.ctx, c.cancel = ctx, func() { cancel(nil); cancelDeadline() }
	if reply := c.req.Reply(); reply != "" {
		c.abandon = cancel
		p.callers.Store(reply, c)
	}
}

// onCancel drops the requests whose reply subjects m lists (one per line):
// their texts not yet running leave the queue, and they are answered
// cancelled (to an inbox nobody reads any more).
func (p *Processor) onCancel(m *nats.Msg) {
	for _, reply := range strings.Split(string(m.Data), "\n") {
		if v, ok := p.callers.Load(reply); ok {
			v.(*call).abandon(errCallerGone)
		}
	}
}

// serve acknowledges c (when its caller asked), runs its endpoint and
// replies: exactly one reply, whatever happens.
func (p *Processor) serve(c *call, hdr nats.Header) {
	c.stopProgress = contracts.StartProgress(p.cfg.NATS, c.req.Reply(), hdr)
	if c.ep.Slots != nil {
		select {
		case c.ep.Slots <- struct{}{}:
			defer func() { <-c.ep.Slots }()
		case <-c.ctx.Done():
			p.fail(c, callError(c.ctx, c.ctx.Err()))
			return
		}
	}
	resp, err := p.run(c)
	if err != nil {
		p.fail(c, callError(c.ctx, err))
		return
	}
	data, err := json.Marshal(resp)
	if err != nil { // cannot happen with finite scores; answer all the same
		p.fail(c, contracts.Errorf(contracts.CodeInternal, "encode reply: %v", err))
		return
	}
	// A reply over the server's max_payload would be refused by NATS and
	// the caller left waiting: it gets an error that says what to do.
	if max := p.cfg.NATS.MaxPayload(); max > 0 && int64(len(data))+replyHeaderRoom > max {
		p.fail(c, &contracts.Error{Code: contracts.CodePayloadTooLarge,
			Message: fmt.Sprintf("the answer is %d bytes, over the NATS server's max_payload of %d: send fewer texts per request (or raise max_payload)", len(data), max)})
		return
	}
	hdr = nats.Header{}
	contracts.SetTiming(hdr, took(resp))
	if err := p.publish(c, hdr, data); err != nil {
		c.span.RecordError(err)
		c.span.SetStatus(codes.Error, "reply failed")
		p.cfg.Logger.WarnContext(c.ctx, "processor: reply failed", "err", err, "subject", c.ep.Subject, "request_id", c.requestID)
	}
	p.finish(c, "")
}

// replyHeaderRoom is kept free of a reply's max_payload for its headers.
const replyHeaderRoom = 4 << 10

// run calls the endpoint's Serve; a panic is an internal error.
func (p *Processor) run(c *call) (resp any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.cfg.Logger.ErrorContext(c.ctx, "processor: panic while handling a request", "panic", v, "subject", c.ep.Subject, "request_id", c.requestID)
			err = contracts.Errorf(contracts.CodeInternal, "processor failed on this request (request id %s)", c.requestID)
		}
	}()
	return c.ep.Serve(c.ctx, Request{Data: c.req.Data(), RequestID: c.requestID})
}

// took is a reply's timing: what its contracts.Timed holds, zero for a
// reply without one.
func took(resp any) contracts.Timing {
	if t, ok := resp.(interface{ Took() contracts.Timing }); ok {
		return t.Took()
	}
	return contracts.Timing{}
}

// callError maps an endpoint's error to the wire: simmatch errors pass as
// they are, a caller's cancellation is cancelled, an ended deadline a
// timeout, anything else an internal error.
func callError(ctx context.Context, err error) error {
	var e *contracts.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(context.Cause(ctx), errCallerGone):
		return &contracts.Error{Code: contracts.CodeCancelled, Message: "the caller cancelled the request"}
	case ctx.Err() != nil:
		return &contracts.Error{Code: contracts.CodeTimeout, Message: "the request's deadline passed before its answer was ready"}
	default:
		return contracts.Errorf(contracts.CodeInternal, "%v", err)
	}
}

// fail sends the error reply: code and message in micro's headers
// (Nats-Service-Error, Nats-Service-Error-Code), the ErrorBody as the payload.
func (p *Processor) fail(c *call, err error) {
	if c.answered {
		return
	}
	e := contracts.AsError(err)
	if e.RequestID == "" && c.requestID != "" {
		cp := *e // e may be shared
		cp.RequestID = c.requestID
		e = &cp
	}
	c.span.SetStatus(codes.Error, e.Message)
	c.span.SetAttributes(attribute.String("error.type", string(e.Code)))
	if e.Code == contracts.CodeInternal || e.Code == contracts.CodeModelError {
		p.cfg.Logger.ErrorContext(c.ctx, "processor: request failed", "subject", c.ep.Subject, "code", e.Code, "err", e.Message, "request_id", e.RequestID)
	}
	hdr := nats.Header{}
	hdr.Set(contracts.HeaderError, e.Message)
	hdr.Set(contracts.HeaderErrorCode, string(e.Code))
	if rerr := p.publish(c, hdr, e.Marshal()); rerr != nil {
		p.cfg.Logger.WarnContext(c.ctx, "processor: error reply failed", "err", rerr, "code", e.Code, "request_id", e.RequestID)
	}
	p.finish(c, e.Code)
}

// publish sends the final reply, after the last heartbeat. The replies are
// published on the processor's connection, not through micro.Request: micro
// reads the request's reply error after the handler returns, so replying
// through it from another goroutine would race, and a server with per-user
// permissions lets only the receiving connection answer.
func (p *Processor) publish(c *call, hdr nats.Header, data []byte) error {
	if c.stopProgress != nil {
		c.stopProgress()
	}
	reply := c.req.Reply()
	if reply == "" {
		return errors.New("the request has no reply subject")
	}
	return p.cfg.NATS.PublishMsg(&nats.Msg{Subject: reply, Header: hdr, Data: data})
}

// finish ends a request once its reply is sent; code is the error code
// answered, empty for a success. Every reply passes here, so the metrics
// see every outcome and Stop every request.
func (p *Processor) finish(c *call, code contracts.Code) {
	c.answered = true
	if c.abandon != nil {
		p.callers.CompareAndDelete(c.req.Reply(), c)
	}
	p.metrics.answered(c.ep.Subject, code, c.received)
	c.cancel()
	c.span.End()
	p.pending.Add(-1)
	p.inflight.Done()
}

// startSpan starts the SERVER span of a request, as a child of the trace
// context its headers carry.
func (p *Processor) startSpan(ep *Endpoint, r micro.Request, hdr nats.Header) (context.Context, trace.Span) {
	ctx := p.cfg.Propagator.Extract(context.Background(), contracts.HeaderCarrier(hdr))
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", r.Subject()),
		attribute.Int("messaging.message.body.size", len(r.Data())),
	}
	if !ep.Broadcast {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", p.cfg.QueueGroup))
	}
	return p.tracer.Start(ctx, "process "+r.Subject(), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}
