package scheduler

import (
	"slices"
	"testing"
	"time"

	"github.com/simmatch/simmatch/processor/internal/embed"
)

// queued makes a request whose texts have the given token counts.
func queued(lens ...int) *request {
	r := &request{left: len(lens), out: make([][]float32, len(lens))}
	for i, n := range lens {
		r.encs = append(r.encs, embed.Encoding{IDs: make([]int64, n)})
		r.pending = append(r.pending, i)
		r.pendingTokens += n
	}
	slices.SortStableFunc(r.pending, func(a, b int) int { return r.tokens(a) - r.tokens(b) }) // as tokenize does
	return r
}

func TestFormCapsABigRequestWhileOthersWait(t *testing.T) {
	var q queue
	now := time.Now()
	big := queued(10, 10, 10, 10, 10, 10, 10, 10, 10, 10)
	big.deadline, big.arrived = now.Add(time.Second), now
	small := queued(10)
	small.deadline, small.arrived = now.Add(2*time.Second), now.Add(time.Millisecond)
	q.push(small)
	q.push(big)
	if q.reqs[0] != big {
		t.Fatal("queue not ordered by deadline")
	}
	b := q.form(80, 0) // 8 rows of 10; the big one may fill half while the small one waits
	got := map[*request]int{}
	for _, r := range b.rows {
		got[r.req]++
	}
	// First pass: big 4 rows (its half), small 1; second pass fills the rest with big.
	if got[small] != 1 || got[big] != 7 {
		t.Fatalf("rows per request: small %d, big %d; want the small request's text in the first batch and the rest filled", got[small], got[big])
	}
	if q.texts != 3 || q.tokens != 30 || len(q.reqs) != 1 {
		t.Fatalf("queue after: %d texts, %d tokens, %d requests; want 3, 30, 1", q.texts, q.tokens, len(q.reqs))
	}
	if b.live != 2 || b.padded() != 80 || b.tokens != 80 {
		t.Fatalf("batch live %d padded %d tokens %d", b.live, b.padded(), b.tokens)
	}
}

// A small request queued behind two big ones with earlier deadlines gets
// its share of the next batch, not what the big ones leave: under a flood
// of big requests, a small one finishes in a batch or two.
func TestFormServesSmallBehindBigOnes(t *testing.T) {
	var q queue
	now := time.Now()
	bigs := []*request{queued(10, 10, 10, 10, 10, 10, 10, 10, 10, 10), queued(10, 10, 10, 10, 10, 10, 10, 10, 10, 10)}
	for i, b := range bigs {
		b.deadline, b.arrived = now.Add(time.Second), now.Add(time.Duration(i)*time.Millisecond)
		q.push(b)
	}
	small := queued(10, 10, 10, 10)
	small.deadline, small.arrived = now.Add(2*time.Second), now.Add(time.Second)
	q.push(small)
	if q.reqs[2] != small {
		t.Fatal("queue not ordered by deadline")
	}
	b := q.form(80, 0) // 8 rows of 10, half of them per request in the first pass
	got := map[*request]int{}
	for _, r := range b.rows {
		got[r.req]++
	}
	if got[small] != 4 || got[bigs[0]] != 4 || got[bigs[1]] != 0 {
		t.Fatalf("rows: small %d, first big %d, second big %d; want the small request whole, then the earliest deadline", got[small], got[bigs[0]], got[bigs[1]])
	}
}

// Small requests that keep arriving behind a big one with an earlier
// deadline take at most half of each batch: the big one keeps the rest.
func TestFormKeepsHalfForTheEarliestDeadline(t *testing.T) {
	var q queue
	now := time.Now()
	big := queued(10, 10, 10, 10, 10, 10, 10, 10, 10, 10)
	big.deadline, big.arrived = now.Add(time.Second), now
	q.push(big)
	var smalls []*request
	for i := range 6 {
		s := queued(10, 10)
		s.deadline, s.arrived = now.Add(2*time.Second), now.Add(time.Duration(i+1)*time.Millisecond)
		q.push(s)
		smalls = append(smalls, s)
	}
	b := q.form(80, 0) // 8 rows of 10: 4 for the smallest first, 4 by deadline
	got := 0
	for _, r := range b.rows {
		if r.req == big {
			got++
		}
	}
	if got != 4 || len(b.rows) != 8 {
		t.Fatalf("the big request got %d of %d rows, want 4 of 8 (the smallest-first pass fills half)", got, len(b.rows))
	}
	for _, s := range smalls[:2] {
		if len(s.pending) != 0 {
			t.Errorf("the first small requests did not finish in the batch: %d texts left", len(s.pending))
		}
	}
}

func TestQueueOrder(t *testing.T) {
	var q queue
	now := time.Now()
	none, late, early1, early2 := queued(1), queued(1), queued(1), queued(1)
	late.deadline = now.Add(time.Hour)
	early1.deadline, early1.arrived = now.Add(time.Minute), now
	early2.deadline, early2.arrived = now.Add(time.Minute), now.Add(time.Nanosecond)
	for _, r := range []*request{none, late, early2, early1} {
		q.push(r)
	}
	if !slices.Equal(q.reqs, []*request{early1, early2, late, none}) {
		t.Fatal("want earliest deadline first, then arrival, no deadline last")
	}
}

func TestFormGroupsByLength(t *testing.T) {
	var q queue
	r := queued(100, 8, 9, 120, 10, 7)
	q.push(r)
	b := q.form(40, 0)
	// The shortest texts together: 4 rows x 10 tokens, no long text padded in.
	if len(b.rows) != 4 || b.maxLen != 10 || b.padded()-b.tokens != 6 {
		t.Fatalf("batch of %d rows, longest %d, padding %d; want the 4 short texts (7..10), padding 6", len(b.rows), b.maxLen, b.padded()-b.tokens)
	}
	// Budget below one long text: it still goes, alone.
	b = q.form(40, 0)
	if len(b.rows) != 1 || b.maxLen != 100 {
		t.Fatalf("batch of %d rows, longest %d; want the 100-token text alone", len(b.rows), b.maxLen)
	}
}

func TestFormSplitsForIdleLanes(t *testing.T) {
	var q queue
	q.push(queued(10, 10, 10, 10, 10, 10))
	b := q.form(1000, 30) // half of 60 tokens: two lanes idle
	if b.tokens != 30 || q.tokens != 30 {
		t.Fatalf("batch %d tokens, %d left; want 30 and 30", b.tokens, q.tokens)
	}
}

func TestRemoveDropsPending(t *testing.T) {
	var q queue
	a, b := queued(5, 5), queued(7)
	q.push(a)
	q.push(b)
	q.remove(a)
	if q.texts != 1 || q.tokens != 7 || len(q.reqs) != 1 || q.reqs[0] != b {
		t.Fatalf("after remove: %d texts %d tokens %d requests", q.texts, q.tokens, len(q.reqs))
	}
	if q.form(100, 0).rows[0].req != b {
		t.Fatal("removed request's text was batched")
	}
}
