package bridge

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// headerAPIKey is the alternative to Authorization: Bearer.
const headerAPIKey = "X-API-Key"

// wwwAuthenticate is the challenge of every 401 (RFC 6750).
const wwwAuthenticate = `Bearer realm="simmatch"`

type apiKeyCtx struct{}

// keyFrom returns the API key the request was authenticated with, or nil.
func keyFrom(ctx context.Context) *security.Key {
	k, _ := ctx.Value(apiKeyCtx{}).(*security.Key)
	return k
}

// presentedKey returns the key in Authorization: Bearer <key> or, failing
// that, in X-API-Key.
func presentedKey(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if token = strings.TrimSpace(token); token != "" {
				return token, true
			}
		}
	}
	if k := strings.TrimSpace(r.Header.Get(headerAPIKey)); k != "" {
		return k, true
	}
	return "", false
}

// authenticate guards every path but the public ones. With keys, it answers
// 401 unless the request carries a known key, and remembers the key for
// requireScope, the access log and the metrics. Then the flood guard
// (floodguard.go) judges the client's standing, and it takes a token from
// the key's bucket (or the one shared bucket without keys) and answers 429
// with Retry-After when there is none: all before the body is read.
// Messages never quote the key.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.public[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		limit, bucket := s.cfg.RateLimit, ""
		if s.cfg.Keys != nil {
			presented, ok := presentedKey(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate)
				writeError(w, r, contracts.Errorf(contracts.CodeUnauthorized,
					"an API key is required: send it as Authorization: Bearer <key> or %s: <key>", headerAPIKey))
				return
			}
			k := s.cfg.Keys.Lookup(presented)
			if k == nil {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate+`, error="invalid_token"`)
				writeError(w, r, contracts.Errorf(contracts.CodeUnauthorized, "the API key is not valid"))
				return
			}
			infoFrom(r.Context()).key = k.Name()
			r = r.WithContext(context.WithValue(r.Context(), apiKeyCtx{}, k))
			limit, bucket = k.Limit(limit), k.Name()
		}
		// The flood guard and the rate limit decide before anything of the
		// body is read; the guard also sees the rate limit's refusals.
		s.guard(w, r, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ok, wait := s.limiter.Allow(bucket, limit); !ok {
				after := security.RetryAfterSeconds(wait)
				w.Header().Set("Retry-After", strconv.Itoa(after))
				writeError(w, r, contracts.Errorf(contracts.CodeRateLimited,
					"rate limit of %g requests/s (burst %d) exceeded; retry in %d s", limit.Rate, int(limit.BurstSize()), after))
				return
			}
			next.ServeHTTP(w, r)
		}))
	})
}

// requireScope is the middleware of a route group that needs scope: 403
// for a key without it. Without keys it lets everything through.
func (s *Server) requireScope(scope Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if s.cfg.Keys == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := keyFrom(r.Context())
			if k == nil {
				// A scoped route listed in PublicPaths: a key is still needed.
				w.Header().Set("WWW-Authenticate", wwwAuthenticate)
				writeError(w, r, contracts.Errorf(contracts.CodeUnauthorized,
					"an API key with scope %q is required", scope))
				return
			}
			if !k.Allows(scope) {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate+`, error="insufficient_scope", scope="`+string(scope)+`"`)
				writeError(w, r, contracts.Errorf(contracts.CodeForbidden,
					"this API key lacks the scope %q that %s needs", scope, r.URL.Path))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
