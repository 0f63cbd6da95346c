package contracts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// The NATS subjects of tokenization (TEI's /tokenize and /decode).
const (
	SubjectTokenize = "simmatch.tokenize"
	SubjectDecode   = "simmatch.decode"
)

// TokenizeRequest asks for the tokens the model reads for each text.
type TokenizeRequest struct {
	// Inputs holds the texts; on the wire a single string or a list.
	Inputs Queries `json:"inputs"`
	// AddSpecialTokens adds the model's special tokens ([CLS], [SEP]); nil means true.
	AddSpecialTokens *bool `json:"add_special_tokens,omitempty"`
	// PromptName prepends the model's prompt of that kind (InputQuery,
	// InputDocument), as an embed request's InputType does; the offsets
	// then refer to the prompted text.
	PromptName string `json:"prompt_name,omitempty"`
	// Model names the model ("name" or "name@version"); empty: the default.
	Model string `json:"model,omitempty"`
	// RequestID is echoed in the response and in logs.
	RequestID string `json:"request_id,omitempty"`
}

// Token is one token of a text, in TEI's shape: its id, its text (the slice
// of the input it covers; a special token's own text), whether the model
// adds it, and its UTF-8 byte offsets [start, stop) in the input (null for
// a special token).
type Token struct {
	ID      int64  `json:"id"`
	Text    string `json:"text"`
	Special bool   `json:"special"`
	Start   *int   `json:"start"`
	Stop    *int   `json:"stop"`
}

// TokenizeResponse holds each input's tokens, never truncated, in order.
type TokenizeResponse struct {
	Tokens [][]Token `json:"tokens"`
	// MaxTokens is the model's window: a text with more tokens is truncated
	// (or refused, or chunked) when embedded.
	MaxTokens int       `json:"max_tokens"`
	Model     ModelInfo `json:"model"`
	RequestID string    `json:"request_id,omitempty"`
	Timed
}

// DecodeTokenizeRequest decodes and validates a JSON tokenize request.
func DecodeTokenizeRequest(data []byte, lim Limits) (*TokenizeRequest, error) {
	return decodeValid(data, lim.MaxBodyBytes, "the limit", func(err error) *Error {
		e := decodeError(err)
		if e.Field == "query" {
			e = FieldError("inputs", 0, "%s", errWantStrings)
		}
		return e
	}, func(r *TokenizeRequest) error { return r.Validate(lim) })
}

// Validate checks r against lim, as an embed request's texts.
func (r *TokenizeRequest) Validate(lim Limits) error {
	if len(r.Inputs) == 0 {
		return FieldError("inputs", 0, "required: a non-empty string or list of strings")
	}
	if n := lim.MaxEmbedInputs(); n > 0 && len(r.Inputs) > n {
		return FieldError("inputs", n, "has %d texts; the limit is %d", len(r.Inputs), n)
	}
	if err := checkTexts("inputs", r.Inputs, lim); err != nil {
		return err
	}
	return checkCommon(r.RequestID, r.Model, "prompt_name", r.PromptName)
}

// checkCommon checks the request id, model and input type fields every
// embedding-side request has.
func checkCommon(requestID, model, typeField, inputType string) error {
	if len(requestID) > 128 {
		return FieldError("request_id", 128, "is %d bytes; the limit is 128", len(requestID))
	}
	if model != "" {
		if _, _, err := ParseModelRef(model); err != nil {
			return FieldError("model", 0, "%v", err)
		}
	}
	switch inputType {
	case "", InputQuery, InputDocument:
	default:
		return FieldError(typeField, 0, "want %q or %q (or leave it out), got %q", InputQuery, InputDocument, inputType)
	}
	return nil
}

// TokenIDs is a list of token id sequences that also decodes from a single
// sequence (a list of integers), as TEI's /decode and OpenAI's embeddings
// input take them; it encodes in the shape it was decoded from.
type TokenIDs struct {
	Seqs [][]int64
	// Flat: it came as one list of integers (errors name "field[j]").
	Flat bool
}

// UnmarshalJSON accepts a list of integers or a list of lists of integers.
func (t *TokenIDs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var flat []int64
	if err := json.Unmarshal(b, &flat); err == nil {
		*t = TokenIDs{Seqs: [][]int64{flat}, Flat: true}
		return nil
	}
	var seqs [][]int64
	if err := json.Unmarshal(b, &seqs); err != nil {
		return errWantIDs
	}
	*t = TokenIDs{Seqs: seqs}
	return nil
}

// MarshalJSON writes t in the shape it came in.
func (t TokenIDs) MarshalJSON() ([]byte, error) {
	if t.Flat && len(t.Seqs) == 1 {
		return json.Marshal(t.Seqs[0])
	}
	return json.Marshal(t.Seqs)
}

// Field names id j of sequence i under field, as the caller sent it.
func (t TokenIDs) Field(field string, i, j int) string {
	if t.Flat {
		return fmt.Sprintf("%s[%d]", field, j)
	}
	return fmt.Sprintf("%s[%d][%d]", field, i, j)
}

var errWantIDs = errors.New("want a list of token ids or a list of lists of token ids")

// check validates t under field: at least one sequence, at most maxSeqs,
// none empty, no negative id. The ids' range is the model's to check.
func (t TokenIDs) check(field string, maxSeqs int) error {
	if len(t.Seqs) == 0 {
		return FieldError(field, 0, "required: a non-empty list of token ids or of lists of them")
	}
	if maxSeqs > 0 && len(t.Seqs) > maxSeqs {
		return FieldError(field, maxSeqs, "has %d sequences; the limit is %d", len(t.Seqs), maxSeqs)
	}
	for i, s := range t.Seqs {
		if len(s) == 0 {
			f := fmt.Sprintf("%s[%d]", field, i)
			if t.Flat {
				f = field
			}
			return FieldError(f, 0, "must not be empty")
		}
		for j, id := range s {
			if id < 0 {
				return FieldError(t.Field(field, i, j), 0, "token id %d is negative", id)
			}
		}
	}
	return nil
}

// DecodeIDsRequest asks for the texts of token id sequences (TEI's /decode).
type DecodeIDsRequest struct {
	IDs TokenIDs `json:"ids"`
	// SkipSpecialTokens leaves out the model's special tokens; nil means true (TEI's default).
	SkipSpecialTokens *bool  `json:"skip_special_tokens,omitempty"`
	Model             string `json:"model,omitempty"`
	RequestID         string `json:"request_id,omitempty"`
}

// DecodeIDsResponse holds one text per sequence, in order.
type DecodeIDsResponse struct {
	Texts     []string  `json:"texts"`
	Model     ModelInfo `json:"model"`
	RequestID string    `json:"request_id,omitempty"`
	Timed
}

// DecodeDecodeIDsRequest decodes and validates a JSON decode request.
func DecodeDecodeIDsRequest(data []byte, lim Limits) (*DecodeIDsRequest, error) {
	return decodeValid(data, lim.MaxBodyBytes, "the limit", func(err error) *Error {
		e := decodeError(err)
		if errors.Is(err, errWantIDs) || e.Field == "ids" {
			e = FieldError("ids", 0, "%s", errWantIDs)
		}
		return e
	}, func(r *DecodeIDsRequest) error { return r.Validate(lim) })
}

// Validate checks r against lim: at most lim.MaxEmbedInputs() sequences.
func (r *DecodeIDsRequest) Validate(lim Limits) error {
	if err := r.IDs.check("ids", lim.MaxEmbedInputs()); err != nil {
		return err
	}
	return checkCommon(r.RequestID, r.Model, "", "")
}

// Tokenize sends req to a processor on SubjectTokenize.
func (c *Client) Tokenize(ctx context.Context, req *TokenizeRequest) (*TokenizeResponse, error) {
	return do[TokenizeResponse](ctx, c, SubjectTokenize, req, req.RequestID)
}

// DecodeIDs sends req to a processor on SubjectDecode.
func (c *Client) DecodeIDs(ctx context.Context, req *DecodeIDsRequest) (*DecodeIDsResponse, error) {
	return do[DecodeIDsResponse](ctx, c, SubjectDecode, req, req.RequestID)
}
