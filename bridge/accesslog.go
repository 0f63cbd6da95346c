package bridge

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/bridge/security"
)

// statusClientClosedRequest is what the access log records when the caller
// went away before its answer was ready (nginx's convention); the caller
// never sees it.
const statusClientClosedRequest = 499

// accessLog writes one log line per request: method, route, status, duration,
// request id, trace id, the API key's name (never the key) or the token's
// subject, the tenant and, for errors,
// the error code. Never the body.
// Successful probes and scrapes (/health, /ready, /metrics) log at Debug so
// they do not drown the rest; server errors log at Warn (retryable) or Error.
func accessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			// Deferred so that a request whose handler aborts the connection
			// (http.ErrAbortHandler) is logged too.
			defer func() {
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK // net/http's answer when the handler wrote nothing
				}
				route := chi.RouteContext(r.Context()).RoutePattern()
				info := infoFrom(r.Context())
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("route", route),
					slog.Int("status", status),
					slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
					slog.Int("bytes", ww.BytesWritten()),
					slog.String("request_id", info.id),
				}
				if info.key != "" {
					attrs = append(attrs, slog.String("api_key", info.key))
				}
				if p := info.principal; p != nil {
					if p.Method == security.MethodOIDC {
						attrs = append(attrs, slog.String("oidc_subject", p.Name))
					}
					attrs = append(attrs, slog.String("tenant", p.Tenant))
				}
				if route == "" {
					attrs = append(attrs, slog.String("path", r.URL.Path))
				}
				if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
					attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
				}
				if info.err != nil {
					attrs = append(attrs, slog.String("error_code", string(info.err.Code)))
					if status >= 500 {
						attrs = append(attrs, slog.String("error", info.err.Message))
					}
				}
				logger.LogAttrs(r.Context(), accessLevel(route, status), "http request", attrs...)
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

func accessLevel(route string, status int) slog.Level {
	switch {
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return slog.LevelWarn
	case status >= 500:
		return slog.LevelError
	case status < 300 && (route == "/health" || route == "/ready" || route == "/metrics"):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
