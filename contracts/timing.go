package contracts

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Timing is a processor's account of where a request's time went.
type Timing struct {
	// Queue is the time spent waiting for the model.
	Queue time.Duration
	// Inference is the time spent computing the answer.
	Inference time.Duration
	// Known is false when the reply carried no timing headers.
	Known bool
}

// SetTiming writes t into h as the two microsecond headers (HeaderQueueUs,
// HeaderInferenceUs).
func SetTiming(h nats.Header, t Timing) {
	h.Set(HeaderQueueUs, strconv.FormatInt(t.Queue.Microseconds(), 10))
	h.Set(HeaderInferenceUs, strconv.FormatInt(t.Inference.Microseconds(), 10))
}

// TimingFrom reads the timing headers from h. Missing or malformed headers
// give a Timing with Known false: timing is informative, never a reason to
// fail a reply.
func TimingFrom(h nats.Header) Timing {
	q, err1 := strconv.ParseInt(h.Get(HeaderQueueUs), 10, 64)
	i, err2 := strconv.ParseInt(h.Get(HeaderInferenceUs), 10, 64)
	if err1 != nil || err2 != nil || q < 0 || i < 0 {
		return Timing{}
	}
	return Timing{Queue: time.Duration(q) * time.Microsecond, Inference: time.Duration(i) * time.Microsecond, Known: true}
}

// Timed is embedded in every reply type: the processor's Timing, which the
// client reads from the reply's headers. It is not part of the JSON body.
type Timed struct {
	Timing Timing `json:"-"`
}

// Took is the processor's account of the reply's time.
func (t Timed) Took() Timing { return t.Timing }

func (t *Timed) timed() *Timed { return t }
