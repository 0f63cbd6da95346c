package security

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/simmatch/simmatch/contracts"
)

func TestKeyTenant(t *testing.T) {
	h1, h2 := HashKey("k1"), HashKey("k2")
	keys, err := parseKeys([]byte("shop " + h1 + " predict,jobs tenant=brand-a rate=3\nops " + h2 + " admin\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := keys[0].Principal()
	if p.Name != "shop" || p.Tenant != "brand-a" || p.Method != MethodAPIKey || p.Key() != keys[0] || p.Admin() {
		t.Fatalf("principal %+v", p)
	}
	if !slices.Equal(p.Scopes(), []Scope{ScopeJobs, ScopePredict}) || p.Bucket() != "shop" || p.Limit(RateLimit{}).Rate != 3 {
		t.Fatalf("scopes %v bucket %q limit %+v", p.Scopes(), p.Bucket(), p.Limit(RateLimit{}))
	}
	if q := keys[1].Principal(); q.Tenant != "ops" || !q.Admin() {
		t.Fatalf("default tenant: %+v admin %v", q, q.Admin())
	}
	for _, bad := range []string{"tenant=", "tenant=a/b", "tenant=" + string(make([]byte, 65))} {
		if _, err := parseKeys([]byte("shop " + h1 + " predict " + bad + "\n")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestForwardPrincipal(t *testing.T) {
	prop := ForwardPrincipal(propagation.TraceContext{})
	h := nats.Header{}
	p := NewPrincipal("svc", "acme", MethodOIDC, ScopePredict, ScopeJobs)
	prop.Inject(WithPrincipal(context.Background(), p), contracts.HeaderCarrier(h))
	got := PrincipalFromHeader(h)
	if got == nil || got.Name != "svc" || got.Tenant != "acme" || got.Method != MethodOIDC || !slices.Equal(got.Scopes(), p.Scopes()) {
		t.Fatalf("headers %v gave %+v", h, got)
	}
	// Without a principal nothing is written; and a caller's headers never make one.
	h = nats.Header{}
	prop.Inject(context.Background(), contracts.HeaderCarrier(h))
	if PrincipalFromHeader(h) != nil {
		t.Fatalf("headers %v without a principal", h)
	}
	ctx := prop.Extract(context.Background(), propagation.HeaderCarrier{HeaderTenant: []string{"victim"}, HeaderScopes: []string{"*"}})
	if PrincipalFrom(ctx) != nil {
		t.Fatal("a principal extracted from a caller's headers")
	}
	if slices.Contains(prop.Fields(), HeaderTenant) {
		t.Fatal("the Simmatch-* headers are listed as propagated fields")
	}
}
