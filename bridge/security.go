package bridge

import (
	"log/slog"

	"github.com/simmatch/simmatch/bridge/security"
)

// The bridge's security lives in package security; these names keep the
// bridge's configuration API as it was.

// Scope names a group of routes an API key may call (security.Scope).
type Scope = security.Scope

// The scopes a keys file may grant.
const (
	ScopePredict      = security.ScopePredict
	ScopeCatalogWrite = security.ScopeCatalogWrite
	ScopeJobs         = security.ScopeJobs
	ScopeAdmin        = security.ScopeAdmin
	ScopeMetrics      = security.ScopeMetrics
	ScopeAll          = security.ScopeAll
)

// KeyStore holds the API keys of a keys file (security.KeyStore).
type KeyStore = security.KeyStore

// RateLimit is a token bucket (security.RateLimit).
type RateLimit = security.RateLimit

// TLSFiles names the PEM files the bridge serves HTTPS with (security.TLSFiles).
type TLSFiles = security.TLSFiles

// CertReloader serves TLS with certificates reloaded on change (security.CertReloader).
type CertReloader = security.CertReloader

// OpenKeyStore reads the keys file at path (security.OpenKeyStore).
func OpenKeyStore(path string, logger *slog.Logger) (*KeyStore, error) {
	return security.OpenKeyStore(path, logger)
}

// NewCertReloader reads files (security.NewCertReloader).
func NewCertReloader(files TLSFiles, logger *slog.Logger) (*CertReloader, error) {
	return security.NewCertReloader(files, logger)
}

// HashKey returns the hex SHA-256 of key, the form a keys file stores
// (security.HashKey).
func HashKey(key string) string { return security.HashKey(key) }
