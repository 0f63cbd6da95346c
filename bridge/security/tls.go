package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
)

// TLSFiles names the PEM files the bridge serves HTTPS with.
type TLSFiles struct {
	// CertFile and KeyFile are the server's certificate (chain) and private key.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of these CAs.
	ClientCAFile string
}

// tlsState is one loaded generation of the TLS files.
type tlsState struct {
	cert *tls.Certificate
	cas  *x509.CertPool // nil without mutual TLS
}

// CertReloader serves the certificate and client CAs of TLSFiles and
// re-reads them when they change (Watch) or when asked (Reload), as
// Reloaded does, without a restart: every new TLS handshake uses the
// files' latest good content. A broken rotation (e.g. a key that does not
// match its certificate) keeps the previous pair. It is safe for
// concurrent use.
type CertReloader struct {
	*Reloaded[*tlsState]
}

// NewCertReloader loads files; an error now is fatal, unlike in a later
// reload. A nil logger means slog.Default().
func NewCertReloader(files TLSFiles, logger *slog.Logger) (*CertReloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("bridge: TLS needs both a certificate file and a key file")
	}
	r, err := OpenReloaded("TLS certificate files", []string{files.CertFile, files.KeyFile, files.ClientCAFile}, parseTLS,
		func(st *tlsState) []any { return []any{"not_after", st.cert.Leaf.NotAfter} }, logger)
	if err != nil {
		return nil, err
	}
	return &CertReloader{r}, nil
}

// parseTLS parses the certificate, key and client CAs (nil: none) PEM.
func parseTLS(data [][]byte) (*tlsState, error) {
	cert, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	st := &tlsState{cert: &cert}
	if data[2] != nil {
		st.cas = x509.NewCertPool()
		if !st.cas.AppendCertsFromPEM(data[2]) {
			return nil, errors.New("client CA: no PEM certificate in it")
		}
	}
	return st, nil
}

// TLSConfig returns a server configuration (TLS 1.2 or later) that picks up
// the current files at every handshake; with a client CA, clients without
// a certificate it signed are refused.
func (c *CertReloader) TLSConfig() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		st := c.Load()
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*st.cert}}
		if st.cas != nil {
			cfg.ClientCAs = st.cas
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return cfg, nil
	}
	return base
}
