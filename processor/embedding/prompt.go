package embedding

import "github.com/simmatch/simmatch/contracts"

// The kinds of text a model may read differently (sentence-transformers'
// prompt names, which retrieval models such as bge-small-en-v1.5 use): a
// Query searches (a /predict or catalog search query, a question); a
// Document is what is searched (a product description).
const (
	Query    = contracts.InputQuery
	Document = contracts.InputDocument
)

// Prompter is implemented by an Embedder whose model prepends an instruction
// (a prompt) to texts of some kinds, as configured by the model directory's
// config_sentence_transformers.json ("prompts", "default_prompt_name").
// Every Embedder of the processor (the model, the scheduler, the cache, the
// model registry's versions) is one, forwarding to the model.
type Prompter interface {
	// Prompt is the text prepended to a text of kind (Query, Document, or
	// "" for none given): the model's prompt of that name, else its default
	// prompt, else "".
	Prompt(kind string) string
}

// Prompt is e's prompt for texts of kind; "" when e's model has none or e is
// not a Prompter.
func Prompt(e Embedder, kind string) string {
	if p, ok := e.(Prompter); ok {
		return p.Prompt(kind)
	}
	return ""
}

// WithPrompt returns texts as e's model must read texts of kind: each with
// the kind's prompt prepended, as sentence-transformers' encode does (the
// prompt counts against the model's maximum length). Embed what it returns.
// Without a prompt it returns texts itself, so a model without prompts
// (all-MiniLM-L6-v2) embeds exactly what it embedded before.
func WithPrompt(e Embedder, kind string, texts []string) []string {
	p := Prompt(e, kind)
	if p == "" {
		return texts
	}
	out := make([]string, len(texts))
	for i, t := range texts {
		out[i] = p + t
	}
	return out
}
