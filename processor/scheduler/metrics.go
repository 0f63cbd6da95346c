package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/internal/promreg"
	"github.com/simmatch/simmatch/processor/internal/embed"
)

// StageBuckets are the buckets of simmatch_processor_stage_duration_seconds.
var StageBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// StageHistogram returns simmatch_processor_stage_duration_seconds registered
// on reg. The scheduler reports tokenize, inference and pooling to it and the
// processor reports rank, so whichever registers second gets the collector
// the first registered. registered tells whether this call registered it.
func StageHistogram(reg prometheus.Registerer) (h *prometheus.HistogramVec, registered bool, err error) {
	h = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "simmatch_processor_stage_duration_seconds",
		Help:    "Time per stage: tokenize once per request, inference and pooling once per batch, rank once per request.",
		Buckets: StageBuckets,
	}, []string{"stage"})
	if err := reg.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				return existing, false, nil
			}
		}
		return nil, false, fmt.Errorf("register simmatch_processor_stage_duration_seconds: %w", err)
	}
	return h, true, nil
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// metrics are the scheduler's collectors (docs/metrics.md). A nil
// *metrics records nothing.
type metrics struct {
	wait      prometheus.Histogram
	stage     *prometheus.HistogramVec
	batchSize prometheus.Histogram
	batchToks prometheus.Histogram
	padding   prometheus.Counter
	texts     prometheus.Counter
	dropTexts prometheus.Counter
	refusals  *prometheus.CounterVec

	collectors []prometheus.Collector // to unregister on Close
}

func newMetrics(reg prometheus.Registerer, s *Scheduler) (*metrics, error) {
	m := &metrics{
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "simmatch_processor_queue_wait_seconds",
			Help:    "Time from a request's arrival at the scheduler to the start of the first batch holding one of its texts.",
			Buckets: latencyBuckets,
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "simmatch_processor_batch_size",
			Help:    "Texts per batch (ONNX Runtime run).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 .. 512
		}),
		batchToks: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "simmatch_processor_batch_tokens",
			Help:    "Real (non-padding) tokens per batch.",
			Buckets: prometheus.ExponentialBuckets(8, 2, 12), // 8 .. 16384
		}),
		padding: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simmatch_processor_padding_tokens_total",
			Help: "Padding tokens computed and thrown away (rows x longest text - real tokens, summed over batches).",
		}),
		texts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simmatch_processor_texts_total",
			Help: "Texts embedded (rows of batches run).",
		}),
		dropTexts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "simmatch_processor_texts_dropped_total",
			Help: "Texts dropped before inference because their request's deadline passed or it was cancelled.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "simmatch_processor_admission_refused_total",
			Help: "Requests refused at admission with code overloaded, by reason (queue_full or deadline).",
		}, []string{"reason"}),
	}
	m.refusals.WithLabelValues("queue_full")
	m.refusals.WithLabelValues("deadline")
	cs := []prometheus.Collector{m.wait, m.batchSize, m.batchToks, m.padding, m.texts, m.dropTexts, m.refusals,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_processor_queue_depth",
			Help: "Tokens waiting for a lane.",
		}, func() float64 { _, n := s.Queued(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_processor_queue_texts",
			Help: "Texts waiting for a lane.",
		}, func() float64 { n, _ := s.Queued(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_processor_queue_capacity",
			Help: "Tokens that may wait for a lane (SIMMATCH_MAX_QUEUED_TOKENS); requests beyond are answered overloaded.",
		}, func() float64 { return float64(s.cfg.MaxQueuedTokens) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_processor_workers",
			Help: "Lanes: batches that may run at once (SIMMATCH_WORKERS).",
		}, func() float64 { return float64(s.cfg.Pool.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_processor_lanes_busy",
			Help: "Lanes running a batch now.",
		}, func() float64 { return float64(s.cfg.Pool.Busy()) }),
	}
	if err := promreg.RegisterAll(reg, cs...); err != nil {
		return nil, fmt.Errorf("scheduler: register metrics: %w", err)
	}
	m.collectors = cs
	stage, registered, err := StageHistogram(reg)
	if err != nil {
		m.unregister(reg)
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if registered {
		m.collectors = append(m.collectors, stage)
	}
	for _, st := range []string{embed.StageTokenize, embed.StageInference, embed.StagePooling} {
		stage.WithLabelValues(st)
	}
	m.stage = stage
	return m, nil
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if m == nil {
		return
	}
	for _, c := range m.collectors {
		reg.Unregister(c)
	}
	m.collectors = nil
}

func (m *metrics) observeStage(stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.stage.WithLabelValues(stage).Observe(d.Seconds())
}

func (m *metrics) queueWait(d time.Duration) {
	if m == nil {
		return
	}
	m.wait.Observe(d.Seconds())
}

func (m *metrics) batch(b *batch) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(len(b.rows)))
	m.batchToks.Observe(float64(b.tokens))
	m.padding.Add(float64(b.padded() - b.tokens))
	m.texts.Add(float64(len(b.rows)))
}

func (m *metrics) dropped(n int) {
	if m == nil {
		return
	}
	m.dropTexts.Add(float64(n))
}

func (m *metrics) refused(reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(reason).Inc()
}

// observer passes the model's inference and pooling timings on.
func (m *metrics) observer() embed.Observer {
	if m == nil {
		return nil
	}
	return stageObserver{m}
}

type stageObserver struct{ m *metrics }

func (o stageObserver) ObserveStage(stage string, d time.Duration) { o.m.observeStage(stage, d) }

// ObserveBatch is ignored: the scheduler counts its batches itself.
func (o stageObserver) ObserveBatch(int, int) {}
