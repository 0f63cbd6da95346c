// Package security holds what guards the bridge's HTTP API: API keys and
// their scopes (KeyStore, reloaded when the keys file changes), per-key
// token-bucket rate limits (Limiter) and TLS certificates reloaded without a
// restart (CertReloader). The bridge's middlewares apply them.
package security
