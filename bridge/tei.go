package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// interfaceRoutes adds the routes of the interfaces people already use:
// OpenAI's embeddings and models, TEI's embed and similarity.
func (s *Server) interfaceRoutes(r chi.Router) {
	r.Post("/v1/embeddings", s.embeddings)
	r.Get("/v1/models", s.models)
	r.Post("/embed", s.teiEmbed)
	r.Post("/similarity", s.teiSimilarity)
}

// teiEmbedRequest is Hugging Face TEI's POST /embed body.
type teiEmbedRequest struct {
	Inputs              contracts.Queries `json:"inputs"`
	Normalize           *bool             `json:"normalize"`
	Truncate            *bool             `json:"truncate"`
	TruncationDirection *string           `json:"truncation_direction"`
	PromptName          *string           `json:"prompt_name"`
}

// teiEmbed answers POST /embed in TEI's shape: an array of embeddings.
func (s *Server) teiEmbed(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := s.readBody(w, r, writeError)
	if !ok {
		return
	}
	var in teiEmbedRequest
	if e := decodeStrict(body, &in, "inputs, normalize, truncate, truncation_direction, prompt_name"); e != nil {
		if e.Field == "inputs" {
			e = contracts.FieldError("inputs", 0, "want a string or a list of strings")
		}
		writeError(w, r, e)
		return
	}
	switch {
	case len(in.Inputs) == 0:
		writeError(w, r, contracts.FieldError("inputs", 0, "required: a non-empty string or list of strings"))
		return
	case in.Normalize != nil && !*in.Normalize:
		// The model's own pipeline ends in L2 normalization.
		writeError(w, r, contracts.FieldError("normalize", 0, "false is not supported: this model's embeddings are always L2-normalized"))
		return
	case in.TruncationDirection != nil && !strings.EqualFold(*in.TruncationDirection, "right"):
		writeError(w, r, contracts.FieldError("truncation_direction", 0, "only \"right\" is supported, got %q", *in.TruncationDirection))
		return
	case in.PromptName != nil:
		writeError(w, r, contracts.FieldError("prompt_name", 0, "this model has no prompts; omit prompt_name"))
		return
	}
	resp, ok := s.embed(w, r, in.Inputs, renamedWriter("input", "inputs"))
	if !ok {
		return
	}
	setTiming(w, start, resp.Timing)
	writeJSON(w, http.StatusOK, resp.Embeddings)
}

// renamedWriter answers errors with field names under prefix from renamed to
// to, so errors name the fields of the request the caller sent.
func renamedWriter(from, to string) func(http.ResponseWriter, *http.Request, *contracts.Error) {
	return func(w http.ResponseWriter, r *http.Request, e *contracts.Error) {
		if strings.HasPrefix(e.Field, from) {
			c := *e
			c.Field = to + strings.TrimPrefix(e.Field, from)
			c.Message = strings.Replace(e.Message, e.Field, c.Field, 1)
			e = &c
		}
		writeError(w, r, e)
	}
}

// teiSimilarityRequest is TEI's POST /similarity body.
type teiSimilarityRequest struct {
	Inputs *struct {
		SourceSentence string   `json:"source_sentence"`
		Sentences      []string `json:"sentences"`
	} `json:"inputs"`
}

// teiSimilarity answers POST /similarity in TEI's shape: one cosine score
// per sentence, in the sentences' order. It runs as a /predict request with
// the source sentence as the one query.
func (s *Server) teiSimilarity(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := s.readBody(w, r, writeError)
	if !ok {
		return
	}
	var in teiSimilarityRequest
	if e := decodeStrict(body, &in, "inputs"); e != nil {
		writeError(w, r, e)
		return
	}
	if in.Inputs == nil {
		writeError(w, r, contracts.FieldError("inputs", 0, "required: {\"source_sentence\": ..., \"sentences\": [...]}"))
		return
	}
	req := &contracts.Request{Query: contracts.Queries{in.Inputs.SourceSentence}, ProductDescriptions: in.Inputs.Sentences,
		RequestID: infoFrom(r.Context()).id}
	rename := func(e *contracts.Error) *contracts.Error {
		c := *e
		switch {
		case strings.HasPrefix(e.Field, "query"):
			c.Field = "inputs.source_sentence"
		case strings.HasPrefix(e.Field, "product_descriptions"):
			c.Field = "inputs.sentences" + strings.TrimPrefix(e.Field, "product_descriptions")
		default:
			return e
		}
		c.Message = strings.Replace(e.Message, e.Field, c.Field, 1)
		return &c
	}
	if err := req.Validate(s.cfg.Limits); err != nil {
		writeError(w, r, rename(contracts.AsError(err)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Match(ctx, req)
	if err != nil {
		if r.Context().Err() != nil {
			clientGone(w)
			return
		}
		writeError(w, r, rename(contracts.AsError(err)))
		return
	}
	scores := make([]float64, len(in.Inputs.Sentences))
	for i := range scores {
		scores[i] = math.NaN()
	}
	if len(resp.Results) == 1 {
		for _, m := range resp.Results[0].Matches {
			if m.Index >= 0 && m.Index < len(scores) {
				scores[m.Index] = m.Score
			}
		}
	}
	for _, sc := range scores {
		if math.IsNaN(sc) {
			writeError(w, r, contracts.Errorf(contracts.CodeInternal, "processor did not score every sentence"))
			return
		}
	}
	setTiming(w, start, resp.Timing)
	writeJSON(w, http.StatusOK, scores)
}

// decodeStrict decodes one JSON object into v, refusing unknown fields with
// an error that lists the known ones.
func decodeStrict(body []byte, v any, known string) *contracts.Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typ *json.UnmarshalTypeError
		switch {
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return contracts.FieldError(f, 0, "unknown field; known fields are %s", known)
		case errors.As(err, &typ) && typ.Field != "":
			return contracts.FieldError(typ.Field, 0, "want %s, got %s", typ.Type, typ.Value)
		case strings.Contains(err.Error(), "want a string or a list of strings"):
			return contracts.FieldError("inputs", 0, "want a string or a list of strings")
		}
		_, perr := contracts.DecodeRequest(body, contracts.Limits{})
		if e := contracts.AsError(perr); e != nil && e.Code == contracts.CodeMalformedJSON {
			return e
		}
		return contracts.Errorf(contracts.CodeMalformedJSON, "request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return contracts.Errorf(contracts.CodeMalformedJSON, "request body: unexpected data after the JSON object")
	}
	return nil
}
