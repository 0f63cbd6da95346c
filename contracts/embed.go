package contracts

import (
	"context"
	"errors"
	"fmt"
)

// SubjectEmbed is the NATS subject processors serve embedding requests on.
const SubjectEmbed = "simmatch.embed"

// EmbedRequest asks for the embeddings of texts.
type EmbedRequest struct {
	// Input holds the texts; on the wire a single string or a list.
	Input Queries `json:"input,omitempty"`
	// InputIDs holds token id sequences instead of texts (exactly one of
	// Input and InputIDs): the model's ids, as /tokenize gives them, with or
	// without the model's special tokens (added when absent). An id outside
	// the vocabulary is refused naming it (input[i][j]).
	InputIDs *TokenIDs `json:"input_ids,omitempty"`
	// LongText says what happens to inputs longer than the model's window.
	LongTextOptions
	// RequestID is echoed in the response and in logs.
	RequestID string `json:"request_id,omitempty"`
	// Model names the model to embed with, "name" (its default version) or
	// "name@version", as for a similarity Request; empty means the default.
	Model string `json:"model,omitempty"`
	// InputType says what the texts are to the model: InputQuery (searches)
	// or InputDocument (what is searched); empty is neither. A model whose
	// configuration has a prompt for the kind reads each text after it
	// (bge-small-en-v1.5's queries); for a model without prompts
	// (all-MiniLM-L6-v2) it changes nothing.
	InputType string `json:"input_type,omitempty"`
}

// The input types of an EmbedRequest.
const (
	InputQuery    = "query"
	InputDocument = "document"
)

// EmbedResponse holds one embedding per input text, in request order.
type EmbedResponse struct {
	// Embeddings are the model's output vectors (L2-normalized when the
	// model's pipeline normalizes, as all-MiniLM-L6-v2's does).
	Embeddings [][]float32 `json:"embeddings"`
	// Tokens is the number of tokens the model read for each input, special
	// tokens included, after truncation at the model's max_seq_length.
	Tokens []int `json:"tokens"`
	// Model identifies the model that computed the embeddings.
	Model ModelInfo `json:"model"`
	// RequestID echoes the request's id.
	RequestID string `json:"request_id,omitempty"`
	// Truncated lists the indexes of the inputs the model read truncated.
	Truncated []int `json:"truncated,omitempty"`
	// Chunked lists the indexes of the inputs embedded in windows (LongTextChunk).
	Chunked []int `json:"chunked,omitempty"`
	Timed
}

// MaxEmbedInputs is the most texts one embed request may hold: the larger of
// lim's per-request list limits, so an embed request never asks more of a
// processor than a /predict request may.
func (lim Limits) MaxEmbedInputs() int {
	return max(lim.MaxQueries, lim.MaxDescriptions)
}

// DecodeEmbedRequest decodes and validates a JSON embed request. Every error
// is an *Error naming the field and, where one applies, the limit.
func DecodeEmbedRequest(data []byte, lim Limits) (*EmbedRequest, error) {
	return decodeValid(data, lim.MaxBodyBytes, "the limit", func(err error) *Error {
		e := decodeError(err)
		if e.Field == "query" {
			e = FieldError("input", 0, "%s", errWantStrings)
		}
		return e
	}, func(r *EmbedRequest) error { return r.Validate(lim) })
}

// Validate checks r against lim: a non-empty list of at most
// lim.MaxEmbedInputs() texts, each within lim.MaxTextChars.
func (r *EmbedRequest) Validate(lim Limits) error {
	if r.InputIDs != nil {
		if len(r.Input) > 0 {
			return FieldError("input_ids", 0, "give either input or input_ids, not both")
		}
		if err := r.InputIDs.check("input", lim.MaxEmbedInputs()); err != nil {
			return err
		}
		if err := checkCommon(r.RequestID, r.Model, "input_type", r.InputType); err != nil {
			return err
		}
		return r.LongTextOptions.Validate()
	}
	if len(r.Input) == 0 {
		return FieldError("input", 0, "required: a non-empty string or list of strings")
	}
	if n := lim.MaxEmbedInputs(); n > 0 && len(r.Input) > n {
		return FieldError("input", n, "has %d texts; the limit is %d", len(r.Input), n)
	}
	if err := checkTexts("input", r.Input, lim); err != nil {
		return err
	}
	if len(r.RequestID) > 128 {
		return FieldError("request_id", 128, "is %d bytes; the limit is 128", len(r.RequestID))
	}
	if r.Model != "" {
		if _, _, err := ParseModelRef(r.Model); err != nil {
			return FieldError("model", 0, "%v", err)
		}
	}
	switch r.InputType {
	case "", InputQuery, InputDocument:
	default:
		return FieldError("input_type", 0, "want %q or %q (or leave it out), got %q", InputQuery, InputDocument, r.InputType)
	}
	return r.LongTextOptions.Validate()
}

// Embed sends req to a processor on SubjectEmbed and waits for the
// embeddings until ctx's deadline (or the client's timeout), as Match does.
func (c *Client) Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error) {
	return do[EmbedResponse](ctx, c, SubjectEmbed, req, req.RequestID)
}

// EmbedSplitFactor bounds splitting: an embed request of more texts than
// Limits.MaxEmbedInputs (the per-call limit, what one processor call may
// hold) is split into calls of at most that many texts, up to
// Limits.MaxEmbedTotal texts in all; more are refused with 422 naming
// "input" and that ceiling.
const EmbedSplitFactor = 8

// embedSplitParallel is how many parts of a split request are in flight at once.
const embedSplitParallel = 4

// MaxEmbedTotal is the ceiling of texts one embed request may hold when its
// sender splits it (Client.EmbedSplit): EmbedSplitFactor times
// MaxEmbedInputs (8 × 1024 = 8192 with DefaultLimits).
func (lim Limits) MaxEmbedTotal() int { return EmbedSplitFactor * lim.MaxEmbedInputs() }

// ValidateSplit checks r as Validate does, but allows up to
// lim.MaxEmbedTotal() texts: what a sender that splits with EmbedSplit
// accepts. Token id arrays are not split: they keep the per-call limit.
func (r *EmbedRequest) ValidateSplit(lim Limits) error {
	if r.InputIDs != nil || len(r.Input) <= lim.MaxEmbedInputs() || lim.MaxEmbedInputs() <= 0 {
		return r.Validate(lim)
	}
	if n, ceiling := len(r.Input), lim.MaxEmbedTotal(); n > ceiling {
		return FieldError("input", ceiling, "has %d texts; the ceiling is %d (requests over %d texts are split into calls of %d, up to %d texts)",
			n, ceiling, lim.MaxEmbedInputs(), lim.MaxEmbedInputs(), ceiling)
	}
	wide := lim
	wide.MaxQueries, wide.MaxDescriptions = 0, lim.MaxEmbedTotal()
	return r.Validate(wide)
}

// EmbedSplit embeds req's texts in calls of at most perCall texts (at most
// four in flight) and joins the answers in request order: the indexes of
// Truncated and Chunked are the request's. A request within perCall is one
// Embed call. Every part must be answered by the same model version; a
// default switched between parts fails with a conflict to retry.
func (c *Client) EmbedSplit(ctx context.Context, req *EmbedRequest, perCall int) (*EmbedResponse, error) {
	if perCall <= 0 || req.InputIDs != nil || len(req.Input) <= perCall {
		return c.Embed(ctx, req)
	}
	nparts := (len(req.Input) + perCall - 1) / perCall
	parts := make([]*EmbedResponse, nparts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, embedSplitParallel)
	errs := make(chan error, nparts)
	for i := range nparts {
		part := *req
		part.Input = req.Input[i*perCall : min((i+1)*perCall, len(req.Input))]
		if req.RequestID != "" {
			part.RequestID = fmt.Sprintf("%s.%d", req.RequestID, i)
		}
		go func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			defer func() { <-sem }()
			resp, err := c.Embed(ctx, &part)
			if err == nil && len(resp.Embeddings) != len(part.Input) {
				err = Errorf(CodeInternal, "processor returned %d embeddings for %d texts", len(resp.Embeddings), len(part.Input))
			}
			parts[i] = resp
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range nparts {
		if err := <-errs; err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	out := &EmbedResponse{Model: parts[0].Model, RequestID: req.RequestID, Timed: parts[0].Timed,
		Embeddings: make([][]float32, 0, len(req.Input)), Tokens: make([]int, 0, len(req.Input))}
	for i, p := range parts {
		if p.Model != out.Model {
			return nil, Errorf(CodeConflict, "the model changed while the request was embedded in parts (%s, then %s); send it again",
				ModelRef(out.Model.Name, out.Model.Version), ModelRef(p.Model.Name, p.Model.Version))
		}
		off := i * perCall
		out.Embeddings = append(out.Embeddings, p.Embeddings...)
		out.Tokens = append(out.Tokens, p.Tokens...)
		for _, t := range p.Truncated {
			out.Truncated = append(out.Truncated, off+t)
		}
		for _, t := range p.Chunked {
			out.Chunked = append(out.Chunked, off+t)
		}
	}
	return out, nil
}
