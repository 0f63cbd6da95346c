package catalog

import (
	"context"
	"fmt"

	"github.com/simmatch/simmatch/contracts"
)

// Matching jobs (processor/jobs) rank the stored products of one catalog
// against another: every source product's stored embedding is a query, and
// a chunk of them is answered in one pass over the target's matrix.

// IDs lists the index's product ids in row order.
func (x *Index) IDs() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, len(x.products))
	for i, p := range x.products {
		out[i] = p.ID
	}
	return out
}

// MaxIDBytes is the length of the longest product id.
func (x *Index) MaxIDBytes() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, p := range x.products {
		n = max(n, len(p.ID))
	}
	return n
}

// Vector returns a copy of the stored embedding of product id (an int8
// index's exact float32 row, from its rows file) and the product.
func (x *Index) Vector(id string) ([]float32, contracts.Product, bool) {
	vecs, prods, found := x.rowsOf([]string{id})
	return vecs[0], prods[0], found[0]
}

// rowsOf copies the embeddings and products of ids under one read lock;
// found[i] is false for an id the index does not hold (or whose row could
// not be read).
func (x *Index) rowsOf(ids []string) (vecs [][]float32, prods []contracts.Product, found []bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	vecs = make([][]float32, len(ids))
	prods = make([]contracts.Product, len(ids))
	found = make([]bool, len(ids))
	buf := make([]float32, len(ids)*x.dims)
	for i, id := range ids {
		r, ok := x.rows[id]
		if !ok {
			continue
		}
		v := buf[i*x.dims : (i+1)*x.dims : (i+1)*x.dims]
		if x.Int8() {
			if err := x.exact.Read(r, v); err != nil {
				x.fileFailed(err)
				continue
			}
		} else {
			copy(v, x.matrix[r*x.dims:(r+1)*x.dims])
		}
		vecs[i], prods[i], found[i] = v, x.products[r], true
	}
	return vecs, prods, found
}

// MatchSpec is one chunk of a match or dedupe job.
type MatchSpec struct {
	// Source and Target are the catalogs; equal for a dedupe.
	Source, Target string
	// IDs are the source products of the chunk.
	IDs []string
	// TopK keeps the best K matches per source product (a dedupe: its
	// max_neighbors, the product itself excluded).
	TopK int
	// Threshold drops matches below this cosine similarity.
	Threshold *float64
	// BlockOn compares only products with equal values of these keys.
	BlockOn []string
	// Mode is dense, keyword or hybrid ("" is dense).
	Mode string
	// MutualBest keeps a source product's best match only when the source
	// product is that match's best in the source catalog.
	MutualBest bool
	// Dedupe excludes each product from its own matches.
	Dedupe bool
}

// MatchPlan is what planning a match or dedupe job needs.
type MatchPlan struct {
	// IDs are the source catalog's products now, in row order.
	IDs []string
	// MaxTargetIDBytes is the longest product id of the target, to size
	// the chunks so that their results fit in a NATS message.
	MaxTargetIDBytes int
	// Model is the model version of both catalogs.
	Model contracts.ModelInfo
}

// PlanMatch lists the source catalog's products once this processor has
// applied every write answered before, after checking that both catalogs
// exist and hold embeddings of the same model version (else conflict).
func (s *Service) PlanMatch(ctx context.Context, source, target string) (*MatchPlan, error) {
	src, tgt, m, err := s.matchPair(ctx, source, target)
	if err != nil {
		return nil, err
	}
	return &MatchPlan{IDs: src.IDs(), MaxTargetIDBytes: tgt.MaxIDBytes(), Model: m}, nil
}

// matchPair returns the active indexes of source and target, in step with
// every write answered before; both must be of one model version.
func (s *Service) matchPair(ctx context.Context, source, target string) (src, tgt *Index, m contracts.ModelInfo, err error) {
	fs, _, err := s.sync(ctx, source)
	if err != nil {
		return nil, nil, m, err
	}
	ft := fs
	if target != source {
		if ft, _, err = s.sync(ctx, target); err != nil {
			return nil, nil, m, err
		}
	}
	src, ms, _ := fs.view()
	tgt, mt, _ := ft.view()
	if modelKey(ms) != modelKey(mt) || ms.Dimensions != mt.Dimensions {
		return nil, nil, m, contracts.Errorf(contracts.CodeConflict,
			"catalog %s holds embeddings of model %s and catalog %s of model %s: a match needs both of one model version; re-embed one of them (the default version) or create it with the other's model",
			source, modelKey(ms), target, modelKey(mt))
	}
	if src == nil || tgt == nil {
		return nil, nil, m, contracts.Errorf(contracts.CodeInternal, "catalog %s or %s has no index of its active version", source, target)
	}
	return src, tgt, ms, nil
}

// blockFilter is the filter of a source product's block: its values of
// keys, each an exact match; ok is false when it lacks one of the keys.
func blockFilter(meta map[string]string, keys []string) (f contracts.Filter, ok bool) {
	if len(keys) == 0 {
		return nil, true
	}
	f = make(contracts.Filter, len(keys))
	for _, k := range keys {
		v, has := meta[k]
		if !has {
			return nil, false
		}
		f[k] = contracts.Equals(v)
	}
	return f, true
}

// MatchPass bounds the source products answered in one pass over the
// target's matrix (a pass holds the target's read lock, so writes wait for
// it): a chunk of more takes several passes.
var MatchPass = 128

// Match ranks the chunk's source products against the target catalog:
// one query per source product (its stored embedding, its description in
// keyword and hybrid modes, its block as a filter), answered together in
// passes of MatchPass over the target's matrix. The results are in the
// order of spec.IDs; a source product deleted since the plan, or lacking a
// block_on key, has no matches.
func (s *Service) Match(ctx context.Context, spec MatchSpec) ([]contracts.MatchResult, error) {
	src, tgt, _, err := s.matchPair(ctx, spec.Source, spec.Target)
	if err != nil {
		return nil, err
	}
	out, err := matchIndexes(ctx, src, tgt, spec)
	if err != nil {
		return nil, err
	}
	for _, x := range []*Index{src, tgt} {
		if err := x.Err(); err != nil {
			return nil, contracts.Errorf(contracts.CodeInternal, "match %s against %s: %v", spec.Source, spec.Target, err)
		}
	}
	return out, nil
}

// matchIndexes is Match on two indexes.
func matchIndexes(ctx context.Context, src, tgt *Index, spec MatchSpec) ([]contracts.MatchResult, error) {
	vecs, prods, found := src.rowsOf(spec.IDs)
	k := max(spec.TopK, 1)
	if spec.MutualBest {
		k = 1
	}
	if spec.Dedupe {
		k++ // the product itself is among its matches
	}
	queries := make([]*Query, len(spec.IDs))
	for i := range spec.IDs {
		if !found[i] {
			continue
		}
		q, ok := matchQuery(prods[i], vecs[i], spec, k)
		if ok {
			queries[i] = q
		}
	}
	pages, err := passes(ctx, tgt, queries)
	if err != nil {
		return nil, err
	}
	out := make([]contracts.MatchResult, len(spec.IDs))
	for i, id := range spec.IDs {
		out[i] = contracts.MatchResult{SourceID: id, Matches: []contracts.MatchScore{}}
		if pages[i] == nil {
			continue
		}
		for _, h := range pages[i].Hits {
			if spec.Dedupe && h.Product.ID == id {
				continue
			}
			if len(out[i].Matches) < max(spec.TopK, 1) {
				out[i].Matches = append(out[i].Matches, contracts.MatchScore{ID: h.Product.ID, Score: h.Score})
			}
		}
	}
	if spec.MutualBest {
		if err := keepMutual(ctx, src, tgt, spec, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// matchQuery is the query of one source product, or false when the product
// lacks a block_on key (it matches nothing).
func matchQuery(p contracts.Product, vec []float32, spec MatchSpec, k int) (*Query, bool) {
	f, ok := blockFilter(p.Metadata, spec.BlockOn)
	if !ok {
		return nil, false
	}
	q := &Query{Texts: []string{p.Description}, TopK: k, Threshold: spec.Threshold,
		Options: contracts.SearchOptions{Mode: spec.Mode, Filter: f}}
	if q.Options.EffectiveMode() != contracts.ModeKeyword {
		q.Vectors = [][]float32{vec}
	}
	return q, true
}

// passes answers the non-nil queries against x, MatchPass at a time, each
// batch in one pass; the page of a nil query is nil.
func passes(ctx context.Context, x *Index, queries []*Query) ([]*Page, error) {
	out := make([]*Page, len(queries))
	var batch []*Query
	var at []int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("catalog: match: %w", err)
		}
		for j, pg := range x.run(batch) {
			out[at[j]] = &pg[0]
		}
		batch, at = batch[:0], at[:0]
		return nil
	}
	for i, q := range queries {
		if q == nil {
			continue
		}
		batch = append(batch, q)
		at = append(at, i)
		if len(batch) == max(MatchPass, 1) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// keepMutual drops each source product's best match t unless the source
// product is t's best match in the source catalog (under t's block): one
// reverse query per best, answered in passes over the source's matrix.
func keepMutual(ctx context.Context, src, tgt *Index, spec MatchSpec, out []contracts.MatchResult) error {
	var best []string
	var rows []int
	for i, r := range out {
		if len(r.Matches) > 0 {
			best = append(best, r.Matches[0].ID)
			rows = append(rows, i)
		}
	}
	vecs, prods, found := tgt.rowsOf(best)
	queries := make([]*Query, len(best))
	for j := range best {
		if found[j] {
			if q, ok := matchQuery(prods[j], vecs[j], spec, 1); ok {
				queries[j] = q
			}
		}
	}
	pages, err := passes(ctx, src, queries)
	if err != nil {
		return err
	}
	for j, i := range rows {
		if pg := pages[j]; pg == nil || len(pg.Hits) == 0 || pg.Hits[0].Product.ID != out[i].SourceID {
			out[i].Matches = out[i].Matches[:0]
		}
	}
	return nil
}
