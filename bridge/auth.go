package bridge

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// headerAPIKey is the alternative to Authorization: Bearer.
const headerAPIKey = "X-API-Key"

// wwwAuthenticate is the challenge of every 401 (RFC 6750).
const wwwAuthenticate = `Bearer realm="simmatch"`

// keyFrom returns the API key the request was authenticated with, or nil
// (no authentication, a public path or an OIDC token).
func keyFrom(ctx context.Context) *security.Key {
	if p := security.PrincipalFrom(ctx); p != nil {
		return p.Key()
	}
	return nil
}

// authEnabled reports whether callers must authenticate: with API keys, an
// OIDC issuer, or both.
func (s *Server) authEnabled() bool { return s.cfg.Keys != nil || s.cfg.OIDC != nil }

// clientPropagator is the propagator of the contracts client: the trace
// context of Config.Propagator (or the global one), plus the request's
// principal in the Simmatch-* NATS headers (security.ForwardPrincipal).
func clientPropagator(cfg Config) propagation.TextMapPropagator {
	p := cfg.Propagator
	if p == nil {
		p = otel.GetTextMapPropagator()
	}
	return security.ForwardPrincipal(p)
}

// bearer returns the credential in Authorization: Bearer <credential>.
func bearer(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if token = strings.TrimSpace(token); token != "" {
				return token, true
			}
		}
	}
	return "", false
}

// presentedKey returns the key in Authorization: Bearer <key> or, failing
// that, in X-API-Key.
func presentedKey(r *http.Request) (string, bool) {
	if k, ok := bearer(r); ok {
		return k, true
	}
	if k := strings.TrimSpace(r.Header.Get(headerAPIKey)); k != "" {
		return k, true
	}
	return "", false
}

// authFailure is a 401: the error answered and the WWW-Authenticate
// challenge's parameters after the realm.
type authFailure struct {
	err       *contracts.Error
	challenge string
}

// challengeParam quotes v for a WWW-Authenticate parameter. The values are
// the bridge's own fixed texts; quotes and backslashes are dropped anyway.
func challengeParam(v string) string {
	return `"` + strings.NewReplacer(`"`, "", `\`, "").Replace(v) + `"`
}

// principalOf authenticates r: a bearer that looks like a JWT goes to the
// OIDC verifier when there is one; any other credential (bearer or
// X-API-Key) is looked up among the API keys.
func (s *Server) principalOf(r *http.Request) (*security.Principal, *authFailure) {
	if tok, ok := bearer(r); ok && s.cfg.OIDC != nil && security.LooksLikeJWT(tok) {
		p, err := s.cfg.OIDC.Verify(r.Context(), tok)
		if err != nil {
			var te *security.TokenError
			if !errors.As(err, &te) {
				te = &security.TokenError{Class: security.TokenMalformed, Description: "the token cannot be verified"}
			}
			return nil, &authFailure{
				err:       contracts.Errorf(contracts.CodeUnauthorized, "the bearer token is not valid: %s", te.Description),
				challenge: `, error="invalid_token", error_description=` + challengeParam(te.Description),
			}
		}
		return p, nil
	}
	presented, ok := presentedKey(r)
	if !ok {
		return nil, &authFailure{err: contracts.Errorf(contracts.CodeUnauthorized, "%s", s.credentialHint())}
	}
	if s.cfg.Keys == nil {
		// OIDC only, and the bearer is not a JWT.
		return nil, &authFailure{
			err:       contracts.Errorf(contracts.CodeUnauthorized, "the bearer token is not a JWT; %s", s.credentialHint()),
			challenge: `, error="invalid_token", error_description="the bearer token is not a JWT"`,
		}
	}
	k := s.cfg.Keys.Lookup(presented)
	if k == nil {
		return nil, &authFailure{
			err:       contracts.Errorf(contracts.CodeUnauthorized, "the API key is not valid"),
			challenge: `, error="invalid_token", error_description="the API key is not valid"`,
		}
	}
	return k.Principal(), nil
}

// credentialHint says what credential the bridge wants.
func (s *Server) credentialHint() string {
	switch {
	case s.cfg.Keys != nil && s.cfg.OIDC != nil:
		return "an API key or an OIDC access token is required: send Authorization: Bearer <key or token>, or " + headerAPIKey + ": <key>"
	case s.cfg.OIDC != nil:
		return "an OIDC access token is required: send it as Authorization: Bearer <token>"
	}
	return "an API key is required: send it as Authorization: Bearer <key> or " + headerAPIKey + ": <key>"
}

// authenticate guards every path but the public ones. With keys or OIDC,
// it answers 401 unless the request carries a known key or a valid token,
// and puts the principal in the request's context (security.PrincipalFrom)
// for requireScope, the handlers, the access log, the metrics and the NATS
// headers. Then the flood guard (floodguard.go) judges the client's
// standing, and it takes a token from the principal's bucket (or the one
// shared bucket without authentication) and answers 429 with Retry-After
// when there is none: all before the body is read. Messages never quote the
// key or the token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.public[r.URL.Path] || isConsolePath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		limit, bucket := s.cfg.RateLimit, ""
		if s.authEnabled() {
			p, fail := s.principalOf(r)
			if fail != nil {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate+fail.challenge)
				writeError(w, r, fail.err)
				return
			}
			info := infoFrom(r.Context())
			info.principal = p
			if p.Method == security.MethodAPIKey {
				info.key = p.Name
			}
			r = r.WithContext(security.WithPrincipal(r.Context(), p))
			limit, bucket = p.Limit(limit), p.Bucket()
		}
		// The flood guard and the rate limit decide before anything of the
		// body is read; the guard also sees the rate limit's refusals.
		s.guard(w, r, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ok, wait := s.limiter.Allow(bucket, limit); !ok {
				after := security.RetryAfterSeconds(wait)
				w.Header().Set("Retry-After", strconv.Itoa(after))
				writeRefusal(w, r, contracts.Errorf(contracts.CodeRateLimited,
					"rate limit of %g requests/s (burst %d) exceeded; retry in %d s", limit.Rate, int(limit.BurstSize()), after))
				return
			}
			if s.tenantRateLimited(w, r) {
				return
			}
			next.ServeHTTP(w, r)
		}))
	})
}

// requireScope is the middleware of a route group that needs scope: 403
// for a principal without it. Without authentication it lets everything
// through.
func (s *Server) requireScope(scope Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if !s.authEnabled() {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := security.PrincipalFrom(r.Context())
			if p == nil {
				// A scoped route listed in PublicPaths: a credential is still needed.
				w.Header().Set("WWW-Authenticate", wwwAuthenticate)
				writeError(w, r, contracts.Errorf(contracts.CodeUnauthorized,
					"credentials with scope %q are required", scope))
				return
			}
			if !p.Allows(scope) {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate+`, error="insufficient_scope", scope="`+string(scope)+`"`)
				what := "API key"
				if p.Method == security.MethodOIDC {
					what = "token"
				}
				writeError(w, r, contracts.Errorf(contracts.CodeForbidden,
					"this %s lacks the scope %q that %s needs", what, scope, r.URL.Path))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
