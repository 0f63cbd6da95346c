package processor_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// The golden files come from the original stack (sentence-transformers on
// PyTorch, same model weights); testdata/parity/make_golden.py regenerates them.

type goldenEmbeddings struct {
	Texts []struct {
		Text      string    `json:"text"`
		InputIDs  []int64   `json:"input_ids"`
		Embedding []float64 `json:"embedding"`
	} `json:"texts"`
}

type goldenRankings struct {
	Cases []struct {
		Name         string             `json:"name"`
		Queries      []string           `json:"queries"`
		Descriptions []string           `json:"descriptions"`
		Results      []contracts.Result `json:"results"`
	} `json:"cases"`
}

func readGolden(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/parity/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestParityTokenIDs(t *testing.T) {
	var g goldenEmbeddings
	readGolden(t, "embeddings.json", &g)
	if len(g.Texts) < 200 {
		t.Fatalf("golden corpus has %d texts, want >= 200", len(g.Texts))
	}
	tok := realModel(t).Tokenizer()
	long := 0
	for i, x := range g.Texts {
		enc, err := tok.Encode(x.Text)
		if err != nil {
			t.Fatalf("text %d %q: %v", i, x.Text, err)
		}
		if got := enc.IDs; !slices.Equal(got, x.InputIDs) {
			t.Errorf("text %d %q:\n got  %v\n want %v", i, x.Text, got, x.InputIDs)
		}
		if len(x.InputIDs) == 256 {
			long++
		}
	}
	if long < 10 {
		t.Errorf("only %d golden texts reach max_seq_length; the corpus must exercise truncation", long)
	}
}

func TestParityEmbeddings(t *testing.T) {
	var g goldenEmbeddings
	readGolden(t, "embeddings.json", &g)
	texts := make([]string, len(g.Texts))
	for i, x := range g.Texts {
		texts[i] = x.Text
	}
	got, err := vectors(realModel(t).Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	worst, worstAt := 1.0, -1
	for i, x := range g.Texts {
		var dot, na, nb float64
		for j, v := range x.Embedding {
			dot += float64(got[i][j]) * v
			na += float64(got[i][j]) * float64(got[i][j])
			nb += v * v
		}
		c := dot / math.Sqrt(na*nb)
		if c < worst {
			worst, worstAt = c, i
		}
		if c < 0.9999 {
			t.Errorf("text %d %q: cosine to reference %.6f, want >= 0.9999", i, x.Text, c)
		}
	}
	t.Logf("%d texts; lowest cosine to the reference %.7f (text %d)", len(texts), worst, worstAt)
}

func TestParityRankings(t *testing.T) {
	var g goldenRankings
	readGolden(t, "rankings.json", &g)
	if len(g.Cases) < 20 {
		t.Fatalf("golden rankings have %d cases, want >= 20", len(g.Cases))
	}
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	c := newClient(t, connect(t, ns), nil)
	maxDiff := 0.0
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			resp, err := c.Match(context.Background(), &contracts.Request{Query: tc.Queries, ProductDescriptions: tc.Descriptions})
			if err != nil {
				t.Fatal(err)
			}
			for qi, want := range tc.Results {
				got := resp.Results[qi].Matches
				if len(got) != len(want.Matches) {
					t.Fatalf("query %q: %d matches, want %d", want.Query, len(got), len(want.Matches))
				}
				ref := map[int]float64{}
				for _, m := range want.Matches {
					ref[m.Index] = m.Score
				}
				for pos, m := range got {
					d := math.Abs(m.Score - ref[m.Index])
					maxDiff = max(maxDiff, d)
					if d > 1e-4 {
						t.Errorf("query %q, description %d: score %.6f, reference %.6f", want.Query, m.Index, m.Score, ref[m.Index])
					}
					// Same order, except that items whose reference scores
					// tie (within 1e-6) may swap.
					if w := want.Matches[pos]; w.Index != m.Index && math.Abs(w.Score-ref[m.Index]) > 1e-6 {
						t.Errorf("query %q, rank %d: description %d, reference has %d (scores %.6f vs %.6f)", want.Query, pos, m.Index, w.Index, ref[m.Index], w.Score)
					}
				}
			}
		})
	}
	t.Logf("%d cases; largest score difference to the reference %.2e", len(g.Cases), maxDiff)
}
