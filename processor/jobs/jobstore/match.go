package jobstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// Match and dedupe jobs are planned by a processor: Submit queues one
// planning chunk; the processor that takes it lists the source catalog,
// publishes the chunks of source product ids (generation Gen: the planning
// chunk's delivery count, so a plan redone after a crash never mixes with
// the chunks of the one before) and then records Total, Offsets, Chunks
// and Gen in the job's entry (PlanDone). Chunks that arrive before the
// entry says planned wait; chunks of another generation are dropped.

// planned reports whether m's size is known: a query job always, a match
// or dedupe job once planned.
func planned(m *contracts.JobMeta) bool {
	return (m.Kind != contracts.JobKindMatch && m.Kind != contracts.JobKindDedupe) || m.Planned
}

// MaxDedupePairs bounds the distinct pairs a dedupe job's results hold:
// the clusters are computed when the results are read, in memory
// (about 100 bytes a pair).
var MaxDedupePairs = contracts.DefaultDedupeMaxPairs

// checkCatalogs asks a processor for the catalogs the job names: each must
// exist (not_found), and a match's two must be of one model version (conflict).
func (j *Jobs) checkCatalogs(ctx context.Context, req *contracts.JobRequest) error {
	c, err := contracts.NewClient(j.nc, contracts.WithTimeout(30*time.Second))
	if err != nil {
		return contracts.Errorf(contracts.CodeInternal, "jobs: %v", err)
	}
	resp, err := c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil {
		return err
	}
	models := map[string]contracts.ModelInfo{}
	for _, ci := range resp.Catalogs {
		models[ci.Name] = ci.Model
	}
	type named struct{ field, name string }
	var want []named
	switch {
	case req.Match != nil:
		want = []named{{"match.source", req.Match.Source}, {"match.target", req.Match.Target}}
	case req.Dedupe != nil:
		want = []named{{"dedupe.catalog", req.Dedupe.Catalog}}
	default:
		want = []named{{"catalog", req.Catalog}}
	}
	for _, w := range want {
		if _, ok := models[w.name]; !ok {
			return &contracts.Error{Code: contracts.CodeNotFound, Field: w.field, Message: fmt.Sprintf("%s: catalog %q does not exist", w.field, w.name)}
		}
	}
	if req.Match != nil {
		ms, mt := models[req.Match.Source], models[req.Match.Target]
		if ms.Name != mt.Name || ms.Version != mt.Version {
			return &contracts.Error{Code: contracts.CodeConflict, Field: "match.target", Message: fmt.Sprintf(
				"catalog %s holds embeddings of model %s@%s and catalog %s of model %s@%s: a match needs both of one model version; re-embed one of them or create it with the other's model",
				req.Match.Source, ms.Name, ms.Version, req.Match.Target, mt.Name, mt.Version)}
		}
	}
	return nil
}

// submitPlanned stores a match or dedupe job and queues its planning chunk.
func (j *Jobs) submitPlanned(ctx context.Context, kv jetstream.KeyValue, st jetstream.KeyValueStatus, id, owner string, now time.Time, req *contracts.JobRequest) (*contracts.JobStatus, error) {
	meta := &contracts.JobMeta{ID: id, Owner: owner, Kind: req.Kind(), Match: req.Match, Dedupe: req.Dedupe, Notify: req.Notify, Created: now}
	if ttl := st.TTL(); ttl > 0 {
		meta.Expires = now.Add(ttl)
	}
	data, _ := json.Marshal(meta)
	if err := j.create(ctx, kv, owner, id, data); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(contracts.JobChunk{Job: id, Plan: true})
	if _, err := j.js.Publish(ctx, contracts.SubjectJobChunkPrefix+id, b, jetstream.WithMsgID(id+".plan")); err != nil {
		return nil, j.drop(kv, owner, id, j.storeError(ctx, err, contracts.JobChunksStream, "the job chunks stream "+contracts.JobChunksStream,
			SettingChunksMaxBytes, fmt.Sprintf("queue the planning of job %s", id)))
	}
	return statusOf(meta, 0), nil
}

// MatchRowBytes is the most bytes one source product's results take in a
// stored chunk: its id, and up to matches matches of ids of up to idBytes.
func MatchRowBytes(sourceIDBytes, matches, idBytes int) int {
	return 2*sourceIDBytes + matches*(idBytes+40) + 48
}

// PlanChunks splits a match or dedupe job's source ids into chunks: at most
// size ids, and few enough that a chunk's results (rowBytes(id) per id) and
// its ids stay within budget bytes. It returns each chunk's first index.
func PlanChunks(ids []string, size, budget int, rowBytes func(id string) int) []int {
	var offsets []int
	n, bytes := 0, 0
	for i, id := range ids {
		cost := rowBytes(id)
		if n == 0 || n == size || bytes+cost > budget {
			offsets = append(offsets, i)
			n, bytes = 0, 0
		}
		n++
		bytes += cost
	}
	return offsets
}

// Lines calls yield with each line of a done job's results: a query job's
// contracts.JobResult in request order; a match job's contracts.MatchResult
// in the order of the source catalog at planning; a dedupe job's
// contracts.DedupeCluster, ordered by their first id.
func (j *Jobs) Lines(ctx context.Context, id string, yield func(any) error) error {
	m, _, err := j.meta(ctx, id)
	if err != nil {
		return err
	}
	switch m.Kind {
	case contracts.JobKindMatch:
		return j.rows(ctx, id, func(r contracts.MatchResult) error { return yield(r) })
	case contracts.JobKindDedupe:
		return j.clusters(ctx, id, yield)
	}
	return j.Results(ctx, id, func(r contracts.JobResult) error { return yield(r) })
}

// rows calls yield with every source row of a done match or dedupe job.
func (j *Jobs) rows(ctx context.Context, id string, yield func(contracts.MatchResult) error) error {
	return j.eachChunk(ctx, id, "source products", func(m *contracts.JobMeta, i int, cr *contracts.JobChunkResult) error {
		if len(cr.Rows) != m.ChunkLen(i) {
			return contracts.Errorf(contracts.CodeInternal, "jobs: chunk %d of %s holds %d rows, want %d", i, id, len(cr.Rows), m.ChunkLen(i))
		}
		for _, r := range cr.Rows {
			if err := yield(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// clusters reads a dedupe job's pairs (each found from either side, kept
// once), groups them into connected components and yields each.
func (j *Jobs) clusters(ctx context.Context, id string, yield func(any) error) error {
	type key struct{ a, b string }
	pairs := map[key]float64{}
	err := j.rows(ctx, id, func(r contracts.MatchResult) error {
		for _, m := range r.Matches {
			if m.ID == r.SourceID {
				continue // never a product with itself
			}
			k := key{r.SourceID, m.ID}
			if k.b < k.a {
				k.a, k.b = k.b, k.a
			}
			pairs[k] = m.Score
			if len(pairs) > MaxDedupePairs {
				return &contracts.Error{Code: contracts.CodePayloadTooLarge, Message: fmt.Sprintf(
					"dedupe job %s found more than %d pairs: too many to group into clusters; raise the threshold, add block_on or lower max_neighbors", id, MaxDedupePairs)}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ps := make([]contracts.DedupePair, 0, len(pairs))
	for k, s := range pairs {
		ps = append(ps, contracts.DedupePair{A: k.a, B: k.b, Score: s})
	}
	for _, c := range Clusters(ps) {
		if err := yield(c); err != nil {
			return err
		}
	}
	return nil
}

// Clusters groups pairs into connected components (union-find): each
// cluster's ids sorted, its pairs sorted by A then B, the clusters ordered
// by their first id.
func Clusters(pairs []contracts.DedupePair) []contracts.DedupeCluster {
	index := map[string]int{}
	var names []string
	idOf := func(s string) int {
		i, ok := index[s]
		if !ok {
			i = len(names)
			index[s] = i
			names = append(names, s)
		}
		return i
	}
	var parent []int
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, p := range pairs {
		a, b := idOf(p.A), idOf(p.B)
		for len(parent) < len(names) {
			parent = append(parent, len(parent))
		}
		if ra, rb := find(a), find(b); ra != rb {
			parent[max(ra, rb)] = min(ra, rb)
		}
	}
	byRoot := map[int]*contracts.DedupeCluster{}
	for i, n := range names {
		r := find(i)
		c := byRoot[r]
		if c == nil {
			c = &contracts.DedupeCluster{}
			byRoot[r] = c
		}
		c.Cluster = append(c.Cluster, n)
	}
	for _, p := range pairs {
		byRoot[find(index[p.A])].Pairs = append(byRoot[find(index[p.A])].Pairs, p)
	}
	out := make([]contracts.DedupeCluster, 0, len(byRoot))
	for _, c := range byRoot {
		slices.Sort(c.Cluster)
		slices.SortFunc(c.Pairs, func(x, y contracts.DedupePair) int {
			return cmp.Or(strings.Compare(x.A, y.A), strings.Compare(x.B, y.B))
		})
		out = append(out, *c)
	}
	slices.SortFunc(out, func(x, y contracts.DedupeCluster) int { return strings.Compare(x.Cluster[0], y.Cluster[0]) })
	return out
}
