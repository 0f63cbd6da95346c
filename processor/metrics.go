package processor

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/promreg"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Defaults of the Config fields that tune the model metrics.
const (
	// DefaultSimilarityThreshold is the score at or above which a match
	// counts in simmatch_model_matches_above_threshold_total.
	DefaultSimilarityThreshold = 0.5
	// DefaultMetricsTopK is how many of a query's best scores
	// simmatch_model_topk_similarity averages.
	DefaultMetricsTopK = 5
)

// StageRank names the ranking stage in simmatch_processor_stage_duration_seconds;
// the model reports the other stages (tokenize, inference, pooling).
const StageRank = "rank"

// Bucket layouts. Latencies run from well under a millisecond (tokenizing one
// query) to the 30 s default deadline; similarity scores are cosines, and
// real ones of a sentence model rarely fall below -0.2.
var (
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	scoreBuckets   = []float64{-.2, -.1, 0, .1, .2, .3, .4, .5, .6, .7, .8, .9, 1}
)

// metrics are the processor's simmatch_processor_* and simmatch_model_*
// collectors, as named in docs/metrics.md. A nil *metrics records nothing,
// so the request path needs no checks.
type metrics struct {
	requests *prometheus.CounterVec   // subject, outcome
	duration *prometheus.HistogramVec // subject
	stage    *prometheus.HistogramVec // stage; shared with the scheduler

	// By model and model_version: the version that computed the scores.
	topK      *prometheus.HistogramVec
	scores    *prometheus.HistogramVec
	matches   *prometheus.CounterVec
	above     *prometheus.CounterVec
	threshold float64
	k         int

	collectors []prometheus.Collector // to unregister when Start fails
}

// modelLabels name the model version behind the simmatch_model_* series.
var modelLabels = []string{"model", "model_version"}

// newMetrics registers the processor's collectors on reg. The gauges read the
// live state of p when scraped.
func newMetrics(reg prometheus.Registerer, p *Processor, info contracts.ModelInfo) (*metrics, error) {
	cfg := p.cfg
	model := prometheus.Labels{"model": info.Name, "model_version": info.Version}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_processor_requests_total",
			Help: "Answered NATS requests, by subject and outcome (ok or the error code).",
		}, []string{"subject", "outcome"}),
		topK: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "simmatch_model_topk_similarity",
			Help:    "Per query, the average score of its best K matches (K = SIMMATCH_METRICS_TOP_K), before the request's top_k and threshold.",
			Buckets: scoreBuckets,
		}, modelLabels),
		scores: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "simmatch_model_similarity_score",
			Help:    "Every similarity score computed, before the request's top_k and threshold.",
			Buckets: scoreBuckets,
		}, modelLabels),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_model_matches_total",
			Help: "Similarity scores computed (queries x descriptions).",
		}, modelLabels),
		above: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_model_matches_above_threshold_total",
			Help: "Similarity scores at or above the configured threshold (SIMMATCH_SIMILARITY_THRESHOLD).",
		}, modelLabels),
		threshold: *cfg.SimilarityThreshold,
		k:         cfg.MetricsTopK,
	}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "simmatch_processor_request_duration_seconds",
		Help:    "Time from receiving a NATS request to replying.",
		Buckets: latencyBuckets,
	}, []string{"subject"})
	m.duration.WithLabelValues(cfg.Subject)
	// Series that exist before the first request, so rates and panels start at 0.
	m.requests.WithLabelValues(cfg.Subject, "ok")
	m.matches.WithLabelValues(info.Name, info.Version)
	m.above.WithLabelValues(info.Name, info.Version)

	modelInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "simmatch_model_info",
		Help: "The loaded model (always 1).",
		ConstLabels: prometheus.Labels{"model": info.Name, "model_version": info.Version,
			"dimensions": strconv.Itoa(info.Dimensions)},
	})
	modelInfo.Set(1)
	threshold := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "simmatch_model_similarity_threshold",
		Help:        "The configured similarity threshold (SIMMATCH_SIMILARITY_THRESHOLD).",
		ConstLabels: model,
	})
	threshold.Set(m.threshold)

	cs := []prometheus.Collector{m.requests, m.duration,
		m.topK, m.scores, m.matches, m.above, modelInfo, threshold,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_processor_in_flight",
			Help: "Requests received and not yet answered (queued or running).",
		}, func() float64 { return float64(p.InFlight()) }),
	}
	if err := promreg.RegisterAll(reg, cs...); err != nil {
		return nil, fmt.Errorf("processor: register metrics: %w", err)
	}
	m.collectors = cs
	stage, registered, err := scheduler.StageHistogram(reg)
	if err != nil {
		m.unregister(reg)
		return nil, fmt.Errorf("processor: %w", err)
	}
	if registered {
		m.collectors = append(m.collectors, stage)
	}
	stage.WithLabelValues(StageRank)
	m.stage = stage
	return m, nil
}

// unregister removes what newMetrics registered, so a failed Start leaves
// the registry as it found it.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if m == nil {
		return
	}
	for _, c := range m.collectors {
		reg.Unregister(c)
	}
}

// answered counts one reply to a request on subject.
func (m *metrics) answered(subject string, code contracts.Code, received time.Time) {
	if m == nil {
		return
	}
	outcome := "ok"
	if code != "" {
		outcome = string(code)
	}
	m.requests.WithLabelValues(subject, outcome).Inc()
	m.duration.WithLabelValues(subject).Observe(time.Since(received).Seconds())
}

// ObserveStage records how long a stage (StageRank) took.
func (m *metrics) ObserveStage(stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.stage.WithLabelValues(stage).Observe(d.Seconds())
}

// scored records the scores of one query against every description, before
// the request's top_k and threshold. It sorts scores.
func (m *metrics) scored(info contracts.ModelInfo, scores []float64) {
	if m == nil || len(scores) == 0 {
		return
	}
	above := 0
	hist := m.scores.WithLabelValues(info.Name, info.Version)
	for _, s := range scores {
		hist.Observe(s)
		if s >= m.threshold {
			above++
		}
	}
	m.matches.WithLabelValues(info.Name, info.Version).Add(float64(len(scores)))
	m.above.WithLabelValues(info.Name, info.Version).Add(float64(above))
	slices.Sort(scores)
	top := scores[len(scores)-min(m.k, len(scores)):]
	var sum float64
	for _, s := range top {
		sum += s
	}
	m.topK.WithLabelValues(info.Name, info.Version).Observe(sum / float64(len(top)))
}
