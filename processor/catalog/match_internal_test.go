package catalog

import (
	"context"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// The rows a match reads are the stored ones (an int8 index's exact
// float32 row); a dedupe never pairs a product with itself; block_on
// compares within a block only; a source product that is gone or lacks a
// block key matches nothing.
func TestMatchIndexes(t *testing.T) {
	vecs := map[string][]float32{
		"a": {1, 0, 0, 0}, "a2": {0.99, 0.1, 0, 0}, "b": {0, 1, 0, 0}, "b2": {0, 0.98, 0.1, 0}, "c": {0, 0, 0, 1}, "nokey": {1, 0, 0, 0.01},
	}
	block := map[string]string{"a": "x", "a2": "y", "b": "x", "b2": "x", "c": "x"}
	x8, err := NewInt8Index(4, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*Index{"fp32": NewIndex(4), "int8": x8} {
		t.Run(name, func(t *testing.T) {
			var seq uint64
			for _, id := range slices.Sorted(func(yield func(string) bool) {
				for k := range vecs {
					if !yield(k) {
						return
					}
				}
			}) {
				seq++
				p := contracts.Product{ID: id, Description: id, Metadata: map[string]string{}}
				if v, ok := block[id]; ok {
					p.Metadata["block"] = v
				}
				x.Upsert(seq, p, vecs[id])
			}
			v, _, ok := x.Vector("a2")
			if !ok || !slices.Equal(v, vecs["a2"]) {
				t.Errorf("Vector(a2) = %v, %v; want the stored row", v, ok)
			}
			th := 0.9
			ids := []string{"a", "a2", "b", "b2", "c", "gone"}
			rows, err := matchIndexes(context.Background(), x, x, MatchSpec{IDs: ids, TopK: 5, Threshold: &th, Dedupe: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for i, r := range rows {
				if r.SourceID != ids[i] {
					t.Fatalf("row %d is %s, want %s", i, r.SourceID, ids[i])
				}
				for _, m := range r.Matches {
					if m.ID == r.SourceID {
						t.Errorf("%s paired with itself", r.SourceID)
					}
					got[r.SourceID] = append(got[r.SourceID], m.ID)
				}
			}
			if !slices.Equal(got["a"], []string{"nokey", "a2"}) || !slices.Equal(got["b"], []string{"b2"}) || len(got["c"]) != 0 || len(got["gone"]) != 0 {
				t.Errorf("dedupe: %v", got)
			}
			rows, err = matchIndexes(context.Background(), x, x, MatchSpec{IDs: []string{"a", "nokey", "b"}, TopK: 5, Threshold: &th, Dedupe: true, BlockOn: []string{"block"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows[0].Matches) != 0 || len(rows[1].Matches) != 0 || len(rows[2].Matches) != 1 || rows[2].Matches[0].ID != "b2" {
				t.Errorf("block_on: %+v", rows)
			}
			// mutual best: s1 and s2 both have a as their best, and a's best
			// in the source is s1.
			src := NewIndex(4)
			src.Upsert(1, contracts.Product{ID: "s1"}, []float32{1, 0, 0.05, 0})
			src.Upsert(2, contracts.Product{ID: "s2"}, []float32{1, 0, 0.3, 0})
			rows, err = matchIndexes(context.Background(), src, x, MatchSpec{IDs: []string{"s1", "s2"}, TopK: 1, MutualBest: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows[0].Matches) != 1 || rows[0].Matches[0].ID != "a" || len(rows[1].Matches) != 0 {
				t.Errorf("mutual best: %+v", rows)
			}
		})
	}
}
