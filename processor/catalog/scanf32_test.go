package catalog

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// nearTieIndex is randomIndex (exact ties: every seventh row is row 0) with
// clusters of near ties: copies of a few base rows, each nudged by a few
// ulps in one element, so their exact cosines with a query differ by far
// less than the float32 margin; a query equal to a base row has its cluster
// at the top, and the k-th match falls inside it.
func nearTieIndex(rng *rand.Rand, n, dims int) (*Index, [][]float32) {
	x := randomIndex(rng, n, dims)
	var bases [][]float32
	for c := range 6 {
		base := make([]float32, dims)
		for j := range base {
			base[j] = float32(rng.NormFloat64())
		}
		bases = append(bases, base)
		for i := range 40 {
			v := append([]float32(nil), base...)
			j := rng.IntN(dims)
			bits := math.Float32bits(v[j])
			v[j] = math.Float32frombits(bits + uint32(rng.IntN(9)) - 4)
			id := fmt.Sprintf("tie%d-%d", c, i)
			x.Upsert(uint64(n+c*100+i+1), contracts.Product{ID: id, Metadata: map[string]string{"m": fmt.Sprint(i % 3), "color": colors[i%4]}}, v)
		}
	}
	return x, bases
}

// A pass of 4, 16 or 128 probes (the float32 kernel) answers exactly what
// the exact per-probe pass answers, and what a brute-force sort gives: the
// same rows, bitwise equal scores, totals, facets and group leaders and
// sizes, under thresholds (one exactly equal to a product's score),
// filters, exact ties and near ties at the k-th place.
func TestF32PassMatchesExact(t *testing.T) {
	f32Generic = true
	defer func() { f32Generic = false }()
	for _, dims := range []int{64, 20} { // 20: the Go fallback's sums
		rng := rand.New(rand.NewPCG(21, uint64(dims)))
		x, bases := nearTieIndex(rng, 6000, dims)
		for i := 0; i < 1500; i += 7 { // holes filled by swap-remove
			x.Delete(uint64(50000+i), fmt.Sprint(i))
		}
		// Rows out of f32Norm's range (scored exactly): zero, tiny, huge.
		for i, scale := range []float32{0, 1e-12, 1e16, 1e-40} {
			v := make([]float32, dims)
			for j := range v {
				v[j] = float32(rng.NormFloat64()) * scale
			}
			x.Upsert(uint64(60000+i), contracts.Product{ID: fmt.Sprint("odd", i), Metadata: map[string]string{"m": "1", "color": "red"}}, v)
		}
		for _, nq := range []int{4, 16, 128} {
			qs := make([]*Query, nq)
			for i := range qs {
				q := make([]float32, dims)
				switch i % 4 {
				case 0, 1: // a cluster's base: near ties at the top
					copy(q, bases[i%len(bases)])
				case 2: // row 0, whose exact copies are every seventh row
					copy(q, x.matrix[:dims])
				default:
					for j := range q {
						q[j] = float32(rng.NormFloat64())
					}
				}
				switch i {
				case 7: // a zero query: scored exactly beside the others
					clear(q)
				case 11: // a tiny one
					for j := range q {
						q[j] *= 1e-20
					}
				}
				o := contracts.SearchOptions{Count: true, Facets: []string{"color"}}
				var th *float64
				k := []int{1, 10, 25, 3}[i%4]
				switch i % 5 {
				case 1:
					th = ptr(0.2)
				case 2:
					o.Filter = contracts.Filter{"m": contracts.Equals("1")}
				case 3:
					o.GroupBy = "color"
				case 4: // a threshold equal to the 30th best score
					all := reference(x, q, nil, nil)
					th = ptr(all[30].score)
					o.Offset = 5
				}
				qs[i] = &Query{Vectors: [][]float32{q}, TopK: k, Threshold: th, Options: o, Workers: 1 + i%3}
			}
			old := F32Probes
			F32Probes = 1 << 30
			want := x.run(qs)
			F32Probes = old
			got := x.run(qs)
			for i, q := range qs {
				w, g := want[i][0], got[i][0]
				name := fmt.Sprintf("dims %d, %d probes, query %d (k %d, threshold %v, filter %v, group %q)", dims, nq, i, q.TopK, q.Threshold != nil, q.Options.Filter != nil, q.Options.GroupBy)
				if g.Total != w.Total || !maps.Equal(g.Facets["color"], w.Facets["color"]) {
					t.Fatalf("%s: total %d facets %v, exact %d %v", name, g.Total, g.Facets, w.Total, w.Facets)
				}
				if len(g.Hits) != len(w.Hits) {
					t.Fatalf("%s: %d hits, exact %d", name, len(g.Hits), len(w.Hits))
				}
				for j := range w.Hits {
					if g.Hits[j].Row != w.Hits[j].Row || math.Float64bits(g.Hits[j].Score) != math.Float64bits(w.Hits[j].Score) || g.Hits[j].GroupSize != w.Hits[j].GroupSize {
						t.Fatalf("%s: hit %d = row %d %v (%d), exact row %d %v (%d)", name, j, g.Hits[j].Row, g.Hits[j].Score, g.Hits[j].GroupSize, w.Hits[j].Row, w.Hits[j].Score, w.Hits[j].GroupSize)
					}
				}
				if q.Options.GroupBy != "" {
					continue
				}
				// And the brute force.
				ref := reference(x, q.Vectors[0], q.Threshold, q.Options.Filter)
				if g.Total != len(ref) {
					t.Fatalf("%s: total %d, brute force %d", name, g.Total, len(ref))
				}
				ref = ref[min(len(ref), q.Options.Offset):min(len(ref), q.Options.Offset+q.TopK)]
				if len(ref) != len(g.Hits) {
					t.Fatalf("%s: %d hits, brute force %d", name, len(g.Hits), len(ref))
				}
				for j, c := range ref {
					if g.Hits[j].Row != c.row || g.Hits[j].Score != c.score {
						t.Fatalf("%s: hit %d = row %d %v, brute force row %d %v", name, j, g.Hits[j].Row, g.Hits[j].Score, c.row, c.score)
					}
				}
			}
		}
	}
}

// The margin for 384 dims is the float32 bound plus a little, and the
// clusters of the test above are near ties: their exact scores differ by
// less than it (else the test would not test the fringe).
func TestF32MarginAndNearTies(t *testing.T) {
	if m := f32Margin(384); m < 2.288e-5 || m > 2.29e-5 {
		t.Fatalf("f32Margin(384) = %g, want about 2.289e-5", m)
	}
	rng := rand.New(rand.NewPCG(21, 64))
	x, bases := nearTieIndex(rng, 6000, 64)
	all := reference(x, bases[0], nil, nil)
	distinct := map[float64]bool{}
	for _, c := range all[:40] {
		distinct[c.score] = true
	}
	if spread := all[0].score - all[39].score; spread >= f32Margin(64) || len(distinct) < 5 {
		t.Fatalf("the cluster's 40 scores spread over %g (%d distinct), want several distinct within the margin %g", spread, len(distinct), f32Margin(64))
	}
}
