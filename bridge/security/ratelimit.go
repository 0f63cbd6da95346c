package security

import (
	"math"
	"sync"
	"time"
)

// RateLimit is a token bucket: Rate requests per second on average, with
// bursts of up to Burst requests. A zero Rate means no limit; a Burst of
// zero means max(1, Rate).
type RateLimit struct {
	Rate  float64
	Burst int
}

// BurstSize is the bucket's size: Burst, or max(1, Rate) when Burst is zero.
func (l RateLimit) BurstSize() float64 {
	if l.Burst > 0 {
		return float64(l.Burst)
	}
	return math.Max(1, math.Ceil(l.Rate))
}

// bucket is one caller's token bucket.
type bucket struct {
	limit  RateLimit
	tokens float64
	last   time.Time
}

// Limiter holds one token bucket per API key name ("" for everyone when no
// keys are configured). Names come from the keys file, so the map is bounded.
type Limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

// NewLimiter returns a Limiter with every bucket full.
func NewLimiter() *Limiter {
	return &Limiter{buckets: map[string]*bucket{}, now: time.Now}
}

// Allow takes a token from name's bucket. When there is none it returns
// false and how long until one is there.
func (l *Limiter) Allow(name string, lim RateLimit) (bool, time.Duration) {
	if lim.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[name]
	if b == nil || b.limit != lim {
		// A new key, or its limit changed in the keys file: start full.
		b = &bucket{limit: lim, tokens: lim.BurstSize(), last: now}
		l.buckets[name] = b
	}
	b.tokens = math.Min(lim.BurstSize(), b.tokens+now.Sub(b.last).Seconds()*lim.Rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / lim.Rate * float64(time.Second))
}

// RetryAfterSeconds is the Retry-After value for a wait of d: whole seconds,
// rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
