package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/internal/embed"
)

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// An embedding does not depend on its batch neighbours: each text embedded
// alone matches the same text embedded in batches shared by concurrent
// requests of other lengths, within 1e-6.
func TestEmbeddingIndependentOfBatchNeighbours(t *testing.T) {
	s := newScheduler(t, nil)
	texts := []string{
		"saw",
		"What can I use to cut wood?",
		"High-performance circular saw with laser guide, a 24-tooth carbide blade, an electric brake and a dust port.",
		"Garden hose with adjustable spray nozzle, 50 ft.",
		"Espresso machine",
		"Heavy-duty claw hammer with a non-slip grip handle, forged steel head, magnetic nail starter, 16 oz, for framing, " +
			"demolition and general carpentry around the house and the workshop.",
	}
	alone := make([][]float32, len(texts))
	for i, tx := range texts {
		v, err := vectors(s.Embed(context.Background(), []string{tx}))
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = v[0]
	}
	// Mixes: everything in one request; and 12 concurrent requests, each a
	// rotation of the texts with fresh neighbours of other lengths.
	check := func(what string, got [][]float32, idx []int) {
		t.Helper()
		for k, i := range idx {
			if d := maxDiff(got[k], alone[i]); d > 1e-6 {
				t.Errorf("%s: text %d differs from its embedding alone by %g", what, i, d)
			}
		}
	}
	all, err := vectors(s.Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	check("one request", all, []int{0, 1, 2, 3, 4, 5})
	var wg sync.WaitGroup
	for c := range 12 {
		wg.Go(func() {
			var req []string
			var idx []int
			for j := range texts {
				i := (j + c) % len(texts)
				req = append(req, texts[i])
				idx = append(idx, i)
				req = append(req, freshTexts(c*100+j, c%3+1)...)
				idx = append(idx, make([]int, c%3+1)...) // placeholders, skipped below
			}
			got, err := vectors(s.Embed(context.Background(), req))
			if err != nil {
				t.Error(err)
				return
			}
			var mine [][]float32
			var mineIdx []int
			for k := 0; k < len(req); k += c%3 + 2 {
				mine = append(mine, got[k])
				mineIdx = append(mineIdx, idx[k])
			}
			check(fmt.Sprintf("concurrent request %d", c), mine, mineIdx)
		})
	}
	wg.Wait()
}

// countingModel wraps the real model to see the batches the scheduler runs.
type countingModel struct {
	*embed.Model
	running, maxRunning atomic.Int32
	runs                atomic.Int32
	started             chan int // rows of each batch, as it starts
}

func (c *countingModel) RunBatch(ctx context.Context, encs []embed.Encoding) ([][]float32, error) {
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for {
		m := c.maxRunning.Load()
		if n <= m || c.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	c.runs.Add(1)
	if c.started != nil {
		c.started <- len(encs)
	}
	return c.Model.RunBatch(ctx, encs)
}

// A lone request is spread over every idle lane.
func TestLoneRequestUsesEveryLane(t *testing.T) {
	cm := &countingModel{Model: realModel(t, 1)}
	s := newScheduler(t, func(c *Config) { c.Model, c.Pool = cm, NewPool(2) })
	if _, err := s.Embed(context.Background(), freshTexts(1, 11)); err != nil {
		t.Fatal(err)
	}
	if cm.runs.Load() < 2 || cm.maxRunning.Load() != 2 {
		t.Fatalf("%d batches, at most %d at once; want the 11 texts split over both lanes at once", cm.runs.Load(), cm.maxRunning.Load())
	}
}

// holdLane takes the scheduler's only lane so that requests queue up and
// then share one batch when it is released.
func holdLane(t *testing.T, s *Scheduler) (release func()) {
	t.Helper()
	if !s.cfg.Pool.acquire(context.Background()) {
		t.Fatal("no lane")
	}
	return s.cfg.Pool.release
}

func waitQueued(t *testing.T, s *Scheduler, texts int) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d texts queued", texts), func() bool { n, _ := s.Queued(); return n == texts })
}

// A request cancelled, or whose deadline passes, while its texts run in a
// batch shared with another request is answered at once; the neighbour's
// batch goes on and its embeddings are right.
func TestCancelAndDeadlineInsideSharedBatch(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(ctx context.Context) (context.Context, func())
		want error
	}{
		{"cancelled", func(ctx context.Context) (context.Context, func()) {
			return context.WithCancel(ctx)
		}, context.Canceled},
		{"deadline passed", func(ctx context.Context) (context.Context, func()) {
			// Long enough to be admitted and batched; far shorter than the batch.
			return context.WithTimeout(ctx, 300*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cm := &countingModel{Model: realModel(t, 1), started: make(chan int, 4)}
			s := newScheduler(t, func(c *Config) { c.Model, c.Pool, c.MaxBatchTokens = cm, NewPool(1), 1<<16 })
			big := freshTexts(7, 150)
			want, err := vectors(realModel(t, 1).Embed(context.Background(), big))
			if err != nil {
				t.Fatal(err)
			}

			release := holdLane(t, s)
			neighbour := make(chan error, 1)
			var got [][]float32
			go func() {
				var err error
				got, err = vectors(s.Embed(context.Background(), big))
				neighbour <- err
			}()
			waitQueued(t, s, len(big))
			ctx, end := tt.end(context.Background())
			defer end()
			victim := make(chan error, 1)
			var victimDone time.Time
			go func() {
				_, err := s.Embed(ctx, []string{"a short query", "another short text"})
				victimDone = time.Now()
				victim <- err
			}()
			waitQueued(t, s, len(big)+2)
			release()
			if rows := <-cm.started; rows != len(big)+2 {
				t.Fatalf("first batch has %d rows, want both requests' %d texts in one batch", rows, len(big)+2)
			}
			if tt.want == context.Canceled {
				end()
			}
			err = <-victim
			if !errors.Is(err, tt.want) {
				t.Fatalf("victim got %v, want %v", err, tt.want)
			}
			if err := <-neighbour; err != nil {
				t.Fatalf("the neighbour failed: %v", err)
			}
			neighbourDone := time.Now()
			if !victimDone.Before(neighbourDone) {
				t.Error("the victim was answered only when the shared batch ended; want at once")
			}
			for i := range want {
				if d := maxDiff(got[i], want[i]); d > 1e-6 {
					t.Fatalf("neighbour text %d off by %g", i, d)
				}
			}
			if cm.runs.Load() != 1 {
				t.Errorf("%d batches ran; want the one shared batch", cm.runs.Load())
			}
		})
	}
}

// Texts of a request whose deadline passed while it waited never reach the model.
func TestExpiredTextsAreDroppedBeforeInference(t *testing.T) {
	reg := prometheus.NewRegistry()
	cm := &countingModel{Model: realModel(t, 1)}
	s := newScheduler(t, func(c *Config) { c.Model, c.Pool, c.Metrics = cm, NewPool(1), reg })
	release := holdLane(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Embed(ctx, freshTexts(3, 5))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %v, want the deadline error at once", err, time.Since(start))
	}
	release()
	if _, err := s.Embed(context.Background(), []string{"still serving"}); err != nil {
		t.Fatal(err)
	}
	if cm.runs.Load() != 1 {
		t.Fatalf("%d batches ran, want 1 (only the later request)", cm.runs.Load())
	}
	if got := testutil.ToFloat64(s.metrics.dropTexts); got != 5 {
		t.Fatalf("texts dropped = %v, want 5", got)
	}
}

// Fairness: a request with many texts does not make a later one-text
// request wait for all of them; the small one gets a row in the next batch.
func TestSmallRequestIsNotStarvedByABigOne(t *testing.T) {
	cm := &countingModel{Model: realModel(t, 1)}
	// One lane, small batches: the big request needs many of them.
	s := newScheduler(t, func(c *Config) { c.Model, c.Pool, c.MaxBatchTokens = cm, NewPool(1), 256 })
	big := freshTexts(11, 200)
	release := holdLane(t, s)
	bigDone := make(chan error, 1)
	go func() { _, err := s.Embed(context.Background(), big); bigDone <- err }()
	waitQueued(t, s, len(big))
	release()
	testenv.WaitFor(t, 30*time.Second, "the big request's first batch", func() bool { return cm.runs.Load() >= 1 })
	if _, err := s.Embed(context.Background(), []string{"cut wood"}); err != nil {
		t.Fatal(err)
	}
	batchesForSmall := cm.runs.Load()
	select {
	case err := <-bigDone:
		t.Fatalf("the big request (err %v) finished before the small one: the small one waited for all of it", err)
	default:
	}
	if err := <-bigDone; err != nil {
		t.Fatal(err)
	}
	total := cm.runs.Load()
	t.Logf("the small request was answered after %d of %d batches", batchesForSmall, total)
	if batchesForSmall > 3 || total < 10 {
		t.Fatalf("small request answered after %d of %d batches; want within the next batch or two of many", batchesForSmall, total)
	}
}

// Admission: with work queued and the speed measured, a request that could
// not finish before its deadline is refused at once with overloaded, and
// one that fits is admitted.
func TestAdmissionRefusesWhatCannotFinishInTime(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newScheduler(t, func(c *Config) { c.Pool, c.Metrics = NewPool(1), reg })
	if _, err := s.Embed(context.Background(), freshTexts(1, 32)); err != nil { // measures the speed
		t.Fatal(err)
	}
	release := holdLane(t, s)
	queuedDone := make(chan error, 1)
	go func() { _, err := s.Embed(context.Background(), freshTexts(2, 300)); queuedDone <- err }()
	waitQueued(t, s, 300)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	tokenized := tokenizeCount(t, s)
	start := time.Now()
	_, err := s.Embed(ctx, freshTexts(3, 300))
	took := time.Since(start)
	var e *contracts.Error
	if !errors.As(err, &e) || e.Code != contracts.CodeOverloaded {
		t.Fatalf("got %v, want overloaded", err)
	}
	if took > time.Second {
		t.Errorf("refusal took %v; want it at once", took)
	}
	// When to retry: about when the 300 texts queued ahead will have run
	// (the lane is held, so at least their time at the measured speed).
	s.mu.Lock()
	ahead := s.adm.timeFor(s.q.tokens)
	s.mu.Unlock()
	if wait := time.Duration(e.RetryAfterMs) * time.Millisecond; wait < ahead/2 || wait > 2*ahead+time.Second {
		t.Errorf("retry after %v; want about the %v the queue ahead needs", wait, ahead)
	}
	// Refused by the pre-check, calibrated on the texts tokenized so far:
	// a refusal costs no tokenizing (under overload it would take the cores
	// the admitted requests need).
	if n := tokenizeCount(t, s); n != tokenized {
		t.Errorf("the refused request was tokenized (%d tokenize stages, %d before); want refusal before tokenizing", n, tokenized)
	}
	if got := testutil.ToFloat64(s.metrics.refusals.WithLabelValues("deadline")); got != 1 {
		t.Errorf("refusals by deadline = %v, want 1", got)
	}
	// The token budget refuses too, also before tokenizing when the request
	// is over it by more than the estimate's margin: here the budget leaves
	// room for 80% of the request's real tokens (an estimate of 8 bytes per
	// token, uncalibrated, would have let it through to the tokenizer).
	texts := freshTexts(4, 50)
	real := 0
	for _, txt := range texts {
		enc, err := s.cfg.Model.Encode(txt)
		if err != nil {
			t.Fatal(err)
		}
		real += len(enc.IDs)
	}
	s.mu.Lock()
	s.adm.maxQueued = s.q.tokens + real*8/10
	s.mu.Unlock()
	tokenized = tokenizeCount(t, s)
	_, err = s.Embed(context.Background(), texts)
	if !errors.As(err, &e) || e.Code != contracts.CodeOverloaded {
		t.Fatalf("over the queue budget: got %v, want overloaded", err)
	}
	if n := tokenizeCount(t, s); n != tokenized {
		t.Errorf("the request over the budget was tokenized; want refusal before tokenizing")
	}
	// Within the estimate's margin the request is judged on the estimate it
	// passed the pre-check with: admitted, tokenized once.
	s.mu.Lock()
	s.adm.maxQueued = s.q.tokens + real - 1
	s.mu.Unlock()
	within := make(chan error, 1)
	go func() { _, err := s.Embed(context.Background(), texts); within <- err }()
	select {
	case err := <-within:
		t.Fatalf("the request within the margin ended early: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	waitQueued(t, s, 350)
	// Texts denser than the calibration (digits: a token per two bytes)
	// pass the pre-check but are judged on their real tokens: refused after
	// tokenizing.
	dense := make([]string, 20)
	for i := range dense {
		dense[i] = strings.Repeat(fmt.Sprintf("%d ", i), 40)
	}
	denseTokens := 0
	for _, txt := range dense {
		enc, err := s.cfg.Model.Encode(txt)
		if err != nil {
			t.Fatal(err)
		}
		denseTokens += len(enc.IDs)
	}
	s.mu.Lock()
	s.adm.maxQueued = s.q.tokens + denseTokens - 1
	s.mu.Unlock()
	tokenized = tokenizeCount(t, s)
	if _, err = s.Embed(context.Background(), dense); !errors.As(err, &e) || e.Code != contracts.CodeOverloaded {
		t.Fatalf("dense texts one token over the queue budget: got %v, want overloaded", err)
	}
	if n := tokenizeCount(t, s); n != tokenized+1 {
		t.Errorf("tokenized %d requests, want 1: dense texts pass the pre-check and are judged on their real tokens", n-tokenized)
	}
	release()
	if err := <-queuedDone; err != nil {
		t.Fatal(err)
	}
	if err := <-within; err != nil {
		t.Fatalf("the request within the estimate's margin: %v", err)
	}
	// Recovered: the queue is empty, a request with a normal deadline runs.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if _, err := s.Embed(ctx2, freshTexts(5, 3)); err != nil {
		t.Fatal(err)
	}
}

// tokenizeCount is how many requests s has tokenized.
func tokenizeCount(t *testing.T, s *Scheduler) uint64 {
	t.Helper()
	m := &dto.Metric{}
	if err := s.metrics.stage.WithLabelValues(embed.StageTokenize).(prometheus.Metric).Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// Close answers what was queued before it returns.
func TestCloseRunsQueuedTexts(t *testing.T) {
	cfg := Config{Model: realModel(t, 1), Pool: NewPool(1)}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	release := holdLane(t, s)
	done := make(chan error, 3)
	for i := range 3 {
		go func() { _, err := s.Embed(context.Background(), freshTexts(20+i, 4)); done <- err }()
	}
	waitQueued(t, s, 12)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	release()
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Embed(context.Background(), []string{"late"}); !errors.Is(err, contracts.ErrNoProcessor) {
		t.Fatalf("after Close: %v, want no_processor", err)
	}
}

// Embed's token counts are the tokens the model read each text with (from
// the scheduler's own tokenizing): exactly what the model's CountTokens
// gives, special tokens included, after truncation. Its timing covers the
// wait for a lane and the inference.
func TestEmbedResultTokensAndTiming(t *testing.T) {
	s := newScheduler(t, func(c *Config) { c.Pool = NewPool(1) })
	texts := append(freshTexts(9, 3), "saw", strings.Repeat("wood saw blade ", 300), "日本語の説明", "")
	res, err := s.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := realModel(t, 1).CountTokens(texts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Tokens, want) {
		t.Fatalf("tokens %v, want CountTokens' %v", res.Tokens, want)
	}
	if len(res.Vectors) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(res.Vectors), len(texts))
	}
	if res.Timing.Inference <= 0 || res.Timing.Queue < 0 {
		t.Fatalf("timing %+v; want the inference measured", res.Timing)
	}

	// Held behind a lane, the wait shows as queue time.
	release := holdLane(t, s)
	done := make(chan error, 1)
	var held embedding.Result
	go func() {
		var err error
		held, err = s.Embed(context.Background(), []string{"a queued text"})
		done <- err
	}()
	waitQueued(t, s, 1)
	queuedAt := time.Now() // the request arrived before this
	heldFor := time.Since(queuedAt)
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if held.Timing.Queue < heldFor || held.Timing.Inference <= 0 {
		t.Fatalf("timing %+v; want a queue time of at least the %v the lane was seen held", held.Timing, heldFor)
	}
}
