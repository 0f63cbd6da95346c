package embed

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/daulet/tokenizers"
)

// Tokenizer is a Hugging Face fast tokenizer set up as sentence-transformers
// uses it: special tokens added, truncated at max_seq_length, never padded
// (padding happens per batch). It is safe for concurrent use.
type Tokenizer struct {
	tk *tokenizers.Tokenizer
	// full is the same tokenizer without truncation: /tokenize, token
	// counts before truncation and the windows of long texts.
	full   *tokenizers.Tokenizer
	maxLen int
	// prefix and suffix are the special tokens the model adds around a
	// text ([CLS] and [SEP] for BERT).
	prefix, suffix []int64
	lower          bool
	// dropsNUL: the normalizer deletes U+0000 anyway (BERT's clean_text),
	// so removing it before the C call, which cannot carry it, changes nothing.
	dropsNUL bool
}

// ErrNUL is returned for a text holding U+0000 when the tokenizer would not
// simply delete it: the native tokenizer's C interface cannot carry it.
var ErrNUL = errors.New("embed: text contains U+0000 (NUL), which this model's tokenizer cannot take")

// NewTokenizer loads tokenizer.json from path. The file's own padding and
// truncation settings are replaced: exports often pin them (all-MiniLM-L6-v2's
// pads and truncates to 128), while sentence-transformers truncates at
// max_seq_length and pads to the longest text of each batch.
func NewTokenizer(path string, maxSeqLength int, lowerCase bool) (*Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("embed: read tokenizer: %w", err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("embed: %s is not a tokenizer.json: %w", path, err)
	}
	var norm struct {
		Type      string `json:"type"`
		CleanText bool   `json:"clean_text"`
	}
	_ = json.Unmarshal(doc["normalizer"], &norm) // absent or another shape: not BERT's
	dropsNUL := norm.Type == "BertNormalizer" && norm.CleanText
	doc["padding"] = json.RawMessage("null")
	doc["truncation"] = json.RawMessage(fmt.Sprintf(
		`{"direction":"Right","max_length":%d,"strategy":"LongestFirst","stride":0}`, maxSeqLength))
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("embed: re-encode tokenizer: %w", err)
	}
	tk, err := tokenizers.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("embed: load tokenizer %s: %w", path, err)
	}
	doc["truncation"] = json.RawMessage("null")
	if data, err = json.Marshal(doc); err != nil {
		tk.Close()
		return nil, fmt.Errorf("embed: re-encode tokenizer: %w", err)
	}
	full, err := tokenizers.FromBytes(data)
	if err != nil {
		tk.Close()
		return nil, fmt.Errorf("embed: load tokenizer %s: %w", path, err)
	}
	t := &Tokenizer{tk: tk, full: full, maxLen: maxSeqLength, lower: lowerCase, dropsNUL: dropsNUL}
	t.findSpecials()
	return t, nil
}

// Encoding is one tokenized text.
type Encoding struct {
	IDs      []int64
	TypeIDs  []int64
	Attended []int64
}

// Encode tokenizes text with special tokens, truncated to max_seq_length.
func (t *Tokenizer) Encode(text string) (Encoding, error) {
	if strings.ContainsRune(text, 0) {
		if !t.dropsNUL {
			return Encoding{}, ErrNUL
		}
		text = strings.ReplaceAll(text, "\x00", "")
	}
	if t.lower {
		text = strings.ToLower(text)
	}
	enc := t.tk.EncodeWithOptions(text, true, tokenizers.WithReturnTypeIDs(), tokenizers.WithReturnAttentionMask())
	e := Encoding{IDs: widen(enc.IDs), TypeIDs: widen(enc.TypeIDs), Attended: widen(enc.AttentionMask)}
	if len(e.TypeIDs) != len(e.IDs) {
		e.TypeIDs = make([]int64, len(e.IDs))
	}
	if len(e.Attended) != len(e.IDs) {
		e.Attended = make([]int64, len(e.IDs))
		for i := range e.Attended {
			e.Attended[i] = 1
		}
	}
	return e, nil
}

// Close frees the native tokenizers.
func (t *Tokenizer) Close() error { return errors.Join(t.tk.Close(), t.full.Close()) }

func widen(v []uint32) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

// batch is a padded batch of encodings in the row-major layout ONNX expects.
type batch struct {
	size, seqLen      int
	ids, mask, typeID []int64
	tokens            int // real (non-padding) tokens
}

func newBatch(encs []Encoding) batch {
	b := batch{size: len(encs)}
	for _, e := range encs {
		b.seqLen = max(b.seqLen, len(e.IDs))
	}
	n := b.size * b.seqLen
	b.ids, b.mask, b.typeID = make([]int64, n), make([]int64, n), make([]int64, n)
	for i, e := range encs {
		row := i * b.seqLen
		copy(b.ids[row:], e.IDs)
		copy(b.typeID[row:], e.TypeIDs)
		copy(b.mask[row:], e.Attended)
		b.tokens += len(e.IDs)
	}
	return b
}
