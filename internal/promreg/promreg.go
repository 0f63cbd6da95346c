// Package promreg registers a component's Prometheus collectors as one: all
// of them or none, so a component that fails to start leaves the registry as
// it found it. The bridge and the processor share it (no cgo, no model code).
package promreg

import "github.com/prometheus/client_golang/prometheus"

// RegisterAll registers cs on reg in order. On the first error it
// unregisters the ones it registered and returns that error.
func RegisterAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}
