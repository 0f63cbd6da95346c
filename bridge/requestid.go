package bridge

import (
	"context"
	"crypto/rand"
	"net/http"
	"time"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// headerRequestID is the HTTP header that carries the request id both ways.
const headerRequestID = "X-Request-Id"

// maxRequestIDLen matches the limit contracts.Request.Validate puts on request_id.
const maxRequestIDLen = 128

// reqInfo is what the handlers of one request tell the middlewares around
// them (the access log) through a pointer in the request's context.
type reqInfo struct {
	id  string           // the request id, as answered in X-Request-Id
	err *contracts.Error // the error answered, if any
	key string           // the name of the API key the request came with, once authenticated
	// principal is who the request is authenticated as (key or token), once authenticated.
	principal *security.Principal
	// start is when the bridge received the request, for X-Total-Time.
	start time.Time
}

type reqInfoKey struct{}

// infoFrom returns the request's reqInfo; outside the requestID middleware
// (e.g. a handler under test alone) it returns a throwaway one.
func infoFrom(ctx context.Context) *reqInfo {
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// requestStart is when the bridge received r (now, outside requestID).
func requestStart(r *http.Request) time.Time {
	if t := infoFrom(r.Context()).start; !t.IsZero() {
		return t
	}
	return time.Now()
}

// requestID gives every request an id: the caller's X-Request-Id when it is a
// sane token, a fresh random one otherwise. It answers the id in X-Request-Id;
// /predict replaces it with the body's request_id when there is one.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(headerRequestID)
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(headerRequestID, id)
		info := &reqInfo{id: id, start: time.Now()}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)))
	})
}

// setRequestID makes id the request's id, echoing it in X-Request-Id when it
// can travel in a header (the JSON body echoes it in any case).
func setRequestID(w http.ResponseWriter, r *http.Request, id string) {
	infoFrom(r.Context()).id = id
	if validRequestID(id) {
		w.Header().Set(headerRequestID, id)
	} else {
		w.Header().Del(headerRequestID)
	}
}

// validRequestID accepts 1 to 128 visible ASCII characters: ids end up in
// headers and log lines, where spaces and control characters do harm.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// bodyRequestID is the body's request id, or the one the bridge gave the request.
func bodyRequestID(w http.ResponseWriter, r *http.Request, fromBody string) string {
	if fromBody == "" {
		return infoFrom(r.Context()).id
	}
	setRequestID(w, r, fromBody)
	return fromBody
}
