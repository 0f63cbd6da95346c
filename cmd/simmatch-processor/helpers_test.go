package main

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// runProcessor runs the command with args and getenv until stop (or the end
// of the test) and returns its metrics URL once it serves. stop cancels run
// and fails the test unless it then returns nil within 30s.
func runProcessor(t *testing.T, args []string, getenv func(string) string) (metricsURL string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, args, getenv, io.Discard, func(u string) { ready <- u })
	}()
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
	case u := <-ready:
		t.Cleanup(func() { halt(t.Errorf) })
		return u, func() { t.Helper(); halt(t.Fatalf) }
	case err := <-done:
		cancel()
		t.Fatalf("run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Cleanup(func() { halt(t.Errorf) })
		t.Fatal("not ready after 60s")
	}
	return "", nil
}
