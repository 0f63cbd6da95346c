package bridge

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/bridge/security/oidctest"
	"github.com/simmatch/simmatch/contracts"
)

// startOIDC starts a fake IdP with the RSA key "k1" and a verifier on it
// whose tenant comes from the "org" claim.
func startOIDC(t *testing.T) (*oidctest.IdP, *security.OIDCVerifier) {
	t.Helper()
	idp := oidctest.New(t)
	idp.AddKey(t, "k1", "RSA")
	v, err := security.NewOIDCVerifier(t.Context(), security.OIDCConfig{Issuer: idp.Issuer(), Audiences: []string{oidctest.Audience},
		TenantClaim: "org", MinRefetch: time.Nanosecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return idp, v
}

func orgClaims(idp *oidctest.IdP, sub, scope, org string) jwt.MapClaims {
	c := idp.Claims(sub, scope)
	c["org"] = org
	return c
}

func TestOIDCBesideAPIKeys(t *testing.T) {
	ns := startNATS(t)
	fake := startFake(t, ns, rank(t))
	logs := &logRecorder{}
	idp, v := startOIDC(t)
	ks := openKeys(t, testKeysFile()+fmt.Sprintf("tenanted %s predict tenant=brand-b\n", HashKey("sk-tenanted-77aa")), logs)
	b := startBridge(t, ns, func(c *Config) { c.Keys, c.OIDC, c.Logger = ks, v, slog.New(logs) })

	expired := orgClaims(idp, "svc", "predict", "acme")
	expired["exp"] = time.Now().Add(-2 * time.Minute).Unix()
	wrongAud := orgClaims(idp, "svc", "predict", "acme")
	wrongAud["aud"] = "another-api"
	none := jwt.NewWithClaims(jwt.SigningMethodNone, orgClaims(idp, "svc", "*", "acme"))
	none.Header["kid"] = "k1"
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	forged := oidctest.SignWith(t, oidctest.New(t).AddKey(t, "k1", "RSA"), "k1", orgClaims(idp, "svc", "*", "acme"))
	good := idp.Sign(t, "k1", orgClaims(idp, "svc-a", "predict", "acme"))

	tests := []struct {
		name     string
		hdr      []string
		status   int
		problem  string // in error_description
		tenant   string // in the access log and the NATS header
		subject  string // oidc_subject in the access log
		tokenHdr string // the credential, never to be echoed
	}{
		{"token with the scope", []string{"Authorization", "Bearer " + good}, 200, "", "acme", "svc-a", good},
		{"token without the scope", []string{"Authorization", "Bearer " + idp.Sign(t, "k1", orgClaims(idp, "svc-j", "jobs", "acme"))}, 403, "", "acme", "svc-j", ""},
		{"expired", []string{"Authorization", "Bearer " + idp.Sign(t, "k1", expired)}, 401, "expired", "", "", ""},
		{"wrong audience", []string{"Authorization", "Bearer " + idp.Sign(t, "k1", wrongAud)}, 401, "not for this API", "", "", ""},
		{"alg none", []string{"Authorization", "Bearer " + noneTok}, 401, "algorithm", "", "", noneTok},
		{"wrong signature", []string{"Authorization", "Bearer " + forged}, 401, "signature", "", "", forged},
		{"API key beside OIDC", []string{"Authorization", "Bearer " + keyPredict}, 200, "", "reader", "", ""},
		{"API key with a tenant", []string{"X-API-Key", "sk-tenanted-77aa"}, 200, "", "brand-b", "", ""},
		{"unknown API key", []string{"X-API-Key", keyUnknown}, 401, "API key is not valid", "", "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("oidc-%d", i)
			before := len(fake.received())
			resp, body := b.post(t, "/v1/predict", "application/json", goodPredict, append([]string{headerRequestID, id}, tt.hdr...)...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, clip(body))
			}
			ch := resp.Header.Get("WWW-Authenticate")
			switch tt.status {
			case 401:
				if e := decodeError(t, resp, body); e.Code != contracts.CodeUnauthorized {
					t.Fatalf("error %+v", e)
				}
				if !strings.HasPrefix(ch, `Bearer realm="simmatch", error="invalid_token", error_description="`) || !strings.Contains(ch, tt.problem) {
					t.Fatalf("WWW-Authenticate %q, want invalid_token naming %q", ch, tt.problem)
				}
			case 403:
				if e := decodeError(t, resp, body); e.Code != contracts.CodeForbidden || !strings.Contains(e.Message, "token lacks the scope") {
					t.Fatalf("error %+v", e)
				}
				if !strings.Contains(ch, `error="insufficient_scope", scope="predict"`) {
					t.Fatalf("WWW-Authenticate %q", ch)
				}
			case 200:
				msgs := fake.received()
				if len(msgs) != before+1 {
					t.Fatalf("%d requests reached the processor, want 1", len(msgs)-before)
				}
				if got := security.PrincipalFromHeader(msgs[len(msgs)-1].Header); got == nil || got.Tenant != tt.tenant || !got.Allows(ScopePredict) {
					t.Fatalf("NATS headers %v: principal %+v, want tenant %q", msgs[len(msgs)-1].Header, got, tt.tenant)
				}
			}
			if tt.tokenHdr != "" && (strings.Contains(ch, tt.tokenHdr) || strings.Contains(string(body), tt.tokenHdr)) {
				t.Fatal("the answer echoes the token")
			}
			var line logLine
			waitFor(t, 2*time.Second, "the access-log line", func() bool {
				var ok bool
				line, ok = logs.access(id)
				return ok
			})
			if line.Attrs["tenant"] != tt.tenant || line.Attrs["oidc_subject"] != tt.subject {
				t.Fatalf("access log %v, want tenant %q and subject %q", line.Attrs, tt.tenant, tt.subject)
			}
		})
	}

	// Key rotation through the bridge: a token signed by a key the IdP has
	// just published is accepted; once the old key is gone, its tokens are not.
	idp.AddKey(t, "k2", "EC")
	if resp, body := b.post(t, "/v1/predict", "application/json", goodPredict, "Authorization", "Bearer "+idp.Sign(t, "k2", orgClaims(idp, "svc", "predict", "acme"))); resp.StatusCode != 200 {
		t.Fatalf("rotated key: status %d: %s", resp.StatusCode, clip(body))
	}
	idp.RemoveKey("k1")
	idp.AddKey(t, "k3", "OKP")
	if resp, body := b.post(t, "/v1/predict", "application/json", goodPredict, "Authorization", "Bearer "+idp.Sign(t, "k3", orgClaims(idp, "svc", "predict", "acme"))); resp.StatusCode != 200 {
		t.Fatalf("second rotation: status %d: %s", resp.StatusCode, clip(body))
	}
	resp, body := b.post(t, "/v1/predict", "application/json", goodPredict, "Authorization", "Bearer "+good)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "kid") {
		t.Fatalf("token of a removed key: status %d, WWW-Authenticate %q: %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), clip(body))
	}

	for _, l := range logs.all() {
		s := l.Msg + fmt.Sprint(l.Attrs)
		for _, secret := range []string{good, noneTok, forged, keyPredict, "sk-tenanted-77aa"} {
			if strings.Contains(s, secret) {
				t.Errorf("log line leaks a credential: %s", s)
			}
		}
	}
}

func TestOIDCOnly(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t))
	idp, v := startOIDC(t)
	b := startBridge(t, ns, func(c *Config) { c.OIDC = v })

	resp, body := b.post(t, "/v1/predict", "application/json", goodPredict)
	if resp.StatusCode != 401 || !strings.Contains(decodeError(t, resp, body).Message, "OIDC access token is required") {
		t.Fatalf("no credential: status %d: %s", resp.StatusCode, clip(body))
	}
	resp, body = b.post(t, "/v1/predict", "application/json", goodPredict, "Authorization", "Bearer "+keyPredict)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "not a JWT") {
		t.Fatalf("an API key without a keys file: status %d: %s", resp.StatusCode, clip(body))
	}
	resp, body = b.post(t, "/v1/predict", "application/json", goodPredict, "Authorization", "Bearer "+idp.Sign(t, "k1", orgClaims(idp, "svc", "*", "acme")))
	if resp.StatusCode != 200 {
		t.Fatalf("a * token: status %d: %s", resp.StatusCode, clip(body))
	}
	// Public paths stay public.
	if resp, body := b.get(t, "/health"); resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %d %s", resp.StatusCode, clip(body))
	}
}
