package main

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// runServe runs serve with args, getenv and out until stop (or the end of the
// test) and returns the bridge's and the NATS URL once both serve. stop
// cancels serve and fails the test unless it then returns nil within 30s.
func runServe(t *testing.T, args []string, getenv func(string) string, out io.Writer) (httpURL, natsURL string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type urls struct{ h, n string }
	ready, done := make(chan urls, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, args, getenv, out, func(h, n string) { ready <- urls{h, n} })
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
		return u.h, u.n, func() { t.Helper(); halt(t.Fatalf) }
	case err := <-done:
		cancel()
		t.Fatalf("run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Cleanup(func() { halt(t.Errorf) })
		t.Fatal("not ready after 60s")
	}
	return "", "", nil
}
