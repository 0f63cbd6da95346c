package embed

import (
	"strings"
	"unicode/utf8"

	"github.com/daulet/tokenizers"

	"github.com/simmatch/simmatch/processor/embedding"
)

var _ embedding.Tokenizer = (*Tokenizer)(nil)

// prepare is text as the native tokenizer takes it (NULs dropped where the
// normalizer drops them, lowercased where the model lowercases), with, when
// that changed byte positions, orig[i]: the byte offset in text of the
// prepared text's byte i (orig[len] = len(text)).
func (t *Tokenizer) prepare(text string) (string, []int, error) {
	if strings.ContainsRune(text, 0) && !t.dropsNUL {
		return "", nil, ErrNUL
	}
	out := text
	if strings.ContainsRune(out, 0) {
		out = strings.ReplaceAll(out, "\x00", "")
	}
	if t.lower {
		out = strings.ToLower(out)
	}
	if out == text || (!t.lower || isASCII(text)) && !strings.ContainsRune(text, 0) {
		return out, nil, nil // same byte positions
	}
	// strings.ToLower maps rune to rune, so the prepared text's runes are
	// text's non-NUL runes, in order.
	orig := make([]int, 0, len(out)+1)
	i := 0
	for j := 0; j < len(out); {
		for i < len(text) && text[i] == 0 {
			i++
		}
		_, wo := utf8.DecodeRuneInString(out[j:])
		_, wi := utf8.DecodeRuneInString(text[i:])
		for k := 0; k < wo; k++ {
			orig = append(orig, i)
		}
		i += wi
		j += wo
	}
	orig = append(orig, len(text))
	return out, orig, nil
}

// Tokenize returns text's tokens with their byte offsets in text (not in the
// lowercased text the model reads), with the model's special tokens when
// addSpecial, never truncated.
func (t *Tokenizer) Tokenize(text string, addSpecial bool) ([]embedding.Token, error) {
	in, orig, err := t.prepare(text)
	if err != nil {
		return nil, err
	}
	enc := t.full.EncodeWithOptions(in, addSpecial, tokenizers.WithReturnOffsets(),
		tokenizers.WithReturnSpecialTokensMask(), tokenizers.WithReturnTokens())
	out := make([]embedding.Token, len(enc.IDs))
	for i, id := range enc.IDs {
		tok := embedding.Token{ID: int64(id), Start: -1, Stop: -1}
		if i < len(enc.Tokens) {
			tok.Text = enc.Tokens[i]
		}
		if i < len(enc.SpecialTokensMask) && enc.SpecialTokensMask[i] == 1 {
			tok.Special = true
			out[i] = tok
			continue
		}
		if i < len(enc.Offsets) {
			start, stop := int(enc.Offsets[i][0]), int(enc.Offsets[i][1])
			if orig != nil {
				start, stop = orig[min(start, len(orig)-1)], orig[min(stop, len(orig)-1)]
			}
			tok.Start, tok.Stop = start, stop
			tok.Text = text[start:stop]
		}
		out[i] = tok
	}
	return out, nil
}

// ContentIDs returns text's token ids without special tokens, never truncated.
func (t *Tokenizer) ContentIDs(text string) ([]int64, error) {
	in, _, err := t.prepare(text)
	if err != nil {
		return nil, err
	}
	return widen(t.full.EncodeWithOptions(in, false).IDs), nil
}

// Specials are the special tokens the model adds before and after a text.
func (t *Tokenizer) Specials() (prefix, suffix []int64) { return t.prefix, t.suffix }

// findSpecials reads the special tokens around a one-word text.
func (t *Tokenizer) findSpecials() {
	enc := t.full.EncodeWithOptions("a", true, tokenizers.WithReturnSpecialTokensMask())
	n := len(enc.IDs)
	lead := 0
	for lead < n && lead < len(enc.SpecialTokensMask) && enc.SpecialTokensMask[lead] == 1 {
		lead++
	}
	trail := n
	for trail > lead && trail-1 < len(enc.SpecialTokensMask) && enc.SpecialTokensMask[trail-1] == 1 {
		trail--
	}
	t.prefix, t.suffix = widen(enc.IDs[:lead]), widen(enc.IDs[trail:])
}

// Decode turns ids back into text, without special tokens when skipSpecial.
// Ids outside the vocabulary are skipped by the native decoder.
func (t *Tokenizer) Decode(ids []int64, skipSpecial bool) string {
	u := make([]uint32, len(ids))
	for i, id := range ids {
		u[i] = uint32(id)
	}
	return t.full.Decode(u, skipSpecial)
}

// VocabSize is the number of token ids.
func (t *Tokenizer) VocabSize() int { return int(t.full.VocabSize()) }

// MaxTokens is the model's window (max_seq_length), special tokens included.
func (t *Tokenizer) MaxTokens() int { return t.maxLen }

// Sequence is the encoding the model reads for ids, a whole sequence
// (special tokens included) within the window: as Encode gives a text.
func Sequence(ids []int64) Encoding {
	e := Encoding{IDs: ids, TypeIDs: make([]int64, len(ids)), Attended: make([]int64, len(ids))}
	for i := range e.Attended {
		e.Attended[i] = 1
	}
	return e
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
