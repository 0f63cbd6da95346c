package processor

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
)

// endpoints are the processor's own: similarity, embeddings, tokenize and decode.
func (p *Processor) endpoints() []Endpoint {
	return []Endpoint{
		{Name: "similarity", Subject: p.cfg.Subject, Serve: p.similarity},
		Handle("embed", contracts.SubjectEmbed, func(b []byte) (*contracts.EmbedRequest, error) {
			return contracts.DecodeEmbedRequest(b, p.cfg.Limits)
		}, p.Embed),
		Handle("tokenize", contracts.SubjectTokenize, func(b []byte) (*contracts.TokenizeRequest, error) {
			return contracts.DecodeTokenizeRequest(b, p.cfg.Limits)
		}, p.Tokenize),
		Handle("decode", contracts.SubjectDecode, func(b []byte) (*contracts.DecodeIDsRequest, error) {
			return contracts.DecodeDecodeIDsRequest(b, p.cfg.Limits)
		}, p.DecodeIDs),
	}
}

// similarity decodes a similarity request and answers it: inline
// descriptions are embedded with the texts' model and ranked here; a
// request that names a catalog is answered by the catalogs.
func (p *Processor) similarity(ctx context.Context, r Request) (any, error) {
	req, err := contracts.DecodeRequest(r.Data, p.cfg.Limits)
	if err != nil {
		return nil, err
	}
	if req.RequestID == "" {
		req.RequestID = r.RequestID
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("simmatch.request_id", req.RequestID),
		attribute.Int("simmatch.queries", len(req.Query)),
		attribute.Int("simmatch.descriptions", len(req.ProductDescriptions)))
	return p.Similarity(ctx, req)
}

// Similarity ranks req's descriptions (or its catalog's products) for each
// of its queries.
func (p *Processor) Similarity(ctx context.Context, req *contracts.Request) (*contracts.Response, error) {
	if req.Catalog != "" {
		if p.cfg.Catalogs == nil {
			return nil, &contracts.Error{Code: contracts.CodeNotFound, Field: "catalog",
				Message: "catalogs are not enabled on this processor (its NATS server has no JetStream); send product_descriptions instead"}
		}
		return p.cfg.Catalogs.Predict(ctx, req)
	}
	e, release, err := p.resolve(req.Model)
	if err != nil {
		return nil, err
	}
	defer release()
	// Queries are read with the model's query prompt, descriptions with its
	// document prompt (bge-small-en-v1.5: an instruction before each query;
	// all-MiniLM-L6-v2: none), so a text that is both is embedded twice
	// only when the prompts differ.
	texts, qi, di := distinctTexts(embedding.WithPrompt(e, embedding.Query, req.Query),
		embedding.WithPrompt(e, embedding.Document, req.ProductDescriptions))
	ins := make([]input, len(texts))
	for i, t := range texts {
		ins[i] = input{text: t}
	}
	// A distinct text is named by the first field that holds it.
	names := make([]string, len(texts))
	for i := len(di) - 1; i >= 0; i-- {
		names[di[i]] = fieldAt("product_descriptions", i)
	}
	for i := len(qi) - 1; i >= 0; i-- {
		names[qi[i]] = fieldAt("query", i)
	}
	res, err := embedInputs(ctx, e, ins, req.LongTextOptions, func(i int) string { return names[i] })
	if err != nil {
		return nil, err
	}
	resp := p.rank.rank(ctx, req, e.Info(), res.Vectors, qi, di)
	resp.Truncated = truncatedFields(res.truncated, qi, di)
	resp.Timing = res.Timing.Wire()
	return resp, nil
}

// Embed returns the embeddings of req's texts with their token counts (the
// ones the model read them with).
func (p *Processor) Embed(ctx context.Context, req *contracts.EmbedRequest) (*contracts.EmbedResponse, error) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int("simmatch.texts", len(req.Input)))
	e, release, err := p.resolve(req.Model)
	if err != nil {
		return nil, err
	}
	defer release()
	var ins []input
	if req.InputIDs != nil {
		if ins, err = idInputs(e, *req.InputIDs, "input"); err != nil {
			return nil, err
		}
	} else {
		for _, t := range embedding.WithPrompt(e, req.InputType, req.Input) {
			ins = append(ins, input{text: t})
		}
	}
	res, err := embedInputs(ctx, e, ins, req.LongTextOptions, func(i int) string {
		if req.InputIDs != nil && req.InputIDs.Flat {
			return "input"
		}
		return fieldAt("input", i)
	})
	if err != nil {
		return nil, err
	}
	resp := &contracts.EmbedResponse{Embeddings: res.Vectors, Tokens: res.Tokens, Model: e.Info(), RequestID: req.RequestID,
		Truncated: res.truncated, Chunked: res.chunked}
	resp.Timing = res.Timing.Wire()
	return resp, nil
}

// resolve picks the Embedder of the model a request names and holds it
// until release; a model that is not served is not_found on field model.
func (p *Processor) resolve(model string) (Embedder, func(), error) {
	if p.cfg.Models != nil {
		e, release, err := p.cfg.Models.Resolve(model)
		if ce := contracts.AsError(err); err != nil && ce.Code == contracts.CodeNotFound && ce.Field == "" && model != "" {
			c := *ce
			c.Field = "model"
			return nil, nil, &c
		}
		return e, release, err
	}
	e := p.cfg.Embedder
	if info := e.Info(); model != "" && model != info.Name && model != contracts.ModelRef(info.Name, info.Version) {
		return nil, nil, &contracts.Error{Code: contracts.CodeNotFound, Field: "model",
			Message: fmt.Sprintf("model %q is not served; available: %s", model, contracts.ModelRef(info.Name, info.Version))}
	}
	return e, func() {}, nil
}

// embedTexts embeds texts with e, one vector and token count per text.
func embedTexts(ctx context.Context, e Embedder, texts []string) (embedding.Result, error) {
	res, err := e.Embed(ctx, texts)
	if err != nil {
		return embedding.Result{}, embedError(ctx, err)
	}
	if len(res.Vectors) != len(texts) || len(res.Tokens) != len(texts) {
		return embedding.Result{}, contracts.Errorf(contracts.CodeModelError, "model returned %d embeddings and %d token counts for %d texts", len(res.Vectors), len(res.Tokens), len(texts))
	}
	return res, nil
}

// embedError maps an Embedder error to the wire: simmatch errors (the
// scheduler's overloaded) pass as they are, the end of the request's context
// is left to the pipeline (cancelled or timeout), anything else is a model
// error.
func embedError(ctx context.Context, err error) error {
	var e *contracts.Error
	if errors.As(err, &e) || ctx.Err() != nil {
		return err
	}
	return contracts.Errorf(contracts.CodeModelError, "embed texts: %v", err)
}

// distinctTexts lists every distinct text of queries and descriptions once,
// with the position of each query (qi) and description (di) in that list.
func distinctTexts(queries, descriptions []string) (texts []string, qi, di []int) {
	texts = make([]string, 0, len(queries)+len(descriptions))
	pos := make(map[string]int, cap(texts))
	at := func(t string) int {
		if i, ok := pos[t]; ok {
			return i
		}
		pos[t] = len(texts)
		texts = append(texts, t)
		return len(texts) - 1
	}
	qi = make([]int, len(queries))
	for i, q := range queries {
		qi[i] = at(q)
	}
	di = make([]int, len(descriptions))
	for i, d := range descriptions {
		di[i] = at(d)
	}
	return texts, qi, di
}

// truncatedFields maps the distinct texts read truncated to the queries
// and descriptions that hold them; nil when none was.
func truncatedFields(truncated, qi, di []int) *contracts.Truncated {
	if len(truncated) == 0 {
		return nil
	}
	cut := make(map[int]bool, len(truncated))
	for _, i := range truncated {
		cut[i] = true
	}
	t := &contracts.Truncated{}
	for i, k := range qi {
		if cut[k] {
			t.Query = append(t.Query, i)
		}
	}
	for i, k := range di {
		if cut[k] {
			t.ProductDescriptions = append(t.ProductDescriptions, i)
		}
	}
	return t
}
