package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Request is a v1 similarity request. Its JSON stays compatible with the
// original Python service: {"query": [...], "product_descriptions": [...]}.
type Request struct {
	// Query holds the query texts; on the wire a single string or a list.
	Query Queries `json:"query"`
	// ProductDescriptions is the catalog to rank for every query.
	ProductDescriptions []string `json:"product_descriptions,omitempty"`
	// Catalog names a stored catalog to rank instead of ProductDescriptions
	// (exactly one of the two); matches then carry the product's id, and
	// TopK defaults to DefaultCatalogTopK.
	Catalog string `json:"catalog,omitempty"`
	// TopK keeps the K best matches per query; nil keeps all.
	TopK *int `json:"top_k,omitempty"`
	// Threshold drops matches that score below it; nil keeps all.
	Threshold *float64 `json:"threshold,omitempty"`
	// RequestID is echoed in the response and in logs; the bridge fills it when empty.
	RequestID string `json:"request_id,omitempty"`
	// Model names the model that serves the request, "name" (its default
	// version) or "name@version"; empty means the default model.
	Model string `json:"model,omitempty"`
	// LongText says what happens to texts longer than the model's window
	// (inline texts; a catalog's products were embedded when stored).
	LongTextOptions
	// SearchOptions apply when the request names a catalog: modes, filters,
	// pages, counts, facets, groups, explanations.
	SearchOptions
}

// Queries is a list of query texts that also decodes from a single JSON string.
type Queries []string

// UnmarshalJSON accepts a string or a list of strings.
func (q *Queries) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*q = Queries{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errWantStrings
	}
	*q = l
	return nil
}

var errWantStrings = errors.New("want a string or a list of strings")

// Response is a v1 similarity response.
type Response struct {
	// Results has one entry per query, in request order.
	Results []Result `json:"results"`
	// Model identifies the model that computed the scores.
	Model ModelInfo `json:"model"`
	// RequestID echoes the request's id.
	RequestID string `json:"request_id,omitempty"`
	// Truncated lists the texts the model read truncated (nil: none).
	Truncated *Truncated `json:"truncated,omitempty"`
	Timed
}

// Result holds the ranked matches of one query.
type Result struct {
	Query string `json:"query"`
	// Matches are sorted by score, highest first; equal scores keep catalog order.
	Matches []Match `json:"matches"`
	// Total and Facets answer a catalog request's count and facets (CatalogResult).
	Total  *int                      `json:"total,omitempty"`
	Facets map[string]map[string]int `json:"facets,omitempty"`
}

// Match is one product description and its cosine similarity to the query.
type Match struct {
	// Index is the description's position in the request's
	// product_descriptions; for a catalog, the match's rank (0 is the best).
	Index       int     `json:"index"`
	Description string  `json:"description"`
	Score       float64 `json:"score"`
	// ID is the product's id when the request named a catalog.
	ID string `json:"id,omitempty"`
	// Explain and GroupSize answer a catalog request's explain and group_by (CatalogMatch).
	Explain   *Explain `json:"explain,omitempty"`
	GroupSize int      `json:"group_size,omitempty"`
}

// ModelInfo names the model behind a response.
type ModelInfo struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Dimensions int    `json:"dimensions"`
}

// Limits bound what one request may hold. Both the bridge and the processors
// enforce them, so a direct NATS client cannot bypass them.
type Limits struct {
	MaxQueries      int // texts in query
	MaxDescriptions int // texts in product_descriptions
	MaxTextChars    int // characters (Unicode code points) per text
	MaxBodyBytes    int // encoded request size
}

// DefaultLimits are the limits used when none are configured.
var DefaultLimits = Limits{
	MaxQueries:      32,
	MaxDescriptions: 1024,
	MaxTextChars:    8192,
	MaxBodyBytes:    1 << 20,
}

// DecodeRequest decodes and validates a JSON request. Every error is an
// *Error naming the field and, where one applies, the limit.
func DecodeRequest(data []byte, lim Limits) (*Request, error) {
	return decodeValid(data, lim.MaxBodyBytes, "the limit", decodeError, func(r *Request) error { return r.Validate(lim) })
}

// decodeValid decodes data into a new T with decodeStrict, then validates it:
// the body of every typed Decode*Request.
func decodeValid[T any](data []byte, maxBytes int, limitName string, decErr func(error) *Error, validate func(*T) error) (*T, error) {
	var r T
	if e := decodeStrict(data, maxBytes, limitName, &r, decErr); e != nil {
		return nil, e
	}
	if err := validate(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeStrict decodes the JSON object in data into v, refusing a body over
// maxBytes (0: no limit; limitName names it in the message), invalid UTF-8,
// unknown fields and anything after the object. decErr maps the decoder's
// errors to the request's fields (decodeError, or a variant of it).
func decodeStrict(data []byte, maxBytes int, limitName string, v any, decErr func(error) *Error) *Error {
	if maxBytes > 0 && len(data) > maxBytes {
		return &Error{Code: CodePayloadTooLarge, Limit: maxBytes,
			Message: fmt.Sprintf("request body is %d bytes; %s is %d", len(data), limitName, maxBytes)}
	}
	// encoding/json silently replaces invalid UTF-8 with U+FFFD, which would
	// rank mangled text instead of telling the caller; JSON must be UTF-8.
	if !utf8.Valid(data) {
		return Errorf(CodeMalformedJSON, "request body is not valid UTF-8 (at byte %d)", invalidUTF8Offset(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(CodeMalformedJSON, "request body: unexpected data after the JSON object")
	}
	return nil
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

func decodeError(err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Errorf(CodeMalformedJSON, "request body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
	case errors.Is(err, io.EOF):
		return Errorf(CodeMalformedJSON, "request body is empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeMalformedJSON, "request body is not valid JSON: unexpected end of input")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return Errorf(CodeInvalidRequest, "request body: want a JSON object, got %s", typ.Value)
		}
		return FieldError(field, 0, "want %s, got %s", wantType(field), typ.Value)
	case errors.Is(err, errWantStrings) || strings.Contains(err.Error(), errWantStrings.Error()):
		return FieldError("query", 0, "%s", errWantStrings)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return FieldError(f, 0, "unknown field; known fields are query, product_descriptions, catalog, top_k, threshold, request_id, model, truncate, long_text, and with catalog mode, fusion, rrf_k, alpha, candidates, explain, filter, offset, count, facets, group_by")
	}
	return Errorf(CodeMalformedJSON, "request body: %v", err)
}

func wantType(field string) string {
	switch {
	case strings.HasPrefix(field, "product_descriptions"):
		return "a list of strings"
	case field == "top_k", field == "offset", field == "rrf_k", field == "candidates":
		return "an integer"
	case field == "threshold", field == "alpha":
		return "a number"
	case field == "explain", field == "count":
		return "true or false"
	case strings.HasPrefix(field, "facets"):
		return "a list of strings"
	case strings.HasPrefix(field, "filter"):
		return "an object of conditions"
	case field == "request_id", field == "model", field == "mode", field == "fusion", field == "group_by":
		return "a string"
	}
	return "a string or a list of strings"
}

// Validate checks r against lim and the schema rules that JSON types cannot express.
func (r *Request) Validate(lim Limits) error {
	if len(r.Query) == 0 {
		return FieldError("query", 0, "required: a non-empty string or list of strings")
	}
	if lim.MaxQueries > 0 && len(r.Query) > lim.MaxQueries {
		return FieldError("query", lim.MaxQueries, "has %d texts; the limit is %d", len(r.Query), lim.MaxQueries)
	}
	if r.Catalog != "" {
		if len(r.ProductDescriptions) > 0 {
			return FieldError("catalog", 0, "give either catalog or product_descriptions, not both")
		}
		if err := ValidateCatalogName(r.Catalog); err != nil {
			return err
		}
		if err := checkTopK(r.TopK, DefaultCatalogLimits); err != nil {
			return err
		}
		if err := r.SearchOptions.Validate(derefOr(r.TopK, DefaultCatalogTopK), r.Threshold, DefaultCatalogLimits); err != nil {
			return err
		}
	} else if !r.SearchOptions.IsZero() {
		return FieldError(firstOption(&r.SearchOptions), 0, "is a catalog search option: name a catalog in catalog, or leave it out")
	} else if len(r.ProductDescriptions) == 0 {
		return FieldError("product_descriptions", 0, "required: a non-empty list of strings (or a catalog name in catalog)")
	}
	if lim.MaxDescriptions > 0 && len(r.ProductDescriptions) > lim.MaxDescriptions {
		return FieldError("product_descriptions", lim.MaxDescriptions, "has %d texts; the limit is %d", len(r.ProductDescriptions), lim.MaxDescriptions)
	}
	if err := checkTexts("query", r.Query, lim); err != nil {
		return err
	}
	if err := checkTexts("product_descriptions", r.ProductDescriptions, lim); err != nil {
		return err
	}
	if r.TopK != nil && *r.TopK < 1 {
		return FieldError("top_k", 0, "must be at least 1 (omit it to get every match), got %d", *r.TopK)
	}
	if r.Threshold != nil && (math.IsNaN(*r.Threshold) || *r.Threshold < -1 || *r.Threshold > 1) {
		return FieldError("threshold", 0, "must be a cosine similarity between -1 and 1, got %v", *r.Threshold)
	}
	if len(r.RequestID) > 128 {
		return FieldError("request_id", 128, "is %d bytes; the limit is 128", len(r.RequestID))
	}
	if r.Model != "" {
		if _, _, err := ParseModelRef(r.Model); err != nil {
			return FieldError("model", 0, "%v", err)
		}
	}
	if r.Catalog != "" && (r.LongTextOptions != LongTextOptions{}) {
		f := "truncate"
		if r.LongText != "" {
			f = "long_text"
		}
		return FieldError(f, 0, "applies to inline texts: a catalog's products were embedded when stored")
	}
	return r.LongTextOptions.Validate()
}

func checkTexts(field string, texts []string, lim Limits) error {
	for i, t := range texts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !utf8.ValidString(t) {
			return FieldError(f, 0, "is not valid UTF-8")
		}
		if strings.TrimSpace(t) == "" {
			return FieldError(f, 0, "must not be empty or only whitespace")
		}
		if lim.MaxTextChars > 0 {
			if n := utf8.RuneCountInString(t); n > lim.MaxTextChars {
				return FieldError(f, lim.MaxTextChars, "has %d characters; the limit is %d", n, lim.MaxTextChars)
			}
		}
	}
	return nil
}
