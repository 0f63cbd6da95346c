package contracts

import (
	"math/rand/v2"
	"time"
)

// minRetryAfter is the shortest wait a refusal suggests. The estimate says
// when this request alone would fit, but under overload many refused
// callers wait for the same room, and each early return costs a refusal's
// work on the cores the admitted requests need; a second (HTTP's
// Retry-After granularity) keeps the queue full with far fewer refusals.
const minRetryAfter = time.Second

// RetryAfterMs is the wait a refusal suggests: the estimate, at least
// minRetryAfter, plus a random quarter to half of it. The jitter spreads the
// callers refused together (they saw the same queue) so they do not come
// back as one burst. Error.RetryAfterMs carries it.
func RetryAfterMs(wait time.Duration) int {
	wait = max(wait, minRetryAfter)
	return int((wait + time.Duration(rand.Int64N(int64(wait/4)+1)) + wait/4).Milliseconds())
}
