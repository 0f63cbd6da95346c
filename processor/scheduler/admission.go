package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// admission decides whether a request may join the queue: against the
// queue's token budget and, once the lanes' speed is measured, against its
// own deadline and those of the requests already queued. It measures what
// it decides with (the lanes' speed, the tokens per byte of the texts) and
// refuses with code overloaded and a retry hint. Its fields are guarded by
// Scheduler.mu; its methods are called with that lock held.
type admission struct {
	maxQueued int           // Config.MaxQueuedTokens
	maxBatch  int           // Config.MaxBatchTokens
	maxWait   time.Duration // Config.MaxQueueWait
	margin    time.Duration // deadlineMargin (0 in unit tests of judge)
	lanes     int           // the pool's size
	metrics   *metrics

	rate float64 // real tokens per second of one lane (moving average of full batches); 0: not measured yet
	// tokensPerByte (moving average) and longest (tokens of the longest
	// encoding) calibrate precheck's estimate; 0: not measured yet.
	tokensPerByte float64
	longest       int
	// tokenizing is the estimated tokens of requests past precheck and not
	// yet judged by admit.
	tokenizing int
	refusals   uint64 // requests refused as overloaded, ever
}

// precheck's estimate of a request's tokens: bytes times the tokens per
// byte measured on the texts tokenized so far, times precheckMargin, plus
// [CLS] and [SEP], each text capped at the longest encoding seen. Before
// anything is measured it assumes 8 bytes per token, under the real count
// for nearly any text.
const (
	defaultTokensPerByte = 1.0 / 8
	precheckMargin       = 0.85
)

// admissionHeadroom is how many times the measured time admission plans for.
const admissionHeadroom = 1.5

// deadlineMargin is kept free before every deadline admission plans
// against: the answer still has to travel back through NATS and the bridge,
// whose own timer runs from before the processor's, so a request planned to
// finish in the deadline's last milliseconds would reach its caller as a
// 504 after all.
const deadlineMargin = 300 * time.Millisecond

// due is deadline d less the margin; zero stays zero.
func (a *admission) due(d time.Time) time.Time {
	if d.IsZero() {
		return d
	}
	return d.Add(-a.margin)
}

// load is the admission state for contracts.LoadReport; running is the
// tokens in running batches.
func (a *admission) load(q *queue, running int) Load {
	tpb := a.tokensPerByte
	if tpb <= 0 {
		tpb = defaultTokensPerByte
	}
	return Load{Ahead: a.timeFor(running + q.tokens + a.tokenizing), PerKB: a.timeFor(int(1024 * tpb)),
		Queued: q.tokens + a.tokenizing, MaxQueued: a.maxQueued, TokensPerKB: 1024 * tpb, Refusals: a.refusals}
}

// estimate is precheck's estimate of texts' tokens.
func (a *admission) estimate(texts []string) int {
	tpb := a.tokensPerByte
	if tpb <= 0 {
		tpb = defaultTokensPerByte
	}
	sum := 0.0
	for _, t := range texts {
		n := float64(len(t))*tpb*precheckMargin + 2 // [CLS] and [SEP]
		if a.longest > 0 {
			n = min(n, float64(a.longest))
		}
		sum += n
	}
	return int(sum)
}

// precheck refuses, before any tokenizing, a request that admit would
// refuse even with a low estimate of its tokens. Under overload most
// requests are refused, and tokenizing each of them first took the cores
// that the admitted requests needed (a refusal then took up to a second).
// The estimate is calibrated on the measured tokens per byte, so nearly
// every refusal happens here; the margin keeps it under the real count for
// texts denser than the average, which admit then judges exactly.
//
// A request that passes holds its estimate in tokenizing until admit has
// judged it (release gives it back), and precheck counts those as queued:
// when the queue has just emptied into the lanes, one request is let through
// to the tokenizer, not every request that arrives in the meantime. With
// judge false (the scheduler is closing) it only takes the estimate.
func (a *admission) precheck(ctx context.Context, q *queue, running int, texts []string, arrived time.Time, judge bool) (est int, err error) {
	est = a.estimate(texts)
	if judge && q.tokens+a.tokenizing > 0 {
		// The requests being tokenized count as this one's own tokens (they
		// will be queued ahead of it or just after): that errs towards refusing.
		r := &request{pendingTokens: est + a.tokenizing, arrived: arrived}
		r.deadline, _ = ctx.Deadline()
		if err := a.judge(q, running, r, arrived); err != nil {
			return 0, err
		}
	}
	a.tokenizing += est
	return est, nil
}

// release gives back the estimate a request passed precheck with, once it
// is judged (or failed to tokenize).
func (a *admission) release(est int) { a.tokenizing -= est }

// admit judges r, tokenized, before it is queued; est is the estimate r
// passed precheck with. An empty queue takes any request.
func (a *admission) admit(q *queue, running int, r *request, est int) error {
	if q.tokens == 0 {
		return nil
	}
	// A request the pre-check let through is judged on the estimate it
	// passed with, unless its texts are denser than the estimate's
	// margin allows: the estimate is then short by at most the margin,
	// which admission's headroom absorbs, and a refusal now would
	// waste the tokenizing (under overload, the cores of the admitted).
	judged := r
	if float64(r.pendingTokens)*precheckMargin <= float64(est) {
		judged = &request{pendingTokens: est, deadline: r.deadline, arrived: r.arrived}
	}
	return a.judge(q, running, judged, time.Now())
}

// calibrate updates the tokens per byte and the longest encoding that
// precheck estimates with, from r's freshly tokenized texts.
func (a *admission) calibrate(texts []string, r *request) {
	bytes, longest := 0, 0
	for i, t := range texts {
		bytes += len(t)
		longest = max(longest, len(r.encs[i].IDs))
	}
	if bytes == 0 {
		return
	}
	tpb := float64(r.pendingTokens-2*len(texts)) / float64(bytes)
	if a.tokensPerByte == 0 {
		a.tokensPerByte = tpb
	} else {
		a.tokensPerByte = 0.8*a.tokensPerByte + 0.2*tpb
	}
	a.longest = max(a.longest, longest)
}

// measured updates the lanes' speed from a batch that ran without error:
// tokens real tokens, padded rows x longest, in d. Small batches cost mostly
// fixed overhead per run: they would make the rate look low and admission
// refuse work the lanes could do. Under load, which is when admission
// matters, batches are full; until one has run, admission goes by the
// queue's token budget alone.
func (a *admission) measured(tokens, padded int, d time.Duration) {
	if d <= 0 || padded < a.maxBatch/4 {
		return
	}
	r := float64(tokens) / d.Seconds()
	if a.rate == 0 {
		a.rate = r
	} else {
		a.rate = 0.8*a.rate + 0.2*r
	}
}

// judge refuses r, with code overloaded and an estimate of when the same
// request would fit, when adding it to the queued tokens would go over the
// queue's budget or make a deadline miss; nil when r may be queued.
func (a *admission) judge(q *queue, running int, r *request, now time.Time) error {
	if over := q.tokens + r.pendingTokens - a.maxQueued; over > 0 {
		a.refusals++
		a.metrics.refused("queue_full")
		e := contracts.Errorf(contracts.CodeOverloaded,
			"the processor's queue holds %d tokens and this request adds about %d, over its limit of %d; retry later or add processors",
			q.tokens, r.pendingTokens, a.maxQueued)
		e.RetryAfterMs = contracts.RetryAfterMs(a.timeFor(over))
		return e
	}
	if msg, wait := a.wouldMiss(q, running, r, now); msg != "" {
		a.refusals++
		a.metrics.refused("deadline")
		e := contracts.Errorf(contracts.CodeOverloaded, "%s; retry later or add processors", msg)
		e.RetryAfterMs = contracts.RetryAfterMs(wait)
		return e
	}
	return nil
}

// timeFor is how long the lanes take for tokens at the measured speed, with
// admission's headroom; 0 before the speed is measured.
func (a *admission) timeFor(tokens int) time.Duration {
	if a.rate <= 0 {
		return 0
	}
	// Plan on 1.5 times the measured time per token: the speed moves (other
	// processes, longer texts) and a request admitted then late wastes its
	// compute. The headroom costs no throughput: the lanes stay busy as long
	// as a batch per lane is queued, far less than a third of any deadline.
	return time.Duration(admissionHeadroom * float64(tokens) * float64(time.Second) / (a.rate * float64(a.lanes)))
}

// wouldMiss says why admitting r would make a request miss its deadline
// (r itself, or one already queued that would make it otherwise), and how
// long until it would not, or "" when every deadline still holds or the
// speed is not measured yet. Batches serve the earliest deadline first, so
// a queued request finishes once the running batches and every request
// queued before it are done; r adds its own tokens to that for each request
// it may delay (counted for all of them, which errs towards refusing).
func (a *admission) wouldMiss(q *queue, running int, r *request, now time.Time) (msg string, wait time.Duration) {
	if a.rate <= 0 {
		return "", 0
	}
	dur := a.timeFor
	own := r.pendingTokens
	ahead := running
	for _, o := range q.reqs[:q.position(r)] {
		ahead += o.pendingTokens
	}
	if wait := dur(ahead); a.maxWait > 0 && wait > a.maxWait {
		return fmt.Sprintf("the processor would start on it in about %v (%d tokens queued, %d running), more than its longest queue wait of %v",
			wait.Round(time.Millisecond), q.tokens, running, a.maxWait), wait - a.maxWait
	}
	if need := dur(ahead + own); !r.deadline.IsZero() && now.Add(need).After(a.due(r.deadline)) {
		left := a.due(r.deadline).Sub(now)
		return fmt.Sprintf("the processor would need about %v to answer (%d tokens queued, %d running), more than the %v left before the request's deadline",
			need.Round(time.Millisecond), q.tokens, running, left.Round(time.Millisecond)), need - max(left, 0)
	}
	ahead = running
	for _, o := range q.reqs {
		ahead += o.pendingTokens
		if o.deadline.IsZero() {
			continue
		}
		// Only protect a request that would make it now: one already late
		// must not block every admission until it expires.
		due := a.due(o.deadline)
		if fits := !now.Add(dur(ahead)).After(due); fits && now.Add(dur(ahead+own)).After(due) {
			return fmt.Sprintf("admitting it would make a request already queued miss its deadline (%d tokens queued, %d running)",
				q.tokens, running), dur(ahead)
		}
	}
	return "", 0
}
