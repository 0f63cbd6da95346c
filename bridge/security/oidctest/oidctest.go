// Package oidctest is a fake OpenID Connect IdP for tests: an httptest
// server publishing a discovery document and a JWKS of generated keys that
// a test adds, removes or takes offline, and that signs tokens with them.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Audience is the audience of the tokens Claims makes.
const Audience = "simmatch-api"

// IdP is a fake identity provider. It is safe for concurrent use.
type IdP struct {
	// Server serves /.well-known/openid-configuration and /jwks.
	Server *httptest.Server
	// JWKSHits counts the requests for /jwks.
	JWKSHits atomic.Int64

	mu   sync.Mutex
	keys map[string]crypto.Signer // kid → private key
	down bool
}

// New starts an IdP without keys; it stops when the test ends.
func New(t testing.TB) *IdP {
	t.Helper()
	i := &IdP{keys: map[string]crypto.Signer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": i.Issuer(), "jwks_uri": i.JWKSURL()})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		i.JWKSHits.Add(1)
		i.mu.Lock()
		defer i.mu.Unlock()
		if i.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
		for kid, k := range i.keys {
			j, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg(k)), USE: jwkset.UseSig}})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			set.Keys = append(set.Keys, j.Marshal())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	i.Server = httptest.NewServer(mux)
	t.Cleanup(i.Server.Close)
	return i
}

// Issuer is the IdP's issuer URL.
func (i *IdP) Issuer() string { return i.Server.URL }

// JWKSURL is where the IdP publishes its keys.
func (i *IdP) JWKSURL() string { return i.Server.URL + "/jwks" }

// AddKey generates a key of type kty ("RSA", "EC" or "OKP") under kid,
// publishes it and returns it.
func (i *IdP) AddKey(t testing.TB, kid, kty string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kty {
	case "RSA":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EC":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "OKP":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("oidctest: key type %q: want RSA, EC or OKP", kty)
	}
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	i.keys[kid] = k
	i.mu.Unlock()
	return k
}

// RemoveKey stops publishing kid.
func (i *IdP) RemoveKey(kid string) {
	i.mu.Lock()
	delete(i.keys, kid)
	i.mu.Unlock()
}

// SetDown makes /jwks answer 503 (true) or serve the keys again.
func (i *IdP) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// Key returns the private key of kid, nil if there is none.
func (i *IdP) Key(kid string) crypto.Signer {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[kid]
}

// Claims are valid claims for this IdP and Audience: subject sub, the
// space-separated scope, issued now, expiring in 5 minutes.
func (i *IdP) Claims(sub, scope string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": i.Issuer(), "aud": Audience, "sub": sub, "scope": scope,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
}

// Sign signs claims with the key kid (its alg: RS256, ES256 or EdDSA).
func (i *IdP) Sign(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	k := i.Key(kid)
	if k == nil {
		t.Fatalf("oidctest: no key %q", kid)
	}
	return SignWith(t, k, kid, claims)
}

// SignWith signs claims with k (published or not), naming kid.
func SignWith(t testing.TB, k crypto.Signer, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg(k)), claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func alg(k crypto.Signer) string {
	switch k.(type) {
	case *rsa.PrivateKey:
		return "RS256"
	case *ecdsa.PrivateKey:
		return "ES256"
	}
	return "EdDSA"
}
