package bridge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// /predict with a catalog sends processors the tenant's qualified name;
// an admin's and (authentication off) everyone's names pass as they are.
func TestPredictQualifiesCatalogByTenant(t *testing.T) {
	catalogOf := func(t *testing.T, f *fakeProcessor) string {
		t.Helper()
		msgs := f.received()
		var req contracts.Request
		if err := json.Unmarshal(msgs[len(msgs)-1].Data, &req); err != nil {
			t.Fatal(err)
		}
		return req.Catalog
	}
	predict := func(t *testing.T, b *testBridge, key, catalog string, want int) {
		t.Helper()
		req, _ := http.NewRequest("POST", b.URL+"/predict", strings.NewReader(`{"query": ["saw"], "catalog": "`+catalog+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		if resp, body := do(t, req); resp.StatusCode != want {
			t.Fatalf("%s: %d %s, want %d", catalog, resp.StatusCode, clip(body), want)
		}
	}

	t.Run("keys", func(t *testing.T) {
		ns := startNATS(t)
		f := startFake(t, ns, rank(t))
		b := startBridge(t, ns, func(c *Config) { c.Keys = openKeys(t, testKeysFile(), &logRecorder{}) })
		predict(t, b, keyPredict, "shop", 200)
		if got := catalogOf(t, f); got != "reader=shop" {
			t.Errorf("tenant reader's shop reached processors as %q", got)
		}
		predict(t, b, keyAll, "shop", 200)
		if got := catalogOf(t, f); got != "shop" {
			t.Errorf("the admin's shop reached processors as %q", got)
		}
		predict(t, b, keyAll, "reader=shop", 200)
		if got := catalogOf(t, f); got != "reader=shop" {
			t.Errorf("the admin's reader=shop reached processors as %q", got)
		}
		n := len(f.received())
		predict(t, b, keyPredict, "reader=shop", 422)
		predict(t, b, keyPredict, "a~b", 422)
		if len(f.received()) != n {
			t.Error("a refused name reached processors")
		}
	})
	t.Run("authentication off", func(t *testing.T) {
		ns := startNATS(t)
		f := startFake(t, ns, rank(t))
		b := startBridge(t, ns, nil)
		predict(t, b, "", "shop", 200)
		if got := catalogOf(t, f); got != "shop" {
			t.Errorf("shop reached processors as %q", got)
		}
		predict(t, b, "", "a=shop", 422)
	})
}

func TestTenancyUnqualify(t *testing.T) {
	eu := tenancy{ns: contracts.TenantNamespace("eu")}
	for stored, want := range map[string]string{"eu=shop": "shop", "eu=acme=shop": "", "euro=shop": "", "shop": ""} {
		got, ok := eu.unqualify(stored)
		if got != want || ok != (want != "") {
			t.Errorf("tenant eu: unqualify(%q) = %q, %v", stored, got, ok)
		}
	}
	if got, ok := (tenancy{}).unqualify("eu=acme=shop"); !ok || got != "eu=acme=shop" {
		t.Errorf("admin: %q %v", got, ok)
	}
}
