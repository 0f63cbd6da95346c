package scheduler

import (
	"context"
	"slices"
	"sort"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/processor/internal/embed"
)

// request is one Embed call. Every field is guarded by Scheduler.mu once the
// request is queued.
type request struct {
	ctx      context.Context
	deadline time.Time // zero: none
	encs     []embed.Encoding
	// pending are the indices of the texts not yet in a batch, by token
	// count ascending, so a batch can take the text closest in length to
	// what it already holds.
	pending       []int
	pendingTokens int
	out           [][]float32
	left          int // texts not yet embedded
	arrived       time.Time
	started       time.Time // first batch holding one of its texts began
	running       []*batch  // batches in flight holding its texts
	done          chan struct{}
	err           error
	closed        bool // answered or abandoned
	link          trace.Link
}

func (r *request) tokens(i int) int { return len(r.encs[i].IDs) }

// pick returns the position in pending of the text that pads least in a
// batch whose longest text has maxLen tokens: the longest one that fits
// under maxLen, else the shortest.
func (r *request) pick(maxLen int) int {
	n := sort.Search(len(r.pending), func(i int) bool { return r.tokens(r.pending[i]) > maxLen })
	if n == 0 {
		return 0
	}
	return n - 1
}

// row is one text of a batch.
type row struct {
	req *request
	idx int
}

// batch is the texts of one model run, from one or several requests.
type batch struct {
	rows   []row
	encs   []embed.Encoding
	maxLen int // tokens of the longest text: every row is padded to it
	tokens int // real tokens
	live   int // distinct requests in the batch not yet answered or abandoned
	cancel context.CancelFunc
	start  time.Time
}

// padded is the batch's cost: rows x longest.
func (b *batch) padded() int { return len(b.rows) * b.maxLen }

// queue holds the requests with texts not yet in a batch, earliest
// deadline first (requests without a deadline last), then by arrival.
type queue struct {
	reqs          []*request
	texts, tokens int
}

// before orders requests: earliest deadline first, none last, then arrival.
func before(a, b *request) int {
	switch {
	case a.deadline.IsZero() != b.deadline.IsZero():
		if a.deadline.IsZero() {
			return 1
		}
		return -1
	case !a.deadline.Equal(b.deadline):
		return a.deadline.Compare(b.deadline)
	}
	return a.arrived.Compare(b.arrived)
}

// position is where r goes in the queue.
func (q *queue) position(r *request) int {
	k, _ := slices.BinarySearchFunc(q.reqs, r, func(x, r *request) int {
		if c := before(x, r); c != 0 {
			return c
		}
		return -1 // after equals: arrival order
	})
	return k
}

func (q *queue) push(r *request) {
	q.reqs = slices.Insert(q.reqs, q.position(r), r)
	q.texts += len(r.pending)
	q.tokens += r.pendingTokens
}

// remove takes r's pending texts out of the queue.
func (q *queue) remove(r *request) {
	if len(r.pending) == 0 {
		return
	}
	q.texts -= len(r.pending)
	q.tokens -= r.pendingTokens
	r.pending, r.pendingTokens = nil, 0
	q.reqs = slices.DeleteFunc(q.reqs, func(x *request) bool { return x == r })
}

// form takes the texts of one batch out of the queue. Fairness: a first
// pass fills at most half of the batch's token budget, taking the requests
// with the fewest tokens left first, so a request with many texts cannot
// hold the model against one with few: the small one gets rows in the next
// batch even behind big ones with earlier deadlines, and finishes in a
// batch or two. A second pass fills what is left, earliest deadline first,
// with at least half of the batch: small requests that keep arriving never
// take all of a big request's batches. Within that, each request gives the text closest in length to the
// batch's longest, so little goes to padding. budget caps rows x longest
// (padded tokens; one text always goes, however long); target > 0 stops once
// the batch holds that many real tokens, which spreads a lone request over
// the idle lanes. It returns nil when the queue is empty.
func (q *queue) form(budget, target int) *batch {
	if len(q.reqs) == 0 {
		return nil
	}
	b := &batch{}
	share := budget
	if len(q.reqs) > 1 {
		share = max(budget/2, 1)
	}
	full := false
	first := q.reqs
	if len(q.reqs) > 1 {
		first = slices.Clone(q.reqs)
		slices.SortStableFunc(first, func(a, b *request) int { return a.pendingTokens - b.pendingTokens })
	}
	for pass := 0; pass < 2 && !full; pass++ {
		reqs, limit := q.reqs, budget
		if pass == 0 {
			// Smallest first, within half the batch: the other half stays
			// for the earliest deadlines, so small requests arriving behind
			// a big one never take all of its batches.
			reqs, limit = first, max(budget/2, 1)
		}
		for _, r := range reqs {
			if full = q.take(b, r, limit, min(share, limit), target); full {
				break
			}
		}
		if pass == 0 {
			full = target > 0 && b.tokens >= target
		}
		share = budget
	}
	q.reqs = slices.DeleteFunc(q.reqs, func(r *request) bool { return len(r.pending) == 0 })
	if len(b.rows) == 0 {
		return nil
	}
	return b
}

// take moves texts of r into b while they fit the budget and r's rows stay
// within share padded tokens. It reports whether b is full (or at target).
func (q *queue) take(b *batch, r *request, budget, share, target int) bool {
	mine := 0
	for _, rw := range b.rows {
		if rw.req == r {
			mine++
		}
	}
	for len(r.pending) > 0 {
		p := r.pick(b.maxLen)
		i := r.pending[p]
		n := r.tokens(i)
		longest := max(b.maxLen, n)
		if len(b.rows) > 0 && ((len(b.rows)+1)*longest > budget || (mine+1)*longest > share) {
			return (len(b.rows)+1)*b.maxLen > budget
		}
		r.pending = slices.Delete(r.pending, p, p+1)
		r.pendingTokens -= n
		q.texts--
		q.tokens -= n
		if len(r.running) == 0 || r.running[len(r.running)-1] != b {
			r.running = append(r.running, b)
			b.live++
		}
		b.rows = append(b.rows, row{req: r, idx: i})
		b.encs = append(b.encs, r.encs[i])
		b.maxLen = longest
		b.tokens += n
		mine++
		if target > 0 && b.tokens >= target {
			return true
		}
	}
	return (len(b.rows)+1)*b.maxLen > budget
}
