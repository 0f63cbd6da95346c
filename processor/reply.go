package processor

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/simmatch/simmatch/contracts"
)

// The replies are published on the processor's connection, not through
// micro.Request: micro reads the request's reply error after the handler
// returns, so replying through it from another goroutine would race. The
// wire is the same: an error travels as micro's Nats-Service-Error and
// Nats-Service-Error-Code headers.

// respond sends the success reply, with the timing headers
// (contracts.HeaderQueueUs, contracts.HeaderInferenceUs).
func (p *Processor) respond(j *job, resp *contracts.Response) {
	if j.answered {
		return
	}
	data, err := json.Marshal(resp)
	if err != nil { // cannot happen with finite scores; answer all the same
		p.fail(j, contracts.Errorf(contracts.CodeInternal, "encode reply: %v", err))
		return
	}
	p.replyOK(j, data, resp.RequestID)
}

// replyOK sends a success reply with the timing headers and ends j.
func (p *Processor) replyOK(j *job, data []byte, requestID string) {
	defer p.finish(j, "")
	hdr := nats.Header{}
	hdr.Set(contracts.HeaderQueueUs, strconv.FormatInt(j.timing.Queue.Microseconds(), 10))
	hdr.Set(contracts.HeaderInferenceUs, strconv.FormatInt(j.timing.Inference.Microseconds(), 10))
	if err := p.publish(j, hdr, data); err != nil {
		j.span.RecordError(err)
		j.span.SetStatus(codes.Error, "reply failed")
		p.cfg.Logger.WarnContext(j.ctx, "processor: reply failed", "err", err, "request_id", requestID)
	}
}

// fail sends the error reply: code and message in micro's headers, the
// ErrorBody as the payload.
func (p *Processor) fail(j *job, err error) {
	if j.answered {
		return
	}
	e := contracts.AsError(err)
	if j.body != nil && e.RequestID == "" {
		c := *e // e may be shared
		c.RequestID = j.body.RequestID
		e = &c
	}
	defer p.finish(j, e.Code)
	j.span.SetStatus(codes.Error, e.Message)
	j.span.SetAttributes(attribute.String("error.type", string(e.Code)))
	if e.Code == contracts.CodeInternal || e.Code == contracts.CodeModelError {
		p.cfg.Logger.ErrorContext(j.ctx, "processor: request failed", "code", e.Code, "err", e.Message, "request_id", e.RequestID)
	}
	hdr := nats.Header{}
	hdr.Set(contracts.HeaderError, e.Message)
	hdr.Set(contracts.HeaderErrorCode, string(e.Code))
	if rerr := p.publish(j, hdr, e.Marshal()); rerr != nil {
		p.cfg.Logger.WarnContext(j.ctx, "processor: error reply failed", "err", rerr, "code", e.Code, "request_id", e.RequestID)
	}
}

// publish sends the final reply, after the last heartbeat.
func (p *Processor) publish(j *job, hdr nats.Header, data []byte) error {
	if j.stopProgress != nil { // only similarity requests can ask for acknowledgements
		j.stopProgress()
	}
	reply := j.req.Reply()
	if reply == "" {
		return errors.New("the request has no reply subject")
	}
	return p.cfg.NATS.PublishMsg(&nats.Msg{Subject: reply, Header: hdr, Data: data})
}

// finish ends a request once its reply is sent; code is the error code
// answered, empty for a success. Every reply passes here, so the metrics
// see every outcome and Stop every request.
func (p *Processor) finish(j *job, code contracts.Code) {
	j.answered = true
	if j.abandon != nil {
		p.callers.CompareAndDelete(j.req.Reply(), j)
	}
	if !j.uncounted {
		p.metrics.answered(code, j.received)
	}
	j.cancel()
	j.span.End()
	p.pending.Add(-1)
	p.inflight.Done()
}
