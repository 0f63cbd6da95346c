package processor

import (
	"strconv"

	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/simmatch/simmatch/contracts"
)

// respond sends the success reply, with the timing headers
// (contracts.HeaderQueueUs, contracts.HeaderInferenceUs).
func (p *Processor) respond(j *job, resp *contracts.Response) {
	if j.answered {
		return
	}
	defer p.finish(j, "")
	hdr := micro.Headers{
		contracts.HeaderQueueUs:     {strconv.FormatInt(j.timing.Queue.Microseconds(), 10)},
		contracts.HeaderInferenceUs: {strconv.FormatInt(j.timing.Inference.Microseconds(), 10)},
	}
	if err := j.req.RespondJSON(resp, micro.WithHeaders(hdr)); err != nil {
		j.span.RecordError(err)
		j.span.SetStatus(codes.Error, "reply failed")
		p.cfg.Logger.WarnContext(j.ctx, "processor: reply failed", "err", err, "request_id", resp.RequestID)
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
// answered, empty for a success. Every reply passes here, so the metrics
// see every outcome and Stop every request.
func (p *Processor) finish(j *job, code contracts.Code) {
	j.answered = true
	p.metrics.answered(code, j.received)
	j.cancel()
	j.span.End()
	p.pending.Add(-1)
	p.inflight.Done()
}
