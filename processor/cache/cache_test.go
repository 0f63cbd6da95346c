package cache

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/internal/testenv"
)

func TestHitIsBitIdenticalToMiss(t *testing.T) {
	inner := &counting{Embedder: realModel(t, "1")}
	c := newCache(t, Config{Inner: inner, Bytes: DefaultBytes})
	in := []string{"red running shoes", "a cordless drill", "red running shoes", "stainless steel kettle"}

	miss := embed(t, c, in...)
	if got := inner.texts.Load(); got != 3 {
		t.Fatalf("first call embedded %d texts, want the 3 distinct ones", got)
	}
	sameBits(t, "duplicate texts in one call", miss[:1], miss[2:3])

	hit := embed(t, c, in...)
	sameBits(t, "hit vs miss", miss, hit)
	if got := inner.calls.Load(); got != 1 {
		t.Fatalf("inner called %d times, want 1: the second call is all hits", got)
	}

	// A mix: only the new text reaches the model, in one call.
	mix := embed(t, c, "a cordless drill", "a garden hose", "red running shoes", "a garden hose")
	sameBits(t, "hits in a mixed call", [][]float32{miss[1], miss[0]}, [][]float32{mix[0], mix[2]})
	if calls, n := inner.calls.Load(), inner.texts.Load(); calls != 2 || n != 4 {
		t.Fatalf("after the mixed call: %d calls, %d texts; want 2 calls, 4 texts", calls, n)
	}
	st := c.Stats().Local
	if st.Hits != 3+2 || st.Misses != 3+1 || st.Entries != 4 {
		t.Fatalf("stats %+v: want 5 hits, 4 misses, 4 entries", st)
	}
}

func TestReturnedVectorsAreTheCallersOwn(t *testing.T) {
	c := newCache(t, Config{Inner: realModel(t, "1"), Bytes: DefaultBytes})
	first := embed(t, c, "a wool scarf")
	want := append([]float32(nil), first[0]...)
	for i := range first[0] {
		first[0][i] = 42
	}
	sameBits(t, "after the caller wrote into its copy", [][]float32{want}, embed(t, c, "a wool scarf"))
}

func TestModelVersionIsInTheKey(t *testing.T) {
	v1, v2 := realModel(t, "1"), realModel(t, "2")
	sw := &switchable{}
	sw.cur.Store(v1)
	inner := &counting{Embedder: sw}
	c := newCache(t, Config{Inner: inner, Bytes: DefaultBytes})

	embed(t, c, "a leather wallet")
	embed(t, c, "a leather wallet")
	if got := inner.calls.Load(); got != 1 {
		t.Fatalf("version 1: %d inner calls, want 1", got)
	}
	sw.cur.Store(v2)
	embed(t, c, "a leather wallet")
	if got := inner.calls.Load(); got != 2 {
		t.Fatalf("after switching to version 2: %d inner calls, want 2 (no entry of version 1 may answer)", got)
	}
	if got := c.Stats().Local.Entries; got != 2 {
		t.Fatalf("%d entries, want one per version", got)
	}
	if sharedKey(v1.Info(), "x") == sharedKey(v2.Info(), "x") {
		t.Fatal("shared keys of two versions are equal")
	}
}

// With one shard the eviction order is exactly least recently used, and
// the budget is never exceeded.
func TestByteBoundAndLRUOrder(t *testing.T) {
	m := realModel(t, "1")
	in := texts("lru", 4) // equal lengths: equal entry sizes
	size := entrySize(in[0], m.Info().Dimensions)
	inner := &counting{Embedder: m}
	c := newCache(t, Config{Inner: inner, Bytes: 3 * size, Shards: 1})

	embed(t, c, in[0], in[1], in[2]) // full: 0 1 2
	embed(t, c, in[0])               // 0 is now the most recent: LRU order 1 2 0
	embed(t, c, in[3])               // evicts 1
	st := c.Stats().Local
	if st.Bytes != 3*size || st.Entries != 3 || st.Evictions != 1 {
		t.Fatalf("stats %+v: want %d bytes, 3 entries, 1 eviction", st, 3*size)
	}
	calls := inner.calls.Load()
	embed(t, c, in[0], in[2], in[3])
	if got := inner.calls.Load(); got != calls {
		t.Fatal("0, 2 and 3 should still be cached")
	}
	embed(t, c, in[1])
	if got := inner.calls.Load(); got != calls+1 {
		t.Fatal("1, the least recently used, should have been evicted")
	}
	if st := c.Stats().Local; st.Bytes > st.CapacityBytes {
		t.Fatalf("%d bytes held over a budget of %d", st.Bytes, st.CapacityBytes)
	}

	// An entry bigger than the budget is computed, not kept.
	tiny := newCache(t, Config{Inner: m, Bytes: size - 1, Shards: 1})
	embed(t, tiny, in[0])
	if st := tiny.Stats().Local; st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("tiny cache kept %+v", st)
	}
}

func TestOffKeepsNothing(t *testing.T) {
	inner := &counting{Embedder: realModel(t, "1")}
	c := newCache(t, Config{Inner: inner, Bytes: 0})
	embed(t, c, "a desk lamp")
	embed(t, c, "a desk lamp")
	if got := inner.calls.Load(); got != 2 {
		t.Fatalf("%d inner calls, want 2: no in-process tier", got)
	}
}

// Concurrent requests for the same new texts compute each text once.
func TestConcurrentMissesComputeOnce(t *testing.T) {
	inner := &counting{Embedder: realModel(t, "1")}
	c := newCache(t, Config{Inner: inner, Bytes: DefaultBytes})
	in := texts("flight", 8)
	var wg sync.WaitGroup
	results := make([][][]float32, 8)
	for g := range results {
		wg.Go(func() {
			// Each caller asks for the texts in its own order.
			order := append(append([]string(nil), in[g:]...), in[:g]...)
			v, err := vectors(c.Embed(context.Background(), order))
			if err != nil {
				t.Error(err)
				return
			}
			results[g] = append(v[len(in)-g:], v[:len(in)-g]...)
		})
	}
	wg.Wait()
	if got := inner.texts.Load(); got != int64(len(in)) {
		t.Fatalf("the model embedded %d texts for %d distinct ones", got, len(in))
	}
	for g := range results {
		sameBits(t, "every caller gets the one computed vector", results[0], results[g])
	}
}

// A caller whose context ends while it computes a text others wait for
// fails alone: the waiters compute the text themselves.
func TestCancelledLeaderDoesNotFailWaiters(t *testing.T) {
	inner := &counting{Embedder: realModel(t, "1"), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	c := newCache(t, Config{Inner: inner, Bytes: DefaultBytes})

	lctx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() { _, err := c.Embed(lctx, []string{"a camping stove"}); leaderErr <- err }()
	<-inner.entered // the leader is inside the model

	waiter := make(chan [][]float32, 1)
	go func() {
		v, err := vectors(c.Embed(context.Background(), []string{"a camping stove"}))
		if err != nil {
			t.Error(err)
		}
		waiter <- v
	}()
	testenv.WaitFor(t, 10*time.Second, "the second caller to wait", func() bool { return c.Stats().Local.Misses == 2 })
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v, want context.Canceled", err)
	}
	close(inner.gate) // the waiter's own call may now run
	got := <-waiter
	sameBits(t, "waiter's vector", embed(t, c, "a camping stove"), got)
	if n := inner.calls.Load(); n != 2 {
		t.Fatalf("%d inner calls, want 2 (the cancelled one and the waiter's)", n)
	}
}

// A waiter whose context ends stops waiting; the computing caller finishes.
func TestCancelledWaiterDoesNotFailLeader(t *testing.T) {
	inner := &counting{Embedder: realModel(t, "1"), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	c := newCache(t, Config{Inner: inner, Bytes: DefaultBytes})

	leader := make(chan error, 1)
	go func() { _, err := c.Embed(context.Background(), []string{"a yoga mat"}); leader <- err }()
	<-inner.entered
	wctx, cancelWaiter := context.WithCancel(context.Background())
	waiterErr := make(chan error, 1)
	go func() { _, err := c.Embed(wctx, []string{"a yoga mat"}); waiterErr <- err }()
	testenv.WaitFor(t, 10*time.Second, "the second caller to wait", func() bool { return c.Stats().Local.Misses == 2 })
	cancelWaiter()
	if err := <-waiterErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: %v, want context.Canceled", err)
	}
	close(inner.gate)
	if err := <-leader; err != nil {
		t.Fatalf("leader failed: %v", err)
	}
	if n := inner.calls.Load(); n != 1 {
		t.Fatalf("%d inner calls, want 1", n)
	}
}

// Many callers with overlapping texts and a budget small enough to evict
// all the time: every answer is the right embedding (run under -race).
func TestConcurrentUseWithEvictions(t *testing.T) {
	m := realModel(t, "1")
	pool := texts("race", 40)
	want := embed(t, m, pool...)
	c := newCache(t, Config{Inner: m, Bytes: 10 * entrySize(pool[0], 384), Shards: 2})
	var wg sync.WaitGroup
	for g := range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for r := range 10 {
				var in []string
				var idx []int
				for k := range 6 {
					i := (g*7 + r*5 + k*3) % len(pool)
					in, idx = append(in, pool[i]), append(idx, i)
				}
				got, err := vectors(c.Embed(context.Background(), in))
				if err != nil {
					t.Error(err)
					return
				}
				for k, i := range idx {
					// Recomputed after an eviction in another batch: equal
					// within float noise, not necessarily bit for bit.
					if d := maxDiff(got[k], want[i]); d > 1e-5 {
						t.Errorf("text %d: off by %g", i, d)
					}
				}
			}
		})
	}
	wg.Wait()
	st := c.Stats().Local
	if st.Evictions == 0 || st.Bytes > st.CapacityBytes {
		t.Fatalf("stats %+v: want evictions, and bytes within the budget", st)
	}
	// Whether the callers above hit depends on the schedule (everything
	// may be evicted before it is asked again); a text asked twice in a
	// row is a hit whatever happened before.
	for range 2 {
		if _, err := c.Embed(context.Background(), pool[:1]); err != nil {
			t.Fatal(err)
		}
	}
	if after := c.Stats().Local; after.Hits <= st.Hits {
		t.Fatalf("a text asked twice in a row: hits %d -> %d, want one more", st.Hits, after.Hits)
	}
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestConfigErrors(t *testing.T) {
	m := realModel(t, "1")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no inner", Config{}, "Config.Inner is required"},
		{"negative bytes", Config{Inner: m, Bytes: -1}, "Config.Bytes -1"},
		{"negative shards", Config{Inner: m, Shards: -2}, "Config.Shards -2"},
		{"shared without NATS", Config{Inner: m, Shared: &SharedConfig{}}, "SharedConfig.NATS is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// The collectors are on the registry while the cache lives, and gone after
// Close, so a replacement cache can register again.
func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := New(Config{Inner: realModel(t, "1"), Bytes: DefaultBytes, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	embed(t, c, "a rain jacket")
	embed(t, c, "a rain jacket")
	if got := gathered(t, reg, "simmatch_cache_hits_total", "local"); got != 1 {
		t.Fatalf(`simmatch_cache_hits_total{tier="local"} = %v, want 1`, got)
	}
	if got := gathered(t, reg, "simmatch_cache_misses_total", "local"); got != 1 {
		t.Fatalf(`simmatch_cache_misses_total{tier="local"} = %v, want 1`, got)
	}
	if _, err := New(Config{Inner: realModel(t, "1"), Metrics: reg}); err == nil {
		t.Fatal("a second cache registered the same metrics")
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	newCache(t, Config{Inner: realModel(t, "1"), Metrics: reg}) // fails the test if it cannot register
}

// gathered is the value of name{tier=tier} on reg, or -1 when absent.
func gathered(t *testing.T, reg *prometheus.Registry, name, tier string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" && l.GetValue() == tier {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}
