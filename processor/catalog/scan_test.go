package catalog

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

var colors = []string{"red", "green", "blue", "black"}

func randomIndex(rng *rand.Rand, n, dims int) *Index {
	x := NewIndex(dims)
	vec := make([]float32, dims)
	for i := range n {
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		p := contracts.Product{ID: fmt.Sprint(i), Description: fmt.Sprintf("item %d %s", i, colors[i%4]),
			Metadata: map[string]string{"m": fmt.Sprint(i % 3), "price": fmt.Sprint(i % 100), "color": colors[i%4]}}
		if i%11 == 0 {
			delete(p.Metadata, "color")
		}
		if i%7 == 3 { // ties
			x.Upsert(uint64(i+1), p, x.matrix[:dims])
			continue
		}
		x.Upsert(uint64(i+1), p, vec)
	}
	return x
}

// reference ranks every row by brute force: the filter, the threshold, a
// full sort, best first, equal scores in row order.
func reference(x *Index, q []float32, threshold *float64, filter contracts.Filter) []cand {
	var all []cand
	qn := vecmath.Norm(q)
	for r := range x.products {
		if !filter.Match(x.products[r].Metadata) {
			continue
		}
		s := vecmath.Cosine(q, x.matrix[r*x.dims:(r+1)*x.dims], qn, x.norms[r])
		if threshold == nil || s >= *threshold {
			all = append(all, cand{r, s})
		}
	}
	slices.SortStableFunc(all, order)
	return all
}

func ptr[T any](v T) *T { return &v }

// The parallel heap scan returns exactly what sorting every score does,
// page by page, with count and facets over the same matches.
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
	tests := []struct {
		name      string
		k         int
		threshold *float64
		filter    contracts.Filter
		workers   int
	}{
		{"top 10", 10, nil, nil, 4},
		{"top 1 one worker", 1, nil, nil, 1},
		{"threshold", 9000, ptr(0.1), nil, 3},
		{"filter", 25, nil, contracts.Filter{"m": contracts.Equals("1")}, 2},
		{"in", 25, nil, contracts.Filter{"color": {In: []string{"red", "blue"}}}, 2},
		{"ne", 25, nil, contracts.Filter{"color": {Ne: ptr("red")}}, 2},
		{"range", 25, ptr(-0.2), contracts.Filter{"price": {Gte: ptr(10.0), Lt: ptr(20.0)}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := reference(x, q, tt.threshold, tt.filter)
			wantFacets := map[string]int{}
			for _, c := range want {
				if v, ok := x.products[c.row].Metadata["color"]; ok {
					wantFacets[v]++
				}
			}
			// Pages of k continue each other exactly, ties included.
			var got []Hit
			for off := 0; off < min(len(want)+tt.k, 3*tt.k); off += tt.k {
				pg := x.Search(Query{Vectors: [][]float32{q}, TopK: tt.k, Threshold: tt.threshold, Workers: tt.workers,
					Options: contracts.SearchOptions{Filter: tt.filter, Offset: off, Count: true, Facets: []string{"color"}}})[0]
				if pg.Total != len(want) {
					t.Fatalf("offset %d: total %d, want %d", off, pg.Total, len(want))
				}
				if !maps.Equal(pg.Facets["color"], wantFacets) {
					t.Fatalf("facets %v, want %v", pg.Facets["color"], wantFacets)
				}
				got = append(got, pg.Hits...)
			}
			want = want[:min(len(want), 3*tt.k)]
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

// group_by keeps each value's best match, ranked by it, and counts the
// group; products without the key stand alone.
func TestSearchGroupBy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const dims = 16
	x := randomIndex(rng, 9000, dims)
	q := make([]float32, dims)
	for j := range q {
		q[j] = float32(rng.NormFloat64())
	}
	all := reference(x, q, ptr(0.0), nil)
	var want []cand
	seen, sizes := map[string]int{}, map[int]int{}
	for _, c := range all {
		v, ok := x.products[c.row].Metadata["color"]
		if !ok {
			want = append(want, c)
			sizes[c.row] = 1
			continue
		}
		if l, dup := seen[v]; dup {
			sizes[l]++
			continue
		}
		seen[v] = c.row
		sizes[c.row] = 1
		want = append(want, c)
	}
	for _, off := range []int{0, 3, 40} {
		pg := x.Search(Query{Vectors: [][]float32{q}, TopK: 5, Threshold: ptr(0.0), Options: contracts.SearchOptions{GroupBy: "color", Offset: off}})[0]
		w := want[off:min(len(want), off+5)]
		if len(pg.Hits) != len(w) {
			t.Fatalf("offset %d: %d hits, want %d", off, len(pg.Hits), len(w))
		}
		for i, h := range pg.Hits {
			if h.Row != w[i].row || h.GroupSize != sizes[w[i].row] {
				t.Fatalf("offset %d hit %d: row %d size %d, want row %d size %d", off, i, h.Row, h.GroupSize, w[i].row, sizes[w[i].row])
			}
		}
	}
	if sizes[want[0].row] < 100 {
		t.Fatalf("the best group counts %d; a color holds about a quarter of the matches", sizes[want[0].row])
	}
}

// keywordIndex is a tiny catalog for the keyword and hybrid tests: the
// vectors make a2 the dense favourite, the text makes DCD771C2 a keyword.
func keywordIndex() *Index {
	x := NewIndex(2)
	add := func(seq uint64, id, desc string, v []float32, meta map[string]string) {
		x.Upsert(seq, contracts.Product{ID: id, Description: desc, Metadata: meta}, v)
	}
	add(1, "a1", "DeWalt DCD771C2 20V cordless drill", []float32{0.6, 0.8}, map[string]string{"brand": "DeWalt"})
	add(2, "a2", "DeWalt DCD777C2 20V cordless drill, brushless", []float32{1, 0}, map[string]string{"brand": "DeWalt"})
	add(3, "a3", "Bosch 18V cordless drill", []float32{0.9, 0.1}, map[string]string{"brand": "Bosch"})
	add(4, "a4", "garden hose 50 ft", []float32{0, 1}, map[string]string{"brand": "Acme"})
	return x
}

func TestKeywordAndHybrid(t *testing.T) {
	x := keywordIndex()
	q := []float32{1, 0.05}
	search := func(o contracts.SearchOptions) Page {
		return x.Search(Query{Texts: []string{"DCD771C2"}, Vectors: [][]float32{q}, TopK: 3, Options: o})[0]
	}
	ids := func(p Page) []string {
		var out []string
		for _, h := range p.Hits {
			out = append(out, h.Product.ID)
		}
		return out
	}
	if got := ids(search(contracts.SearchOptions{})); got[0] != "a2" {
		t.Fatalf("dense ranks %v; the test wants a2 first there", got)
	}
	if got := ids(search(contracts.SearchOptions{Mode: contracts.ModeKeyword, Count: true})); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("keyword ranks %v, want only a1", got)
	}
	h := search(contracts.SearchOptions{Mode: contracts.ModeHybrid, Explain: true, Count: true})
	if got := ids(h); got[0] != "a1" {
		t.Fatalf("hybrid ranks %v, want a1 first", got)
	}
	if h.Total != 4 {
		t.Fatalf("hybrid total %d, want every product (no filter, no threshold)", h.Total)
	}
	// RRF as documented: a1 is dense rank 3 and keyword rank 1.
	e := h.Hits[0].Explain
	if e.DenseRank == nil || *e.DenseRank != 3 || e.KeywordRank == nil || *e.KeywordRank != 1 {
		t.Fatalf("explain %+v, want dense rank 3 and keyword rank 1", e)
	}
	if want := 1/(60.0+3) + 1/(60.0+1); h.Hits[0].Score != want {
		t.Fatalf("a1 fused %v, want 1/63 + 1/61 = %v", h.Hits[0].Score, want)
	}
	a1 := []float32{0.6, 0.8}
	if e.Dense != vecmath.Cosine(q, a1, vecmath.Norm(q), vecmath.Norm(a1)) || e.Keyword <= 0 {
		t.Fatalf("explain scores %+v", e)
	}
	a2 := h.Hits[1].Explain
	if h.Hits[1].Product.ID != "a2" || a2.KeywordRank != nil || *a2.DenseRank != 1 || a2.Keyword != 0 {
		t.Fatalf("second hit %s explain %+v, want a2: dense rank 1, no keyword rank", h.Hits[1].Product.ID, a2)
	}
	// Weighted: alpha 1 is the dense order, alpha 0 puts the keyword match first.
	if got := ids(search(contracts.SearchOptions{Mode: contracts.ModeHybrid, Fusion: contracts.FusionWeighted, Alpha: ptr(1.0)})); got[0] != "a2" {
		t.Fatalf("weighted alpha 1 ranks %v", got)
	}
	if got := ids(search(contracts.SearchOptions{Mode: contracts.ModeHybrid, Fusion: contracts.FusionWeighted, Alpha: ptr(0.0)})); got[0] != "a1" {
		t.Fatalf("weighted alpha 0 ranks %v", got)
	}
	// Filters apply before ranking in every mode.
	for _, mode := range []string{contracts.ModeDense, contracts.ModeKeyword, contracts.ModeHybrid} {
		pg := search(contracts.SearchOptions{Mode: mode, Filter: contracts.Filter{"brand": {Ne: ptr("DeWalt")}}, Count: true})
		for _, h := range pg.Hits {
			if h.Product.Metadata["brand"] == "DeWalt" {
				t.Fatalf("mode %s: the filter let %s through", mode, h.Product.ID)
			}
		}
	}
	// The keyword index follows deletes, moves and replacements.
	x.Delete(10, "a1")
	if got := ids(search(contracts.SearchOptions{Mode: contracts.ModeKeyword})); len(got) != 0 {
		t.Fatalf("after delete keyword ranks %v", got)
	}
	x.Upsert(11, contracts.Product{ID: "a4", Description: "DCD771C2 replacement battery"}, []float32{0, 1})
	if got := ids(search(contracts.SearchOptions{Mode: contracts.ModeKeyword})); !slices.Equal(got, []string{"a4"}) {
		t.Fatalf("after replace keyword ranks %v", got)
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
	hits := x.Search(Query{Vectors: [][]float32{{1, 0}}, TopK: 5})[0].Hits
	if len(hits) != 2 || hits[0].Product.ID != "b" || hits[0].Score != 1 || hits[1].Product.ID != "c" {
		t.Fatalf("hits = %+v", hits)
	}
}

// Searches that arrive while a pass runs share the next one, and each gets
// its own answer.
func TestSharedPass(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const dims = 16
	x := randomIndex(rng, 30000, dims)
	qs := make([][]float32, 32)
	for i := range qs {
		qs[i] = make([]float32, dims)
		for j := range qs[i] {
			qs[i][j] = float32(rng.NormFloat64())
		}
	}
	// An apply holds the write lock: the first search waits in its pass,
	// the others queue for the next.
	x.mu.Lock()
	res := make([]Page, len(qs))
	done := make(chan int)
	for i := range qs {
		go func() {
			res[i] = x.Search(Query{Vectors: [][]float32{qs[i]}, TopK: 3})[0]
			done <- i
		}()
	}
	for queued := 0; queued < len(qs)-1; {
		runtime.Gosched()
		x.batch.Lock()
		if x.next != nil {
			queued = len(x.next.qs)
		}
		x.batch.Unlock()
	}
	x.mu.Unlock()
	for range qs {
		<-done
	}
	if n := x.passes.Load(); n != 2 {
		t.Fatalf("%d searches took %d passes, want 2", len(qs), n)
	}
	for i, q := range qs {
		want := reference(x, q, nil, nil)[:3]
		for j, h := range res[i].Hits {
			if h.Row != want[j].row || h.Score != want[j].score {
				t.Fatalf("query %d hit %d = row %d, want row %d", i, j, h.Row, want[j].row)
			}
		}
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

// An int8 index scans the int8 matrix and rescores its best candidates
// from the exact rows: the same matches with the same exact scores as the
// float32 scan (recall >= 0.99), and exact totals: a product near the
// threshold is decided by its exact score.
func TestInt8SearchMatchesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dims = 64
	x, err := NewInt8Index(dims, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := NewIndex(dims)
	vec := make([]float32, dims)
	for i := range 20000 {
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		p := contracts.Product{ID: fmt.Sprint(i), Metadata: map[string]string{"m": fmt.Sprint(i % 3), "color": colors[i%4]}}
		x.Upsert(uint64(i+1), p, vec)
		ref.Upsert(uint64(i+1), p, vec)
	}
	for i := 0; i < 3000; i += 5 { // holes filled by swap-remove, in the rows file too
		x.Delete(uint64(30000+i), fmt.Sprint(i))
		ref.Delete(uint64(30000+i), fmt.Sprint(i))
	}
	if got, want := x.MatrixBytes(), int64(x.Len())*(dims+4+8); got != want {
		t.Fatalf("int8 matrix bytes %d, want %d", got, want)
	}
	misses, total := 0, 0
	for qi := range 30 {
		q := make([]float32, dims)
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		for _, tc := range []struct {
			name      string
			threshold *float64
			filter    contracts.Filter
			group     string
		}{
			{"top 10", nil, nil, ""},
			{"threshold", ptr(0.25), nil, ""},
			{"filter", nil, contracts.Filter{"m": contracts.Equals("1")}, ""},
			{"group", nil, nil, "color"},
		} {
			opts := contracts.SearchOptions{Filter: tc.filter, Count: true, GroupBy: tc.group}
			want := ref.Search(Query{Vectors: [][]float32{q}, TopK: 10, Threshold: tc.threshold, Options: opts})[0]
			got := x.Search(Query{Vectors: [][]float32{q}, TopK: 10, Threshold: tc.threshold, Options: opts})[0]
			if x.Err() != nil {
				t.Fatal(x.Err())
			}
			for i, w := range want.Hits {
				total++
				if i >= len(got.Hits) || got.Hits[i].Product.ID != w.Product.ID || got.Hits[i].Score != w.Score || got.Hits[i].GroupSize != w.GroupSize {
					misses++
					if i < len(got.Hits) {
						t.Logf("query %d %s hit %d: %s %v (%d), exact %s %v (%d)", qi, tc.name, i, got.Hits[i].Product.ID, got.Hits[i].Score, got.Hits[i].GroupSize, w.Product.ID, w.Score, w.GroupSize)
					}
				}
			}
			if got.Total != want.Total {
				t.Errorf("query %d %s: total %d, exact %d", qi, tc.name, got.Total, want.Total)
			}
		}
	}
	t.Logf("int8 rescored: %d of %d hits differ from the float32 scan", misses, total)
	if misses > total/100 {
		t.Fatalf("%d of %d hits differ from the float32 scan (recall under 0.99)", misses, total)
	}
}
