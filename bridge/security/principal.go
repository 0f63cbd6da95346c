package security

import (
	"context"
	"slices"
	"strings"

	"github.com/simmatch/simmatch/contracts"
	"go.opentelemetry.io/otel/propagation"
)

// Method says how a principal proved who it is.
type Method string

// The authentication methods.
const (
	MethodAPIKey Method = "api_key" // a key of the keys file
	MethodOIDC   Method = "oidc"    // a JWT bearer token verified against the IdP's JWKS
)

// maxTenantLen bounds a tenant's name, like a key's.
const maxTenantLen = maxKeyNameLen

// ValidTenant reports whether s may name a tenant: 1 to 64 of A-Z a-z 0-9
// . _ - (the charset of key names, so a key's name is a valid default
// tenant). Storage names built from a tenant must still encode the `.`,
// which NATS subjects and stream names reserve.
func ValidTenant(s string) bool { return len(s) <= maxTenantLen && validKeyName(s) }

// Principal is who a request is authenticated as: an API key of the keys
// file, or the subject of an OIDC token. The bridge's auth middleware puts
// it in the request's context (PrincipalFrom). It is immutable.
type Principal struct {
	// Name is the key's name, or the token's subject (the configured name
	// claim): a log field, never a secret.
	Name string
	// Tenant is the tenant the principal acts for: the key's tenant= field
	// (default: its name) or the token's tenant claim. Always ValidTenant.
	Tenant string
	// Method is how the principal authenticated.
	Method Method

	scopes map[Scope]bool
	key    *Key // the API key, nil for a token
}

// NewPrincipal returns a principal with scopes; for tests and callers that
// authenticate by other means.
func NewPrincipal(name, tenant string, method Method, scopes ...Scope) *Principal {
	p := &Principal{Name: name, Tenant: tenant, Method: method, scopes: map[Scope]bool{}}
	for _, s := range scopes {
		p.scopes[s] = true
	}
	return p
}

// Allows reports whether the principal has scope (or *).
func (p *Principal) Allows(scope Scope) bool { return p.scopes[ScopeAll] || p.scopes[scope] }

// Admin reports whether the principal has the admin scope (or *): it sees
// and manages every tenant's resources.
func (p *Principal) Admin() bool { return p.Allows(ScopeAdmin) }

// Scopes are the principal's scopes, sorted.
func (p *Principal) Scopes() []Scope {
	out := make([]Scope, 0, len(p.scopes))
	for s := range p.scopes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Key is the API key the principal authenticated with, nil for a token.
func (p *Principal) Key() *Key { return p.key }

// Limit is the principal's token bucket: def, with an API key's own rate
// and burst.
func (p *Principal) Limit(def RateLimit) RateLimit {
	if p.key != nil {
		return p.key.Limit(def)
	}
	return def
}

// Bucket names the principal's rate-limit bucket: the key's name, or
// "oidc/<tenant>" for tokens (a tenant's callers share one bucket, and the
// "/" keeps the two apart: key names cannot hold one).
func (p *Principal) Bucket() string {
	if p.key != nil {
		return p.key.Name()
	}
	return "oidc/" + p.Tenant
}

type principalCtx struct{}

// WithPrincipal returns a copy of ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalCtx{}, p)
}

// PrincipalFrom returns the principal the request of ctx was authenticated
// as, or nil: on a public path, or when the bridge has neither API keys nor
// OIDC (authentication off: every caller is the same anonymous one).
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalCtx{}).(*Principal)
	return p
}

// The NATS headers that carry the principal to processors. Only the bridge
// may publish requests (deploy/nats/nats-server.conf), so a processor may
// trust them; they are never read from HTTP.
const (
	HeaderPrincipal = "Simmatch-Principal"   // Principal.Name
	HeaderTenant    = contracts.HeaderTenant // Principal.Tenant: the header a contracts.Client made WithTenant sends
	HeaderScopes    = "Simmatch-Scopes"      // Principal.Scopes, comma-separated
	HeaderAuth      = "Simmatch-Auth"        // Principal.Method
)

// PrincipalFromHeader is the principal that ForwardPrincipal put in h, or
// nil when there is none (authentication off). For processors.
func PrincipalFromHeader(h interface{ Get(string) string }) *Principal {
	tenant := h.Get(HeaderTenant)
	if tenant == "" {
		return nil
	}
	p := NewPrincipal(h.Get(HeaderPrincipal), tenant, Method(h.Get(HeaderAuth)))
	for s := range strings.SplitSeq(h.Get(HeaderScopes), ",") {
		if s != "" {
			p.scopes[Scope(s)] = true
		}
	}
	return p
}

// ForwardPrincipal wraps inner (the trace-context propagator the contracts
// client injects into every NATS request) so that it also writes the
// principal of the context into the Simmatch-* headers. Extract is inner's
// alone: a principal never comes from a caller's headers.
func ForwardPrincipal(inner propagation.TextMapPropagator) propagation.TextMapPropagator {
	return principalPropagator{inner}
}

type principalPropagator struct{ inner propagation.TextMapPropagator }

func (pp principalPropagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	pp.inner.Inject(ctx, c)
	p := PrincipalFrom(ctx)
	if p == nil {
		return
	}
	c.Set(HeaderPrincipal, p.Name)
	c.Set(HeaderTenant, p.Tenant)
	c.Set(HeaderAuth, string(p.Method))
	scopes := p.Scopes()
	ss := make([]string, len(scopes))
	for i, s := range scopes {
		ss[i] = string(s)
	}
	c.Set(HeaderScopes, strings.Join(ss, ","))
}

func (pp principalPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return pp.inner.Extract(ctx, c)
}

func (pp principalPropagator) Fields() []string { return pp.inner.Fields() }
