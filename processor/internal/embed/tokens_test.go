package embed

import (
	"context"
	"slices"
	"strings"
	"testing"
)

var tokenTexts = []string{
	"What can I use to cut wood?",
	"Heavy-duty CLAW hammer, non-slip grip.",
	"Ünïcödé ÀÉÎ and emoji 🪚 survive the trip",
	"İstanbul Ⱥpple straße ǅ",
	"with a\x00nul",
	"  leading and trailing spaces  ",
	strings.Repeat("cordless drill with two batteries ", 80),
}

// Tokenize gives the ids the model reads (Encode's, before truncation) and
// offsets that slice the original text; Decode gives the text back, lowercased.
func TestTokenizeMatchesEncode(t *testing.T) {
	m := loadModel(t)
	tk := m.Tokenizer()
	for _, text := range tokenTexts {
		toks, err := tk.Tokenize(text, true)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := tk.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(toks))
		for i, tok := range toks {
			ids[i] = tok.ID
		}
		if len(ids) <= tk.MaxTokens() && !slices.Equal(ids, enc.IDs) {
			t.Errorf("%q: Tokenize ids %v, Encode %v", text, ids, enc.IDs)
		}
		if len(ids) > tk.MaxTokens() {
			prefix, suffix := tk.Specials()
			cut := append(slices.Clone(ids[:tk.MaxTokens()-len(suffix)]), suffix...)
			if !slices.Equal(cut, enc.IDs) || !slices.Equal(ids[:len(prefix)], prefix) {
				t.Errorf("%q: truncated Tokenize ids differ from Encode's", text)
			}
		}
		content, err := tk.ContentIDs(text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(content, ids[1:len(ids)-1]) {
			t.Errorf("%q: ContentIDs %v, Tokenize's without specials %v", text, content, ids[1:len(ids)-1])
		}
		var rebuilt strings.Builder
		for i, tok := range toks {
			if tok.Special {
				if tok.Start != -1 || (i != 0 && i != len(toks)-1) {
					t.Errorf("%q: special token %d = %+v", text, i, tok)
				}
				continue
			}
			if tok.Start < 0 || tok.Stop > len(text) || tok.Start > tok.Stop {
				t.Fatalf("%q: token %d offsets %d..%d", text, i, tok.Start, tok.Stop)
			}
			if tok.Text != text[tok.Start:tok.Stop] {
				t.Errorf("%q: token %d text %q, slice %q", text, i, tok.Text, text[tok.Start:tok.Stop])
			}
			if strings.ToLower(tok.Text) == "" {
				t.Errorf("%q: token %d is empty", text, i)
			}
			rebuilt.WriteString(tok.Text)
		}
		// The tokens cover the text but for whitespace (and the NUL the normalizer drops).
		squash := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, "\x00", " ")), "") }
		if squash(rebuilt.String()) != squash(text) {
			t.Errorf("%q: tokens cover %q", text, rebuilt.String())
		}
		// [UNK] is a special token too: skipped with the others.
		if got, want := strings.Join(strings.Fields(tk.Decode(ids, false)), ""), "[CLS]"+strings.Join(strings.Fields(tk.Decode(content, false)), "")+"[SEP]"; got != want {
			t.Errorf("%q: decode with and without specials differ: %q %q", text, got, want)
		}
	}
	if prefix, suffix := tk.Specials(); !slices.Equal(prefix, []int64{101}) || !slices.Equal(suffix, []int64{102}) {
		t.Errorf("specials %v %v, want [CLS]=101 and [SEP]=102", prefix, suffix)
	}
	if tk.VocabSize() != 30522 {
		t.Errorf("vocab size %d, want 30522", tk.VocabSize())
	}
}

// Decoding a text's ids gives the text back, lowercased and without accents
// (the model's normalization), spaced as WordPiece decodes ("heavy - duty").
func TestDecodeRoundTrip(t *testing.T) {
	tk := loadModel(t).Tokenizer()
	for _, text := range []string{"What can I use to cut wood?", "Heavy-duty claw hammer, 16 oz.", "Crème brûlée torch"} {
		ids, err := tk.ContentIDs(text)
		if err != nil {
			t.Fatal(err)
		}
		norm := strings.NewReplacer(" ", "", "è", "e", "û", "u", "é", "e").Replace(strings.ToLower(text))
		if got := tk.Decode(ids, true); strings.ReplaceAll(got, " ", "") != norm {
			t.Errorf("decode(tokenize(%q)) = %q", text, got)
		}
	}
}

// A text's ids embed as the text does.
func TestEmbedIDsEqualsText(t *testing.T) {
	m := loadModel(t)
	texts := tokenTexts[:4]
	want, err := vectors(m.Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([][]int64, len(texts))
	for i, text := range texts {
		enc, err := m.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = enc.IDs
	}
	got, err := vectors(m.EmbedIDs(context.Background(), ids))
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%q: ids embedding differs (cosine %v)", texts[i], cosine(got[i], want[i]))
		}
	}
}
