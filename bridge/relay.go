package bridge

import (
	"context"
	"net/http"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// presenter turns a reply into an answer: its status and body, or an error
// (a reply the door cannot present). It may set headers on h.
type presenter[Resp any] func(h http.Header, resp Resp) (status int, body any, e *contracts.Error)

// asIs presents a reply as the JSON body of a 200.
func asIs[Resp any](_ http.Header, resp Resp) (int, any, *contracts.Error) {
	return http.StatusOK, resp, nil
}

// relay is the one relay: it calls a processor (or the job store) within
// timeout (0: the caller's own deadline only), answers 499 when the caller
// left, maps errors with writeErr, and presents a success with the timing
// headers: X-Total-Time always, X-Queue-Time and X-Inference-Time when the
// reply carried the processor's timing.
func relay[Resp any](w http.ResponseWriter, r *http.Request, timeout time.Duration,
	call func(context.Context) (Resp, error), present presenter[Resp], writeErr errorWriter) {
	start := requestStart(r)
	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := call(ctx)
	if err != nil {
		if r.Context().Err() != nil {
			clientGone(w)
			return
		}
		writeErr(w, r, contracts.AsError(err))
		return
	}
	status, body, e := present(w.Header(), resp)
	if e != nil {
		writeErr(w, r, e)
		return
	}
	var t contracts.Timing
	if tk, ok := any(resp).(interface{ Took() contracts.Timing }); ok {
		t = tk.Took()
	}
	setTiming(w, start, t)
	writeJSON(w, status, body)
}

// clientGone records that the caller left before its answer was ready. It is
// not an error of the service, so it is neither logged as one nor traced as one.
func clientGone(w http.ResponseWriter) {
	w.WriteHeader(statusClientClosedRequest)
}
