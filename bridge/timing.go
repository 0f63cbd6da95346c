package bridge

import (
	"net/http"
	"strconv"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// TEI's timing headers, in whole milliseconds (truncated, as TEI does).
const (
	headerQueueTime     = "X-Queue-Time"
	headerInferenceTime = "X-Inference-Time"
	headerTotalTime     = "X-Total-Time"
)

// setTiming sets the timing headers of a success answer: the processor's
// queue and inference times (when its reply carried them) and the bridge's
// total time since start.
func setTiming(w http.ResponseWriter, start time.Time, t contracts.Timing) {
	h := w.Header()
	if t.Known {
		h.Set(headerQueueTime, strconv.FormatInt(t.Queue.Milliseconds(), 10))
		h.Set(headerInferenceTime, strconv.FormatInt(t.Inference.Milliseconds(), 10))
	}
	h.Set(headerTotalTime, strconv.FormatInt(time.Since(start).Milliseconds(), 10))
}
