package catalog

import (
	"math"
	"slices"
	"sync"

	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// Int8Oversample is how many candidates per requested match an int8 scan
// keeps for exact rescoring (plus int8MinExtra): measured recall@10 against
// the exact float32 scan is in docs/catalogs.md.
const (
	Int8Oversample = 4
	int8MinExtra   = 32
)

// scanDense scores every row against every probe in one pass, split into
// contiguous row ranges, one per worker; each row is read once for all
// probes.
func (x *Index) scanDense(probes []*probe, workers int) {
	if len(probes) == 0 {
		return
	}
	n := len(x.products)
	// Small catalogs are not worth a goroutine per core.
	if per := (n + workers - 1) / max(workers, 1); per < 4096 {
		workers = max(1, (n+4095)/4096)
	}
	for _, p := range probes {
		spec := p.spec
		if x.Int8() {
			spec.k = max(spec.k*Int8Oversample, spec.k+int8MinExtra)
			spec.groupK = Int8Oversample
			p.q8 = make([]int8, x.dims)
			p.scale = vecmath.QuantizeInt8(p.q8, p.vec)
			p.qerr = relErr(x.dims, p.scale, p.qn)
		}
		p.parts = make([]*collector, workers)
		for w := range workers {
			p.parts[w] = newCollector(spec)
		}
	}
	scan := x.scan
	if x.Int8() {
		scan = x.scanInt8
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { scan(probes, w, lo, hi) })
	}
	wg.Wait()
	for _, p := range probes {
		p.merged = p.parts[0]
		for _, c := range p.parts[1:] {
			p.merged.merge(c)
		}
		if x.Int8() {
			x.rescore(p)
		}
	}
}

// relErr bounds the relative error of a quantized vector: each element is
// off by at most scale/2, so the error vector's norm is at most
// sqrt(dims)*scale/2, relative to the vector's norm.
func relErr(dims int, scale float32, norm float64) float64 {
	if norm == 0 {
		return 0
	}
	return math.Sqrt(float64(dims)) * float64(scale) / 2 / norm
}

// approx is the int8 estimate of row r's cosine with p's query, and a bound
// on its error: for q = q' + eq and r = r' + er (q', r' the dequantized
// vectors), q.r - q'.r' = eq.r + q'.er, so by Cauchy-Schwarz the cosine
// differs by at most |eq|/|q| + |er|/|r| + |eq||er|/(|q||r|).
func (x *Index) approx(p *probe, r int, dot int32) (score, margin float64) {
	rn := x.norms[r]
	if p.qn == 0 || rn == 0 {
		return 0, 0
	}
	rerr := relErr(x.dims, x.scales[r], rn)
	return float64(dot) * float64(p.scale) * float64(x.scales[r]) / (p.qn * rn), p.qerr + rerr + p.qerr*rerr
}

// scanInt8 is scan over an int8 matrix, a block of rows at a time: each
// block is read from memory once and scored for every probe from the cache.
// A product whose estimate is within its error bound of the threshold is
// decided by its exact score, read from the rows file, so the threshold,
// total and facets are exact.
func (x *Index) scanInt8(probes []*probe, w, lo, hi int) {
	const block = 256
	d := x.dims
	dots := make([]int32, block)
	row := make([]float32, d)
	for b := lo; b < hi; b += block {
		e := min(b+block, hi)
		for _, p := range probes {
			vecmath.DotInt8Rows(dots[:e-b], p.q8, x.q8[b*d:e*d])
			c := p.parts[w]
			for r := b; r < e; r++ {
				meta := x.products[r].Metadata
				if len(p.filter) > 0 && !p.filter.Match(meta) {
					continue
				}
				s, margin := x.approx(p, r, dots[r-b])
				if t := p.threshold; t != nil && s-margin < *t {
					if s+margin < *t {
						continue
					}
					if err := x.exact.Read(r, row); err != nil {
						x.fileFailed(err)
						continue
					}
					if s = vecmath.Cosine(p.vec, row, p.qn, x.norms[r]); s < *t {
						continue
					}
				}
				c.add(cand{row: r, score: s}, meta)
			}
		}
	}
}

// rescore replaces the estimates of an int8 scan's candidates (and group
// leaders) with their exact cosines from the rows file, drops those below
// the threshold, and keeps the probe's k best.
func (x *Index) rescore(p *probe) {
	c := p.merged
	row := make([]float32, x.dims)
	exact := func(m cand) cand {
		if err := x.exact.Read(m.row, row); err != nil {
			x.fileFailed(err)
			return m
		}
		m.score = vecmath.Cosine(p.vec, row, p.qn, x.norms[m.row])
		return m
	}
	kept := c.best[:0]
	for _, m := range c.best {
		if m = exact(m); p.threshold == nil || m.score >= *p.threshold {
			kept = append(kept, m)
		}
	}
	c.best = nil
	c.spec.k = p.spec.k
	for _, m := range kept {
		c.best.push(m, c.spec.k)
	}
	// A group's leader is the best of its candidates by exact score.
	for _, g := range c.groups {
		for i, m := range g.top {
			g.top[i] = exact(m)
		}
		g.best = slices.MinFunc(g.top, order)
	}
}

// scan scores rows [lo, hi) against every probe into the probes' collectors for worker w.
func (x *Index) scan(probes []*probe, w, lo, hi int) {
	d := x.dims
	for r := lo; r < hi; r++ {
		row := x.matrix[r*d : (r+1)*d : (r+1)*d]
		meta := x.products[r].Metadata
		for _, p := range probes {
			if len(p.filter) > 0 && !p.filter.Match(meta) {
				continue
			}
			s := vecmath.Cosine(p.vec, row, p.qn, x.norms[r])
			if p.threshold != nil && s < *p.threshold {
				continue
			}
			p.parts[w].add(cand{row: r, score: s}, meta)
		}
	}
}
