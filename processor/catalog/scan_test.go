package catalog

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

func randomIndex(rng *rand.Rand, n, dims int) *Index {
	x := NewIndex(dims)
	vec := make([]float32, dims)
	for i := range n {
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		if i%7 == 3 { // ties
			x.Upsert(uint64(i+1), contracts.Product{ID: fmt.Sprint(i), Metadata: map[string]string{"m": fmt.Sprint(i % 3)}}, x.matrix[:dims])
			continue
		}
		x.Upsert(uint64(i+1), contracts.Product{ID: fmt.Sprint(i), Metadata: map[string]string{"m": fmt.Sprint(i % 3)}}, vec)
	}
	return x
}

// The parallel heap scan returns exactly what sorting every score does.
func TestSearchMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dims = 24
	x := randomIndex(rng, 20000, dims)
	for i := 0; i < 3000; i += 5 { // holes filled by swap-remove
		x.Delete(uint64(30000+i), fmt.Sprint(i))
	}
	q := make([]float32, dims)
	for j := range q {
		q[j] = float32(rng.NormFloat64())
	}
	th := 0.1
	tests := []struct {
		name      string
		k         int
		threshold *float64
		filter    map[string]string
		workers   int
	}{
		{"top 10", 10, nil, nil, 4},
		{"top 1 one worker", 1, nil, nil, 1},
		{"threshold", 50000, &th, nil, 3},
		{"filter", 25, nil, map[string]string{"m": "1"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []cand
			qn := vecmath.Norm(q)
			for r := range x.products {
				if tt.filter != nil && !matches(x.products[r].Metadata, tt.filter) {
					continue
				}
				s := vecmath.Cosine(q, x.matrix[r*dims:(r+1)*dims], qn, x.norms[r])
				if tt.threshold == nil || s >= *tt.threshold {
					want = append(want, cand{r, s})
				}
			}
			slices.SortStableFunc(want, func(a, b cand) int { return cmp.Compare(b.score, a.score) })
			want = want[:min(tt.k, len(want))]
			got := x.Search(Query{Vectors: [][]float32{q}, TopK: tt.k, Threshold: tt.threshold, Filter: tt.filter, Workers: tt.workers})[0]
			if len(got) != len(want) {
				t.Fatalf("%d hits, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Row != want[i].row || got[i].Score != want[i].score {
					t.Fatalf("hit %d = row %d %v, want row %d %v", i, got[i].Row, got[i].Score, want[i].row, want[i].score)
				}
			}
		})
	}
}

func TestDeleteKeepsRowsConsistent(t *testing.T) {
	x := NewIndex(2)
	x.Upsert(1, contracts.Product{ID: "a"}, []float32{1, 0})
	x.Upsert(2, contracts.Product{ID: "b"}, []float32{0, 1})
	x.Upsert(3, contracts.Product{ID: "c"}, []float32{1, 1})
	x.Delete(4, "a")
	x.Upsert(5, contracts.Product{ID: "b"}, []float32{2, 0})
	if x.Len() != 2 || x.Applied() != 5 {
		t.Fatalf("len %d applied %d, want 2 and 5", x.Len(), x.Applied())
	}
	hits := x.Search(Query{Vectors: [][]float32{{1, 0}}, TopK: 5})[0]
	if len(hits) != 2 || hits[0].Product.ID != "b" || hits[0].Score != 1 || hits[1].Product.ID != "c" {
		t.Fatalf("hits = %+v", hits)
	}
}

// A message the follower applies while the index closes (a catalog deleted
// or the service stopping) must not crash the processor: the CI run that
// found it panicked with "close of closed channel".
func TestIndexAppliedAfterClose(t *testing.T) {
	x := NewIndex(4)
	x.close()
	x.Skip(7)
	x.Delete(8, "gone")
	if x.applied != 8 {
		t.Fatalf("applied %d, want 8", x.applied)
	}
}
