package bridge

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// writeJSON answers status with v as the JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = contracts.Errorf(contracts.CodeInternal, "encode response: %v", err).Marshal()
	}
	writeBody(w, status, b)
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Error messages quote the caller's input (a path, a field name).
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	// A failed write means the client is gone; there is no one left to tell.
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers e with the status from the one code->status table. Every
// 503 (no_processor) and 429 (overloaded, rate_limited) carries Retry-After:
// each describes a state that usually passes within a second or two. The
// value is the processor's estimate when it gave one (retry_after_ms, whole
// seconds rounded up), else 1. A Retry-After the caller set already
// (rate_limited computes its own) stays.
func writeError(w http.ResponseWriter, r *http.Request, e *contracts.Error) {
	writeErrorWith(w, r, e, (*contracts.Error).Marshal)
}

// writeErrorWith is writeError with another encoding of the error body.
func writeErrorWith(w http.ResponseWriter, r *http.Request, e *contracts.Error, encode func(*contracts.Error) []byte) {
	// Copy: e may be shared, e.g. a sentinel returned as is.
	out := *e
	info := infoFrom(r.Context())
	if out.RequestID == "" {
		out.RequestID = info.id
	}
	info.err = &out
	status := errorStatus(&out)
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, (out.RetryAfterMs+999)/1000)))
		if out.RetryAfterMs > 0 { // the precise wait, read by the OpenAI SDKs
			w.Header().Set("Retry-After-Ms", strconv.Itoa(out.RetryAfterMs))
		}
	}
	writeBody(w, status, encode(&out))
}

// errorStatus is e's HTTP status: its code's (contracts.Code.HTTPStatus),
// but 429 for the jobs quota, which passes as the tenant's jobs end, like
// the other waits (Retry-After). The storage quotas stay 413: they pass
// only when the tenant deletes something.
func errorStatus(e *contracts.Error) int {
	if e.Code == contracts.CodeQuotaExceeded && e.Field == quotaJobs {
		return http.StatusTooManyRequests
	}
	return e.Code.HTTPStatus()
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, contracts.Errorf(contracts.CodeNotFound, "no route %s %s; see /openapi.yaml", r.Method, r.URL.Path))
}

// probeMethods are the methods tried to fill the Allow header of a 405.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// methodNotAllowed answers 405 with the Allow header. chi's own handler knows
// the allowed methods but does not pass them to a custom one, so they are
// found again by asking the router.
func methodNotAllowed(routes chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range probeMethods {
			if routes.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allowed = append(allowed, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, r, contracts.Errorf(contracts.CodeMethodNotAllowed,
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
	}
}
