package embedding

import "context"

// Token is one token of a text as the model reads it (TEI's /tokenize):
// its id, its text, whether it is a special token the model adds, and
// where it lies in the text as UTF-8 byte offsets [Start, Stop); a special
// token has Start and Stop -1.
type Token struct {
	ID          int64
	Text        string
	Special     bool
	Start, Stop int
}

// Tokenizer is a model's tokenizer seen from outside the model runtime:
// the texts' tokens without truncation, the special tokens the model adds,
// and decoding.
type Tokenizer interface {
	// Tokenize returns text's tokens with their offsets, with the model's
	// special tokens when addSpecial, never truncated.
	Tokenize(text string, addSpecial bool) ([]Token, error)
	// ContentIDs returns text's token ids without special tokens, never truncated.
	ContentIDs(text string) ([]int64, error)
	// Specials are the special tokens the model puts before and after a
	// text's tokens ([CLS] and [SEP] for BERT models).
	Specials() (prefix, suffix []int64)
	// Decode turns ids back into text, without the special tokens when skipSpecial.
	Decode(ids []int64, skipSpecial bool) string
	// VocabSize is the number of token ids; valid ids are [0, VocabSize).
	VocabSize() int
	// MaxTokens is the model's window: the most tokens (special tokens
	// included) it reads of one text.
	MaxTokens() int
}

// TokenizerSource is implemented by an Embedder whose model's tokenizer is
// reachable (the model, the scheduler, the cache, the model registry).
type TokenizerSource interface {
	TextTokenizer() Tokenizer
}

// TokenizerOf is e's model's tokenizer; false when e does not expose one.
func TokenizerOf(e Embedder) (Tokenizer, bool) {
	if s, ok := e.(TokenizerSource); ok {
		if t := s.TextTokenizer(); t != nil {
			return t, true
		}
	}
	return nil, false
}

// IDEmbedder is implemented by an Embedder that embeds token ids: each
// sequence is read as it is (special tokens included, within the model's
// window), so the embedding of a text's ids equals the text's.
type IDEmbedder interface {
	EmbedIDs(ctx context.Context, ids [][]int64) (Result, error)
}
