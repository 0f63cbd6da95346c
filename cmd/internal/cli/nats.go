package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// NATSAuth are the credentials and TLS files of a NATS connection; each maps
// to the standard nats.go option. At most one of token, NKey and creds file
// may be set; a user and password may also come in NATS_URL.
type NATSAuth struct {
	User, Password string // nats.UserInfo
	PasswordFile   string // the password read from a file (Docker and Kubernetes secrets), instead of Password
	Token          string // nats.Token
	NKeyFile       string // nats.NkeyOptionFromSeed: a file holding the user's NKey seed
	CredsFile      string // nats.UserCredentials: a decentralized-auth creds file (JWT + seed)
	CAFile         string // nats.RootCAs: verify the server with these CAs (turns TLS on)
	CertFile       string // nats.ClientCert: present this client certificate (with KeyFile)
	KeyFile        string
}

// NATSAuth registers the NATS credential and TLS flags.
func (f *Flags) NATSAuth(a *NATSAuth) {
	f.String(&a.User, "nats-user", "NATS_USER", "", "NATS user name (with -nats-password)")
	f.String(&a.Password, "nats-password", "NATS_PASSWORD", "", "NATS password; prefer the environment variable, which ps does not show")
	f.String(&a.PasswordFile, "nats-password-file", "NATS_PASSWORD_FILE", "", "file holding the NATS password (instead of -nats-password; a trailing newline is ignored)")
	f.String(&a.Token, "nats-token", "NATS_TOKEN", "", "NATS authentication token; prefer the environment variable")
	f.String(&a.NKeyFile, "nats-nkey-file", "NATS_NKEY_FILE", "", "file holding the NATS user's NKey seed (SU...)")
	f.String(&a.CredsFile, "nats-creds-file", "NATS_CREDS_FILE", "", "NATS credentials file (JWT and NKey seed, from nsc)")
	f.String(&a.CAFile, "nats-ca-file", "NATS_CA_FILE", "", "PEM CA certificates to verify the NATS server with (turns TLS on)")
	f.String(&a.CertFile, "nats-cert-file", "NATS_CERT_FILE", "", "PEM client certificate for NATS (mutual TLS, with -nats-key-file)")
	f.String(&a.KeyFile, "nats-key-file", "NATS_KEY_FILE", "", "PEM private key of -nats-cert-file")
}

// Options turns a into nats.go options, or says which settings conflict.
func (a NATSAuth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	methods := 0
	if a.PasswordFile != "" {
		if a.Password != "" {
			return nil, errors.New("NATS_PASSWORD and NATS_PASSWORD_FILE: set only one")
		}
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_PASSWORD_FILE: %w", err)
		}
		if a.Password = strings.TrimRight(string(b), "\r\n"); a.Password == "" {
			return nil, fmt.Errorf("NATS_PASSWORD_FILE %s is empty", a.PasswordFile)
		}
	}
	if a.User != "" || a.Password != "" {
		if a.User == "" || a.Password == "" {
			return nil, errors.New("NATS_USER and NATS_PASSWORD (or NATS_PASSWORD_FILE) go together: set both or neither")
		}
		opts = append(opts, nats.UserInfo(a.User, a.Password))
		methods++
	}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
		methods++
	}
	if a.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_FILE %s: %w", a.NKeyFile, err)
		}
		opts = append(opts, o)
		methods++
	}
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
		methods++
	}
	if methods > 1 {
		return nil, errors.New("NATS credentials: set only one of NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_FILE and NATS_CREDS_FILE")
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		return nil, errors.New("NATS_CERT_FILE and NATS_KEY_FILE go together: set both or neither")
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	return opts, nil
}

// ConnectNATS connects to urls with c's credentials and TLS files, as name,
// reconnecting forever once connected. A server that cannot be reached yet
// is retried in the background (NATS may start after simmatch); a server
// that refuses the credentials or the TLS set-up fails at once, with an
// error that says what to check. Credentials never appear in logs or errors.
func ConnectNATS(c Common, name string, logger *slog.Logger) (*nats.Conn, error) {
	auth, err := c.NATS.Options()
	if err != nil {
		return nil, err
	}
	// Reconnect forever with backoff and a buffer (contracts.ReconnectOptions).
	opts := append(append([]nats.Option{nats.Name(name), NATSLogHandlers(logger)}, contracts.ReconnectOptions()...), auth...)
	nc, err := nats.Connect(c.NATSURL, opts...)
	if errors.Is(err, nats.ErrNoServers) {
		logger.Warn("NATS not reachable yet; retrying in the background", "url", RedactURLs(c.NATSURL), "err", err)
		nc, err = nats.Connect(c.NATSURL, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		hint := ""
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) ||
			strings.Contains(strings.ToLower(err.Error()), "authorization") {
			hint = " (the server refused the credentials: check NATS_USER/NATS_PASSWORD(_FILE), NATS_TOKEN, NATS_NKEY_FILE or NATS_CREDS_FILE)"
		} else if strings.Contains(err.Error(), "tls") || strings.Contains(err.Error(), "x509") || strings.Contains(err.Error(), "certificate") {
			hint = " (TLS failed: check NATS_CA_FILE, NATS_CERT_FILE and NATS_KEY_FILE)"
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w%s", RedactURLs(c.NATSURL), err, hint)
	}
	return nc, nil
}

// NATSLogHandlers logs the connection's disconnects, reconnects and async errors.
func NATSLogHandlers(logger *slog.Logger) nats.Option {
	return func(o *nats.Options) error {
		o.DisconnectedErrCB = func(nc *nats.Conn, err error) {
			if nc.IsClosed() || err == nil { // our own Close at shutdown
				return
			}
			logger.Warn("NATS disconnected; reconnecting", "err", err)
		}
		o.ReconnectedCB = func(nc *nats.Conn) {
			logger.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}
		o.AsyncErrorCB = func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Error("NATS async error", "err", err, "subject", subject)
		}
		return nil
	}
}

// RedactURLs returns a comma-separated list of NATS URLs with their
// credentials (user, password or token) replaced, for logs and errors.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			// host:port or user:password@host:port: url.Parse would read
			// "user" as a scheme and the rest as opaque.
			if at := strings.LastIndexByte(p, '@'); at >= 0 {
				parts[i] = "REDACTED@" + p[at+1:]
			}
			continue
		}
		u, err := url.Parse(p)
		switch {
		case err != nil && strings.Contains(p, "@"):
			parts[i] = "(unparsable URL redacted)"
		case err == nil && u.User != nil:
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
