package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor/jobs"
)

// Tenant test keys.
const (
	keyAcme   = "sk-acme-0b1c2d3e4f5a6b7c"
	keyGlobex = "sk-globex-9a8b7c6d5e4f3a2b"
	keyEUAcme = "sk-euacme-1a2b3c4d5e6f7a8b"
	keyEU     = "sk-eu-8f7e6d5c4b3a2f1e"
	keyOps    = "sk-ops-5c4b3a2f1e0d9c8b"
)

// tenantBridge starts a processor with catalogs and jobs, and a bridge
// with keys of tenants acme, globex, eu.acme and eu, and an admin key.
func tenantBridge(t *testing.T) (url string) {
	t.Helper()
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{}, nil)
	user := "predict,catalog:write,jobs"
	keys := fmt.Sprintf("acme %s %s tenant=acme\nglobex %s %s tenant=globex\neuacme %s %s tenant=eu.acme\neu %s %s\nops %s *\n",
		bridge.HashKey(keyAcme), user, bridge.HashKey(keyGlobex), user, bridge.HashKey(keyEUAcme), user,
		bridge.HashKey(keyEU), user, bridge.HashKey(keyOps))
	ks := proctest.Keys(t, keys)
	return proctest.StartBridge(t, ns, func(c *bridge.Config) { c.Keys = ks }).URL
}

// as sends a request with key and returns the status and body.
func as(t *testing.T, key, method, url, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, data := proctest.Do(t, req)
	return resp.StatusCode, data
}

// expect sends a request and fails unless it answers want; it returns the body.
func expect(t *testing.T, want int, key, method, url, body string) []byte {
	t.Helper()
	got, data := as(t, key, method, url, body)
	if got != want {
		t.Fatalf("%s %s: %d %.400s, want %d", method, url, got, data, want)
	}
	return data
}

func catalogNames(t *testing.T, url, key string) []string {
	t.Helper()
	var lr contracts.ListResponse
	if err := json.Unmarshal(expect(t, 200, key, "GET", url+"/v1/catalogs", ""), &lr); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range lr.Catalogs {
		out = append(out, c.Name)
	}
	return out
}

func searchIDs(t *testing.T, url, key, catalog string) []string {
	t.Helper()
	var sr contracts.SearchResponse
	data := expect(t, 200, key, "POST", url+"/v1/catalogs/"+catalog+"/search", `{"query": "a saw to cut wood", "top_k": 10}`)
	if err := json.Unmarshal(data, &sr); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range sr.Results[0].Matches {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func errorOf(t *testing.T, data []byte) contracts.Error {
	t.Helper()
	var eb contracts.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error == nil {
		t.Fatalf("not an error body (%v): %s", err, data)
	}
	return *eb.Error
}

// Catalogs and jobs belong to their tenant: the same name is a separate
// catalog for each tenant, another tenant's catalogs and jobs are 404
// (as unknown ones), lists show a tenant its own catalogs unqualified, and
// an admin sees and reaches every one by its stored name.
func TestTenantsKeepCatalogsAndJobsApart(t *testing.T) {
	url := tenantBridge(t)
	cats := url + "/v1/catalogs/"

	// acme and globex each create "shop", with different products.
	up := expect(t, 200, keyAcme, "POST", cats+"shop/products", `{"products": [
		{"id": "a1", "description": "Circular saw for cutting wood"},
		{"id": "a2", "description": "Claw hammer"},
		{"id": "a3", "description": "Garden hose"}]}`)
	var ur contracts.UpsertResponse
	if err := json.Unmarshal(up, &ur); err != nil || ur.Catalog != "shop" || ur.Upserted != 3 {
		t.Errorf("acme upsert: %s", up)
	}
	expect(t, 200, keyGlobex, "POST", cats+"shop/products", `{"products": [
		{"id": "g1", "description": "Hand saw for wood"},
		{"id": "g2", "description": "Electric drill"}]}`)
	expect(t, 200, keyAcme, "PUT", cats+"only/products/o1", `{"description": "Wood chisel"}`)
	expect(t, 200, keyEUAcme, "PUT", cats+"shop/products/e1", `{"description": "Jigsaw"}`)

	if got := searchIDs(t, url, keyAcme, "shop"); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Errorf("acme searches its shop: %v", got)
	}
	if got := searchIDs(t, url, keyGlobex, "shop"); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("globex searches its shop: %v", got)
	}
	if got := searchIDs(t, url, keyEUAcme, "shop"); !slices.Equal(got, []string{"e1"}) {
		t.Errorf("eu.acme searches its shop: %v", got)
	}

	// Get: one's own product, with the catalog named as the caller named it;
	// another tenant's is not found, and its catalog is not found.
	var pr contracts.ProductResponse
	if err := json.Unmarshal(expect(t, 200, keyAcme, "GET", cats+"shop/products/a1", ""), &pr); err != nil || pr.Catalog != "shop" || pr.Product.ID != "a1" {
		t.Errorf("acme get: %+v %v", pr, err)
	}
	expect(t, 404, keyGlobex, "GET", cats+"shop/products/a1", "")
	e := errorOf(t, expect(t, 404, keyGlobex, "GET", cats+"only/products/o1", ""))
	if strings.Contains(e.Message, "globex") || strings.Contains(e.Message, contracts.TenantSeparator) {
		t.Errorf("the 404 names the stored catalog: %q", e.Message)
	}
	expect(t, 404, keyGlobex, "POST", cats+"only/search", `{"query": "chisel"}`)
	expect(t, 404, keyGlobex, "POST", url+"/predict", `{"query": ["chisel"], "catalog": "only"}`)
	var resp contracts.Response
	if err := json.Unmarshal(expect(t, 200, keyGlobex, "POST", url+"/predict", `{"query": ["a saw"], "catalog": "shop", "top_k": 5}`), &resp); err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.Results[0].Matches {
		if !strings.HasPrefix(m.ID, "g") {
			t.Errorf("globex's /predict on shop matched %q", m.ID)
		}
	}

	// A name of the stored form is refused from a tenant: '~' and '=' are
	// not in catalog names.
	for _, name := range []string{"sh~op", "acme=only", "acme~only"} {
		e := errorOf(t, expect(t, 422, keyGlobex, "GET", cats+name+"/products/o1", ""))
		if e.Field != "catalog" {
			t.Errorf("%s: %+v", name, e)
		}
	}
	e = errorOf(t, expect(t, 422, keyGlobex, "POST", url+"/v1/jobs", `{"match": {"source": "shop", "target": "acme=only"}}`))
	if e.Field != "match.target" || !strings.HasPrefix(e.Message, "match.target: ") {
		t.Errorf("a qualified name in a job: %+v", e)
	}

	// Lists: each tenant its own, unqualified; eu (a prefix of eu.acme's
	// stored names) sees none of eu.acme's; the admin sees every one stored.
	for key, want := range map[string][]string{
		keyAcme:   {"only", "shop"},
		keyGlobex: {"shop"},
		keyEUAcme: {"shop"},
		keyEU:     nil,
		keyOps:    {"acme=only", "acme=shop", "eu=acme=shop", "globex=shop"},
	} {
		if got := catalogNames(t, url, key); !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", key[:8], got, want)
		}
	}
	// The admin reaches any catalog by its stored name.
	if err := json.Unmarshal(expect(t, 200, keyOps, "GET", cats+"eu=acme=shop/products/e1", ""), &pr); err != nil || pr.Catalog != "eu=acme=shop" {
		t.Errorf("admin get: %+v %v", pr, err)
	}

	// Delete and drop of another tenant's catalog touch only one's own.
	var dr contracts.DeleteResponse
	if err := json.Unmarshal(expect(t, 200, keyGlobex, "DELETE", cats+"shop/products/a1", ""), &dr); err != nil || dr.Deleted || dr.Catalog != "shop" {
		t.Errorf("globex deletes a1 from its shop: %+v %v", dr, err)
	}
	expect(t, 404, keyGlobex, "DELETE", cats+"only", "")
	expect(t, 200, keyAcme, "GET", cats+"shop/products/a1", "")
	expect(t, 200, keyAcme, "GET", cats+"only/products/o1", "")

	// Jobs: acme's is acme's (and the admin's); globex gets the 404 of an
	// unknown id, for status, results and cancel.
	var st contracts.JobStatus
	if err := json.Unmarshal(expect(t, 202, keyAcme, "POST", url+"/v1/jobs", `{"query": ["cut wood"], "catalog": "shop", "top_k": 2}`), &st); err != nil {
		t.Fatal(err)
	}
	unknown := "0123456789abcdef"
	for _, p := range []struct{ method, path string }{{"GET", ""}, {"GET", "/results"}, {"DELETE", ""}} {
		theirs := errorOf(t, expect(t, 404, keyGlobex, p.method, url+"/v1/jobs/"+st.ID+p.path, ""))
		none := errorOf(t, expect(t, 404, keyGlobex, p.method, url+"/v1/jobs/"+unknown+p.path, ""))
		if theirs.Code != none.Code || theirs.Message != strings.ReplaceAll(none.Message, unknown, st.ID) {
			t.Errorf("%s %s: another tenant's job %+v, an unknown one %+v", p.method, p.path, theirs, none)
		}
	}
	testenv.WaitFor(t, 2*time.Minute, "acme's job done", func() bool {
		_ = json.Unmarshal(expect(t, 200, keyAcme, "GET", url+"/v1/jobs/"+st.ID, ""), &st)
		return st.State == contracts.JobDone
	})
	expect(t, 200, keyOps, "GET", url+"/v1/jobs/"+st.ID, "")
	res := expect(t, 200, keyAcme, "GET", url+"/v1/jobs/"+st.ID+"/results", "")
	var jr contracts.JobResult
	if err := json.Unmarshal(res, &jr); err != nil || len(jr.Matches) != 2 || jr.Matches[0].ID != "a1" {
		t.Errorf("acme's job results: %s", res)
	}

	// A match job naming a catalog that only another tenant has: 404 on
	// the field, in the caller's own names.
	e = errorOf(t, expect(t, 404, keyGlobex, "POST", url+"/v1/jobs", `{"match": {"source": "shop", "target": "only"}}`))
	if e.Field != "match.target" || !strings.Contains(e.Message, `"only"`) || strings.Contains(e.Message, "globex") {
		t.Errorf("globex matches acme's catalog: %+v", e)
	}
	var mst contracts.JobStatus
	if err := json.Unmarshal(expect(t, 202, keyAcme, "POST", url+"/v1/jobs", `{"match": {"source": "only", "target": "shop"}}`), &mst); err != nil {
		t.Fatal(err)
	}
	expect(t, 404, keyGlobex, "GET", url+"/v1/jobs/"+mst.ID, "")
	testenv.WaitFor(t, 2*time.Minute, "acme's match job done", func() bool {
		_ = json.Unmarshal(expect(t, 200, keyAcme, "GET", url+"/v1/jobs/"+mst.ID, ""), &mst)
		return mst.State == contracts.JobDone
	})
	var row contracts.MatchResult
	if err := json.Unmarshal(expect(t, 200, keyAcme, "GET", url+"/v1/jobs/"+mst.ID+"/results", ""), &row); err != nil || row.SourceID != "o1" || len(row.Matches) == 0 || !strings.HasPrefix(row.Matches[0].ID, "a") {
		t.Errorf("acme's match of only against shop: %+v %v", row, err)
	}

	// Drop: one's own only.
	var drop contracts.DropResponse
	if err := json.Unmarshal(expect(t, 200, keyGlobex, "DELETE", cats+"shop", ""), &drop); err != nil || !drop.Dropped || drop.Catalog != "shop" {
		t.Errorf("globex drops its shop: %+v %v", drop, err)
	}
	expect(t, 200, keyAcme, "GET", cats+"shop/products/a1", "")
	if got := catalogNames(t, url, keyGlobex); len(got) != 0 {
		t.Errorf("globex lists %v after its drop", got)
	}
}

// The stored names of tenants' catalogs are valid where JetStream names
// things after catalogs: stream names, subject tokens (the test above) and
// key-value keys (the claims of a background re-embed), where '~' is not.
func TestQualifiedNamesAreValidKeyValueKeys(t *testing.T) {
	ns := startJobsNATS(t)
	js, err := jetstream.New(connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "tenant_names"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, contracts.QualifyCatalogName("eu.acme", "shop"), []byte("x")); err != nil {
		t.Errorf("a qualified name as a key: %v", err)
	}
	if _, err := kv.Create(ctx, "acme~shop", []byte("x")); !errors.Is(err, jetstream.ErrInvalidKey) {
		t.Errorf("'~' in a key: %v, want ErrInvalidKey", err)
	}
}
