package bridge

import (
	"net/http"

	"go.opentelemetry.io/otel/trace"
)

// headerTraceID answers the request's trace id (32 hex digits), so a caller
// can quote it when reporting a problem.
const headerTraceID = "Trace-Id"

// traceIDHeader writes the trace id of the span in the request's context into
// the Trace-Id response header. Without a valid span (tracing off) it does
// nothing: instrumentation never fails a request.
func traceIDHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
			w.Header().Set(headerTraceID, sc.TraceID().String())
		}
		next.ServeHTTP(w, r)
	})
}
