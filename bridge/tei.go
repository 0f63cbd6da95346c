package bridge

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// interfaceRoutes adds the routes of the interfaces people already use:
// OpenAI's embeddings and models, TEI's embed, similarity, tokenize and decode.
func (s *Server) interfaceRoutes(r chi.Router) {
	r.Post("/v1/embeddings", s.embeddings)
	r.Get("/v1/models", s.listModels)
	r.Post("/embed", s.teiEmbed)
	r.Post("/similarity", s.teiSimilarity)
	r.Post("/tokenize", s.teiTokenize)
	r.Post("/decode", s.teiDecode)
}

// teiEmbedRequest is Hugging Face TEI's POST /embed body.
type teiEmbedRequest struct {
	Inputs              contracts.Queries `json:"inputs"`
	Normalize           *bool             `json:"normalize"`
	Truncate            *bool             `json:"truncate"`
	TruncationDirection *string           `json:"truncation_direction"`
	PromptName          *string           `json:"prompt_name"`
	// LongText is simmatch's: "chunk" embeds inputs longer than the window in windows.
	LongText string `json:"long_text"`
}

// teiEmbed answers POST /embed in TEI's shape: an array of embeddings.
func (s *Server) teiEmbed(w http.ResponseWriter, r *http.Request) {
	in, ok := decode[teiEmbedRequest](w, r, s.similarityLimit(), writeError)
	if !ok {
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
	case in.PromptName != nil && *in.PromptName != contracts.InputQuery && *in.PromptName != contracts.InputDocument:
		writeError(w, r, contracts.FieldError("prompt_name", 0, "want %q or %q (the prompt names simmatch's models use), got %q",
			contracts.InputQuery, contracts.InputDocument, *in.PromptName))
		return
	}
	// prompt_name picks the model's prompt of that name, if it has one
	// (bge-small-en-v1.5: "query"); a model without it reads the texts as sent.
	var inputType string
	if in.PromptName != nil {
		inputType = *in.PromptName
	}
	req := &contracts.EmbedRequest{Input: in.Inputs, InputType: inputType,
		LongTextOptions: contracts.LongTextOptions{Truncate: in.Truncate, LongText: in.LongText}}
	s.embed(w, r, req, "inputs", func(_ http.Header, resp *contracts.EmbedResponse) (int, any, *contracts.Error) {
		return http.StatusOK, resp.Embeddings, nil
	}, renamedWriter("input", "inputs"))
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
	in, ok := decode[teiSimilarityRequest](w, r, s.similarityLimit(), writeError)
	if !ok {
		return
	}
	if in.Inputs == nil {
		writeError(w, r, contracts.FieldError("inputs", 0, "required: {\"source_sentence\": ..., \"sentences\": [...]}"))
		return
	}
	req := &contracts.Request{Query: contracts.Queries{in.Inputs.SourceSentence}, ProductDescriptions: in.Inputs.Sentences,
		RequestID: infoFrom(r.Context()).id}
	if err := req.Validate(s.cfg.Limits); err != nil {
		similarityErrors(w, r, contracts.AsError(err))
		return
	}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.Response, error) {
		return s.client.Match(ctx, req)
	}, func(h http.Header, resp *contracts.Response) (int, any, *contracts.Error) {
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
				return 0, nil, contracts.Errorf(contracts.CodeInternal, "processor did not score every sentence")
			}
		}
		if t := resp.Truncated; t != nil {
			var names []string
			if len(t.Query) > 0 {
				names = append(names, "inputs.source_sentence")
			}
			for _, i := range t.ProductDescriptions {
				names = append(names, "inputs.sentences["+strconv.Itoa(i)+"]")
			}
			h.Set(headerTruncated, strings.Join(names, ","))
		}
		return http.StatusOK, scores, nil
	}, similarityErrors)
}

// similarityErrors answers errors naming /predict's fields with the
// /similarity fields the caller sent.
func similarityErrors(w http.ResponseWriter, r *http.Request, e *contracts.Error) {
	c := *e
	switch {
	case strings.HasPrefix(e.Field, "query"):
		c.Field = "inputs.source_sentence"
	case strings.HasPrefix(e.Field, "product_descriptions"):
		c.Field = "inputs.sentences" + strings.TrimPrefix(e.Field, "product_descriptions")
	default:
		writeError(w, r, e)
		return
	}
	c.Message = strings.Replace(e.Message, e.Field, c.Field, 1)
	writeError(w, r, &c)
}
