package cli

import (
	"log/slog"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

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
		u, err := url.Parse(strings.TrimSpace(p))
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
