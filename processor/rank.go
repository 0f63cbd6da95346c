package processor

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// Rank scores every description embedding against the query embedding by
// cosine similarity and returns the matches sorted by score, highest first;
// equal scores keep catalog order. Matches below threshold are dropped, then
// at most topK are kept. norms holds the descriptions' L2 norms.
func Rank(query []float32, descs [][]float32, norms []float64, texts []string, topK *int, threshold *float64) []contracts.Match {
	return rankScores(scoreAll(query, descs, norms), texts, topK, threshold)
}

// scoreAll returns the cosine similarity of query with each description.
func scoreAll(query []float32, descs [][]float32, norms []float64) []float64 {
	qn := norm(query)
	scores := make([]float64, len(descs))
	for i, d := range descs {
		scores[i] = cosine(query, d, qn, norms[i])
	}
	return scores
}

// rankScores is Rank on scores already computed; it does not keep scores.
func rankScores(scores []float64, texts []string, topK *int, threshold *float64) []contracts.Match {
	matches := make([]contracts.Match, 0, len(scores))
	for i, s := range scores {
		if threshold != nil && s < *threshold {
			continue
		}
		matches = append(matches, contracts.Match{Index: i, Description: texts[i], Score: s})
	}
	slices.SortStableFunc(matches, func(a, b contracts.Match) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	if topK != nil && *topK < len(matches) {
		matches = matches[:*topK]
	}
	return matches
}

func norm(v []float32) float64 { return vecmath.Norm(v) }

// cosine follows sentence_transformers.util.cos_sim (vecmath.Cosine, the
// same code the catalog scan uses, so both give the same scores).
func cosine(a, b []float32, na, nb float64) float64 { return vecmath.Cosine(a, b, na, nb) }

// ranker turns a request's embeddings into its answer: for each query, the
// descriptions by cosine similarity.
type ranker struct {
	tracer  trace.Tracer
	metrics *metrics
}

// rank ranks the descriptions for each query. vecs are the request's
// distinct texts' embeddings by the model info; qi and di map queries and
// descriptions to them.
func (rk ranker) rank(ctx context.Context, req *contracts.Request, info contracts.ModelInfo, vecs [][]float32, qi, di []int) *contracts.Response {
	_, span := rk.tracer.Start(ctx, StageRank, trace.WithAttributes(
		attribute.Int("simmatch.queries", len(req.Query)),
		attribute.Int("simmatch.descriptions", len(req.ProductDescriptions))))
	defer span.End()
	start := time.Now()
	descs := make([][]float32, len(di))
	norms := make([]float64, len(di))
	for i, k := range di {
		descs[i] = vecs[k]
		norms[i] = norm(vecs[k])
	}
	resp := &contracts.Response{Results: make([]contracts.Result, len(req.Query)), RequestID: req.RequestID, Model: info}
	for i, q := range req.Query {
		scores := scoreAll(vecs[qi[i]], descs, norms)
		resp.Results[i] = contracts.Result{Query: q, Matches: rankScores(scores, req.ProductDescriptions, req.TopK, req.Threshold)}
		rk.metrics.scored(info, scores)
	}
	rk.metrics.ObserveStage(StageRank, time.Since(start))
	return resp
}
