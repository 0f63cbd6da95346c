package testenv

import (
	"context"
	"sync"
	"testing"
	"time"
)

// RunCommand runs a command's run function in the background until stop (or
// the end of the test) and returns what run passes to ready, once it does.
// Run returning first, or no ready within 60s, fails the test. stop cancels
// run's context and fails the test unless run then returns nil within 30s.
func RunCommand[T any](t testing.TB, run func(ctx context.Context, ready func(T)) error) (v T, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan T, 1), make(chan error, 1)
	go func() { done <- run(ctx, func(v T) { ready <- v }) }()
	var once sync.Once
	halt := func(report func(string, ...any)) {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					report("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				report("run did not return after cancel")
			}
		})
	}
	select {
	case v = <-ready:
		t.Cleanup(func() { halt(t.Errorf) })
		return v, func() { t.Helper(); halt(t.Fatalf) }
	case err := <-done:
		cancel()
		t.Fatalf("run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Cleanup(func() { halt(t.Errorf) })
		t.Fatal("not ready after 60s")
	}
	return v, nil
}
