// Package loadgen drives simmatch (the bridge over HTTP, or the processors
// over NATS) at a fixed concurrency or an open-loop rate with a request mix,
// and reports throughput, errors and latency percentiles. cmd/simmatch-load
// is its command line; `make bench-compare` uses it to compare simmatch with
// a replica of the service it replaces. Targets are loopback addresses only
// unless remote targets are allowed explicitly.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures one run.
type Config struct {
	// Target is an http:// URL (the bridge, or any service with the same
	// /predict) or a nats:// URL (the processors). Required.
	Target string
	// Mix makes the requests. Required.
	Mix Mix
	// Concurrency is the number of clients, each sending its next request
	// when the last is answered (closed loop). With Rate it caps the requests
	// in flight instead. Default 1.
	Concurrency int
	// Rate, when > 0, sends this many requests per second whatever the
	// answers (open loop); a request due while Concurrency are in flight is
	// counted as "client saturated" and not sent.
	Rate float64
	// Duration and Requests bound the run; at least one is required. Requests
	// still in flight at the end of Duration are cut off and not counted.
	Duration time.Duration
	Requests int64
	// Warmup is load sent before the measured part, by the same clients
	// without a break, so the measured part starts in the steady state (not
	// with every client sending at once, nor with an empty queue): requests
	// answered during it are not counted, and Requests bounds only those
	// sent after it. A request sent during it and answered after counts.
	Warmup time.Duration
	// Timeout is each request's client-side limit. Default 30s.
	Timeout time.Duration
	// AllowRemote lets Target be outside the loopback range.
	AllowRemote bool
	// FirstRequest is the index of the run's first request in the mix: runs
	// against the same service that must not repeat texts (a sweep over
	// concurrency levels) start where the last one ended.
	FirstRequest int64
	// Label names the run in reports (e.g. "simmatch-fp32"); default the target.
	Label string
	// APIKey, when set, is sent as a bearer token to an http(s) target.
	APIKey string
	// IgnoreRetryAfter makes closed-loop clients send their next request at
	// once after a refusal. By default a client waits what the refusal asked
	// for (Retry-After-Ms, Retry-After, or retry_after_ms over NATS), as the
	// OpenAI SDKs and other well-behaved clients do.
	IgnoreRetryAfter bool
}

// Result is what a run measured.
type Result struct {
	Label       string  `json:"label"`
	Target      string  `json:"target"`
	Mix         string  `json:"mix"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	// IgnoreRetryAfter: the clients retried at once after a refusal.
	IgnoreRetryAfter bool `json:"ignore_retry_after,omitempty"`
	// Seconds is the measured time: from the first request to the end of the
	// last counted one (or to the end of Duration).
	Seconds float64 `json:"seconds"`
	// Requests counts answered requests, OK and failed; OK and Texts only
	// the successful ones (Texts: queries plus descriptions).
	Requests int64 `json:"requests"`
	OK       int64 `json:"ok"`
	Texts    int64 `json:"texts"`
	// RequestsPerSecond and TextsPerSecond are successful requests and texts per second.
	RequestsPerSecond float64 `json:"requests_per_second"`
	TextsPerSecond    float64 `json:"texts_per_second"`
	// Errors counts failures by outcome ("429 overloaded", "504 timeout", ...).
	Errors map[string]int64 `json:"errors"`
	// Latency is of the successful requests; ErrorLatency of the failed ones.
	Latency      Latency `json:"latency"`
	ErrorLatency Latency `json:"error_latency"`
	// NextRequest is the index after the last request taken: the next run's
	// FirstRequest.
	NextRequest int64 `json:"next_request"`
}

// ErrorCount is the total of r.Errors.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Run sends the configured load and returns what it measured. It stops at
// Duration, after Requests, or when ctx ends (then with what was measured
// so far and ctx's error).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Target == "" || cfg.Mix == nil {
		return nil, errors.New("loadgen: Target and Mix are required")
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return nil, errors.New("loadgen: bound the run with a duration or a request count")
	}
	if cfg.Rate < 0 || cfg.Concurrency < 0 || cfg.Requests < 0 || cfg.Warmup < 0 {
		return nil, errors.New("loadgen: rate, concurrency, request count and warm-up must not be negative")
	}
	if cfg.Rate > 1e6 {
		return nil, fmt.Errorf("loadgen: rate %g requests/s: at most 1e6", cfg.Rate)
	}
	if !cfg.AllowRemote {
		if err := CheckLoopback(cfg.Target); err != nil {
			return nil, err
		}
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Label == "" {
		cfg.Label = cfg.Target
	}
	tgt, err := NewTarget(cfg.Target, cfg.Timeout, cfg.Concurrency, cfg.APIKey)
	if err != nil {
		return nil, err
	}
	defer tgt.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.Warmup+cfg.Duration)
		defer cancel()
	}
	r := &recorder{errors: map[string]int64{}}
	start := time.Now()
	measureFrom := start.Add(max(cfg.Warmup, 0))
	var next, measured atomic.Int64 // requests taken, and of those in the measured part
	take := func() (int64, bool) {
		i := cfg.FirstRequest + next.Add(1) - 1
		if cfg.Requests <= 0 || time.Now().Before(measureFrom) {
			return i, true
		}
		return i, measured.Add(1) <= cfg.Requests
	}
	send := func(i int64) (retryAfter time.Duration) {
		req := cfg.Mix.Request(i)
		// The end of the run cancels a request in flight (it is cut off, not
		// counted) but is not its deadline: over NATS the deadline travels to
		// the processor, whose admission would refuse a request sent just
		// before the end as one it cannot answer in time.
		reqCtx, cancel := context.WithCancel(context.WithoutCancel(runCtx))
		defer cancel()
		defer context.AfterFunc(runCtx, cancel)()
		sent := time.Now()
		out, wait := tgt.Do(reqCtx, req)
		if now := time.Now(); !now.Before(measureFrom) {
			r.record(out, now.Sub(sent), Texts(req))
		}
		return wait
	}

	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		sem := make(chan struct{}, cfg.Concurrency)
		tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	loop:
		for {
			select {
			case <-runCtx.Done():
				break loop
			case <-tick.C:
			}
			i, ok := take()
			if !ok {
				break
			}
			select {
			case sem <- struct{}{}:
				wg.Go(func() { defer func() { <-sem }(); send(i) })
			default:
				r.record("client saturated", 0, 0)
			}
		}
		tick.Stop()
	} else {
		for range cfg.Concurrency {
			wg.Go(func() {
				for runCtx.Err() == nil {
					i, ok := take()
					if !ok {
						return
					}
					if wait := send(i); wait > 0 && !cfg.IgnoreRetryAfter {
						t := time.NewTimer(wait)
						select {
						case <-t.C:
						case <-runCtx.Done():
							t.Stop()
						}
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := max(time.Since(measureFrom), 0)
	if cfg.Duration > 0 && elapsed > cfg.Duration {
		elapsed = cfg.Duration // the cut-off requests are not counted
	}
	res := r.result(elapsed)
	res.Label, res.Target, res.Mix, res.Concurrency, res.Rate = cfg.Label, cfg.Target, cfg.Mix.Name(), cfg.Concurrency, cfg.Rate
	res.IgnoreRetryAfter = cfg.IgnoreRetryAfter
	res.NextRequest = cfg.FirstRequest + next.Load()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("loadgen: run interrupted: %w", err)
	}
	return res, nil
}

type recorder struct {
	mu        sync.Mutex
	ok, texts int64
	okLat     []time.Duration
	errLat    []time.Duration
	errors    map[string]int64
}

func (r *recorder) record(outcome string, d time.Duration, texts int) {
	if outcome == outcomeCancelled {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if outcome == "" {
		r.ok++
		r.texts += int64(texts)
		r.okLat = append(r.okLat, d)
		return
	}
	r.errors[outcome]++
	if outcome != "client saturated" {
		r.errLat = append(r.errLat, d)
	}
}

func (r *recorder) result(elapsed time.Duration) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Seconds: elapsed.Seconds(), OK: r.ok, Texts: r.texts, Errors: r.errors,
		Requests: r.ok + int64(len(r.errLat)),
		Latency:  Summarize(r.okLat), ErrorLatency: Summarize(r.errLat),
	}
	if s := elapsed.Seconds(); s > 0 {
		res.RequestsPerSecond, res.TextsPerSecond = float64(r.ok)/s, float64(r.texts)/s
	}
	return res
}
