package catalog_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// Every catalog route through the real bridge, processor and JetStream.
func TestHTTPRoutes(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	startNode(t, ns.ClientURL(), nil)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	lim := contracts.DefaultCatalogLimits
	lim.MaxProductsPerCall = 5
	h, err := bridge.New(bridge.Config{NATS: nc, CatalogLimits: lim})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	base := srv.URL + "/v1/catalogs"

	bulk, _ := json.Marshal(map[string]any{"products": shop[:5]})
	steps := []struct {
		method, path, body string
		status             int
		want               string // in the body
	}{
		{"POST", "/shop/products", string(bulk), 200, `"upserted":5`},
		{"PUT", "/shop/products/a%2Fb", `{"description": "Rake for leaves", "metadata": {"dept": "garden"}}`, 200, `"upserted":1`},
		{"GET", "/shop/products/a%2Fb", "", 200, `"id":"a/b"`},
		{"POST", "/shop/search", `{"query": "make coffee", "top_k": 1}`, 200, `"id":"espresso"`},
		{"POST", "/shop/search", `{"query": "rake", "filter": {"dept": "garden"}, "top_k": 1}`, 200, `"id":"a/b"`},
		{"GET", "", "", 200, `"products":6`},
		{"DELETE", "/shop/products/hammer", "", 200, `"deleted":true`},
		{"GET", "/shop/products/hammer", "", 404, `"code":"not_found"`},
		{"POST", "/nope/search", `{"query": "x"}`, 404, `"field":"catalog"`},
		{"GET", "/shop/products/" + strings.Repeat("x", 300), "", 422, `"field":"id"`},
		{"PUT", "/shop/products/x", `{"description": ""}`, 422, `"field":"description"`},
		{"POST", "/shop/products", `{"products": [` + strings.Repeat(`{"id":"a","description":"b"},`, 5) + `{"id":"a","description":"b"}]}`, 413, `"limit":5`},
		{"POST", "/shop/search", `{"query": "x", "catalog": "other"}`, 422, `"field":"catalog"`},
		{"POST", "/shop/search", `{"query": "x", "bogus": 1}`, 422, `"field":"bogus"`},
		{"DELETE", "/shop", "", 200, `"dropped":true`},
		{"DELETE", "/shop", "", 404, `"code":"not_found"`},
	}
	for _, st := range steps {
		status, body := call(t, st.method, base+st.path, st.body)
		if status != st.status || !strings.Contains(string(body), st.want) {
			t.Errorf("%s %s: %d %s; want %d with %s", st.method, st.path, status, body, st.status, st.want)
		}
	}

	// /predict with a catalog instead of product_descriptions.
	call(t, "POST", base+"/shop/products", string(bulk))
	status, body := call(t, "POST", srv.URL+"/predict", `{"query": "a tool to cut wood", "catalog": "shop", "top_k": 2}`)
	var resp contracts.Response
	if err := json.Unmarshal(body, &resp); status != 200 || err != nil {
		t.Fatalf("/predict with catalog: %d %s", status, body)
	}
	if m := resp.Results[0].Matches; len(m) != 2 || m[0].ID != "saw" {
		t.Fatalf("/predict with catalog: %+v", resp)
	}
	status, body = call(t, "POST", srv.URL+"/predict", `{"query": "x", "catalog": "shop", "product_descriptions": ["y"]}`)
	if status != 422 || !strings.Contains(string(body), `"field":"catalog"`) {
		t.Fatalf("/predict with both: %d %s", status, body)
	}
}
