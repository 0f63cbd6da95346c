package bridge

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/simmatch/simmatch/contracts"
)

// recoverer turns a panic in a handler into a 500 internal JSON error and logs
// it with its stack. When the answer had already started, the connection is
// aborted instead, so the caller sees a broken answer rather than a wrong one.
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
					panic(rec)
				}
				logger.ErrorContext(r.Context(), "panic in handler",
					"panic", rec, "method", r.Method, "path", r.URL.Path,
					"request_id", infoFrom(r.Context()).id, "stack", string(debug.Stack()))
				if ww.Status() != 0 {
					panic(http.ErrAbortHandler)
				}
				writeError(ww, r, contracts.Errorf(contracts.CodeInternal,
					"the bridge failed to handle this request; report it with the request id"))
			}()
			next.ServeHTTP(ww, r)
		})
	}
}
