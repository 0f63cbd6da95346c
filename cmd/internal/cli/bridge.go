package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// Bridge are the HTTP bridge's settings.
type Bridge struct {
	HTTPAddr       string
	RequestTimeout time.Duration
	// AckTimeout, Heartbeat and MaxAttempts tune the re-sending of requests
	// whose processor died (bridge.Config).
	AckTimeout, Heartbeat time.Duration
	MaxAttempts           int

	APIKeysFile string
	// QuotasFile is SIMMATCH_QUOTAS_FILE: the tenants' quotas
	// (bridge.ParseQuotas); empty: none.
	QuotasFile string
	// Auth is SIMMATCH_AUTH: "none" lets the bridge listen beyond loopback
	// without API keys or OIDC (said again in the log at start); "" is the
	// default, which refuses to.
	Auth        string
	PublicPaths string
	// MetricsScope is SIMMATCH_METRICS_SCOPE: with API keys or OIDC, the
	// scope GET /metrics needs; empty: /metrics follows PublicPaths.
	MetricsScope string
	// MetricsAddr is SIMMATCH_METRICS_ADDR: a listener of its own for
	// /metrics (and /health), e.g. for a cluster's Prometheus,
	// beside the API port; empty: none.
	MetricsAddr    string
	RateLimit      float64
	RateBurst      int
	TLSCertFile    string
	TLSKeyFile     string
	TLSClientCA    string
	ReloadInterval time.Duration
	// OIDC configures JWT bearer tokens of an OpenID Connect IdP
	// (SIMMATCH_OIDC_*); an empty Issuer means none.
	OIDC OIDC
	// CatalogWriteTimeout bounds a catalog upsert, which embeds every description.
	CatalogWriteTimeout time.Duration

	// Flood configures the flood guard (bridge.FloodLimits).
	Flood bridge.FloodLimits

	// JobMaxQueries, JobMaxBodyBytes, JobMaxNDJSONBytes and JobChunkSize
	// bound and split asynchronous jobs (POST /v1/jobs).
	JobMaxQueries, JobMaxBodyBytes, JobMaxNDJSONBytes, JobChunkSize int
}

// OIDC are the settings of OIDC bearer tokens (security.OIDCConfig).
type OIDC struct {
	Issuer, Audience, JWKSURL                       string
	ScopeClaim, ScopePrefix, TenantClaim, NameClaim string
	Algorithms                                      string
	ClockSkew, Refresh, MinRefetch                  time.Duration
}

// Config is the verifier configuration of o, logging to logger.
func (o OIDC) Config(logger *slog.Logger) (security.OIDCConfig, error) {
	cfg := security.OIDCConfig{Issuer: o.Issuer, JWKSURL: o.JWKSURL, ScopeClaim: o.ScopeClaim, ScopePrefix: o.ScopePrefix,
		TenantClaim: o.TenantClaim, NameClaim: o.NameClaim, ClockSkew: o.ClockSkew, RefreshInterval: o.Refresh,
		MinRefetch: o.MinRefetch, Logger: logger}
	if o.Issuer == "" {
		if o.Audience != "" || o.JWKSURL != "" || o.TenantClaim != "" {
			return cfg, errors.New("SIMMATCH_OIDC_AUDIENCE, SIMMATCH_OIDC_JWKS_URL and SIMMATCH_OIDC_TENANT_CLAIM need SIMMATCH_OIDC_ISSUER")
		}
		return cfg, nil
	}
	cfg.Audiences = splitList(o.Audience)
	cfg.Algorithms = splitList(o.Algorithms)
	if o.ClockSkew == 0 {
		return cfg, errors.New("SIMMATCH_OIDC_CLOCK_SKEW must be positive (at most 5m)")
	}
	return cfg, nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Bridge registers the bridge flags.
func (f *Flags) Bridge(s *Bridge) {
	f.String(&s.HTTPAddr, "http-addr", "SIMMATCH_HTTP_ADDR", "127.0.0.1:8000",
		"HTTP listen address; beyond loopback (e.g. :8000) it needs API keys or OIDC, or SIMMATCH_AUTH=none")
	f.String(&s.Auth, "auth", "SIMMATCH_AUTH", "", "none: allow listening beyond loopback without API keys or OIDC (the API is then open to anyone who reaches it)")
	f.Duration(&s.RequestTimeout, "request-timeout", "SIMMATCH_REQUEST_TIMEOUT", 10*time.Second, "how long /predict waits for a processor")
	f.Duration(&s.AckTimeout, "ack-timeout", "SIMMATCH_ACK_TIMEOUT", contracts.DefaultAckTimeout, "how long the bridge waits for a processor to acknowledge a request before sending it to another")
	f.Duration(&s.Heartbeat, "heartbeat", "SIMMATCH_HEARTBEAT", contracts.DefaultHeartbeat,
		fmt.Sprintf("heartbeat interval the bridge asks processors for; %d missed heartbeats send the request to another processor", contracts.SilentHeartbeats))
	f.Int(&s.MaxAttempts, "max-attempts", "SIMMATCH_MAX_ATTEMPTS", contracts.DefaultMaxAttempts, "most times the bridge sends one request (1: never again)")
	f.Duration(&s.CatalogWriteTimeout, "catalog-write-timeout", "SIMMATCH_CATALOG_WRITE_TIMEOUT", 2*time.Minute, "how long a catalog upsert waits (it embeds every description)")
	f.String(&s.APIKeysFile, "api-keys-file", "SIMMATCH_API_KEYS_FILE", "", "API keys file (<name> <sha256 hex> <scopes> per line); empty: no authentication")
	f.String(&s.QuotasFile, "quotas-file", "SIMMATCH_QUOTAS_FILE", "",
		"tenant quotas file (<tenant|*> catalogs=N products=N bytes=SIZE jobs=N upload=SIZE rate=R burst=N per line); empty: no quotas. Needs API keys or OIDC")
	f.String(&s.PublicPaths, "public-paths", "SIMMATCH_PUBLIC_PATHS", strings.Join(bridge.DefaultPublicPaths, ","),
		"comma-separated paths served without an API key; none: every path needs one")
	f.String(&s.MetricsScope, "metrics-scope", "SIMMATCH_METRICS_SCOPE", "",
		"with API keys or OIDC, the scope GET /metrics needs (metrics or admin; the metrics name keys and count their traffic); empty: public unless left out of -public-paths")
	f.String(&s.MetricsAddr, "metrics-addr", "SIMMATCH_METRICS_ADDR", "",
		"a listener of its own for /metrics and /health (e.g. :9090 for a cluster's Prometheus, not published), without authentication; empty: none (the API port's /metrics follows -metrics-scope)")
	f.Float64(&s.RateLimit, "rate-limit", "SIMMATCH_RATE_LIMIT", 0, "requests per second per API key (without keys: for all callers together); 0: no limit")
	f.Int(&s.RateBurst, "rate-burst", "SIMMATCH_RATE_BURST", 0, "requests a key may send at once above -rate-limit; 0: the rate, at least 1")
	f.String(&s.TLSCertFile, "tls-cert-file", "SIMMATCH_TLS_CERT_FILE", "", "PEM certificate (chain) to serve HTTPS with; empty: plain HTTP")
	f.String(&s.TLSKeyFile, "tls-key-file", "SIMMATCH_TLS_KEY_FILE", "", "PEM private key of -tls-cert-file")
	f.String(&s.TLSClientCA, "tls-client-ca-file", "SIMMATCH_TLS_CLIENT_CA_FILE", "", "PEM CAs whose client certificates are required (mutual TLS); empty: none asked")
	f.Duration(&s.ReloadInterval, "reload-interval", "SIMMATCH_RELOAD_INTERVAL", 10*time.Second,
		"how often the API keys, quotas and TLS files are checked for changes (SIGHUP checks at once)")
	f.String(&s.OIDC.Issuer, "oidc-issuer", "SIMMATCH_OIDC_ISSUER", "", "OIDC issuer URL: accept its JWT access tokens as bearer tokens (beside API keys); empty: no tokens")
	f.String(&s.OIDC.Audience, "oidc-audience", "SIMMATCH_OIDC_AUDIENCE", "", "comma-separated audiences; a token's aud must hold one (required with -oidc-issuer)")
	f.String(&s.OIDC.JWKSURL, "oidc-jwks-url", "SIMMATCH_OIDC_JWKS_URL", "", "the IdP's JWKS URL; empty: the jwks_uri of the issuer's /.well-known/openid-configuration")
	f.String(&s.OIDC.ScopeClaim, "oidc-scope-claim", "SIMMATCH_OIDC_SCOPE_CLAIM", security.DefaultOIDCScopeClaim, "claim holding the scopes: space-separated string or list; dots walk nested claims (realm_access.roles)")
	f.String(&s.OIDC.ScopePrefix, "oidc-scope-prefix", "SIMMATCH_OIDC_SCOPE_PREFIX", "", "prefix stripped from the token's scopes (e.g. simmatch:); scopes without it are ignored")
	f.String(&s.OIDC.TenantClaim, "oidc-tenant-claim", "SIMMATCH_OIDC_TENANT_CLAIM", "", "claim holding the tenant; empty: the principal's name (-oidc-name-claim) is its tenant")
	f.String(&s.OIDC.NameClaim, "oidc-name-claim", "SIMMATCH_OIDC_NAME_CLAIM", security.DefaultOIDCNameClaim, "claim naming the principal in logs (sub, azp, client_id...)")
	f.String(&s.OIDC.Algorithms, "oidc-algorithms", "SIMMATCH_OIDC_ALGORITHMS", strings.Join(security.DefaultOIDCAlgorithms, ","), "accepted signature algorithms (asymmetric only)")
	f.Duration(&s.OIDC.ClockSkew, "oidc-clock-skew", "SIMMATCH_OIDC_CLOCK_SKEW", security.DefaultOIDCClockSkew, "how far exp, nbf and iat may be off (at most 5m)")
	f.Duration(&s.OIDC.Refresh, "oidc-jwks-refresh", "SIMMATCH_OIDC_JWKS_REFRESH", security.DefaultJWKSRefreshInterval, "how often the IdP's keys are fetched again")
	f.Duration(&s.OIDC.MinRefetch, "oidc-jwks-min-refetch", "SIMMATCH_OIDC_JWKS_MIN_REFETCH", security.DefaultJWKSMinRefetch, "least time between two fetches of the keys (a token with an unknown kid triggers one)")
	f.Int(&s.Flood.MaxConcurrent, "max-concurrent-requests", "SIMMATCH_MAX_CONCURRENT_REQUESTS", bridge.DefaultMaxConcurrent,
		"requests the bridge works on at once; one more is answered 429 before its body is read")
	f.Duration(&s.Flood.PenaltyWindow, "flood-penalty-window", "SIMMATCH_FLOOD_PENALTY_WINDOW", bridge.DefaultPenaltyWindow,
		"a client (connection) that resends while refused has its refusals held back (tarpit) and is refused for this long after its last early resend; 0: off")
	f.Int(&s.Flood.PenaltyConcurrency, "flood-penalty-concurrency", "SIMMATCH_FLOOD_PENALTY_CONCURRENCY", 0,
		"requests in flight, bridge-wide, from clients in bad standing; 0: none")
	f.Duration(&s.Flood.InFlightWork, "inflight-work", "SIMMATCH_INFLIGHT_WORK", bridge.DefaultInFlightWork,
		"the model routes' request bodies in flight may add up to what the processors (by their load reports) finish in this long; one that does not fit is answered 429 before its body is read")
	f.Duration(&s.Flood.FloodInFlightWork, "flood-inflight-work", "SIMMATCH_FLOOD_INFLIGHT_WORK", bridge.DefaultFloodInFlightWork,
		"-inflight-work while a flood is on (a client resent while refused within -flood-penalty-window)")
	f.Int(&s.Flood.MaxInFlightBytes, "max-inflight-bytes", "SIMMATCH_MAX_INFLIGHT_BYTES", 0,
		"that budget in bytes instead; 0: from -inflight-work")
	f.Int(&s.JobMaxQueries, "job-max-queries", "SIMMATCH_JOB_MAX_QUERIES", contracts.DefaultJobMaxQueries, "most queries one asynchronous job (POST /v1/jobs) may hold")
	f.Int(&s.JobMaxBodyBytes, "job-max-body-bytes", "SIMMATCH_JOB_MAX_BODY_BYTES", contracts.DefaultJobLimits.MaxBodyBytes, "largest POST /v1/jobs JSON body, in bytes (read whole: send bigger jobs as JSON lines)")
	f.Int(&s.JobMaxNDJSONBytes, "job-max-ndjson-bytes", "SIMMATCH_JOB_MAX_NDJSON_BYTES", contracts.DefaultJobMaxNDJSONBytes, "largest POST /v1/jobs body sent as JSON lines (application/x-ndjson, streamed in chunks), in bytes; a tenant's upload quota may lower it")
	f.Int(&s.JobChunkSize, "job-chunk-size", "SIMMATCH_JOB_CHUNK_SIZE", contracts.DefaultJobChunkSize, "queries per job chunk: the unit processors pull, retry and store")
}

// JobLimits are the job limits: the request limits lim for texts and
// descriptions, with the job's own query and body limits.
func (s Bridge) JobLimits(lim contracts.Limits) contracts.JobLimits {
	return contracts.JobLimits{Limits: lim, MaxQueries: s.JobMaxQueries, MaxBodyBytes: s.JobMaxBodyBytes, MaxNDJSONBytes: s.JobMaxNDJSONBytes}
}

// BridgeSecurity is the bridge's authentication, rate limit and TLS, set up
// from Bridge by Security.
type BridgeSecurity struct {
	keys         *bridge.KeyStore
	oidc         *security.OIDCVerifier // nil: no tokens
	publicPaths  []string
	metricsScope bridge.Scope
	rateLimit    bridge.RateLimit
	tls          *tls.Config // nil: plain HTTP
	quotas       *bridge.QuotasFile
	// open: neither API keys nor OIDC; authNone: SIMMATCH_AUTH=none.
	open, authNone bool
}

// Security loads the API keys and TLS files of s and keeps them current
// until ctx ends: it re-reads them every ReloadInterval and on SIGHUP.
// Without a keys file it warns that the API is open to anyone.
func (s Bridge) Security(ctx context.Context, logger *slog.Logger) (*BridgeSecurity, error) {
	if s.RateLimit < 0 || s.RateBurst < 0 {
		return nil, fmt.Errorf("SIMMATCH_RATE_LIMIT and SIMMATCH_RATE_BURST must not be negative, got %g and %d", s.RateLimit, s.RateBurst)
	}
	if s.Auth != "" && s.Auth != "none" {
		return nil, fmt.Errorf("SIMMATCH_AUTH=%q: want none or nothing", s.Auth)
	}
	sec := &BridgeSecurity{rateLimit: bridge.RateLimit{Rate: s.RateLimit, Burst: s.RateBurst}, publicPaths: []string{},
		open: s.APIKeysFile == "" && s.OIDC.Issuer == "", authNone: s.Auth == "none"}
	if sec.authNone {
		logger.Warn("SIMMATCH_AUTH=none: the bridge may listen beyond loopback without API keys or OIDC")
	}
	if sc := bridge.Scope(s.MetricsScope); sc != "" {
		if sc == bridge.ScopeAll || !security.KnownScope(sc) {
			return nil, fmt.Errorf("SIMMATCH_METRICS_SCOPE=%q: want a scope a key may hold (metrics, admin...)", s.MetricsScope)
		}
		sec.metricsScope = sc
	}
	if s.PublicPaths != "none" {
		for p := range strings.SplitSeq(s.PublicPaths, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if !strings.HasPrefix(p, "/") {
					return nil, fmt.Errorf("SIMMATCH_PUBLIC_PATHS: %q must start with /", p)
				}
				sec.publicPaths = append(sec.publicPaths, p)
			}
		}
	}
	oidcCfg, err := s.OIDC.Config(logger)
	if err != nil {
		return nil, err
	}
	if oidcCfg.Issuer != "" {
		if sec.oidc, err = security.NewOIDCVerifier(ctx, oidcCfg); err != nil {
			return nil, err
		}
		logger.Info("OIDC bearer tokens accepted", "issuer", oidcCfg.Issuer, "jwks_url", sec.oidc.JWKSURL())
	}
	var reloads []func() error
	if s.APIKeysFile == "" {
		if sec.oidc == nil {
			logger.Warn("no API keys file (SIMMATCH_API_KEYS_FILE) nor OIDC issuer (SIMMATCH_OIDC_ISSUER): the API is open to anyone who reaches it")
		}
	} else {
		ks, err := bridge.OpenKeyStore(s.APIKeysFile, logger)
		if err != nil {
			return nil, err
		}
		sec.keys = ks
		reloads = append(reloads, ks.Reload)
		go ks.Watch(ctx, s.ReloadInterval)
	}
	if s.QuotasFile != "" {
		if sec.quotas, err = bridge.OpenQuotas(s.QuotasFile, logger); err != nil {
			return nil, err
		}
		if sec.open {
			logger.Warn("SIMMATCH_QUOTAS_FILE without API keys or OIDC: there are no tenants, so no quota applies", "file", s.QuotasFile)
		}
		reloads = append(reloads, sec.quotas.Reload)
		go sec.quotas.Watch(ctx, s.ReloadInterval)
	}
	if s.TLSCertFile != "" || s.TLSKeyFile != "" || s.TLSClientCA != "" {
		r, err := bridge.NewCertReloader(bridge.TLSFiles{CertFile: s.TLSCertFile, KeyFile: s.TLSKeyFile, ClientCAFile: s.TLSClientCA}, logger)
		if err != nil {
			return nil, fmt.Errorf("%w (SIMMATCH_TLS_CERT_FILE, SIMMATCH_TLS_KEY_FILE, SIMMATCH_TLS_CLIENT_CA_FILE)", err)
		}
		sec.tls = r.TLSConfig()
		reloads = append(reloads, r.Reload)
		go r.Watch(ctx, s.ReloadInterval)
	}
	if len(reloads) > 0 {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			defer signal.Stop(hup)
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					logger.Info("SIGHUP: reloading the API keys, quotas and TLS files")
					for _, reload := range reloads {
						_ = reload() // errors are logged by the reloader
					}
				}
			}
		}()
	}
	return sec, nil
}

// Config is the bridge's configuration: s's settings and sec's
// authentication and rate limit, sending over nc with the request limits
// lim, metrics on reg: the one place both commands that run a bridge build it.
func (s Bridge) Config(sec *BridgeSecurity, nc *nats.Conn, lim contracts.Limits, logger *slog.Logger, reg *prometheus.Registry) bridge.Config {
	cfg := bridge.Config{NATS: nc, Limits: lim, RequestTimeout: s.RequestTimeout, CatalogWriteTimeout: s.CatalogWriteTimeout, Logger: logger,
		AckTimeout: s.AckTimeout, Heartbeat: s.Heartbeat, MaxAttempts: s.MaxAttempts,
		JobLimits: s.JobLimits(lim), JobChunkSize: s.JobChunkSize,
		Keys: sec.keys, OIDC: sec.oidc, PublicPaths: sec.publicPaths, MetricsScope: sec.metricsScope,
		RateLimit: sec.rateLimit, Flood: s.Flood}
	if sec.quotas != nil { // a nil *QuotasFile in the interface would not be nil
		cfg.Quotas = sec.quotas
	}
	if reg != nil { // a nil *Registry in the interfaces would not be nil
		cfg.Metrics, cfg.Gatherer = reg, reg
	}
	return cfg
}

// ServeMetrics serves reg on MetricsAddr, when it is set, until ctx ends,
// and returns the address it listens on ("" when unset); stop waits for
// that listener's shutdown. Its /ready is ready while ctx lasts.
func (s Bridge) ServeMetrics(ctx context.Context, reg prometheus.Gatherer, logger *slog.Logger) (addr string, stop func(), err error) {
	if s.MetricsAddr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", s.MetricsAddr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s (set SIMMATCH_METRICS_ADDR to use another address): %w", s.MetricsAddr, err)
	}
	addr = ln.Addr().String()
	logger.Info("metrics listening", "addr", addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ServeMetrics(ctx, ln, reg, func() bool { return ctx.Err() == nil }, logger); err != nil {
			logger.Error("metrics server", "err", err)
		}
	}()
	return addr, func() { <-done }, nil
}

// Listen listens on addr, with TLS when it is configured, and returns the
// listener and the base URL it serves.
// Without API keys or OIDC, it refuses an address beyond loopback unless
// SIMMATCH_AUTH=none says so.
func (sec *BridgeSecurity) Listen(addr string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s (set SIMMATCH_HTTP_ADDR to use another address): %w", addr, err)
	}
	if err := CheckExposure(ln.Addr(), sec.open, sec.authNone); err != nil {
		ln.Close()
		return nil, "", err
	}
	if sec.tls == nil {
		return ln, "http://" + ln.Addr().String(), nil
	}
	return tls.NewListener(ln, sec.tls), "https://" + ln.Addr().String(), nil
}

// CheckExposure refuses a listener at addr beyond loopback when the API is
// open (no API keys, no OIDC), unless authNone (SIMMATCH_AUTH=none).
func CheckExposure(addr net.Addr, open, authNone bool) error {
	if !open || authNone {
		return nil
	}
	tcp, ok := addr.(*net.TCPAddr)
	if ok && tcp.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to serve the API on %s without authentication: it is reachable beyond this machine; "+
		"set SIMMATCH_API_KEYS_FILE (or OIDC), listen on loopback (SIMMATCH_HTTP_ADDR=127.0.0.1:8000), "+
		"or set SIMMATCH_AUTH=none to serve it open on purpose", addr)
}
