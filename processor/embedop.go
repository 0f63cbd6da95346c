package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// TokenCounter counts the tokens a model reads for each text (special tokens
// included, after truncation), for the usage figures of embed answers.
// *Model implements it.
type TokenCounter interface {
	CountTokens(texts []string) ([]int, error)
}

// embedOp serves contracts.SubjectEmbed: intake as for similarity, the
// Embedder (the scheduler: admission, batching), and one reply. Its
// requests count in the processor's in-flight requests, so Stop answers them.
type embedOp struct {
	p      *Processor
	tokens TokenCounter // nil: answers carry no token counts
}

// addOperations adds the endpoints beyond similarity to svc: the one hook
// the other operations need in the processor's start-up.
func (p *Processor) addOperations(svc micro.Service) error {
	op := &embedOp{p: p, tokens: p.cfg.Tokens}
	if op.tokens == nil {
		op.tokens, _ = p.cfg.Embedder.(TokenCounter)
	}
	err := svc.AddEndpoint("embed", micro.HandlerFunc(op.handle),
		micro.WithEndpointSubject(contracts.SubjectEmbed),
		micro.WithEndpointQueueGroup(p.cfg.QueueGroup),
		micro.WithEndpointPendingLimits(1<<16, 256<<20),
	)
	if err != nil {
		return fmt.Errorf("processor: add endpoint %s: %w", contracts.SubjectEmbed, err)
	}
	return nil
}

// handle runs on the subscription: decode, validate, deadline, then the
// request's own goroutine.
func (op *embedOp) handle(r micro.Request) {
	p := op.p
	received := time.Now()
	hdr := nats.Header(r.Headers())
	ctx, span := p.startSpan(r, hdr, contracts.SubjectEmbed)
	p.inflight.Add(1)
	p.pending.Add(1)
	j := &job{span: span, req: r, received: received, uncounted: true,
		body: &contracts.Request{RequestID: hdr.Get(contracts.HeaderRequestID)}}

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
	req, err := contracts.DecodeEmbedRequest(r.Data(), p.cfg.Limits)
	if err != nil {
		p.fail(j, err)
		return
	}
	if req.RequestID == "" {
		req.RequestID = j.body.RequestID
	}
	j.body.RequestID = req.RequestID
	span.SetAttributes(attribute.String("simmatch.request_id", req.RequestID), attribute.Int("simmatch.texts", len(req.Input)))
	go op.process(j, req)
}

// process embeds and replies: exactly one reply, whatever happens.
func (op *embedOp) process(j *job, req *contracts.EmbedRequest) {
	p := op.p
	defer func() {
		if v := recover(); v != nil {
			p.cfg.Logger.ErrorContext(j.ctx, "processor: panic while embedding", "panic", v, "request_id", req.RequestID)
			p.fail(j, contracts.Errorf(contracts.CodeInternal, "processor failed on this request (request id %s)", req.RequestID))
		}
	}()
	vecs, err := p.cfg.Embedder.Embed(scheduler.WithTiming(j.ctx, &j.timing), req.Input)
	if err != nil {
		p.fail(j, embedError(j.ctx, err))
		return
	}
	if len(vecs) != len(req.Input) {
		p.fail(j, contracts.Errorf(contracts.CodeModelError, "model returned %d embeddings for %d texts", len(vecs), len(req.Input)))
		return
	}
	resp := &contracts.EmbedResponse{Embeddings: vecs, Model: p.cfg.Embedder.Info(), RequestID: req.RequestID}
	if op.tokens != nil {
		if resp.Tokens, err = op.tokens.CountTokens(req.Input); err != nil {
			p.fail(j, contracts.Errorf(contracts.CodeModelError, "count tokens: %v", err))
			return
		}
	}
	data, err := json.Marshal(resp)
	if err != nil {
		p.fail(j, contracts.Errorf(contracts.CodeInternal, "encode reply: %v", err))
		return
	}
	p.replyOK(j, data, req.RequestID)
}
