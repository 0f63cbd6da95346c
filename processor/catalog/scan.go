package catalog

import (
	"cmp"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// Query is one search request over an Index: one or more query texts with
// the same options.
type Query struct {
	// Texts are the query texts; keyword and hybrid search score them.
	Texts []string
	// Vectors are the query embeddings, one per text; dense and hybrid
	// search (and explain) score them. Nil in keyword mode without explain.
	Vectors [][]float32
	// TopK is how many matches (or groups) a page holds (at least 1).
	TopK int
	// Threshold, when not nil, drops products whose cosine similarity is below it.
	Threshold *float64
	// Options are the mode, filter, page, count, facets, group and explain.
	Options contracts.SearchOptions
	// Workers splits the dense scan over this many goroutines; 0 means GOMAXPROCS.
	Workers int
}

// Page is the answer to one query text.
type Page struct {
	Hits []Hit
	// Total counts the matches after the filter and the threshold (Options.Count).
	Total int
	// Facets counts the matches per value of each requested key (Options.Facets).
	Facets map[string]map[string]int
}

// Hit is one product found by Search.
type Hit struct {
	Row     int
	Score   float64
	Product contracts.Product
	// Explain is set when Options.Explain is.
	Explain *contracts.Explain
	// GroupSize is set when Options.GroupBy is.
	GroupSize int
}

// Search answers q. Dense scores and order are exactly those /predict gives
// for the same descriptions in row order (vecmath.Cosine, equal scores in
// row order). Searches that arrive while another runs share the next pass
// over the matrix: 16 concurrent clients cost far less than 16 scans.
func (x *Index) Search(q Query) []Page {
	if x.solo {
		return x.run([]*Query{&q})[0]
	}
	x.batch.Lock()
	if x.passing {
		b := x.next
		if b == nil {
			b = &batch{done: make(chan struct{})}
			x.next = b
		}
		i := len(b.qs)
		b.qs = append(b.qs, &q)
		x.batch.Unlock()
		<-b.done
		return b.out[i]
	}
	x.passing = true
	x.batch.Unlock()
	out := x.run([]*Query{&q})
	x.handoff()
	return out[0]
}

// batch is the searches that wait for the next shared pass.
type batch struct {
	qs   []*Query
	out  [][]Page
	done chan struct{}
}

// handoff starts the pass of the searches that queued during the last one,
// or records that no pass runs.
func (x *Index) handoff() {
	x.batch.Lock()
	b := x.next
	x.next = nil
	if b == nil {
		x.passing = false
		x.batch.Unlock()
		return
	}
	x.batch.Unlock()
	go func() {
		b.out = x.run(b.qs)
		close(b.done)
		x.handoff()
	}()
}

// run answers qs under one read lock, with one dense pass over the matrix
// for all of them.
func (x *Index) run(qs []*Query) [][]Page {
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.passes.Add(1)
	var probes []*probe
	plans := make([][]*plan, len(qs))
	for i, q := range qs {
		plans[i] = make([]*plan, max(len(q.Texts), len(q.Vectors)))
		for j := range plans[i] {
			p := x.plan(q, j)
			plans[i][j] = p
			if p.dense != nil {
				probes = append(probes, p.dense)
			}
		}
	}
	workers := 1
	for _, q := range qs {
		workers = max(workers, q.Workers)
		if q.Workers <= 0 {
			workers = max(workers, runtime.GOMAXPROCS(0))
		}
	}
	x.scanDense(probes, workers)
	out := make([][]Page, len(qs))
	for i := range qs {
		out[i] = make([]Page, len(plans[i]))
		for j, p := range plans[i] {
			out[i][j] = x.finish(p)
		}
	}
	return out
}

// plan is one query text's search: which lists it needs and how it ends.
type plan struct {
	q     *Query
	text  string
	vec   []float32
	qn    float64
	mode  string
	dense *probe // nil when the mode and explain need no dense list
}

// probe is one dense list to collect in the shared pass.
type probe struct {
	vec       []float32
	qn        float64
	filter    contracts.Filter
	threshold *float64
	spec      collectSpec
	parts     []*collector // one per worker
	merged    *collector

	// An int8 index's scan: the query quantized, and its relative error
	// bound (see approx).
	q8    []int8
	scale float32
	qerr  float64
}

// Int8Oversample is how many candidates per requested match an int8 scan
// keeps for exact rescoring (plus int8MinExtra): measured recall@10 against
// the exact float32 scan is in docs/catalogs.md.
const (
	Int8Oversample = 4
	int8MinExtra   = 32
)

func (x *Index) plan(q *Query, j int) *plan {
	o := &q.Options
	p := &plan{q: q, mode: o.EffectiveMode()}
	if j < len(q.Texts) {
		p.text = q.Texts[j]
	}
	if j < len(q.Vectors) {
		p.vec = q.Vectors[j]
		p.qn = vecmath.Norm(p.vec)
	}
	page := o.Offset + q.TopK
	switch {
	case p.mode == contracts.ModeDense:
		spec := collectSpec{k: page, count: o.Count, facets: o.Facets, groupBy: o.GroupBy}
		if o.Explain {
			spec.k = max(page, o.EffectiveCandidates())
		}
		p.dense = &probe{spec: spec}
	case p.mode == contracts.ModeHybrid:
		p.dense = &probe{spec: collectSpec{k: o.EffectiveCandidates(), count: o.Count, facets: o.Facets}}
	case o.Explain && p.vec != nil: // keyword mode: the dense ranks of explain
		p.dense = &probe{spec: collectSpec{k: o.EffectiveCandidates()}}
	}
	if p.dense != nil {
		p.dense.vec, p.dense.qn, p.dense.filter, p.dense.threshold = p.vec, p.qn, o.Filter, q.Threshold
	}
	return p
}

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

// keywordList ranks the rows holding a query term by BM25, after the filter
// and, when set, the threshold on the dense score.
func (x *Index) keywordList(p *plan, spec collectSpec) *collector {
	c := newCollector(spec)
	o := &p.q.Options
	x.kw.Score(p.text, func(r int, s float64) {
		meta := x.products[r].Metadata
		if len(o.Filter) > 0 && !o.Filter.Match(meta) {
			return
		}
		if p.q.Threshold != nil && !x.atLeast(p, r, *p.q.Threshold) {
			return
		}
		c.add(cand{row: r, score: s}, meta)
	})
	return c
}

// cosine is row r's exact cosine with p's query (an int8 index reads the
// row from its file).
func (x *Index) cosine(p *plan, r int) float64 {
	if !x.Int8() {
		return vecmath.Cosine(p.vec, x.matrix[r*x.dims:(r+1)*x.dims], p.qn, x.norms[r])
	}
	row := make([]float32, x.dims)
	if err := x.exact.Read(r, row); err != nil {
		x.fileFailed(err)
		return 0
	}
	return vecmath.Cosine(p.vec, row, p.qn, x.norms[r])
}

// atLeast reports whether row r's exact cosine with p's query is at least
// t; an int8 index reads the row only when its estimate is within the error
// bound of t.
func (x *Index) atLeast(p *plan, r int, t float64) bool {
	if d := p.dense; d != nil && d.q8 != nil {
		s, margin := x.approx(d, r, vecmath.DotInt8(d.q8, x.q8[r*x.dims:(r+1)*x.dims]))
		if s-margin >= t {
			return true
		}
		if s+margin < t {
			return false
		}
	}
	return x.cosine(p, r) >= t
}

// finish turns a plan's lists into its page.
func (x *Index) finish(p *plan) Page {
	o := &p.q.Options
	page := o.Offset + p.q.TopK
	var (
		list     []cand // the ranked matches (or group leaders) of the mode
		sizes    map[int]int
		counted  *collector
		dense    []cand // the dense candidates, for explain
		keywords []cand // the keyword candidates, for explain
	)
	switch p.mode {
	case contracts.ModeDense:
		counted = p.dense.merged
		list, sizes = counted.ranked()
		dense = list
	case contracts.ModeKeyword:
		spec := collectSpec{k: page, count: o.Count, facets: o.Facets, groupBy: o.GroupBy}
		if o.Explain {
			spec.k = max(page, o.EffectiveCandidates())
		}
		counted = x.keywordList(p, spec)
		list, sizes = counted.ranked()
		keywords = list
		if p.dense != nil {
			dense, _ = p.dense.merged.ranked()
		}
	case contracts.ModeHybrid:
		counted = p.dense.merged
		dense, _ = counted.ranked()
		keywords, _ = x.keywordList(p, collectSpec{k: o.EffectiveCandidates()}).ranked()
		list = fuse(dense, keywords, o)
		if o.GroupBy != "" {
			list, sizes = x.groupRanked(list, o.GroupBy)
		}
	}
	res := Page{Total: counted.count}
	if len(o.Facets) > 0 {
		res.Facets = counted.topFacets(o.Facets)
	}
	if o.Explain && keywords == nil {
		keywords, _ = x.keywordList(p, collectSpec{k: o.EffectiveCandidates()}).ranked()
	}
	if o.Offset < len(list) {
		list = list[o.Offset:min(len(list), page)]
	} else {
		list = nil
	}
	res.Hits = make([]Hit, len(list))
	var kwScores map[int]float64
	if o.Explain {
		kwScores = x.keywordScores(p, list, keywords)
	}
	for i, c := range list {
		h := Hit{Row: c.row, Score: c.score, Product: x.products[c.row]}
		if o.GroupBy != "" {
			h.GroupSize = sizes[c.row]
		}
		if o.Explain {
			h.Explain = &contracts.Explain{Keyword: kwScores[c.row], DenseRank: rankOf(dense, c.row), KeywordRank: rankOf(keywords, c.row)}
			if p.vec != nil {
				h.Explain.Dense = x.cosine(p, c.row)
			}
		}
		res.Hits[i] = h
	}
	return res
}

// keywordScores is the BM25 score of each hit: from the keyword candidates,
// or by scoring again the hits that are not among them.
func (x *Index) keywordScores(p *plan, hits, keywords []cand) map[int]float64 {
	out := make(map[int]float64, len(hits))
	missing := map[int]bool{}
	for _, h := range hits {
		missing[h.row] = true
	}
	for _, c := range keywords {
		if missing[c.row] {
			out[c.row] = c.score
			delete(missing, c.row)
		}
	}
	if len(missing) > 0 {
		x.kw.Score(p.text, func(r int, s float64) {
			if missing[r] {
				out[r] = s
			}
		})
	}
	return out
}

func rankOf(list []cand, row int) *int {
	for i, c := range list {
		if c.row == row {
			r := i + 1
			return &r
		}
	}
	return nil
}

// fuse merges the dense and keyword candidates of a hybrid search: RRF sums
// 1/(rrf_k + rank) over the lists a product is in (ranks from 1); weighted
// adds alpha times the dense score and 1-alpha times the keyword score, each
// min-max normalised over its list's candidates to [0, 1] (a product
// missing from a list gets 0 from it). Equal fused scores keep row order.
func fuse(dense, keywords []cand, o *contracts.SearchOptions) []cand {
	scores := map[int]float64{}
	switch o.EffectiveFusion() {
	case contracts.FusionWeighted:
		a := o.EffectiveAlpha()
		for _, l := range []struct {
			list []cand
			w    float64
		}{{dense, a}, {keywords, 1 - a}} {
			if len(l.list) == 0 {
				continue
			}
			hi, lo := l.list[0].score, l.list[len(l.list)-1].score
			for _, c := range l.list {
				norm := 1.0
				if hi > lo {
					norm = (c.score - lo) / (hi - lo)
				}
				scores[c.row] += l.w * norm
			}
		}
	default:
		k := float64(o.EffectiveRRFK())
		for _, l := range [][]cand{dense, keywords} {
			for i, c := range l {
				scores[c.row] += 1 / (k + float64(i+1))
			}
		}
	}
	out := make([]cand, 0, len(scores))
	for r, s := range scores {
		out = append(out, cand{row: r, score: s})
	}
	slices.SortFunc(out, order)
	return out
}

// groupRanked keeps the first (best) of each group_by value in a ranked
// list; products without the key stand alone. sizes counts each leader's group.
func (x *Index) groupRanked(list []cand, key string) ([]cand, map[int]int) {
	leader := map[string]int{}
	sizes := map[int]int{}
	var out []cand
	for _, c := range list {
		v, ok := x.products[c.row].Metadata[key]
		if !ok {
			out = append(out, c)
			sizes[c.row] = 1
			continue
		}
		if l, seen := leader[v]; seen {
			sizes[l]++
			continue
		}
		leader[v] = c.row
		sizes[c.row] = 1
		out = append(out, c)
	}
	return out, sizes
}

// collectSpec says what a collector keeps.
type collectSpec struct {
	k       int      // the best k matches (or group leaders)
	count   bool     // count every match
	facets  []string // count every match per value of these keys
	groupBy string   // keep the best match per value of this key
	groupK  int      // candidates kept per group to find its best (more than 1 for an int8 estimate)
}

// collector gathers the matches of one list (of one worker, until merged).
type collector struct {
	spec   collectSpec
	best   topK // the best k, among the products without the group_by key when grouping
	count  int
	facets []map[string]int
	groups map[string]*group
}

type group struct {
	best cand
	size int
	top  topK // the best groupK candidates, when groupK > 1
}

func newCollector(spec collectSpec) *collector {
	c := &collector{spec: spec}
	if len(spec.facets) > 0 {
		c.facets = make([]map[string]int, len(spec.facets))
		for i := range c.facets {
			c.facets[i] = map[string]int{}
		}
	}
	if spec.groupBy != "" {
		c.groups = map[string]*group{}
	}
	return c
}

func (c *collector) add(m cand, meta map[string]string) {
	if c.spec.count {
		c.count++
	}
	for i, k := range c.spec.facets {
		if v, ok := meta[k]; ok {
			c.facets[i][v]++
		}
	}
	if c.groups != nil {
		if v, ok := meta[c.spec.groupBy]; ok {
			g := c.groups[v]
			if g == nil {
				c.groups[v] = &group{best: m, size: 1, top: topK{m}}
			} else {
				g.size++
				if worse(g.best, m) {
					g.best = m
				}
				if c.spec.groupK > 1 {
					g.top.push(m, c.spec.groupK)
				}
			}
			return
		}
	}
	c.best.push(m, c.spec.k)
}

func (c *collector) merge(o *collector) {
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
			continue
		}
		g.size += og.size
		if worse(g.best, og.best) {
			g.best = og.best
		}
		if c.spec.groupK > 1 {
			for _, m := range og.top {
				g.top.push(m, c.spec.groupK)
			}
		}
	}
	for _, m := range o.best {
		c.best.push(m, c.spec.k)
	}
}

// ranked returns the kept matches best first (group leaders among them,
// at most k), and each group leader's group size (1 for a product without
// the key).
func (c *collector) ranked() ([]cand, map[int]int) {
	out := slices.Clone([]cand(c.best))
	var sizes map[int]int
	if c.groups != nil {
		sizes = make(map[int]int, len(c.groups)+len(out))
		for _, m := range out {
			sizes[m.row] = 1
		}
		for _, g := range c.groups {
			out = append(out, g.best)
			sizes[g.best.row] = g.size
		}
	}
	slices.SortFunc(out, order)
	if len(out) > c.spec.k {
		out = out[:c.spec.k]
	}
	return out, sizes
}

// topFacets keeps each facet's MaxFacetValues most frequent values.
func (c *collector) topFacets(keys []string) map[string]map[string]int {
	out := make(map[string]map[string]int, len(keys))
	for i, k := range keys {
		f := c.facets[i]
		if len(f) > contracts.MaxFacetValues {
			vals := slices.Collect(maps.Keys(f))
			slices.SortFunc(vals, func(a, b string) int {
				if c := cmp.Compare(f[b], f[a]); c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
			kept := make(map[string]int, contracts.MaxFacetValues)
			for _, v := range vals[:contracts.MaxFacetValues] {
				kept[v] = f[v]
			}
			f = kept
		}
		out[k] = f
	}
	return out
}

type cand struct {
	row   int
	score float64
}

// order sorts candidates best first: a higher score, or the same score earlier in row order.
func order(a, b cand) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	return a.row - b.row
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
	if k == 0 || !worse(s[0], c) {
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
