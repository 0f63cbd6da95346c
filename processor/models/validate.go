package models

import (
	"context"
	"fmt"
	"math"

	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
)

// canary is a query, a text that means what it asks for, and one that does
// not: every sane sentence-embedding model, quantized or not, puts the
// first closer. The margins are wide for all-MiniLM-L6-v2 fp32 and int8.
type canary struct{ query, near, far string }

var canaries = []canary{
	{"What can I use to cut wood?", "High-performance circular saw with laser guide.", "Heavy-duty claw hammer with a non-slip grip handle."},
	{"a pet cat that meows", "a small kitten playing with yarn", "a sports car on a race track"},
	{"how do I bake bread", "a recipe for a sourdough loaf", "replacing the brakes of a bicycle"},
}

// Validate checks a freshly loaded model before it serves: its embeddings
// have the dimensions its configuration declares, every canary text gives a
// finite unit vector, and each canary's query is closer to its near text
// than to its far one.
func Validate(ctx context.Context, m *processor.Model) error {
	if want := m.Layout().Dimensions; want > 0 && m.Dimensions() != want {
		return fmt.Errorf("the graph gives %d dimensions but 1_Pooling/config.json declares %d", m.Dimensions(), want)
	}
	// Each canary is read as served: the query with the model's query
	// prompt, the others with its document prompt (none for either, unless
	// the model's configuration has prompts).
	var texts []string
	q, d := m.Prompt(embedding.Query), m.Prompt(embedding.Document)
	for _, c := range canaries {
		texts = append(texts, q+c.query, d+c.near, d+c.far)
	}
	res, err := m.Embed(ctx, texts)
	if err != nil {
		return fmt.Errorf("embed the canary sentences: %w", err)
	}
	vecs := res.Vectors
	if len(vecs) != len(texts) {
		return fmt.Errorf("canaries: got %d embeddings for %d texts", len(vecs), len(texts))
	}
	for i, v := range vecs {
		if len(v) != m.Dimensions() {
			return fmt.Errorf("canary %q: embedding has %d dimensions, want %d", texts[i], len(v), m.Dimensions())
		}
		var n float64
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("canary %q: embedding is not finite", texts[i])
			}
			n += float64(x) * float64(x)
		}
		if math.Abs(math.Sqrt(n)-1) > 1e-3 {
			return fmt.Errorf("canary %q: embedding norm %.4f, want a unit vector", texts[i], math.Sqrt(n))
		}
	}
	for i, c := range canaries {
		q, near, far := vecs[3*i], vecs[3*i+1], vecs[3*i+2]
		if sn, sf := dot(q, near), dot(q, far); !(sn > sf) {
			return fmt.Errorf("canary %q scores %.3f against %q but %.3f against %q: the model's ranking is not sane", c.query, sn, c.near, sf, c.far)
		}
	}
	return nil
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
