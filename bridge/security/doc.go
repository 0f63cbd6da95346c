// Package security holds what guards the bridge's HTTP API: API keys and
// their scopes and tenants (KeyStore, reloaded when the keys file changes),
// OIDC JWT bearer tokens (OIDCVerifier, with a cached JWKS), the Principal
// a request is authenticated as (PrincipalFrom, and the Simmatch-* NATS
// headers that carry it to processors), per-principal
// token-bucket rate limits (Limiter) and TLS certificates reloaded without a
// restart (CertReloader). The bridge's middlewares apply them.
package security
