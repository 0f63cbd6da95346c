package cli

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/bridge/security/oidctest"
)

func TestBridgeOIDCFlags(t *testing.T) {
	idp := oidctest.New(t)
	idp.AddKey(t, "k", "RSA")
	env := map[string]string{
		"SIMMATCH_OIDC_ISSUER":       idp.Issuer(),
		"SIMMATCH_OIDC_AUDIENCE":     "other, " + oidctest.Audience,
		"SIMMATCH_OIDC_TENANT_CLAIM": "org",
		"SIMMATCH_OIDC_SCOPE_CLAIM":  "scp",
		"SIMMATCH_OIDC_CLOCK_SKEW":   "30s",
	}
	_, cfg, logs := bridgeFromEnv(t, env)
	if cfg.OIDC == nil || cfg.OIDC.JWKSURL() != idp.JWKSURL() {
		t.Fatalf("OIDC verifier %v, want one on the discovered %s", cfg.OIDC, idp.JWKSURL())
	}
	if strings.Contains(logs.String(), "open to anyone") {
		t.Fatalf("warned that the API is open with OIDC on: %s", logs.String())
	}
	c := idp.Claims("svc", "")
	c["scp"], c["org"] = []any{"predict"}, "acme"
	p, err := cfg.OIDC.Verify(t.Context(), idp.Sign(t, "k", c))
	if err != nil || p.Tenant != "acme" || !p.Allows("predict") {
		t.Fatalf("principal %+v, %v", p, err)
	}
	c["exp"] = time.Now().Add(-45 * time.Second).Unix() // beyond the 30 s skew
	if _, err := cfg.OIDC.Verify(t.Context(), idp.Sign(t, "k", c)); err == nil {
		t.Fatal("SIMMATCH_OIDC_CLOCK_SKEW not applied")
	}

	for name, bad := range map[string]OIDC{
		"no audience":              {Issuer: idp.Issuer(), ClockSkew: time.Minute},
		"audience, no issuer":      {Audience: "a", ClockSkew: time.Minute},
		"HS256":                    {Issuer: idp.Issuer(), Audience: "a", Algorithms: "HS256", ClockSkew: time.Minute},
		"skew beyond the bound":    {Issuer: idp.Issuer(), Audience: "a", ClockSkew: time.Hour},
		"zero skew":                {Issuer: idp.Issuer(), Audience: "a"},
		"issuer without discovery": {Issuer: idp.Issuer() + "/nothing-here", Audience: "a", ClockSkew: time.Minute},
	} {
		if _, err := (Bridge{OIDC: bad}).Security(t.Context(), slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
