package contracts

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// SubjectSimilarity is the NATS subject processors serve v1 similarity requests on.
	SubjectSimilarity = "similarity.request"
	// DefaultQueueGroup is the queue group processors join, so that adding a
	// processor shares the load instead of duplicating answers.
	DefaultQueueGroup = "simmatch-processors"
	// ServiceName is the nats micro service name (`nats micro ls` lists it).
	ServiceName = "simmatch"
	// APIVersion is the version of the request and response types in this package.
	APIVersion = "v1"
	// SubjectCancel is where a caller that gives up before its answer
	// publishes the reply subjects of its request (one per line, every
	// attempt of it). Every processor listens (no queue group) and drops the
	// request's texts that have not run yet, so work nobody waits for stops
	// taking the cores. The typed client does it when the caller's context is
	// cancelled, and for the attempts still running elsewhere once one has
	// answered.
	SubjectCancel = "simmatch.cancel"
)

// NATS header names used by simmatch. Trace context travels in the W3C
// headers (traceparent, tracestate) written by the propagator.
const (
	// HeaderRequestID carries the caller's request id, for logs and correlation.
	HeaderRequestID = "Simmatch-Request-Id"
	// HeaderTimeout carries the time the caller still waits for an answer, in
	// milliseconds. It is relative, not a timestamp, so clock skew between
	// hosts does not matter.
	HeaderTimeout = "Simmatch-Timeout-Ms"
	// HeaderQueueUs, on a processor's success reply, is how long the request
	// waited for the model, in whole microseconds.
	HeaderQueueUs = "Simmatch-Queue-Us"
	// HeaderInferenceUs, on a processor's success reply, is how long the
	// model worked on the request (first batch start to last batch end), in
	// whole microseconds.
	HeaderInferenceUs = "Simmatch-Inference-Us"
	// HeaderErrorCode is the micro header that carries the stable error code.
	HeaderErrorCode = "Nats-Service-Error-Code"
	// HeaderError is the micro header that carries the error description.
	HeaderError = "Nats-Service-Error"
)

// SetTimeout writes the remaining budget d into h.
func SetTimeout(h nats.Header, d time.Duration) {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	h.Set(HeaderTimeout, strconv.FormatInt(ms, 10))
}

// Timeout reads the remaining budget from h; ok is false when the header is
// absent. A malformed header is an error, so a caller's bug is not silently
// replaced by a default.
func Timeout(h nats.Header) (d time.Duration, ok bool, err error) {
	v := h.Get(HeaderTimeout)
	if v == "" {
		return 0, false, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	// Beyond maxMs the Duration would overflow to a negative budget.
	const maxMs = math.MaxInt64 / int64(time.Millisecond)
	if err != nil || ms <= 0 || ms > maxMs {
		return 0, false, fmt.Errorf("contracts: header %s: want a positive integer of milliseconds, got %q", HeaderTimeout, v)
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}
