package catalog

import (
	"runtime"
	"slices"

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
