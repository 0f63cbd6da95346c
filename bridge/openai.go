package bridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/simmatch/simmatch/contracts"
)

// OpenAI-compatible embeddings (POST /v1/embeddings). Requests and answers
// follow OpenAI's API so that its SDKs, and what is built on them, work
// unchanged with base_url pointing at the bridge.

// openAIEmbeddingsRequest is OpenAI's embeddings request body.
type openAIEmbeddingsRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
	// InputType is simmatch's extension (as in Voyage AI's embeddings API):
	// "query" or "document", so a model with a query prompt
	// (bge-small-en-v1.5) reads queries with it; omitted, no prompt.
	InputType string `json:"input_type"`
	// Truncate and LongText are simmatch's extensions, as on TEI's /embed:
	// false refuses inputs longer than the model's window; "chunk" embeds
	// them in windows.
	contracts.LongTextOptions
}

type openAIEmbedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

type openAIUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

type openAIEmbeddingsResponse struct {
	Object string            `json:"object"`
	Data   []openAIEmbedding `json:"data"`
	Model  string            `json:"model"`
	Usage  openAIUsage       `json:"usage"`
	// Truncated and Chunked are simmatch's: the indexes of the inputs read
	// truncated at the model's window, and of those embedded in windows.
	Truncated []int `json:"truncated,omitempty"`
	Chunked   []int `json:"chunked,omitempty"`
}

// openAIError is simmatch's error with the two fields OpenAI's SDKs read
// besides message and code: type (the error class) and param (the field).
type openAIError struct {
	*contracts.Error
	Type  string  `json:"type"`
	Param *string `json:"param"`
}

// writeOpenAIError answers e in simmatch's error model plus OpenAI's type
// and param, so OpenAI SDKs raise an exception that carries our message,
// code and field.
func writeOpenAIError(w http.ResponseWriter, r *http.Request, e *contracts.Error) {
	writeErrorWith(w, r, e, func(e *contracts.Error) []byte {
		oe := openAIError{Error: e, Type: openAIErrorType(e.Code.HTTPStatus())}
		if e.Field != "" {
			oe.Param = &e.Field
		}
		b, err := json.Marshal(struct {
			Error openAIError `json:"error"`
		}{oe})
		if err != nil { // cannot happen: strings and ints only
			return e.Marshal()
		}
		return b
	})
}

// openAIErrorType is OpenAI's error type for an HTTP status.
func openAIErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status < 500:
		return "invalid_request_error"
	}
	return "server_error"
}

// embeddings answers POST /v1/embeddings: a presenter of client.Embed.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	in, ok := decode[openAIEmbeddingsRequest](w, r, s.similarityLimit(), writeOpenAIError)
	if !ok {
		return
	}
	req, e := in.check()
	if e != nil {
		writeOpenAIError(w, r, e)
		return
	}
	// The processor resolves the model before any work: a name it does not
	// serve is not_found on field model. An organisation prefix
	// ("sentence-transformers/all-MiniLM-L6-v2") is dropped.
	req.Model = in.Model[strings.LastIndex(in.Model, "/")+1:]
	req.InputType, req.LongTextOptions = in.InputType, in.LongTextOptions
	s.embed(w, r, req, "input", func(_ http.Header, resp *contracts.EmbedResponse) (int, any, *contracts.Error) {
		if in.Dimensions != nil && *in.Dimensions != resp.Model.Dimensions {
			return 0, nil, contracts.FieldError("dimensions", 0,
				"%s makes %d-dimensional embeddings and cannot shorten them; omit dimensions or send %d",
				resp.Model.Name, resp.Model.Dimensions, resp.Model.Dimensions)
		}
		out := openAIEmbeddingsResponse{Object: "list", Model: resp.Model.Name, Data: make([]openAIEmbedding, len(resp.Embeddings)),
			Truncated: resp.Truncated, Chunked: resp.Chunked}
		for i, v := range resp.Embeddings {
			d := openAIEmbedding{Object: "embedding", Index: i, Embedding: v}
			if in.EncodingFormat == "base64" {
				d.Embedding = float32Base64(v)
			}
			out.Data[i] = d
		}
		for _, n := range resp.Tokens {
			out.Usage.PromptTokens += n
		}
		out.Usage.TotalTokens = out.Usage.PromptTokens
		return http.StatusOK, out, nil
	}, writeOpenAIError)
}

// embed relays req to a processor's embed endpoint and answers with present
// (errors with writeErr). Every door's embeddings come through here; the
// inputs read truncated are listed in X-Truncated-Inputs, named under field.
func (s *Server) embed(w http.ResponseWriter, r *http.Request, req *contracts.EmbedRequest, field string,
	present presenter[*contracts.EmbedResponse], writeErr errorWriter) {
	req.RequestID = infoFrom(r.Context()).id
	// Over the per-call limit, the texts are split into processor calls of
	// MaxEmbedInputs, up to the MaxEmbedTotal ceiling (contracts.EmbedSplit).
	if err := req.ValidateSplit(s.cfg.Limits); err != nil {
		writeErr(w, r, contracts.AsError(err))
		return
	}
	n := len(req.Input)
	if req.InputIDs != nil {
		n = len(req.InputIDs.Seqs)
	}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.EmbedResponse, error) {
		return s.client.EmbedSplit(ctx, req, embedPartSize(s.cfg.Limits.MaxEmbedInputs(), s.cfg.NATS.MaxPayload()))
	}, func(h http.Header, resp *contracts.EmbedResponse) (int, any, *contracts.Error) {
		if len(resp.Embeddings) != n {
			return 0, nil, contracts.Errorf(contracts.CodeInternal, "processor returned %d embeddings for %d texts", len(resp.Embeddings), n)
		}
		setTruncated(h, field, resp.Truncated)
		return present(h, resp)
	}, writeErr)
}

// check validates a decoded embeddings request and returns it as an embed
// request: its texts, or its token id arrays (a list of ints, or a list of
// lists, as OpenAI takes them).
func (in *openAIEmbeddingsRequest) check() (*contracts.EmbedRequest, *contracts.Error) {
	if in.Model == "" {
		return nil, contracts.FieldError("model", 0, "required: the model's name (GET /v1/models lists it)")
	}
	switch in.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, contracts.FieldError("encoding_format", 0, "want \"float\" or \"base64\", got %q", in.EncodingFormat)
	}
	if in.Dimensions != nil && *in.Dimensions < 1 {
		return nil, contracts.FieldError("dimensions", 0, "must be a positive integer, got %d", *in.Dimensions)
	}
	raw := bytes.TrimSpace(in.Input)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, contracts.FieldError("input", 0, "required: a string, a list of strings, or token ids (a list of integers or a list of lists)")
	}
	var q contracts.Queries
	if err := json.Unmarshal(raw, &q); err == nil {
		return &contracts.EmbedRequest{Input: q}, nil
	}
	var ids contracts.TokenIDs
	if err := json.Unmarshal(raw, &ids); err == nil {
		return &contracts.EmbedRequest{InputIDs: &ids}, nil
	}
	return nil, contracts.FieldError("input", 0, "want a string, a list of strings, or token ids (a list of integers or a list of lists of integers)")
}

// setTruncated lists the inputs read truncated in X-Truncated-Inputs, as
// field paths ("input[0],input[3]").
func setTruncated(h http.Header, field string, idx []int) {
	if len(idx) == 0 {
		return
	}
	names := make([]string, len(idx))
	for i, k := range idx {
		names[i] = field + "[" + strconv.Itoa(k) + "]"
	}
	h.Set(headerTruncated, strings.Join(names, ","))
}

// embedReplyBytesPerText is what one text costs in an embedding reply on
// NATS, as JSON: up to 14 bytes per float32 for models of up to 768
// dimensions, and the token count.
const embedReplyBytesPerText = 768*14 + 64

// embedPartSize is how many texts one processor call of a split embedding
// request carries: at most the per-call limit, and few enough that the
// reply fits in the NATS server's max_payload (a 1 MiB max_payload carries
// about 90 texts a call; a processor refuses a reply that does not fit).
func embedPartSize(perCall int, maxPayload int64) int {
	if maxPayload <= 0 {
		return perCall
	}
	fit := int((maxPayload - 64<<10) / embedReplyBytesPerText)
	return max(1, min(perCall, fit))
}

// headerTruncated names the inputs a model read truncated.
const headerTruncated = "X-Truncated-Inputs"

// float32Base64 encodes v as OpenAI does for encoding_format "base64": the
// little-endian IEEE 754 float32 bytes, in standard base64.
func float32Base64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}
