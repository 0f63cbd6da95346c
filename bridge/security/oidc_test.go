package security_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/bridge/security/oidctest"
)

// newVerifier starts a verifier on idp's JWKS with cfg's other fields.
func newVerifier(t *testing.T, idp *oidctest.IdP, cfg security.OIDCConfig) *security.OIDCVerifier {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = idp.Issuer()
	}
	if cfg.Audiences == nil {
		cfg.Audiences = []string{oidctest.Audience}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	v, err := security.NewOIDCVerifier(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// refused checks that token is refused with class, and that the error does
// not quote the token.
func refused(t *testing.T, v *security.OIDCVerifier, token string, class security.TokenErrorClass) {
	t.Helper()
	p, err := v.Verify(context.Background(), token)
	var te *security.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("got principal %+v, error %v; want a %s TokenError", p, err, class)
	}
	if te.Class != class {
		t.Fatalf("class %s (%s), want %s", te.Class, te.Description, class)
	}
	if token != "" && strings.Contains(err.Error(), token) {
		t.Fatal("the error quotes the token")
	}
}

func accepted(t *testing.T, v *security.OIDCVerifier, token string) *security.Principal {
	t.Helper()
	p, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("refused a valid token: %v", err)
	}
	return p
}

func TestOIDCValidTokens(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "rsa", "RSA")
	idp.AddKey(t, "ec", "EC")
	idp.AddKey(t, "ed", "OKP")
	// Discovery finds the JWKS URL.
	v := newVerifier(t, idp, security.OIDCConfig{TenantClaim: "tenant"})
	if v.JWKSURL() != idp.JWKSURL() {
		t.Fatalf("discovered %q, want %q", v.JWKSURL(), idp.JWKSURL())
	}
	for _, kid := range []string{"rsa", "ec", "ed"} {
		c := idp.Claims("svc-"+kid, "predict jobs openid")
		c["tenant"] = "acme"
		p := accepted(t, v, idp.Sign(t, kid, c))
		if p.Name != "svc-"+kid || p.Tenant != "acme" || p.Method != security.MethodOIDC {
			t.Fatalf("%s: principal %+v", kid, p)
		}
		if got := p.Scopes(); !slices.Equal(got, []security.Scope{"jobs", "predict"}) {
			t.Fatalf("%s: scopes %v, want jobs and predict (openid ignored)", kid, got)
		}
		if p.Admin() || p.Allows(security.ScopeCatalogWrite) {
			t.Fatalf("%s: more scopes than granted", kid)
		}
	}
	// No kid: every key of the token's alg is tried.
	accepted(t, v, oidctest.SignWith(t, idp.Key("ec"), "", func() jwt.MapClaims {
		c := idp.Claims("nokid", "predict")
		c["tenant"] = "acme"
		return c
	}()))
}

func TestOIDCScopeAndTenantClaims(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "RSA")
	t.Run("scp list", func(t *testing.T) {
		v := newVerifier(t, idp, security.OIDCConfig{ScopeClaim: "scp", JWKSURL: idp.JWKSURL()})
		c := idp.Claims("app", "")
		c["scp"] = []any{"catalog:write", "admin", 7}
		p := accepted(t, v, idp.Sign(t, "k", c))
		if !p.Admin() || !p.Allows(security.ScopeCatalogWrite) || p.Allows(security.ScopePredict) {
			t.Fatalf("scopes %v", p.Scopes())
		}
		if p.Tenant != "app" {
			t.Fatalf("tenant %q, want the subject without a tenant claim", p.Tenant)
		}
	})
	t.Run("nested keycloak roles with a prefix", func(t *testing.T) {
		v := newVerifier(t, idp, security.OIDCConfig{ScopeClaim: "realm_access.roles", ScopePrefix: "simmatch:",
			TenantClaim: "https://simmatch.example/tenant", NameClaim: "azp", JWKSURL: idp.JWKSURL()})
		c := idp.Claims("3f1c-uuid", "")
		c["azp"] = "shop-frontend"
		c["realm_access"] = map[string]any{"roles": []any{"simmatch:predict", "predict", "offline_access"}}
		c["https://simmatch.example/tenant"] = "brand-a"
		p := accepted(t, v, idp.Sign(t, "k", c))
		if p.Name != "shop-frontend" || p.Tenant != "brand-a" || !slices.Equal(p.Scopes(), []security.Scope{"predict"}) {
			t.Fatalf("principal %+v scopes %v", p, p.Scopes())
		}
	})
	t.Run("tenant missing or unusable", func(t *testing.T) {
		v := newVerifier(t, idp, security.OIDCConfig{TenantClaim: "org", JWKSURL: idp.JWKSURL()})
		refused(t, v, idp.Sign(t, "k", idp.Claims("app", "predict")), security.TokenClaims)
		c := idp.Claims("app", "predict")
		c["org"] = "a b/c"
		refused(t, v, idp.Sign(t, "k", c), security.TokenClaims)
		c = idp.Claims("bad\nname", "predict")
		c["org"] = "acme"
		refused(t, v, idp.Sign(t, "k", c), security.TokenClaims)
	})
}

func TestOIDCRefusedTokens(t *testing.T) {
	idp := oidctest.New(t)
	key := idp.AddKey(t, "k", "RSA")
	v := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL(), MinRefetch: time.Hour})
	other := oidctest.New(t).AddKey(t, "k", "RSA") // a key the IdP never published
	now := time.Now()
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := idp.Claims("app", "predict")
		mod(c)
		return c
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = "k"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := idp.Sign(t, "k", idp.Claims("app", "predict"))
	parts := strings.Split(valid, ".")
	tests := []struct {
		name  string
		token string
		class security.TokenErrorClass
	}{
		{"expired", idp.Sign(t, "k", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), security.TokenExpired},
		{"not yet valid", idp.Sign(t, "k", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), security.TokenNotYetValid},
		{"issued in the future", idp.Sign(t, "k", with(func(c jwt.MapClaims) { c["iat"] = now.Add(2 * time.Minute).Unix() })), security.TokenNotYetValid},
		{"no exp", idp.Sign(t, "k", with(func(c jwt.MapClaims) { delete(c, "exp") })), security.TokenClaims},
		{"wrong audience", idp.Sign(t, "k", with(func(c jwt.MapClaims) { c["aud"] = []string{"another-api"} })), security.TokenAudience},
		{"no audience", idp.Sign(t, "k", with(func(c jwt.MapClaims) { delete(c, "aud") })), security.TokenClaims},
		{"wrong issuer", idp.Sign(t, "k", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), security.TokenIssuer},
		{"wrong signature", oidctest.SignWith(t, other, "k", idp.Claims("app", "predict")), security.TokenSignature},
		{"tampered payload", parts[0] + "." + strings.Split(oidctest.SignWith(t, other, "k", idp.Claims("root", "*")), ".")[1] + "." + parts[2], security.TokenSignature},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, idp.Claims("app", "*")), security.TokenAlgorithm},
		{"HS256 with the public key as secret", sign(jwt.SigningMethodHS256, pubPEM, idp.Claims("app", "*")), security.TokenAlgorithm},
		{"HS256 with the DER public key", sign(jwt.SigningMethodHS256, pub, idp.Claims("app", "*")), security.TokenAlgorithm},
		{"alg not the key's", sign(jwt.SigningMethodPS256, key, idp.Claims("app", "*")), security.TokenAlgorithm},
		{"unknown kid", oidctest.SignWith(t, other, "nope", idp.Claims("app", "predict")), security.TokenUnknownKey},
		{"not a JWS", "eyJhbGciOi.x", security.TokenMalformed},
		{"header not JSON", "eyJub3QganNvbg.e30.c2ln", security.TokenMalformed},
		{"too long", valid + strings.Repeat("A", security.MaxTokenBytes), security.TokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { refused(t, v, tt.token, tt.class) })
	}
	accepted(t, v, valid)
}

func TestOIDCClockSkew(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "EC")
	exp := func(ago time.Duration) string {
		c := idp.Claims("app", "predict")
		c["exp"], c["iat"], c["nbf"] = time.Now().Add(-ago).Unix(), time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		return idp.Sign(t, "k", c)
	}
	notBefore := func(in time.Duration) string {
		c := idp.Claims("app", "predict")
		c["nbf"], c["iat"] = time.Now().Add(in).Unix(), time.Now().Add(in).Unix()
		return idp.Sign(t, "k", c)
	}
	def := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL()}) // 60 s
	accepted(t, def, exp(30*time.Second))
	refused(t, def, exp(90*time.Second), security.TokenExpired)
	accepted(t, def, notBefore(30*time.Second))
	refused(t, def, notBefore(90*time.Second), security.TokenNotYetValid)
	tight := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL(), ClockSkew: 5 * time.Second})
	refused(t, tight, exp(30*time.Second), security.TokenExpired)
	refused(t, tight, notBefore(30*time.Second), security.TokenNotYetValid)
	if _, err := security.NewOIDCVerifier(t.Context(), security.OIDCConfig{Issuer: idp.Issuer(), Audiences: []string{"a"},
		JWKSURL: idp.JWKSURL(), ClockSkew: 10 * time.Minute}); err == nil {
		t.Fatal("a 10 min skew was accepted; the bound is 5 min")
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "old", "RSA")
	v := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL(), MinRefetch: time.Nanosecond, RefreshInterval: time.Hour})
	oldTok := idp.Sign(t, "old", idp.Claims("app", "predict"))
	accepted(t, v, oldTok)
	fetches := v.Fetches()

	// The IdP rotates: a new key appears; its first token fetches the JWKS again.
	idp.AddKey(t, "new", "EC")
	accepted(t, v, idp.Sign(t, "new", idp.Claims("app", "predict")))
	if v.Fetches() != fetches+1 {
		t.Fatalf("%d fetches, want %d: one for the unknown kid", v.Fetches(), fetches+1)
	}
	accepted(t, v, oldTok) // both published

	// The old key is retired: once the JWKS is fetched again, its tokens are refused.
	idp.RemoveKey("old")
	idp.AddKey(t, "newer", "OKP")
	accepted(t, v, idp.Sign(t, "newer", idp.Claims("app", "predict")))
	refused(t, v, oldTok, security.TokenUnknownKey)
}

func TestOIDCPeriodicRefreshDropsRemovedKey(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "old", "RSA")
	idp.AddKey(t, "new", "RSA")
	v := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL(), MinRefetch: time.Hour, RefreshInterval: 20 * time.Millisecond})
	oldTok := idp.Sign(t, "old", idp.Claims("app", "predict"))
	accepted(t, v, oldTok)
	idp.RemoveKey("old")
	waitUntil(t, "the periodic refresh to drop the removed key", func() bool {
		_, err := v.Verify(context.Background(), oldTok)
		return err != nil
	})
	refused(t, v, oldTok, security.TokenUnknownKey)
	accepted(t, v, idp.Sign(t, "new", idp.Claims("app", "predict")))
}

func TestOIDCUnknownKIDRefetchIsRateLimited(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "RSA")
	v := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL(), MinRefetch: time.Hour, RefreshInterval: time.Hour})
	hits := idp.JWKSHits.Load()
	other := oidctest.New(t).AddKey(t, "x", "RSA")
	for i := range 50 {
		refused(t, v, oidctest.SignWith(t, other, "made-up-"+string(rune('a'+i%26)), idp.Claims("app", "predict")), security.TokenUnknownKey)
	}
	if got := idp.JWKSHits.Load() - hits; got != 0 {
		t.Fatalf("50 unknown kids fetched the JWKS %d times within MinRefetch", got)
	}
}

func TestOIDCIdPDown(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "RSA")
	v := newVerifier(t, idp, security.OIDCConfig{JWKSURL: idp.JWKSURL(), MinRefetch: time.Millisecond, RefreshInterval: 10 * time.Millisecond})
	tok := idp.Sign(t, "k", idp.Claims("app", "predict"))
	accepted(t, v, tok)
	idp.SetDown(true)
	hits := idp.JWKSHits.Load()
	waitUntil(t, "the refresh to hit the down IdP", func() bool { return idp.JWKSHits.Load() > hits+2 })
	accepted(t, v, tok) // the cached key still works
	idp.AddKey(t, "new", "RSA")
	refused(t, v, idp.Sign(t, "new", idp.Claims("app", "predict")), security.TokenUnknownKey)

	// A bridge started while the IdP is down refuses tokens, clearly, and
	// retries every MinRefetch (not every RefreshInterval, an hour) on its own.
	idp2 := oidctest.New(t)
	idp2.AddKey(t, "k", "RSA")
	idp2.SetDown(true)
	cold := newVerifier(t, idp2, security.OIDCConfig{JWKSURL: idp2.JWKSURL(), MinRefetch: 10 * time.Millisecond, RefreshInterval: time.Hour})
	tok2 := idp2.Sign(t, "k", idp2.Claims("app", "predict"))
	refused(t, cold, tok2, security.TokenKeysUnavailable)
	idp2.SetDown(false)
	hits = idp2.JWKSHits.Load()
	waitUntil(t, "the cold verifier to retry on its own", func() bool { return idp2.JWKSHits.Load() > hits })
	waitUntil(t, "the cold verifier to have the keys", func() bool {
		_, err := cold.Verify(context.Background(), tok2)
		return err == nil
	})
}

func TestOIDCConfigErrors(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "RSA")
	for name, cfg := range map[string]security.OIDCConfig{
		"no issuer":                     {Audiences: []string{"a"}, JWKSURL: idp.JWKSURL()},
		"no audience":                   {Issuer: idp.Issuer(), JWKSURL: idp.JWKSURL()},
		"HS256":                         {Issuer: idp.Issuer(), Audiences: []string{"a"}, JWKSURL: idp.JWKSURL(), Algorithms: []string{"RS256", "HS256"}},
		"none":                          {Issuer: idp.Issuer(), Audiences: []string{"a"}, JWKSURL: idp.JWKSURL(), Algorithms: []string{"none"}},
		"issuer differs from discovery": {Issuer: idp.Issuer() + "/realms/x", Audiences: []string{"a"}},
	} {
		if _, err := security.NewOIDCVerifier(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLooksLikeJWT(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "RSA")
	if !security.LooksLikeJWT(idp.Sign(t, "k", idp.Claims("a", ""))) {
		t.Fatal("a JWT not recognised")
	}
	for _, k := range []string{"sk-predict-6f1d0c2b9e8a4c7d", "0599323d32d07983d732b611fd14c5331b894227c45cb8ea9d1adb6ba288e248", "a.b.c"} {
		if security.LooksLikeJWT(k) {
			t.Fatalf("%q taken for a JWT", k)
		}
	}
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
