package contracts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// A qualified name is one to one with its tenant and name, processors take
// it, and users cannot give one.
func TestQualifyCatalogName(t *testing.T) {
	long := strings.Repeat("t", 64)
	for _, tt := range []struct{ tenant, name, want string }{
		{"acme", "shop", "acme=shop"},
		{"eu.acme", "shop", "eu=acme=shop"},
		{"eu", "acme", "eu=acme"},
		{".a.", "b", "=a==b"},
		{"a_b-c", "x-y_z", "a_b-c=x-y_z"},
		{long, strings.Repeat("n", 64), long + "=" + strings.Repeat("n", 64)},
	} {
		q := contracts.QualifyCatalogName(tt.tenant, tt.name)
		if q != tt.want {
			t.Errorf("QualifyCatalogName(%q, %q) = %q, want %q", tt.tenant, tt.name, q, tt.want)
		}
		if tenant, name, ok := contracts.SplitCatalogName(q); !ok || tenant != tt.tenant || name != tt.name {
			t.Errorf("SplitCatalogName(%q) = %q, %q, %v", q, tenant, name, ok)
		}
		if err := contracts.ValidateCatalogName(q); err != nil {
			t.Errorf("processors refuse %q: %v", q, err)
		}
		if err := contracts.ValidateUserCatalogName(q); err == nil {
			t.Errorf("users may give %q", q)
		}
		if !strings.HasPrefix(q, contracts.TenantCatalogPrefix(tt.tenant)) {
			t.Errorf("%q lacks its tenant's prefix", q)
		}
	}
	if _, name, ok := contracts.SplitCatalogName("shop"); ok || name != "shop" {
		t.Errorf("an unqualified name splits: %q %v", name, ok)
	}
	for _, bad := range []string{"", "a~b", "a.b", "=shop", "acme=", "a b", strings.Repeat("t", 65) + "=shop", "acme=" + strings.Repeat("n", 65)} {
		if err := contracts.ValidateCatalogName(bad); err == nil {
			t.Errorf("processors take %q", bad)
		}
	}
	for _, good := range []string{"shop", "a-b_c", strings.Repeat("n", 64)} {
		if err := contracts.ValidateUserCatalogName(good); err != nil {
			t.Errorf("users may not give %q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "sh~op", "acme=shop", "a.b", strings.Repeat("n", 65)} {
		if err := contracts.ValidateUserCatalogName(bad); err == nil {
			t.Errorf("users may give %q", bad)
		}
	}
}

// A job's catalog fields take qualified names (processors validate them),
// and their errors name the field.
func TestJobCatalogFieldsTakeQualifiedNames(t *testing.T) {
	ok := contracts.JobRequest{Match: &contracts.MatchJob{Source: "acme=shop", Target: "eu=acme=shop"}}
	if err := ok.Validate(contracts.DefaultJobLimits); err != nil {
		t.Errorf("qualified match: %v", err)
	}
	bad := contracts.JobRequest{Match: &contracts.MatchJob{Source: "acme=shop", Target: "a~b"}}
	e := contracts.AsError(bad.Validate(contracts.DefaultJobLimits))
	if e == nil || e.Field != "match.target" || !strings.HasPrefix(e.Message, "match.target: \"a~b\" is not a catalog name") {
		t.Errorf("bad target: %+v", e)
	}
}

// A client made WithTenant sends qualified names and the tenant header,
// leaves the caller's request as it was, names catalogs unqualified in
// answers and errors, and lists only its tenant's catalogs.
func TestClientWithTenant(t *testing.T) {
	ns := startServer(t)
	srv := connect(t, ns)
	var mu sync.Mutex
	var got []*nats.Msg
	reply := func(m *nats.Msg, v any, code contracts.Code) {
		data, _ := json.Marshal(v)
		out := nats.NewMsg(m.Reply)
		out.Data = data
		if code != "" {
			out.Header.Set(contracts.HeaderErrorCode, string(code))
		}
		_ = srv.PublishMsg(out)
	}
	handlers := map[string]func(m *nats.Msg){
		contracts.SubjectCatalogUpsert: func(m *nats.Msg) {
			var req contracts.UpsertRequest
			_ = json.Unmarshal(m.Data, &req)
			reply(m, contracts.UpsertResponse{Catalog: req.Catalog, Upserted: len(req.Products)}, "")
		},
		contracts.SubjectCatalogSearch: func(m *nats.Msg) {
			var req contracts.SearchRequest
			_ = json.Unmarshal(m.Data, &req)
			reply(m, contracts.ErrorBody{Error: &contracts.Error{Code: contracts.CodeNotFound, Field: "catalog",
				Message: fmt.Sprintf("catalog %q does not exist", req.Catalog)}}, contracts.CodeNotFound)
		},
		contracts.SubjectCatalogList: func(m *nats.Msg) {
			reply(m, contracts.ListResponse{Catalogs: []contracts.CatalogInfo{
				{Name: "acme=shop"}, {Name: "acme=tools"}, {Name: "acmex=shop"}, {Name: "eu=acme=shop"}, {Name: "shop"}}}, "")
		},
	}
	for subject, h := range handlers {
		if _, err := srv.Subscribe(subject, func(m *nats.Msg) {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
			h(m)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := contracts.NewClient(connect(t, ns), contracts.WithTenant("a=b")); err == nil {
		t.Error("a tenant holding '=' was taken")
	}
	c, err := contracts.NewClient(connect(t, ns), contracts.WithTenant("acme"), contracts.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	req := &contracts.UpsertRequest{Catalog: "shop", Products: []contracts.Product{{ID: "1", Description: "x"}}}
	up, err := c.UpsertProducts(ctx, req)
	if err != nil || up.Catalog != "shop" || req.Catalog != "shop" {
		t.Fatalf("upsert = %+v, %v; request now %q", up, err, req.Catalog)
	}
	mu.Lock()
	sent := got[len(got)-1]
	mu.Unlock()
	var wire contracts.UpsertRequest
	if err := json.Unmarshal(sent.Data, &wire); err != nil || wire.Catalog != "acme=shop" || sent.Header.Get(contracts.HeaderTenant) != "acme" {
		t.Fatalf("sent catalog %q, tenant header %q", wire.Catalog, sent.Header.Get(contracts.HeaderTenant))
	}

	_, err = c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"q"}})
	if !errors.Is(err, contracts.ErrNotFound) || !strings.Contains(err.Error(), `catalog "shop" does not exist`) {
		t.Errorf("search error %v; want not_found naming shop", err)
	}

	l, err := c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil || len(l.Catalogs) != 2 || l.Catalogs[0].Name != "shop" || l.Catalogs[1].Name != "tools" {
		t.Errorf("list = %+v, %v; want acme's shop and tools", l, err)
	}

	// A stored name is refused before anything is sent.
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if _, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "globex=shop", Query: contracts.Queries{"q"}}); !errors.Is(err, contracts.ErrInvalidRequest) {
		t.Errorf("a stored name: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Error("a refused name was sent")
	}
}

// CatalogNamespace.Unqualify keeps a tenant's own names only: not those of
// a tenant whose name starts like it.
func TestCatalogNamespaceUnqualify(t *testing.T) {
	eu := contracts.TenantNamespace("eu")
	for stored, want := range map[string]string{"eu=shop": "shop", "eu=acme=shop": "", "euro=shop": "", "shop": ""} {
		got, ok := eu.Unqualify(stored)
		if got != want || ok != (want != "") {
			t.Errorf("tenant eu: Unqualify(%q) = %q, %v", stored, got, ok)
		}
	}
	if got, ok := (contracts.CatalogNamespace{}).Unqualify("eu=acme=shop"); !ok || got != "eu=acme=shop" {
		t.Errorf("no tenant: %q %v", got, ok)
	}
	q, names, err := eu.QualifyJob(&contracts.JobRequest{Match: &contracts.MatchJob{Source: "a", Target: "b"}})
	if err != nil || q.Match.Source != "eu=a" || q.Match.Target != "eu=b" || names[0] != "a" || names[1] != "b" {
		t.Errorf("QualifyJob = %+v, %v, %v", q.Match, names, err)
	}
	_, _, err = eu.QualifyJob(&contracts.JobRequest{Dedupe: &contracts.DedupeJob{Catalog: "x=y"}})
	if e := contracts.AsError(err); e == nil || e.Field != "dedupe.catalog" {
		t.Errorf("QualifyJob of a stored name: %+v", e)
	}
}
