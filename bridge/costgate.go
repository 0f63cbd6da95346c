package bridge

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// costGate admits the requests of the model routes (ScopePredict: /predict,
// search, embeddings and the other interfaces) by cost, before anything of
// their bodies is read: the bytes in flight to the processors stay within a
// budget of what they finish in InFlightWork (from their load reports;
// FloodInFlightWork while a flood is on), so their queues stay short and
// every admitted request is answered well before its deadline. Like TEI's fixed concurrency limit, what does not
// fit is refused at once; unlike it, the limit is in work, not requests,
// and a small request may use a reserve of a quarter of the budget that big
// ones may not, so it runs beside the big ones the budget is full of
// instead of waiting behind them.
type costGate struct {
	fixed     int64         // FloodLimits.MaxInFlightBytes; 0: from the reports
	work      time.Duration // FloodLimits.InFlightWork
	floodWork time.Duration // FloodLimits.FloodInFlightWork, while flooding says so
	flooding  func(time.Time) bool
	// reports is the load gate whose reports give the processors' speed
	// (set once it is subscribed; the metrics may read the budget before).
	reports atomic.Pointer[loadGate]

	mu       sync.Mutex
	inFlight int64 // bytes admitted within the budget
	reserved int64 // bytes admitted from the reserve
}

// Shares of the budget: the reserve is a quarter of it, and a request of at
// most a sixteenth of it is small enough to use the reserve.
const (
	reserveDiv = 4
	smallDiv   = 16
)

// budget is the bytes that may be in flight (0: no limit) and the
// processors' speed in bytes per second (0: unknown).
func (c *costGate) budget(now time.Time) (budget int64, speed float64) {
	if g := c.reports.Load(); g != nil {
		speed = g.speed(now)
	}
	if c.fixed > 0 {
		return c.fixed, speed
	}
	return int64(speed * c.workNow(now).Seconds()), speed
}

// workNow is the work the budget holds now: less while a flood is on.
func (c *costGate) workNow(now time.Time) time.Duration {
	if c.flooding != nil && c.flooding(now) {
		return c.floodWork
	}
	return c.work
}

// enter admits a request of cost bytes, or says how long until it would
// fit. release gives its bytes back once it is answered.
func (c *costGate) enter(cost int64, now time.Time) (release func(), wait time.Duration, ok bool) {
	budget, speed := c.budget(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	// Nothing in flight: any request, however big, may go (the
	// processors' own admission judges it exactly).
	case budget <= 0 || c.inFlight == 0 || c.inFlight+cost <= budget:
		c.inFlight += cost
		return c.giveBack(&c.inFlight, cost), 0, true
	case cost <= budget/smallDiv && c.reserved+cost <= budget/reserveDiv:
		c.reserved += cost
		return c.giveBack(&c.reserved, cost), 0, true
	}
	if speed > 0 {
		wait = time.Duration(float64(c.inFlight+cost-budget) / speed * float64(time.Second))
	}
	return nil, wait, false
}

// load is the bytes in flight, the reserve's included.
func (c *costGate) load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight + c.reserved
}

func (c *costGate) giveBack(pool *int64, cost int64) func() {
	return func() {
		c.mu.Lock()
		*pool -= cost
		c.mu.Unlock()
	}
}

// admitByCost is the middleware of the model routes: it refuses with 429
// overloaded and Retry-After, before the body is read, a request the
// processors' budget has no room for (costGate). A request without a
// known length costs its route's body limit.
func (s *Server) admitByCost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cost := r.ContentLength
		if r.Method == http.MethodGet || r.Method == http.MethodHead || cost == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if cost < 0 {
			cost = int64(s.similarityLimit())
		}
		now := time.Now()
		release, wait, ok := s.costs.enter(cost, now)
		if !ok {
			budget, _ := s.costs.budget(now)
			e := contracts.Errorf(contracts.CodeOverloaded,
				"the processors' budget of requests in flight is full (%d bytes, the work they finish in %v): this request's %d bytes do not fit; retry after Retry-After, or add processors",
				budget, s.costs.workNow(now), cost)
			e.RetryAfterMs = contracts.RetryAfterMs(wait)
			writeRefusal(w, r, e)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}
