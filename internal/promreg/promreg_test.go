package promreg

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A collector that does not register undoes the ones registered before it.
func TestRegisterAllIsAllOrNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	taken := prometheus.NewCounter(prometheus.CounterOpts{Name: "taken_total", Help: "h"})
	reg.MustRegister(taken)
	first := prometheus.NewCounter(prometheus.CounterOpts{Name: "first_total", Help: "h"})
	again := prometheus.NewCounter(prometheus.CounterOpts{Name: "taken_total", Help: "h"})
	err := RegisterAll(reg, first, again)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("err = %v, want AlreadyRegisteredError", err)
	}
	if !reg.Unregister(taken) || reg.Unregister(first) {
		t.Error("want the earlier collector kept and first unregistered again")
	}
	if err := RegisterAll(reg, first); err != nil {
		t.Fatalf("register after the rollback: %v", err)
	}
}
