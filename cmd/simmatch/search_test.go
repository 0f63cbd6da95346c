package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

const searchProducts = `{"products": [
 {"id": "d1", "description": "DeWalt DCD771C2 20V MAX cordless drill/driver kit, 1/2-inch chuck", "metadata": {"brand": "DeWalt", "category": "drills", "price": "99"}},
 {"id": "d2", "description": "DeWalt DCD777C2 20V MAX brushless cordless drill/driver kit, 1/2-inch chuck", "metadata": {"brand": "DeWalt", "category": "drills", "price": "139"}},
 {"id": "d4", "description": "Bosch GSR12V-300FCB22 12V max FlexiClick 5-in-1 drill/driver system", "metadata": {"brand": "Bosch", "category": "drills", "price": "199"}},
 {"id": "d5", "description": "Makita XFD131 18V LXT brushless cordless 1/2-inch driver-drill kit", "metadata": {"brand": "Makita", "category": "drills", "price": "169"}},
 {"id": "s1", "description": "DeWalt DCS391B 20V MAX 6-1/2-inch cordless circular saw, tool only", "metadata": {"brand": "DeWalt", "category": "saws", "price": "129"}},
 {"id": "h1", "description": "Estwing E3-16C 16 oz curved claw hammer with shock reduction grip", "metadata": {"brand": "Estwing", "category": "hammers", "price": "35"}}]}`

// The search options over HTTP through the all-in-one: /predict with a
// catalog in mode hybrid explains both ranks; catalog search with a $gte
// filter, count and facets gives total and facets; a bad operator answers
// 422 naming filter.<key>.<operator>.
func TestSearchOptionsOverHTTP(t *testing.T) {
	base, stop := startWithData(t, t.TempDir())
	defer stop()
	if status, body := httpDo(t, "POST", base+"/v1/catalogs/tools/products", searchProducts); status != 200 {
		t.Fatalf("upsert: %d %s", status, body)
	}

	status, body := httpDo(t, "POST", base+"/predict", `{"query": "DCD771C2", "catalog": "tools", "mode": "hybrid", "explain": true, "top_k": 3}`)
	t.Logf("/predict hybrid explain: %s", body)
	if status != 200 {
		t.Fatalf("/predict: %d %s", status, body)
	}
	var pr contracts.Response
	if err := json.Unmarshal([]byte(body), &pr); err != nil {
		t.Fatal(err)
	}
	m := pr.Results[0].Matches
	if len(m) != 3 || m[0].ID != "d1" || m[0].Index != 0 || m[2].Index != 2 || m[0].Explain == nil {
		t.Fatalf("/predict matches: %s", body)
	}
	if e := m[0].Explain; e.DenseRank == nil || e.KeywordRank == nil || *e.KeywordRank != 1 || e.Keyword <= 0 || e.Dense <= 0 {
		t.Fatalf("d1's explain lacks a rank or a score: %s", body)
	}
	if !strings.Contains(body, `"keyword_rank":null`) {
		t.Errorf("no match without a keyword rank (null): %s", body)
	}

	status, body = httpDo(t, "POST", base+"/v1/catalogs/tools/search",
		`{"query": "cordless", "mode": "keyword", "filter": {"price": {"$gte": 130}}, "count": true, "facets": ["brand", "category"], "top_k": 1}`)
	t.Logf("search keyword $gte count facets: %s", body)
	if status != 200 {
		t.Fatalf("search: %d %s", status, body)
	}
	var sr contracts.SearchResponse
	if err := json.Unmarshal([]byte(body), &sr); err != nil {
		t.Fatal(err)
	}
	// At 130 or more and holding "cordless": d2 and d5 (d1 costs 99, s1 129).
	r := sr.Results[0]
	if r.Total == nil || *r.Total != 2 || len(r.Matches) != 1 {
		t.Fatalf("total and page: %s", body)
	}
	if f := r.Facets; len(f["brand"]) != 2 || f["brand"]["DeWalt"] != 1 || f["brand"]["Makita"] != 1 || len(f["category"]) != 1 || f["category"]["drills"] != 2 {
		t.Fatalf("facets: %s", body)
	}

	status, body = httpDo(t, "POST", base+"/v1/catalogs/tools/search", `{"query": "drill", "mode": "hybrid", "group_by": "brand", "top_k": 2, "offset": 1}`)
	if status != 200 || !strings.Contains(body, `"group_size":`) {
		t.Fatalf("group_by: %d %s", status, body)
	}

	for _, tt := range []struct{ path, body, field string }{
		{"/v1/catalogs/tools/search", `{"query": "drill", "filter": {"price": {"$between": [1, 2]}}}`, "filter.price.$between"},
		{"/predict", `{"query": "drill", "catalog": "tools", "filter": {"price": {"$gt": "cheap"}}}`, "filter.price.$gt"},
		{"/v1/catalogs/tools/search", `{"query": "drill", "mode": "keyword", "threshold": 0.3}`, "threshold"},
		{"/predict", `{"query": "drill", "product_descriptions": ["a drill"], "mode": "hybrid"}`, "mode"},
	} {
		status, body := httpDo(t, "POST", base+tt.path, tt.body)
		var e contracts.ErrorBody
		if status != 422 || json.Unmarshal([]byte(body), &e) != nil || e.Error == nil || e.Error.Field != tt.field ||
			!strings.HasPrefix(e.Error.Message, tt.field+": ") {
			t.Errorf("POST %s %s: %d %s; want 422 on field %s", tt.path, tt.body, status, body, tt.field)
		}
	}
}

// A catalog created for a chosen model (bge-small-en-v1.5, loaded beside
// the default) keeps it: its searches and /predict answer with bge, and an
// upsert naming another model is refused.
func TestCatalogForAChosenModel(t *testing.T) {
	base, stop := startWithData(t, t.TempDir())
	defer stop()
	if status, body := httpDo(t, "POST", base+"/v1/models/load", `{"model": "bge-small-en-v1.5@fp32"}`); status != 200 {
		t.Fatalf("load bge: %d %s", status, body)
	}
	// /v1/models shows bge's query prompt, from its configuration.
	if status, body := httpDo(t, "GET", base+"/v1/models", ""); status != 200 ||
		!strings.Contains(body, `"prompts":{"query":"Represent this sentence for searching relevant passages: "}`) {
		t.Fatalf("/v1/models: %d %s; want bge's query prompt", status, body)
	}
	bulk := strings.Replace(searchProducts, `{"products":`, `{"model": "bge-small-en-v1.5", "products":`, 1)
	if status, body := httpDo(t, "POST", base+"/v1/catalogs/bge-tools/products", bulk); status != 200 {
		t.Fatalf("upsert for bge: %d %s", status, body)
	}
	status, body := httpDo(t, "POST", base+"/v1/catalogs/bge-tools/search", `{"query": "a tool to cut wood", "top_k": 1}`)
	var sr contracts.SearchResponse
	if status != 200 || json.Unmarshal([]byte(body), &sr) != nil {
		t.Fatalf("search: %d %s", status, body)
	}
	if sr.Model.Name != "bge-small-en-v1.5" || sr.Results[0].Matches[0].ID != "s1" {
		t.Fatalf("search of the bge catalog: %s; want bge-small-en-v1.5 to find the saw s1", body)
	}
	status, body = httpDo(t, "POST", base+"/predict", `{"query": "a tool to cut wood", "catalog": "bge-tools", "top_k": 1}`)
	if status != 200 || !strings.Contains(body, `"name":"bge-small-en-v1.5"`) {
		t.Fatalf("/predict on the bge catalog: %d %s", status, body)
	}
	status, body = httpDo(t, "GET", base+"/v1/catalogs", "")
	if status != 200 || !strings.Contains(body, `"name":"bge-small-en-v1.5"`) {
		t.Fatalf("list: %d %s", status, body)
	}
	other := strings.Replace(searchProducts, `{"products":`, `{"model": "all-MiniLM-L6-v2", "products":`, 1)
	status, body = httpDo(t, "POST", base+"/v1/catalogs/bge-tools/products", other)
	if status != 409 || !strings.Contains(body, `"field":"model"`) {
		t.Fatalf("upsert naming another model: %d %s, want 409 on model", status, body)
	}
	status, body = httpDo(t, "POST", base+"/v1/catalogs/new-one/products", strings.Replace(searchProducts, `{"products":`, `{"model": "no-such-model", "products":`, 1))
	if status != 404 || !strings.Contains(body, `"field":"model"`) {
		t.Fatalf("upsert for an unknown model: %d %s, want 404 on model", status, body)
	}
}
