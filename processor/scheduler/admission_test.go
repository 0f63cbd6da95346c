package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// newAdmission is admission for one lane at rate tokens per second (0: not
// measured yet), with a budget of maxQueued tokens.
func newAdmission(rate float64, maxQueued int) *admission {
	return &admission{maxQueued: maxQueued, maxBatch: DefaultMaxBatchTokens, lanes: 1, rate: rate}
}

func TestAdmissionJudge(t *testing.T) {
	now := time.Now()
	withDeadline := func(tokens int, d time.Duration) *request {
		return &request{pendingTokens: tokens, arrived: now, deadline: now.Add(d)}
	}
	for _, tt := range []struct {
		name    string
		adm     *admission
		queued  []*request
		r       *request
		refused string // "" admitted, else a word of the message
	}{
		{"fits the budget, speed unknown", newAdmission(0, 1000), []*request{queued(500)}, withDeadline(400, time.Millisecond), ""},
		{"over the budget", newAdmission(0, 1000), []*request{queued(500)}, withDeadline(501, time.Hour), "limit"},
		// 1,000 tokens/s with headroom 1.5: 500 queued ahead (an earlier
		// deadline) + 100 take 900ms.
		{"would miss its deadline", newAdmission(1000, 1<<20), []*request{withDeadline(500, 700*time.Millisecond)}, withDeadline(100, 800*time.Millisecond), "deadline"},
		{"meets its deadline", newAdmission(1000, 1<<20), []*request{withDeadline(500, 950*time.Millisecond)}, withDeadline(100, time.Second), ""},
		{"goes ahead of a request without a deadline", newAdmission(1000, 1<<20), []*request{queued(500)}, withDeadline(100, 800*time.Millisecond), ""},
		{"would make a queued request miss", newAdmission(1000, 1<<20),
			[]*request{withDeadline(500, 800*time.Millisecond)}, &request{pendingTokens: 100, arrived: now}, "already queued"},
		{"a queued request already late does not block", newAdmission(1000, 1<<20),
			[]*request{withDeadline(500, 100*time.Millisecond)}, &request{pendingTokens: 100, arrived: now}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var q queue
			for _, r := range tt.queued {
				q.push(r)
			}
			err := tt.adm.judge(&q, 0, tt.r, now)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *contracts.Error
			if !errors.As(err, &e) || e.Code != contracts.CodeOverloaded || !strings.Contains(e.Message, tt.refused) {
				t.Fatalf("got %v, want overloaded about %q", err, tt.refused)
			}
			if tt.adm.refusals != 1 {
				t.Errorf("refusals = %d, want 1", tt.adm.refusals)
			}
		})
	}
}

// The pre-check holds each passing request's estimate as queued until it is
// released, so a burst on an empty queue lets one request through to the
// tokenizer, not all of them.
func TestAdmissionPrecheckHoldsEstimates(t *testing.T) {
	a := newAdmission(0, 100)
	var q queue
	texts := []string{strings.Repeat("x", 8*50)} // about 50 tokens at 8 bytes per token
	est, err := a.precheck(context.Background(), &q, 0, texts, time.Now(), true)
	if err != nil || est == 0 || a.tokenizing != est {
		t.Fatalf("first request: estimate %d, tokenizing %d, %v; want admitted with its estimate held", est, a.tokenizing, err)
	}
	if _, err := a.precheck(context.Background(), &q, 0, append(texts, texts...), time.Now(), true); !errors.Is(err, contracts.ErrOverloaded) {
		t.Fatalf("second request while the first is tokenized: %v, want overloaded", err)
	}
	a.release(est)
	if a.tokenizing != 0 {
		t.Fatalf("tokenizing %d after release, want 0", a.tokenizing)
	}
	// Closing: no judging, the estimate is still held (admit answers).
	if _, err := a.precheck(context.Background(), &q, 0, texts, time.Now(), false); err != nil {
		t.Fatal(err)
	}
}

// The speed is measured on batches of at least a quarter of the batch
// budget; smaller ones are mostly fixed overhead.
func TestAdmissionMeasuresFullBatchesOnly(t *testing.T) {
	a := newAdmission(0, 100)
	if a.timeFor(1000) != 0 {
		t.Fatal("timeFor before any measurement; want 0")
	}
	a.measured(10, DefaultMaxBatchTokens/4-1, time.Millisecond)
	if a.rate != 0 {
		t.Fatalf("a small batch set the rate to %v", a.rate)
	}
	a.measured(200, DefaultMaxBatchTokens, 100*time.Millisecond)
	if a.rate != 2000 {
		t.Fatalf("rate %v, want 2000 tokens/s", a.rate)
	}
	if got, want := a.timeFor(2000), 1500*time.Millisecond; got != want {
		t.Fatalf("timeFor(2000) = %v, want %v (the measured second with headroom)", got, want)
	}
}
