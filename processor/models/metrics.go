package models

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// sharedMetric is the one collector a version's scheduler shares with the
// processor and the other versions (scheduler.StageHistogram): it keeps its
// labels, so every registration finds the same one.
const sharedMetric = `fqName: "simmatch_processor_stage_duration_seconds"`

// versionRegisterer registers a version's scheduler metrics with the labels
// model and model_version (as the processor's simmatch_model_* metrics), so
// versions loaded side by side do not collide, and the shared stage
// histogram without them.
type versionRegisterer struct {
	base, labelled prometheus.Registerer
}

func newVersionRegisterer(base prometheus.Registerer, name, ver string) prometheus.Registerer {
	return versionRegisterer{base: base,
		labelled: prometheus.WrapRegistererWith(prometheus.Labels{"model": name, "model_version": ver}, base)}
}

func (v versionRegisterer) pick(c prometheus.Collector) prometheus.Registerer {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	shared := false
	for d := range ch {
		shared = shared || strings.Contains(d.String(), sharedMetric)
	}
	if shared {
		return v.base
	}
	return v.labelled
}

// Register implements prometheus.Registerer.
func (v versionRegisterer) Register(c prometheus.Collector) error { return v.pick(c).Register(c) }

// MustRegister implements prometheus.Registerer.
func (v versionRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := v.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (v versionRegisterer) Unregister(c prometheus.Collector) bool { return v.pick(c).Unregister(c) }
