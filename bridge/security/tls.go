package security

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
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
// re-reads them when they change (Watch) or when asked (Reload), without a
// restart: every new TLS handshake uses the files' latest good content. A
// broken rotation (e.g. a key that does not match its certificate) keeps
// the previous pair. It is safe for concurrent use.
type CertReloader struct {
	files  TLSFiles
	logger *slog.Logger
	cur    atomic.Pointer[tlsState]

	mu      sync.Mutex // serializes reloads
	loaded  [sha256.Size]byte
	pending [sha256.Size]byte // a new content Watch saw once
	failed  [sha256.Size]byte
	failing bool
}

// NewCertReloader loads files; an error now is fatal, unlike in a later
// reload. A nil logger means slog.Default().
func NewCertReloader(files TLSFiles, logger *slog.Logger) (*CertReloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("bridge: TLS needs both a certificate file and a key file")
	}
	if logger == nil {
		logger = slog.Default()
	}
	c := &CertReloader{files: files, logger: logger}
	st, sum, err := c.read()
	if err != nil {
		return nil, err
	}
	c.cur.Store(st)
	c.loaded = sum
	return c, nil
}

// read loads the files and returns them with the hash of their content.
func (c *CertReloader) read() (*tlsState, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	certPEM, err := os.ReadFile(c.files.CertFile)
	if err != nil {
		return nil, sum, fmt.Errorf("bridge: TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.files.KeyFile)
	if err != nil {
		return nil, sum, fmt.Errorf("bridge: TLS key: %w", err)
	}
	var caPEM []byte
	if c.files.ClientCAFile != "" {
		if caPEM, err = os.ReadFile(c.files.ClientCAFile); err != nil {
			return nil, sum, fmt.Errorf("bridge: TLS client CA: %w", err)
		}
	}
	h := sha256.New()
	for _, b := range [][]byte{certPEM, keyPEM, caPEM} {
		h.Write(b)
		h.Write([]byte{0})
	}
	copy(sum[:], h.Sum(nil))
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, sum, fmt.Errorf("bridge: TLS certificate %s and key %s: %w", c.files.CertFile, c.files.KeyFile, err)
	}
	st := &tlsState{cert: &cert}
	if caPEM != nil {
		st.cas = x509.NewCertPool()
		if !st.cas.AppendCertsFromPEM(caPEM) {
			return nil, sum, fmt.Errorf("bridge: TLS client CA %s: no PEM certificate in it", c.files.ClientCAFile)
		}
	}
	return st, sum, nil
}

// Reload re-reads the files if their content changed. On an error the
// previous certificate stays in use; the error is logged once per broken
// content and returned.
func (c *CertReloader) Reload() error { return c.reload(false) }

// reload is Reload; with settled, new content is applied (or reported
// broken) only once two reads in a row saw it, so that a rotation written
// file by file is not reported as a mismatched pair halfway.
func (c *CertReloader) reload(settled bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, sum, err := c.read()
	if sum != c.loaded && settled && sum != c.pending {
		c.pending = sum
		return nil
	}
	if err != nil {
		if !c.failing || sum != c.failed {
			c.logger.Error("TLS files rejected; keeping the previous certificate", "err", err)
		}
		c.failing, c.failed = true, sum
		return err
	}
	c.failing = false
	if sum == c.loaded {
		return nil
	}
	c.cur.Store(st)
	c.loaded = sum
	c.logger.Info("TLS certificate reloaded", "cert", c.files.CertFile, "not_after", st.cert.Leaf.NotAfter)
	return nil
}

// Watch checks the files every interval until ctx ends, and applies a
// change once it has read the same new content twice in a row.
func (c *CertReloader) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, func() { _ = c.reload(true) })
}

// TLSConfig returns a server configuration (TLS 1.2 or later) that picks up
// the current files at every handshake; with a client CA, clients without
// a certificate it signed are refused.
func (c *CertReloader) TLSConfig() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		st := c.cur.Load()
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*st.cert}}
		if st.cas != nil {
			cfg.ClientCAs = st.cas
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return cfg, nil
	}
	return base
}
