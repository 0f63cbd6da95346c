package contracts

import (
	"context"
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
