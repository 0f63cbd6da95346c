package processor

import (
	"context"
	"strconv"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
)

// tokenizer resolves model and returns its tokenizer, held until release.
func (p *Processor) tokenizer(model string) (Embedder, embedding.Tokenizer, func(), error) {
	e, release, err := p.resolve(model)
	if err != nil {
		return nil, nil, nil, err
	}
	tk, ok := embedding.TokenizerOf(e)
	if !ok {
		release()
		return nil, nil, nil, contracts.Errorf(contracts.CodeInternal, "model %s does not expose its tokenizer", e.Info().Name)
	}
	return e, tk, release, nil
}

// Tokenize answers each text's tokens as the model reads them (with its
// prompt for req.PromptName), never truncated, with their byte offsets.
func (p *Processor) Tokenize(_ context.Context, req *contracts.TokenizeRequest) (*contracts.TokenizeResponse, error) {
	e, tk, release, err := p.tokenizer(req.Model)
	if err != nil {
		return nil, err
	}
	defer release()
	special := req.AddSpecialTokens == nil || *req.AddSpecialTokens
	texts := embedding.WithPrompt(e, req.PromptName, req.Inputs)
	resp := &contracts.TokenizeResponse{Tokens: make([][]contracts.Token, len(texts)), MaxTokens: tk.MaxTokens(),
		Model: e.Info(), RequestID: req.RequestID}
	for i, text := range texts {
		toks, err := tk.Tokenize(text, special)
		if err != nil {
			return nil, contracts.FieldError(fieldAt("inputs", i), 0, "%v", err)
		}
		out := make([]contracts.Token, len(toks))
		for j, t := range toks {
			out[j] = contracts.Token{ID: t.ID, Text: t.Text, Special: t.Special}
			if !t.Special {
				out[j].Start, out[j].Stop = &t.Start, &t.Stop
			}
		}
		resp.Tokens[i] = out
	}
	return resp, nil
}

// DecodeIDs answers the text of each token id sequence; ids outside the
// vocabulary are refused.
func (p *Processor) DecodeIDs(_ context.Context, req *contracts.DecodeIDsRequest) (*contracts.DecodeIDsResponse, error) {
	e, tk, release, err := p.tokenizer(req.Model)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := checkVocab(tk, req.IDs, "ids"); err != nil {
		return nil, err
	}
	skip := req.SkipSpecialTokens == nil || *req.SkipSpecialTokens
	resp := &contracts.DecodeIDsResponse{Texts: make([]string, len(req.IDs.Seqs)), Model: e.Info(), RequestID: req.RequestID}
	for i, ids := range req.IDs.Seqs {
		resp.Texts[i] = tk.Decode(ids, skip)
	}
	return resp, nil
}

// checkVocab refuses an id outside tk's vocabulary, naming it under field.
func checkVocab(tk embedding.Tokenizer, ids contracts.TokenIDs, field string) error {
	n := int64(tk.VocabSize())
	for i, s := range ids.Seqs {
		for j, id := range s {
			if id < 0 || id >= n {
				return contracts.FieldError(ids.Field(field, i, j), int(n-1),
					"token id %d is outside the model's vocabulary of %d ids (0 to %d)", id, n, n-1)
			}
		}
	}
	return nil
}

// fieldAt names element i of a list field.
func fieldAt(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }
