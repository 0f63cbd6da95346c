package security

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults and bounds of OIDCConfig.
const (
	DefaultOIDCScopeClaim      = "scope"
	DefaultOIDCNameClaim       = "sub"
	DefaultOIDCClockSkew       = 60 * time.Second
	MaxOIDCClockSkew           = 5 * time.Minute
	DefaultJWKSRefreshInterval = 15 * time.Minute
	DefaultJWKSMinRefetch      = 30 * time.Second
	// DefaultJWKSFetchTimeout bounds one fetch of the JWKS or discovery document.
	DefaultJWKSFetchTimeout = 10 * time.Second
	// MaxTokenBytes bounds a bearer token: longer ones are refused before
	// any decoding.
	MaxTokenBytes = 16 << 10
	// maxJWKSBytes bounds a JWKS or discovery document.
	maxJWKSBytes = 1 << 20
	// maxNameLen bounds a token's principal name (it becomes a log field
	// and a NATS header).
	maxNameLen = 256
)

// DefaultOIDCAlgorithms are the signature algorithms tokens may use: every
// asymmetric JWS algorithm. HS* (a shared secret, which a JWKS of public
// keys would turn into the classic key-confusion attack) and "none" are
// never accepted, whatever the configuration says.
var DefaultOIDCAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// OIDCConfig configures the verification of OIDC / OAuth2 JWT bearer tokens
// (access tokens of an IdP such as Keycloak, Auth0, Entra ID, Okta).
type OIDCConfig struct {
	// Issuer is the IdP's issuer URL: the iss claim must equal it. Required.
	Issuer string
	// Audiences: the aud claim must hold one of them. Required, so that a
	// token the IdP minted for another API is refused.
	Audiences []string
	// JWKSURL is where the IdP publishes its signing keys; empty means the
	// jwks_uri of Issuer's /.well-known/openid-configuration.
	JWKSURL string
	// ScopeClaim names the claim holding the scopes: a space-separated
	// string (scope, scp) or a list of strings (scp, roles). A name with
	// dots that is not a claim is a path into nested objects
	// (realm_access.roles). DefaultOIDCScopeClaim when empty.
	ScopeClaim string
	// ScopePrefix, when set, is stripped from the scopes; scopes without it
	// are ignored (e.g. "simmatch:" for simmatch:predict).
	ScopePrefix string
	// TenantClaim names the claim holding the tenant (a string, same path
	// rules as ScopeClaim); empty means the principal's name is its tenant,
	// as an API key's name is by default. A token without it is refused.
	TenantClaim string
	// NameClaim names the claim holding the principal's name, the log
	// field; DefaultOIDCNameClaim (sub) when empty.
	NameClaim string
	// Algorithms are the accepted signature algorithms, a subset of
	// DefaultOIDCAlgorithms (the default).
	Algorithms []string
	// ClockSkew is how far exp, nbf and iat may be off: DefaultOIDCClockSkew
	// when zero, at most MaxOIDCClockSkew.
	ClockSkew time.Duration
	// RefreshInterval is how often the JWKS is fetched again
	// (DefaultJWKSRefreshInterval when zero).
	RefreshInterval time.Duration
	// MinRefetch is the least time between two fetches of the JWKS, which a
	// token with an unknown kid triggers (DefaultJWKSMinRefetch when zero):
	// tokens with made-up kids cannot make the bridge hammer the IdP.
	MinRefetch time.Duration
	// HTTPClient fetches the discovery document and the JWKS; nil means a
	// client with DefaultJWKSFetchTimeout.
	HTTPClient *http.Client
	// Logger receives fetch errors and key-set changes; nil means slog.Default().
	Logger *slog.Logger
}

// TokenErrorClass names what is wrong with a token, for the
// WWW-Authenticate error_description and the tests.
type TokenErrorClass string

// The classes of token errors.
const (
	TokenMalformed       TokenErrorClass = "malformed"
	TokenAlgorithm       TokenErrorClass = "algorithm"
	TokenUnknownKey      TokenErrorClass = "unknown_key"
	TokenKeysUnavailable TokenErrorClass = "keys_unavailable"
	TokenSignature       TokenErrorClass = "signature"
	TokenExpired         TokenErrorClass = "expired"
	TokenNotYetValid     TokenErrorClass = "not_yet_valid"
	TokenAudience        TokenErrorClass = "audience"
	TokenIssuer          TokenErrorClass = "issuer"
	TokenClaims          TokenErrorClass = "claims"
)

// TokenError is why a token was refused. Its message is fixed text per
// class: it never quotes the token or its claims, so it is safe in a
// response header and a log.
type TokenError struct {
	Class       TokenErrorClass
	Description string
}

func (e *TokenError) Error() string { return "security: invalid token: " + e.Description }

func tokenErr(c TokenErrorClass, desc string) *TokenError {
	return &TokenError{Class: c, Description: desc}
}

// LooksLikeJWT reports whether a bearer credential is a compact JWS (three
// base64url segments, the first a JSON object) rather than an API key.
func LooksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && strings.HasPrefix(s, "eyJ")
}

// OIDCVerifier verifies JWT bearer tokens against the IdP's JWKS, which it
// caches and fetches again every RefreshInterval, and at once (at most every
// MinRefetch) when a token names an unknown kid, so that a rotated key is
// accepted as soon as the IdP publishes it and a removed key is refused.
// While the IdP is unreachable the cached keys stay in force. It is safe for
// concurrent use.
type OIDCVerifier struct {
	cfg     OIDCConfig
	jwksURL string
	parser  *jwt.Parser
	algs    map[string]bool

	keys atomic.Pointer[keySet]

	fetchMu     sync.Mutex // one fetch at a time
	lastAttempt time.Time  // under fetchMu
	fetches     atomic.Int64
}

// keySet is one fetched JWKS: the usable signature keys by kid.
type keySet struct {
	byKID map[string]jwk
	all   []jwk // for a token without kid
}

type jwk struct {
	kid string
	alg string // the JWK's alg, "" when it has none
	key crypto.PublicKey
}

// NewOIDCVerifier checks cfg, finds the JWKS URL (discovery, when cfg has
// none: an error there is fatal, the configuration is likely wrong) and
// fetches the keys once; a failure there is only logged, and tokens are
// refused until a later fetch succeeds. The keys are fetched again until
// ctx ends.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("security: OIDC: the issuer is required (SIMMATCH_OIDC_ISSUER)")
	}
	if len(cfg.Audiences) == 0 || slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("security: OIDC: the audience is required (SIMMATCH_OIDC_AUDIENCE): without it, tokens minted for any other client of the IdP would be accepted")
	}
	if cfg.ScopeClaim == "" {
		cfg.ScopeClaim = DefaultOIDCScopeClaim
	}
	if cfg.NameClaim == "" {
		cfg.NameClaim = DefaultOIDCNameClaim
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultOIDCAlgorithms
	}
	algs := map[string]bool{}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(DefaultOIDCAlgorithms, a) {
			return nil, fmt.Errorf("security: OIDC: algorithm %q: want asymmetric ones among %s", a, strings.Join(DefaultOIDCAlgorithms, ", "))
		}
		algs[a] = true
	}
	switch {
	case cfg.ClockSkew < 0 || cfg.ClockSkew > MaxOIDCClockSkew:
		return nil, fmt.Errorf("security: OIDC: clock skew must be between 0 and %v, got %v", MaxOIDCClockSkew, cfg.ClockSkew)
	case cfg.ClockSkew == 0:
		cfg.ClockSkew = DefaultOIDCClockSkew
	}
	if cfg.RefreshInterval < 0 || cfg.MinRefetch < 0 {
		return nil, errors.New("security: OIDC: the JWKS refresh intervals must not be negative")
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultJWKSRefreshInterval
	}
	if cfg.MinRefetch == 0 {
		cfg.MinRefetch = DefaultJWKSMinRefetch
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultJWKSFetchTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &OIDCVerifier{cfg: cfg, jwksURL: cfg.JWKSURL, algs: algs}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audiences...),
		jwt.WithLeeway(cfg.ClockSkew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if v.jwksURL == "" {
		u, err := v.discover(ctx)
		if err != nil {
			return nil, err
		}
		v.jwksURL = u
	}
	u, err := url.Parse(v.jwksURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("security: OIDC: JWKS URL %q: want an http(s) URL", v.jwksURL)
	}
	if u.Scheme != "https" {
		cfg.Logger.Warn("OIDC: the JWKS URL is not https: whoever can tamper with that traffic can mint tokens", "jwks_url", v.jwksURL)
	}
	err = v.fetch(ctx)
	if err != nil {
		cfg.Logger.Error("OIDC: cannot fetch the IdP's keys yet; tokens are refused until a fetch succeeds", "jwks_url", v.jwksURL, "err", err)
	}
	go v.refresh(ctx, err != nil)
	return v, nil
}

// JWKSURL is the URL the keys are fetched from.
func (v *OIDCVerifier) JWKSURL() string { return v.jwksURL }

// Fetches is how many times the JWKS was fetched (or tried), for tests and
// diagnostics.
func (v *OIDCVerifier) Fetches() int64 { return v.fetches.Load() }

// discover reads the jwks_uri of the issuer's discovery document, which
// must name the same issuer (OpenID Connect Discovery 1.0, section 4.3).
func (v *OIDCVerifier) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, u, &doc); err != nil {
		return "", fmt.Errorf("security: OIDC discovery (set SIMMATCH_OIDC_JWKS_URL to skip it): %w", err)
	}
	if doc.Issuer != v.cfg.Issuer {
		return "", fmt.Errorf("security: OIDC discovery: %s names the issuer %q, not %q", u, doc.Issuer, v.cfg.Issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("security: OIDC discovery: %s has no jwks_uri", u)
	}
	return doc.JWKSURI, nil
}

func (v *OIDCVerifier) getJSON(ctx context.Context, u string, out any) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultJWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("GET %s: larger than %d bytes", u, maxJWKSBytes)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// fetch gets the JWKS and, when it holds at least one usable key, puts it
// in force. On an error the previous keys stay. The caller need not hold
// fetchMu.
func (v *OIDCVerifier) fetch(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	return v.fetchLocked(ctx)
}

func (v *OIDCVerifier) fetchLocked(ctx context.Context) error {
	v.lastAttempt = time.Now()
	v.fetches.Add(1)
	var raw jwkset.JWKSMarshal
	if err := v.getJSON(ctx, v.jwksURL, &raw); err != nil {
		return err
	}
	ks := &keySet{byKID: map[string]jwk{}}
	skipped := 0
	for _, m := range raw.Keys {
		k, ok := v.usable(m)
		if !ok {
			skipped++
			continue
		}
		if k.kid != "" {
			ks.byKID[k.kid] = k
		}
		ks.all = append(ks.all, k)
	}
	if len(ks.all) == 0 {
		return fmt.Errorf("the JWKS at %s holds no usable signature key (%d skipped)", v.jwksURL, skipped)
	}
	old := v.keys.Swap(ks)
	if old == nil || !sameKIDs(old, ks) {
		v.cfg.Logger.Info("OIDC signing keys loaded", "jwks_url", v.jwksURL, "keys", len(ks.all), "skipped", skipped)
	}
	return nil
}

// usable turns a JWK into a verification key: an asymmetric public key for
// signatures (never an "oct" secret, never use=enc) whose alg, if it names
// one, is accepted.
func (v *OIDCVerifier) usable(m jwkset.JWKMarshal) (jwk, bool) {
	if m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC && m.KTY != jwkset.KtyOKP {
		return jwk{}, false
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return jwk{}, false
	}
	if m.ALG != "" && !v.algs[m.ALG.String()] {
		return jwk{}, false
	}
	// Only the public part: a JWKS that leaks private fields still yields
	// the public key alone.
	m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH, m.K = "", "", "", "", "", "", nil, ""
	j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return jwk{}, false
	}
	key := j.Key()
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public()
	}
	return jwk{kid: m.KID, alg: m.ALG.String(), key: key}, true
}

func sameKIDs(a, b *keySet) bool {
	if len(a.all) != len(b.all) {
		return false
	}
	for kid := range b.byKID {
		if _, ok := a.byKID[kid]; !ok {
			return false
		}
	}
	return true
}

// refresh fetches the keys every RefreshInterval until ctx ends; after a
// failed fetch (failing: the first one failed), again after MinRefetch.
func (v *OIDCVerifier) refresh(ctx context.Context, failing bool) {
	wait := v.cfg.RefreshInterval
	if failing {
		wait = v.cfg.MinRefetch
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := v.fetch(ctx); err != nil {
			if !failing {
				v.cfg.Logger.Error("OIDC: cannot refresh the IdP's keys; the cached ones stay in force", "jwks_url", v.jwksURL, "err", err)
			}
			failing, wait = true, v.cfg.MinRefetch
			continue
		}
		if failing {
			v.cfg.Logger.Info("OIDC: the IdP's keys are fetched again", "jwks_url", v.jwksURL)
		}
		failing, wait = false, v.cfg.RefreshInterval
	}
}

// refetch fetches the keys again, unless a fetch started less than
// MinRefetch ago (maybe while the caller waited for the lock: a caller that
// finds a fetch under way waits for it, then uses its keys).
func (v *OIDCVerifier) refetch(ctx context.Context) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if time.Since(v.lastAttempt) < v.cfg.MinRefetch {
		return
	}
	if err := v.fetchLocked(ctx); err != nil {
		v.cfg.Logger.Warn("OIDC: cannot fetch the IdP's keys for an unknown kid", "jwks_url", v.jwksURL, "err", err)
	}
}

// keyFor finds the key a token names: by kid, fetching the JWKS again for a
// kid not seen yet; without kid, every key of a matching alg.
func (v *OIDCVerifier) keyFor(ctx context.Context, kid, alg string) (any, error) {
	find := func() (any, bool, error) {
		ks := v.keys.Load()
		if ks == nil {
			return nil, false, nil
		}
		if kid == "" {
			var set jwt.VerificationKeySet
			for _, k := range ks.all {
				if k.alg == "" || k.alg == alg {
					set.Keys = append(set.Keys, k.key)
				}
			}
			if len(set.Keys) == 0 {
				return nil, true, tokenErr(TokenUnknownKey, "no signing key of the IdP matches the token's algorithm")
			}
			return set, true, nil
		}
		k, ok := ks.byKID[kid]
		if !ok {
			return nil, true, nil
		}
		if k.alg != "" && k.alg != alg {
			return nil, true, tokenErr(TokenAlgorithm, "the token's algorithm is not its key's")
		}
		return k.key, true, nil
	}
	key, loaded, err := find()
	if key != nil || err != nil {
		return key, err
	}
	v.refetch(ctx)
	key, loaded, err = find()
	if key != nil || err != nil {
		return key, err
	}
	if !loaded {
		return nil, tokenErr(TokenKeysUnavailable, "the IdP's signing keys could not be fetched; retry later")
	}
	return nil, tokenErr(TokenUnknownKey, "the token's signing key (kid) is not among the IdP's keys")
}

// Verify checks a bearer token (signature, algorithm, issuer, audience,
// expiry, not-before and issued-at within the clock skew) and returns its
// principal. A refused token is a *TokenError.
func (v *OIDCVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) > MaxTokenBytes {
		return nil, tokenErr(TokenMalformed, "the token is too long")
	}
	hdr, err := jwsHeader(token)
	if err != nil {
		return nil, err
	}
	if !v.algs[hdr.Alg] {
		return nil, tokenErr(TokenAlgorithm, "the token's signature algorithm is not accepted (asymmetric ones only)")
	}
	claims := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, hdr.Kid, hdr.Alg)
	})
	if err != nil {
		return nil, classify(err)
	}
	return v.principal(claims)
}

type jwsHdr struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

func jwsHeader(token string) (jwsHdr, error) {
	var h jwsHdr
	seg, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return h, tokenErr(TokenMalformed, "the token is not a compact JWS (header.payload.signature)")
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || json.Unmarshal(b, &h) != nil {
		return h, tokenErr(TokenMalformed, "the token's header is not base64url JSON")
	}
	return h, nil
}

// classify maps a jwt error to a TokenError. The signature is checked
// before the claims, so a claim error comes from a genuine token.
func classify(err error) *TokenError {
	var te *TokenError
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, jwt.ErrTokenMalformed):
		return tokenErr(TokenMalformed, "the token cannot be decoded")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return tokenErr(TokenSignature, "the token's signature does not verify")
	case errors.Is(err, jwt.ErrTokenExpired):
		return tokenErr(TokenExpired, "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return tokenErr(TokenNotYetValid, "the token is not valid yet (nbf or iat in the future)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return tokenErr(TokenAudience, "the token is not for this API (aud)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return tokenErr(TokenIssuer, "the token is not from the configured issuer (iss)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return tokenErr(TokenClaims, "the token lacks a required claim (exp, iss or aud) or has a malformed one")
	}
	return tokenErr(TokenMalformed, "the token cannot be verified")
}

// principal builds the principal of verified claims.
func (v *OIDCVerifier) principal(claims jwt.MapClaims) (*Principal, error) {
	name, _ := claim(claims, v.cfg.NameClaim).(string)
	if name == "" || len(name) > maxNameLen || !printable(name) {
		return nil, tokenErr(TokenClaims, "the token's name claim ("+v.cfg.NameClaim+") is missing or not printable text of at most 256 bytes")
	}
	tenant := name
	if v.cfg.TenantClaim != "" {
		tenant, _ = claim(claims, v.cfg.TenantClaim).(string)
	}
	if !ValidTenant(tenant) {
		return nil, tokenErr(TokenClaims, "the token's tenant claim is missing or not 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	p := &Principal{Name: name, Tenant: tenant, Method: MethodOIDC, scopes: map[Scope]bool{}}
	var scopes []string
	switch s := claim(claims, v.cfg.ScopeClaim).(type) {
	case string:
		scopes = strings.Fields(s)
	case []any:
		for _, e := range s {
			if str, ok := e.(string); ok {
				scopes = append(scopes, str)
			}
		}
	}
	for _, s := range scopes {
		if v.cfg.ScopePrefix != "" {
			var ok bool
			if s, ok = strings.CutPrefix(s, v.cfg.ScopePrefix); !ok {
				continue
			}
		}
		if knownScopes[Scope(s)] {
			p.scopes[Scope(s)] = true
		}
	}
	return p, nil
}

// claim returns the claim name, or, when there is none and name has dots,
// the value at that path in nested objects (realm_access.roles).
func claim(claims jwt.MapClaims, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	var cur any = map[string]any(claims)
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
