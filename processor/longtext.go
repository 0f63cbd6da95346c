package processor

import (
	"context"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
)

// input is one text to embed, or a token id sequence (ids, with fromIDs).
type input struct {
	text    string
	ids     []int64 // content ids, without special tokens (fromIDs, or a long text)
	fromIDs bool
}

// embedded is what embedInputs computed: the result, and the indexes of the
// inputs read truncated and of those embedded in windows.
type embedded struct {
	embedding.Result
	truncated, chunked []int
}

// embedInputs embeds ins with e under opts. Texts within the model's window
// take the plain text path (cached, and bit for bit what they were without
// these options); a longer text is truncated (the default, and listed),
// refused (opts.Refuses: invalid_request naming it via field), or embedded
// in windows (opts.Chunks). Id sequences are embedded as ids. A text can
// only be longer than the window when it has more characters than the
// window has tokens (a WordPiece token covers at least one character), so
// short texts are never tokenized twice.
func embedInputs(ctx context.Context, e Embedder, ins []input, opts contracts.LongTextOptions, field func(int) string) (embedded, error) {
	tk, ok := embedding.TokenizerOf(e)
	if !ok { // an Embedder without a tokenizer (tests' fakes): texts only
		texts := make([]string, len(ins))
		for i, in := range ins {
			if in.fromIDs {
				return embedded{}, contracts.FieldError(field(i), 0, "token ids are not supported by this model")
			}
			texts[i] = in.text
		}
		res, err := embedTexts(ctx, e, texts)
		return embedded{Result: res}, err
	}
	maxLen := tk.MaxTokens()
	prefix, suffix := tk.Specials()
	specials := len(prefix) + len(suffix)

	var out embedded
	var plain []int          // inputs on the text path
	var seqs [][]int64       // sequences for EmbedIDs
	owner := map[int][]int{} // input -> its sequences' indexes in seqs
	for i := range ins {
		in := &ins[i]
		if !in.fromIDs {
			if utf8.RuneCountInString(in.text)+specials <= maxLen {
				plain = append(plain, i)
				continue
			}
			ids, err := tk.ContentIDs(in.text)
			if err != nil {
				return embedded{}, contracts.FieldError(field(i), 0, "%v", err)
			}
			in.ids = ids
		}
		n := len(in.ids) + specials
		switch {
		case n <= maxLen:
			if !in.fromIDs {
				plain = append(plain, i)
				continue
			}
			owner[i] = []int{len(seqs)}
			seqs = append(seqs, wrap(prefix, in.ids, suffix))
		case opts.Chunks():
			out.chunked = append(out.chunked, i)
			for _, w := range windows(in.ids, maxLen-specials, contracts.ChunkStride) {
				owner[i] = append(owner[i], len(seqs))
				seqs = append(seqs, wrap(prefix, w, suffix))
			}
		case opts.Refuses():
			return embedded{}, contracts.FieldError(field(i), maxLen,
				"has %d tokens; the model reads at most %d: shorten it, send \"truncate\": true to read its first %d, or \"long_text\": \"chunk\"",
				n, maxLen, maxLen)
		default:
			out.truncated = append(out.truncated, i)
			if !in.fromIDs {
				plain = append(plain, i)
				continue
			}
			owner[i] = []int{len(seqs)}
			seqs = append(seqs, wrap(prefix, in.ids[:maxLen-specials], suffix))
		}
	}

	out.Vectors = make([][]float32, len(ins))
	out.Tokens = make([]int, len(ins))
	if len(plain) > 0 {
		texts := make([]string, len(plain))
		for j, i := range plain {
			texts[j] = ins[i].text
		}
		res, err := embedTexts(ctx, e, texts)
		if err != nil {
			return embedded{}, err
		}
		for j, i := range plain {
			out.Vectors[i], out.Tokens[i] = res.Vectors[j], res.Tokens[j]
		}
		out.Timing = res.Timing
	}
	if len(seqs) > 0 {
		ie, ok := e.(embedding.IDEmbedder)
		if !ok {
			return embedded{}, contracts.Errorf(contracts.CodeInternal, "model %s cannot embed token ids", e.Info().Name)
		}
		res, err := ie.EmbedIDs(ctx, seqs)
		if err != nil {
			return embedded{}, embedError(ctx, err)
		}
		if len(res.Vectors) != len(seqs) {
			return embedded{}, contracts.Errorf(contracts.CodeModelError, "model returned %d embeddings for %d sequences", len(res.Vectors), len(seqs))
		}
		for i, own := range owner {
			out.Vectors[i] = meanPool(res.Vectors, seqs, own)
			for _, k := range own {
				out.Tokens[i] += len(seqs[k])
			}
		}
		out.Timing = out.Timing.Add(res.Timing)
	}
	slices.Sort(out.chunked)
	return out, nil
}

// wrap is content between the model's special tokens.
func wrap(prefix, content, suffix []int64) []int64 {
	s := make([]int64, 0, len(prefix)+len(content)+len(suffix))
	return append(append(append(s, prefix...), content...), suffix...)
}

// windows cuts ids into windows of at most size ids that start stride apart;
// the last one ends with ids.
func windows(ids []int64, size, stride int) [][]int64 {
	var out [][]int64
	for start := 0; ; start += stride {
		end := min(start+size, len(ids))
		out = append(out, ids[start:end])
		if end == len(ids) {
			return out
		}
	}
}

// meanPool is the mean of the embeddings vecs[own], weighted by their
// sequences' lengths, L2-normalized when they are (as the model's
// pipeline normalizes); one sequence is its embedding as it is.
func meanPool(vecs [][]float32, seqs [][]int64, own []int) []float32 {
	if len(own) == 1 {
		return vecs[own[0]]
	}
	d := len(vecs[own[0]])
	acc := make([]float64, d)
	normalized := true
	total := 0.0
	for _, k := range own {
		w := float64(len(seqs[k]))
		total += w
		var sq float64
		for j, x := range vecs[k] {
			acc[j] += w * float64(x)
			sq += float64(x) * float64(x)
		}
		normalized = normalized && math.Abs(sq-1) < 1e-3
	}
	var sq float64
	for j := range acc {
		acc[j] /= total
		sq += acc[j] * acc[j]
	}
	div := 1.0
	if normalized {
		div = math.Max(math.Sqrt(sq), 1e-12)
	}
	v := make([]float32, d)
	for j := range acc {
		v[j] = float32(acc[j] / div)
	}
	return v
}

// idInputs are the inputs of token id sequences: their content ids (the
// model's special tokens, when a sequence begins and ends with them,
// removed; they are added back when embedded), after checking each id
// against the vocabulary.
func idInputs(e Embedder, ids contracts.TokenIDs, field string) ([]input, error) {
	tk, ok := embedding.TokenizerOf(e)
	if !ok {
		return nil, contracts.FieldError(field, 0, "token ids are not supported by this model")
	}
	if err := checkVocab(tk, ids, field); err != nil {
		return nil, err
	}
	prefix, suffix := tk.Specials()
	ins := make([]input, len(ids.Seqs))
	for i, s := range ids.Seqs {
		if len(s) >= len(prefix)+len(suffix) && slices.Equal(s[:len(prefix)], prefix) && slices.Equal(s[len(s)-len(suffix):], suffix) {
			s = s[len(prefix) : len(s)-len(suffix)]
		}
		ins[i] = input{ids: s, fromIDs: true}
	}
	return ins, nil
}
