package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// Catalogs is what the worker needs of the catalog service
// (*catalog.Service) for the jobs on stored catalogs.
type Catalogs interface {
	// PlanMatch lists the source catalog after checking both catalogs.
	PlanMatch(ctx context.Context, source, target string) (*catalog.MatchPlan, error)
	// Match ranks a chunk of source products against the target.
	Match(ctx context.Context, spec catalog.MatchSpec) ([]contracts.MatchResult, error)
	// Predict answers queries against a catalog.
	Predict(ctx context.Context, req *contracts.Request) (*contracts.Response, error)
}

var _ Catalogs = (*catalog.Service)(nil)

// isPlanned reports whether jobs of kind are planned by a processor.
func isPlanned(kind contracts.JobKind) bool {
	return kind == contracts.JobKindMatch || kind == contracts.JobKindDedupe
}

// final reports whether err fails the job at once: the request contradicts
// the stored state (a catalog gone, or of another model version), which a
// retry does not change.
func final(err error) bool {
	var e *contracts.Error
	return errors.As(err, &e) && (e.Code == contracts.CodeNotFound || e.Code == contracts.CodeConflict || e.Code == contracts.CodeInvalidRequest)
}

// errNoCatalogs fails the jobs on catalogs when this processor has none.
var errNoCatalogs = &contracts.Error{Code: contracts.CodeConflict, Message: "this processor has no catalogs (SIMMATCH_CATALOGS=off): jobs on catalogs need them"}

// work computes one chunk's results.
func (w *Worker) work(ctx context.Context, meta *contracts.JobMeta, c *contracts.JobChunk) (*contracts.JobChunkResult, error) {
	switch {
	case isPlanned(meta.Kind):
		return w.match(ctx, meta, c)
	case meta.Catalog != "":
		return w.queryCatalog(ctx, meta, c)
	}
	return w.rank(ctx, meta, c)
}

// match answers a chunk of a match or dedupe job.
func (w *Worker) match(ctx context.Context, meta *contracts.JobMeta, c *contracts.JobChunk) (*contracts.JobChunkResult, error) {
	if w.cfg.Catalogs == nil {
		return nil, errNoCatalogs
	}
	spec := matchSpec(meta)
	spec.IDs = c.IDs
	rows, err := w.cfg.Catalogs.Match(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &contracts.JobChunkResult{Rows: rows}, nil
}

func matchSpec(meta *contracts.JobMeta) catalog.MatchSpec {
	if m := meta.Match; m != nil {
		return catalog.MatchSpec{Source: m.Source, Target: m.Target, TopK: m.EffectiveTopK(), Threshold: m.Threshold,
			BlockOn: m.BlockOn, Mode: m.Mode, MutualBest: m.MutualBest}
	}
	d := meta.Dedupe
	return catalog.MatchSpec{Source: d.Catalog, Target: d.Catalog, TopK: d.EffectiveMaxNeighbors(), Threshold: d.Threshold,
		BlockOn: d.BlockOn, Dedupe: true}
}

// queryCatalog answers a chunk of a query job on a stored catalog, as
// /predict does when it names the catalog.
func (w *Worker) queryCatalog(ctx context.Context, meta *contracts.JobMeta, c *contracts.JobChunk) (*contracts.JobChunkResult, error) {
	if w.cfg.Catalogs == nil {
		return nil, errNoCatalogs
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := w.cfg.Catalogs.Predict(pctx, &contracts.Request{Query: c.Query, Catalog: meta.Catalog, TopK: meta.TopK, Threshold: meta.Threshold})
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != len(c.Query) {
		return nil, fmt.Errorf("catalog %s answered %d results for %d queries", meta.Catalog, len(resp.Results), len(c.Query))
	}
	out := &contracts.JobChunkResult{Query: c.Query, Matches: make([][][2]float64, len(c.Query)), IDs: make([][]string, len(c.Query))}
	for i, r := range resp.Results {
		out.Matches[i] = make([][2]float64, len(r.Matches))
		out.IDs[i] = make([]string, len(r.Matches))
		for k, m := range r.Matches {
			out.Matches[i][k] = [2]float64{float64(m.Index), m.Score}
			out.IDs[i][k] = m.ID
		}
	}
	return out, nil
}

// handlePlan plans a match or dedupe job: it lists the source catalog,
// publishes the chunks and records the plan. A planning chunk delivered
// again after its plan was recorded has nothing left to do.
func (w *Worker) handlePlan(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, meta *contracts.JobMeta) {
	if meta.Planned {
		_ = msg.DoubleAck(ctx)
		return
	}
	err := w.plan(ctx, meta, int(md.NumDelivered))
	if err == nil {
		_ = msg.DoubleAck(ctx)
		return
	}
	var e *contracts.Error
	switch {
	case errors.As(err, &e) && e.Code.Retryable():
		_ = msg.NakWithDelay(time.Second)
	case final(err) || int(md.NumDelivered) >= w.cfg.MaxDeliver:
		w.fail(meta.ID, fmt.Sprintf("planning: %v", err))
		_ = msg.Term()
	default:
		w.cfg.Logger.Warn("jobs: planning failed; it will be retried", "job", meta.ID, "err", err)
		_ = msg.NakWithDelay(time.Second)
	}
}

// plan publishes the job's chunks (generation gen) and then records the plan.
func (w *Worker) plan(ctx context.Context, meta *contracts.JobMeta, gen int) error {
	if w.cfg.Catalogs == nil {
		return errNoCatalogs
	}
	spec := matchSpec(meta)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	p, err := w.cfg.Catalogs.PlanMatch(pctx, spec.Source, spec.Target)
	if err != nil {
		return err
	}
	budget := 512 << 10
	if mp := int(w.cfg.NATS.MaxPayload()); mp > 0 {
		budget = mp/2 - 4096
	}
	matches := spec.TopK
	if spec.Dedupe {
		matches++
	}
	offsets := jobstore.PlanChunks(p.IDs, w.cfg.MatchChunkSize, budget, func(id string) int {
		return jobstore.MatchRowBytes(len(id), matches, p.MaxTargetIDBytes)
	})
	var acks []jetstream.PubAckFuture
	for i, lo := range offsets {
		hi := len(p.IDs)
		if i+1 < len(offsets) {
			hi = offsets[i+1]
		}
		b, _ := json.Marshal(contracts.JobChunk{Job: meta.ID, Index: i, Offset: lo, IDs: p.IDs[lo:hi], Gen: gen})
		f, err := w.js.PublishAsync(contracts.SubjectJobChunkPrefix+meta.ID, b, jetstream.WithMsgID(fmt.Sprintf("%s.%d.%d", meta.ID, gen, i)))
		if err != nil {
			return fmt.Errorf("queue chunk %d: %w", i, err)
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("queue chunk %d: %w", i, err)
		case <-pctx.Done():
			return fmt.Errorf("queue chunks: %w", pctx.Err())
		}
	}
	for range 10 { // against a concurrent cancel
		e, err := w.kv.Get(ctx, meta.ID)
		if err != nil {
			return fmt.Errorf("read job: %w", err)
		}
		var m contracts.JobMeta
		if err := json.Unmarshal(e.Value(), &m); err != nil {
			return fmt.Errorf("decode job: %w", err)
		}
		if m.State != "" || m.Planned {
			return nil
		}
		m.Planned, m.Gen, m.Total, m.Offsets, m.Chunks = true, gen, len(p.IDs), offsets, len(offsets)
		data, _ := json.Marshal(m)
		if _, err := w.kv.Update(ctx, meta.ID, data, e.Revision()); err != nil {
			continue
		}
		w.cfg.Logger.Info("jobs: planned", "job", meta.ID, "kind", m.Kind, "source_products", m.Total, "chunks", m.Chunks, "model", p.Model.Name+"@"+p.Model.Version)
		if m.Chunks == 0 && m.Notify {
			w.notifyIfDone(ctx, &m)
		}
		return nil
	}
	return errors.New("record the plan: the job kept changing")
}
