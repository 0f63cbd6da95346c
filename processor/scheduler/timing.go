package scheduler

import (
	"context"
	"time"
)

// Timing is where one Embed call spent its time: Queue from arrival to the
// start of the first batch holding one of its texts, Inference from then to
// the end of its last batch. A caller that wants them attaches a Timing to
// the context with WithTiming; wrappers (a cache) pass the context through,
// and texts served without the model leave both zero.
type Timing struct {
	Queue, Inference time.Duration
}

type timingKey struct{}

// WithTiming returns a copy of ctx in which Embed records its Timing into t.
func WithTiming(ctx context.Context, t *Timing) context.Context {
	return context.WithValue(ctx, timingKey{}, t)
}

func timingFrom(ctx context.Context) *Timing {
	t, _ := ctx.Value(timingKey{}).(*Timing)
	return t
}
