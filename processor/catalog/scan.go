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
	if fast, rest := x.f32Split(probes); fast != nil {
		x.scanF32(fast, rest, workers)
		return
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

// The float32 pass. A pass with many probes (shared searches, the 128
// source rows of a match job's pass) is bound by arithmetic, not memory:
// vecmath.Dot's float64 accumulation, exact but slow, would cost it most of
// its time. From F32Probes probes on, a float32 index's pass scores each
// block of rows against four probes at a time with vecmath.DotF32x4Rows
// (float32 FMAs, each row read once for the four) and uses the results as
// estimates within a proven bound of the exact cosines; what is returned
// stays exactly what the per-probe scan returns, bit for bit:
//
//   - the threshold: a product whose estimate is within the bound of it is
//     decided by its exact cosine (vecmath.Cosine), so totals and facets
//     count exactly the products at or above it;
//   - the top k: each probe keeps the k best estimates and, beside them,
//     every candidate whose estimate is within twice the bound of the
//     k-th best (the fringe); all of them are rescored exactly and the k
//     best exact scores (ties in row order) are the answer. Twice the bound
//     is enough: if a product x of the exact top k is not among the k best
//     estimates, one of those k, y, ranks below x exactly, so the k-th best
//     estimate is at most est(y) <= exact(y) + b <= exact(x) + b <= est(x) + 2b;
//   - groups: the same with k = 1 per group (the best estimate and every
//     member within twice the bound of it), so each leader is the group's
//     exact best.
//
// Exact ties (identical rows) have identical estimates, and all of them stay
// in the fringe; on real embeddings the fringe holds a few rows.

// F32Probes is the fewest probes for which a float32 index's pass uses the
// float32 kernel; fewer probes are scored exactly one by one. Benchmarks set
// it out of reach to measure the exact pass.
var F32Probes = 4

// f32Generic lets the float32 pass run where DotF32x4Rows has no kernel
// (vecmath.F32x4Fast), which is slower than the exact pass: tests only.
var f32Generic = false

// f32Margin bounds |estimate - exact cosine| for dims-dimensional rows,
// relative to the cosine (the products of unit vectors): the float32 dot
// product is within gamma_n(2^-24) * sum|q_i r_i| <= gamma_n(2^-24) |q||r|
// of the exact one (vecmath.DotF32Bound, Cauchy-Schwarz), plus n * 2^-149
// for subnormal products, which is at most n * 2^-89 of |q||r| when both
// norms are at least 2^-30 (f32Norm). The exact score is itself a float64
// sum within gamma_n(2^-53) |q||r| of the true dot product, the norms are
// within about gamma_n(2^-53) of theirs, and the estimate's two
// multiplications by reciprocals and the exact score's division add a few
// roundings of 2^-53: 8 gamma_n(2^-53) covers them all. For 384 dims the
// margin is about 2.289e-5.
func f32Margin(dims int) float64 {
	n := float64(dims)
	g64 := n * 0x1p-53 / (1 - n*0x1p-53)
	return vecmath.DotF32Bound(dims) + 8*g64 + (n+8)*0x1p-89
}

// f32Norm reports whether a vector of norm n can be estimated in float32:
// between 2^-30 and 2^50, no product or sum of the float32 dot product with
// another such vector overflows (|q||r| <= 2^100), and subnormals stay
// below the margin (|q||r| >= 2^-60). NaN is not.
func f32Norm(n float64) bool { return n >= 0x1p-30 && n <= 0x1p50 }

// f32Probe is a probe of the float32 pass.
type f32Probe struct {
	*probe
	qinv  float64         // 1 / qn
	parts []*estCollector // one per worker
}

// f32Split returns the probes the float32 pass estimates (a non-nil slice
// only when a float32 index's pass has at least F32Probes of them) and the
// others (a zero or oddly scaled query), which are scored exactly.
func (x *Index) f32Split(probes []*probe) (fast []*f32Probe, rest []*probe) {
	if x.Int8() || len(probes) < max(F32Probes, 1) || !(vecmath.F32x4Fast(x.dims) || f32Generic) {
		return nil, nil
	}
	for _, p := range probes {
		if len(p.vec) == x.dims && f32Norm(p.qn) {
			fast = append(fast, &f32Probe{probe: p, qinv: 1 / p.qn})
		} else {
			rest = append(rest, p)
		}
	}
	if len(fast) < max(F32Probes, 1) {
		return nil, nil
	}
	return fast, rest
}

// scanF32 is scanDense's float32 pass: fast probes estimated, four at a
// time, over blocks of rows, rest scored exactly over the same blocks.
func (x *Index) scanF32(fast []*f32Probe, rest []*probe, workers int) {
	margin := f32Margin(x.dims)
	for _, p := range fast {
		spec := p.spec
		spec.groupK = 0
		p.parts = make([]*estCollector, workers)
		for w := range workers {
			p.parts[w] = newEstCollector(spec, 2*margin)
		}
	}
	for _, p := range rest {
		p.parts = make([]*collector, workers)
		for w := range workers {
			p.parts[w] = newCollector(p.spec)
		}
	}
	// Quads of probes; the last one padded with its own last probe, whose
	// extra results are not collected.
	var quads [][4]*f32Probe
	for i := 0; i < len(fast); i += 4 {
		var q [4]*f32Probe
		for j := range 4 {
			q[j] = fast[min(i+j, len(fast)-1)]
		}
		quads = append(quads, q)
	}
	n := len(x.products)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { x.scanF32Rows(quads, len(fast), rest, margin, w, lo, hi) })
	}
	wg.Wait()
	for _, p := range rest {
		p.merged = p.parts[0]
		for _, c := range p.parts[1:] {
			p.merged.merge(c)
		}
	}
	for _, p := range fast {
		c := p.parts[0]
		for _, o := range p.parts[1:] {
			c.merge(o)
		}
		p.merged = x.rescoreF32(p, c)
	}
}

// f32Block is the rows a worker scores against every probe before moving
// on: 192 rows of 384 dims are 288 KiB, which stay in L2 while every quad
// of probes reads them.
const f32Block = 192

// scanF32Rows scores rows [lo, hi) for worker w.
func (x *Index) scanF32Rows(quads [][4]*f32Probe, nfast int, rest []*probe, margin float64, w, lo, hi int) {
	d := x.dims
	dots := make([]float32, 4*f32Block)
	rinv := make([]float64, f32Block)
	for b := lo; b < hi; b += f32Block {
		e := min(b+f32Block, hi)
		for r := b; r < e; r++ {
			rinv[r-b] = math.NaN() // scored exactly
			if rn := x.norms[r]; f32Norm(rn) {
				rinv[r-b] = 1 / rn
			}
		}
		for qi, quad := range quads {
			vecmath.DotF32x4Rows(dots[:4*(e-b)], [4][]float32{quad[0].vec, quad[1].vec, quad[2].vec, quad[3].vec}, x.matrix[b*d:e*d])
			for j := range min(4, nfast-4*qi) {
				x.collectF32(quad[j], quad[j].parts[w], dots[j:4*(e-b)], rinv, margin, b, e)
			}
		}
		if len(rest) > 0 {
			x.scan(rest, w, b, e)
		}
	}
}

// collectF32 adds rows [b, e) to c, their estimates at dots[4*(r-b)]: a
// row whose estimate is within margin of the threshold, or whose norm is
// out of f32Norm's range (rinv NaN), is scored exactly. The loop rejects
// first, in one comparison, the estimates below both the threshold minus
// the margin and the collector's cut: most rows of a pass.
func (x *Index) collectF32(p *f32Probe, c *estCollector, dots []float32, rinv []float64, margin float64, b, e int) {
	d := x.dims
	needMeta := len(p.filter) > 0 || c.groups != nil || len(c.spec.facets) > 0
	exact := func(r int) float64 { return vecmath.Cosine(p.vec, x.matrix[r*d:(r+1)*d:(r+1)*d], p.qn, x.norms[r]) }
	tlim := math.Inf(-1)
	if t := p.threshold; t != nil {
		tlim = *t - margin
	}
	lim := max(c.cut, tlim)
	qinv := p.qinv
	rinv = rinv[:e-b]
	dots = dots[:4*len(rinv)-3] // e > b; dots starts at this probe's column
	for i, ri := range rinv {
		s := float64(dots[4*i]) * qinv * ri
		if s < lim { // false for NaN
			continue
		}
		r := b + i
		known := ri != ri
		if known {
			s = exact(r)
			if s < c.cut {
				continue
			}
		}
		var meta map[string]string
		if needMeta {
			meta = x.products[r].Metadata
			if len(p.filter) > 0 && !p.filter.Match(meta) {
				continue
			}
		}
		if t := p.threshold; t != nil {
			if !known && s-margin < *t {
				if s+margin < *t {
					continue
				}
				s = exact(r)
				known = true
			}
			if known && s < *t {
				continue
			}
		}
		c.add(cand{row: r, score: s}, meta)
		lim = max(c.cut, tlim)
	}
}

// rescoreF32 turns a probe's merged estimates into the collector of the
// exact scan: the k best exact scores among the kept candidates (the heap
// and its fringe) and each group's exact best; counts and facets are
// already exact.
func (x *Index) rescoreF32(p *f32Probe, c *estCollector) *collector {
	d := x.dims
	exact := func(m cand) cand {
		m.score = vecmath.Cosine(p.vec, x.matrix[m.row*d:(m.row+1)*d:(m.row+1)*d], p.qn, x.norms[m.row])
		return m
	}
	floor := math.Inf(-1)
	if k := c.spec.k; k > 0 && len(c.best) == k {
		floor = c.best[0].score - c.slack
	}
	kept := append([]cand(c.best), c.fringe...)
	c.best = nil
	for _, m := range kept {
		if m.score >= floor {
			c.best.push(exact(m), c.spec.k)
		}
	}
	for v, g := range c.groups {
		floor := g.best.score - c.slack
		best := exact(g.best)
		for _, m := range c.gfringe[v] {
			if m.score >= floor {
				if m = exact(m); worse(best, m) {
					best = m
				}
			}
		}
		g.best = best
	}
	return c.collector
}

// estCollector is a collector of estimates (within slack/2 of the exact
// scores) that also keeps the candidates that could still be among the k
// best (or a group's best) exactly: the fringe (see the top of this file).
type estCollector struct {
	*collector
	slack   float64
	fringe  []cand            // ungrouped candidates out of the heap, within slack of its root when they left
	pruned  int               // len(fringe) after its last pruning
	gfringe map[string][]cand // per group: members other than the best, within slack of the best when added
	// cut: an estimate below it can change nothing (set only when nothing
	// is counted or grouped and the heap is full: its root minus slack).
	cut float64
}

func newEstCollector(spec collectSpec, slack float64) *estCollector {
	c := &estCollector{collector: newCollector(spec), slack: slack, cut: math.Inf(-1)}
	if c.groups != nil {
		c.gfringe = map[string][]cand{}
	}
	return c
}

func (c *estCollector) add(m cand, meta map[string]string) {
	if c.groups != nil {
		if v, ok := meta[c.spec.groupBy]; ok {
			g := c.groups[v]
			if g == nil {
				c.collector.add(m, meta)
				return
			}
			out := m
			if worse(g.best, m) {
				out = g.best
			}
			c.collector.add(m, meta)
			c.groupFringe(v, out)
			return
		}
	}
	if c.spec.count {
		c.count++
	}
	for i, k := range c.spec.facets {
		if v, ok := meta[k]; ok {
			c.facets[i][v]++
		}
	}
	c.push(m)
}

// groupFringe keeps m, a member of group v that is not its best, when it is
// within slack of the best.
func (c *estCollector) groupFringe(v string, m cand) {
	floor := c.groups[v].best.score - c.slack
	if m.score < floor {
		return
	}
	gf := append(c.gfringe[v], m)
	if len(gf) >= 16 && len(gf)&(len(gf)-1) == 0 { // at powers of two: amortized
		gf = prune(gf, floor)
	}
	c.gfringe[v] = gf
}

// push adds an ungrouped candidate to the heap; the one that leaves it (m
// or the old root) joins the fringe when within slack of the new root.
func (c *estCollector) push(m cand) {
	k := c.spec.k
	if k <= 0 {
		return
	}
	if len(c.best) < k {
		c.best.push(m, k)
	} else {
		out := m
		if worse(c.best[0], m) {
			out = c.best[0]
		}
		c.best.push(m, k)
		floor := c.best[0].score - c.slack
		if out.score >= floor {
			c.fringe = append(c.fringe, out)
			if len(c.fringe) >= 2*c.pruned+64 {
				c.fringe = prune(c.fringe, floor)
				c.pruned = len(c.fringe)
			}
		}
	}
	if len(c.best) == k && !c.spec.count && len(c.spec.facets) == 0 && c.groups == nil {
		c.cut = c.best[0].score - c.slack
	}
}

// merge adds another worker's collector of the same spec to c.
func (c *estCollector) merge(o *estCollector) {
	c.count += o.count
	for i, f := range o.facets {
		for v, n := range f {
			c.facets[i][v] += n
		}
	}
	for v, og := range o.groups {
		g := c.groups[v]
		if g == nil {
			c.groups[v] = og
			c.gfringe[v] = o.gfringe[v]
			continue
		}
		g.size += og.size
		out := og.best
		if worse(g.best, og.best) {
			out, g.best = g.best, og.best
		}
		floor := g.best.score - c.slack
		c.gfringe[v] = prune(append(append(c.gfringe[v], o.gfringe[v]...), out), floor)
	}
	for _, m := range o.best {
		c.push(m)
	}
	c.fringe = append(c.fringe, o.fringe...)
	if k := c.spec.k; k > 0 && len(c.best) == k {
		c.fringe = prune(c.fringe, c.best[0].score-c.slack)
	}
	c.pruned = len(c.fringe)
}

// prune keeps the candidates of list scoring at least floor, in place.
func prune(list []cand, floor float64) []cand {
	out := list[:0]
	for _, m := range list {
		if m.score >= floor {
			out = append(out, m)
		}
	}
	return out
}
