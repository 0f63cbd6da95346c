package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// Defaults for the optional Config fields.
const (
	// DefaultRequestTimeout bounds how long /predict waits for a processor.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultCatalogWriteTimeout bounds how long a catalog upsert waits.
	DefaultCatalogWriteTimeout = 2 * time.Minute
	// DefaultReadyTimeout bounds how long /ready waits for a processor's ping answer.
	DefaultReadyTimeout = time.Second
)

// Config configures a Server. NATS is required; every other field has a
// default that works on a laptop.
type Config struct {
	// NATS is the connection requests are sent over. The caller owns it:
	// the bridge never closes or drains it.
	NATS *nats.Conn
	// Limits bound what one request may hold; the zero value means
	// contracts.DefaultLimits. The body limit is further capped by the NATS
	// server's max_payload, so an accepted body always fits in a message.
	Limits contracts.Limits
	// RequestTimeout bounds how long /predict waits for a processor's answer
	// (DefaultRequestTimeout when zero). It also travels to the processor, which
	// gives up on a request nobody waits for anymore.
	RequestTimeout time.Duration
	// CatalogLimits bound catalog requests; the zero value means
	// contracts.DefaultCatalogLimits.
	CatalogLimits contracts.CatalogLimits
	// CatalogWriteTimeout bounds how long a catalog upsert waits: it embeds
	// every description (DefaultCatalogWriteTimeout when zero).
	CatalogWriteTimeout time.Duration
	// ReadyTimeout bounds how long /ready waits for a processor to answer a
	// ping (DefaultReadyTimeout when zero).
	ReadyTimeout time.Duration
	// AckTimeout, Heartbeat and MaxAttempts tune how the bridge re-sends a
	// request whose processor died (contracts.Client); zero means
	// contracts.DefaultAckTimeout, DefaultHeartbeat and DefaultMaxAttempts.
	AckTimeout, Heartbeat time.Duration
	MaxAttempts           int
	// Subject is the NATS subject requests are sent to (contracts.SubjectSimilarity when empty).
	Subject string
	// TracerProvider creates the HTTP server and NATS client spans; nil means
	// the global provider.
	TracerProvider trace.TracerProvider
	// Propagator extracts trace context from HTTP headers and injects it into
	// NATS headers; nil means the global propagator.
	Propagator propagation.TextMapPropagator
	// Logger receives the access log and errors; nil means slog.Default().
	// Lines about a request are logged with its context, which holds its span.
	Logger *slog.Logger
	// Metrics receives the simmatch_http_* collectors of docs/metrics.md;
	// nil means no metrics are kept. New fails if the names are already taken.
	Metrics prometheus.Registerer
	// Gatherer is served on GET /metrics (public unless PublicPaths or
	// MetricsScope say otherwise); nil means no /metrics route. It is usually the registry given as
	// Metrics, which may also hold other components' collectors.
	Gatherer prometheus.Gatherer
	// Keys are the API keys callers must present (Authorization: Bearer or
	// X-API-Key) on every path but PublicPaths; route groups add the scope
	// they need. Nil means no authentication.
	Keys *KeyStore
	// OIDC verifies JWT bearer tokens of an OpenID Connect / OAuth2 IdP,
	// beside or instead of Keys (a bearer that looks like a JWT goes to it).
	// Nil means no tokens.
	OIDC *security.OIDCVerifier
	// PublicPaths are the paths served without a key when Keys is set; nil
	// means DefaultPublicPaths, an empty non-nil slice means none.
	PublicPaths []string
	// MetricsScope, when set and authentication is on (Keys or OIDC), is
	// the scope GET /metrics needs, whatever PublicPaths says: the metrics
	// name API keys and count each key's traffic. Empty means /metrics
	// follows PublicPaths (public by default). Without authentication it has
	// no effect.
	MetricsScope Scope
	// RateLimit is every key's token bucket, unless its line in the keys
	// file sets its own; without Keys, one bucket shared by every caller of
	// the non-public paths. The zero value means no limit.
	RateLimit RateLimit
	// Flood configures the flood guard (FloodLimits): a bridge-wide limit on
	// requests at once, and how clients that resend while refused are
	// slowed. The zero value means the defaults.
	Flood FloodLimits
	// JobLimits bound POST /v1/jobs; the zero value means
	// contracts.DefaultJobLimits with Limits' text and description limits.
	JobLimits contracts.JobLimits
	// JobChunkSize is how many queries one job chunk holds
	// (contracts.DefaultJobChunkSize when zero).
	JobChunkSize int
	// Quotas bound what each tenant may store and run (a *Quotas, or
	// OpenQuotas' file of SIMMATCH_QUOTAS_FILE); nil means none. They
	// apply only with authentication (Keys or OIDC), and never to admins.
	Quotas QuotaSource
}

// DefaultPublicPaths are the operational routes served without an API key:
// probes, metrics and the API description.
var DefaultPublicPaths = []string{"/health", "/ready", "/metrics", "/openapi.yaml"}

// withDefaults validates c and returns a copy with every optional field filled.
func (c Config) withDefaults() (Config, error) {
	if c.NATS == nil {
		return c, errors.New("bridge: config: NATS connection is required")
	}
	if c.Limits == (contracts.Limits{}) {
		c.Limits = contracts.DefaultLimits
	}
	if l := c.Limits; l.MaxQueries < 0 || l.MaxDescriptions < 0 || l.MaxTextChars < 0 || l.MaxBodyBytes < 0 {
		return c, fmt.Errorf("bridge: config: limits must not be negative, got %+v", l)
	}
	if c.RequestTimeout < 0 {
		return c, fmt.Errorf("bridge: config: RequestTimeout must be positive, got %v", c.RequestTimeout)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.CatalogLimits == (contracts.CatalogLimits{}) {
		c.CatalogLimits = contracts.DefaultCatalogLimits
	}
	if c.CatalogWriteTimeout < 0 {
		return c, fmt.Errorf("bridge: config: CatalogWriteTimeout must be positive, got %v", c.CatalogWriteTimeout)
	}
	if c.CatalogWriteTimeout == 0 {
		c.CatalogWriteTimeout = DefaultCatalogWriteTimeout
	}
	if c.ReadyTimeout < 0 {
		return c, fmt.Errorf("bridge: config: ReadyTimeout must be positive, got %v", c.ReadyTimeout)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.AckTimeout < 0 || c.Heartbeat < 0 || c.MaxAttempts < 0 {
		return c, fmt.Errorf("bridge: config: AckTimeout, Heartbeat and MaxAttempts must not be negative, got %v, %v, %d", c.AckTimeout, c.Heartbeat, c.MaxAttempts)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = contracts.DefaultAckTimeout
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = contracts.DefaultHeartbeat
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = contracts.DefaultMaxAttempts
	}
	if c.Subject == "" {
		c.Subject = contracts.SubjectSimilarity
	}
	if c.JobLimits == (contracts.JobLimits{}) {
		c.JobLimits = contracts.DefaultJobLimits
		c.JobLimits.Limits = c.Limits
	}
	if c.JobLimits.MaxBodyBytes <= 0 {
		c.JobLimits.MaxBodyBytes = contracts.DefaultJobLimits.MaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PublicPaths == nil {
		c.PublicPaths = DefaultPublicPaths
	}
	for _, p := range c.PublicPaths {
		if !strings.HasPrefix(p, "/") {
			return c, fmt.Errorf("bridge: config: public path %q must start with /", p)
		}
	}
	if c.MetricsScope != "" && (c.MetricsScope == ScopeAll || !security.KnownScope(c.MetricsScope)) {
		return c, fmt.Errorf("bridge: config: metrics scope %q is not a scope a key may hold", c.MetricsScope)
	}
	if f := c.Flood; f.MaxConcurrent < 0 || f.PenaltyConcurrency < 0 || f.PenaltyWindow < 0 || f.MaxTarpitted < 0 || f.MaxTarpitDelay < 0 ||
		f.InFlightWork < 0 || f.MaxInFlightBytes < 0 {
		return c, fmt.Errorf("bridge: config: flood limits must not be negative, got %+v", f)
	}
	if r := c.RateLimit; r.Rate < 0 || r.Burst < 0 || math.IsNaN(r.Rate) || math.IsInf(r.Rate, 0) {
		return c, fmt.Errorf("bridge: config: rate limit: want a finite rate and a burst >= 0, got %+v", r)
	}
	return c, nil
}
