package embed

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzTokenize feeds arbitrary text to the real tokenizer: it must never
// crash, always frame the ids with [CLS] ... [SEP], stay within
// max_seq_length, and refuse only what it documents (ErrNUL).
func FuzzTokenize(f *testing.F) {
	dir := os.Getenv("SIMMATCH_MODEL_DIR")
	if dir == "" {
		f.Fatal("SIMMATCH_MODEL_DIR must point at the real model: run with `make fuzz`")
	}
	tok, err := NewTokenizer(filepath.Join(dir, "tokenizer.json"), 256, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = tok.Close() })
	for _, s := range []string{"What can I use to cut wood?", "", " ", "café naïve", "日本語の説明", "👍🏽 12V 2.0Ah", "a\x00b", "[CLS] [SEP] [PAD]", string([]byte{0xff, 0xfe})} {
		f.Add(s)
	}
	const cls, sep = 101, 102
	f.Fuzz(func(t *testing.T, text string) {
		enc, err := tok.Encode(text)
		if err != nil {
			if !errors.Is(err, ErrNUL) {
				t.Fatalf("Encode(%q): %v", text, err)
			}
			return
		}
		ids := enc.IDs
		if len(ids) < 2 || len(ids) > 256 || ids[0] != cls || ids[len(ids)-1] != sep {
			t.Fatalf("Encode(%q) = %v: want [CLS] ... [SEP] within 256 ids", text, ids)
		}
		if len(enc.TypeIDs) != len(ids) || len(enc.Attended) != len(ids) {
			t.Fatalf("Encode(%q): %d ids, %d type ids, %d mask", text, len(ids), len(enc.TypeIDs), len(enc.Attended))
		}
	})
}
