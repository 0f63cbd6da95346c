package catalog

import (
	"cmp"
	"runtime"
	"slices"
	"sync"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// Query is one search over an Index.
type Query struct {
	// Vectors are the query embeddings, one per query text.
	Vectors [][]float32
	// TopK is how many matches each query keeps (at least 1).
	TopK int
	// Threshold, when not nil, drops matches that score below it.
	Threshold *float64
	// Filter keeps only products whose metadata has each key with exactly its value.
	Filter map[string]string
	// Workers splits the scan over this many goroutines; 0 means GOMAXPROCS.
	Workers int
}

// Hit is one product found by Search.
type Hit struct {
	Row     int
	Score   float64
	Product contracts.Product
}

// Search returns, for each query vector, the TopK products with the highest
// cosine similarity, highest first, equal scores in row order: the order
// /predict gives for the same descriptions in row order, with the same
// scores (vecmath.Cosine). The scan reads the matrix once for all queries,
// split into contiguous row ranges, one per worker.
func (x *Index) Search(q Query) [][]Hit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := len(x.products)
	workers := q.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Small catalogs are not worth a goroutine per core.
	if per := (n + workers - 1) / max(workers, 1); per < 4096 {
		workers = max(1, (n+4095)/4096)
	}
	qn := make([]float64, len(q.Vectors))
	for i, v := range q.Vectors {
		qn[i] = vecmath.Norm(v)
	}
	parts := make([][]topK, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { parts[w] = x.scan(q, qn, lo, hi) })
	}
	wg.Wait()
	out := make([][]Hit, len(q.Vectors))
	for i := range q.Vectors {
		var all []cand
		for _, p := range parts {
			all = append(all, p[i]...)
		}
		slices.SortFunc(all, func(a, b cand) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c
			}
			return a.row - b.row
		})
		if len(all) > q.TopK {
			all = all[:q.TopK]
		}
		hits := make([]Hit, len(all))
		for j, c := range all {
			hits[j] = Hit{Row: c.row, Score: c.score, Product: x.products[c.row]}
		}
		out[i] = hits
	}
	return out
}

// scan scores rows [lo, hi) against every query and keeps each query's best.
func (x *Index) scan(q Query, qn []float64, lo, hi int) []topK {
	best := make([]topK, len(q.Vectors))
	d := x.dims
	for r := lo; r < hi; r++ {
		if len(q.Filter) > 0 && !matches(x.products[r].Metadata, q.Filter) {
			continue
		}
		row := x.matrix[r*d : (r+1)*d : (r+1)*d]
		for i, v := range q.Vectors {
			s := vecmath.Cosine(v, row, qn[i], x.norms[r])
			if q.Threshold != nil && s < *q.Threshold {
				continue
			}
			best[i].push(cand{row: r, score: s}, q.TopK)
		}
	}
	return best
}

func matches(meta, filter map[string]string) bool {
	for k, v := range filter {
		if mv, ok := meta[k]; !ok || mv != v {
			return false
		}
	}
	return true
}

type cand struct {
	row   int
	score float64
}

// worse orders candidates: a lower score, or the same score later in row order.
func worse(a, b cand) bool { return a.score < b.score || (a.score == b.score && a.row > b.row) }

// topK is a min-heap of the best candidates seen: its root is the worst kept.
type topK []cand

func (h *topK) push(c cand, k int) {
	s := *h
	if len(s) < k {
		s = append(s, c)
		for i := len(s) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(s[i], s[p]) {
				break
			}
			s[i], s[p] = s[p], s[i]
			i = p
		}
		*h = s
		return
	}
	if !worse(s[0], c) {
		return
	}
	s[0] = c
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && worse(s[l], s[m]) {
			m = l
		}
		if l+1 < len(s) && worse(s[l+1], s[m]) {
			m = l + 1
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}
