package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// Services that call the processors over NATS with contracts.WithTenant
// and jobstore.WithTenant get what the bridge gives the tenant's keys:
// catalogs of the same name kept apart, each tenant's lists and searches
// its own, the other's not found, errors and answers naming catalogs
// unqualified, match jobs on the tenant's catalogs owned by the tenant,
// and the very catalogs the tenant's API keys reach through the bridge.
func TestTenantClients(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{}, nil)
	keys := fmt.Sprintf("acme %s predict,catalog:write,jobs tenant=acme\nglobex %s predict,catalog:write,jobs tenant=globex\n",
		bridge.HashKey(keyAcme), bridge.HashKey(keyGlobex))
	ks := proctest.Keys(t, keys)
	url := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.Keys = ks }).URL

	nc := connect(t, ns)
	client := func(opts ...contracts.ClientOption) *contracts.Client {
		c, err := contracts.NewClient(nc, append(opts, contracts.WithTimeout(time.Minute))...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	acme, globex, admin := client(contracts.WithTenant("acme")), client(contracts.WithTenant("globex")), client()
	jobsOf := func(opts ...jobstore.Option) *jobstore.Jobs {
		j, err := jobstore.NewJobs(nc, 0, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	acmeJobs, globexJobs, adminJobs := jobsOf(jobstore.WithTenant("acme")), jobsOf(jobstore.WithTenant("globex")), jobsOf()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Both create "shop"; acme also "target".
	for _, up := range []struct {
		c    *contracts.Client
		name string
		ps   []contracts.Product
	}{
		{acme, "shop", []contracts.Product{{ID: "a1", Description: "Circular saw for cutting wood"}, {ID: "a2", Description: "Claw hammer"}, {ID: "a3", Description: "Garden hose"}}},
		{globex, "shop", []contracts.Product{{ID: "g1", Description: "Hand saw for wood"}, {ID: "g2", Description: "Electric drill"}}},
		{acme, "target", []contracts.Product{{ID: "t1", Description: "Saw for wood"}, {ID: "t2", Description: "Hammer with a claw"}, {ID: "t3", Description: "Hose reel for the garden"}}},
	} {
		req := &contracts.UpsertRequest{Catalog: up.name, Products: up.ps}
		resp, err := up.c.UpsertProducts(ctx, req)
		if err != nil || resp.Catalog != up.name || resp.Upserted != len(up.ps) || req.Catalog != up.name {
			t.Fatalf("upsert %s: %+v, %v (request now names %q)", up.name, resp, err, req.Catalog)
		}
	}

	// Lists: each its own, unqualified; NATS without a tenant sees the stored names.
	for _, tt := range []struct {
		name string
		c    *contracts.Client
		want []string
	}{
		{"acme", acme, []string{"shop", "target"}},
		{"globex", globex, []string{"shop"}},
		{"no tenant", admin, []string{"acme=shop", "acme=target", "globex=shop"}},
	} {
		l, err := tt.c.ListCatalogs(ctx, &contracts.ListRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ci := range l.Catalogs {
			names = append(names, ci.Name)
		}
		if !slices.Equal(names, tt.want) {
			t.Errorf("%s lists %v, want %v", tt.name, names, tt.want)
		}
	}

	// Searches, /predict on a catalog and gets: each its own.
	ids := func(c *contracts.Client, cat string) []string {
		t.Helper()
		res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: cat, Query: contracts.Queries{"a saw to cut wood"}})
		if err != nil {
			t.Fatalf("search %s: %v", cat, err)
		}
		var out []string
		for _, m := range res.Results[0].Matches {
			out = append(out, m.ID)
		}
		slices.Sort(out)
		return out
	}
	if got := ids(acme, "shop"); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Errorf("acme searches shop: %v", got)
	}
	if got := ids(globex, "shop"); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("globex searches shop: %v", got)
	}
	pr, err := globex.Match(ctx, &contracts.Request{Query: contracts.Queries{"saw"}, Catalog: "shop"})
	if err != nil || len(pr.Results[0].Matches) != 2 || !strings.HasPrefix(pr.Results[0].Matches[0].ID, "g") {
		t.Errorf("globex /predict on shop: %+v, %v", pr, err)
	}
	if g, err := acme.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "a1"}); err != nil || g.Catalog != "shop" || g.Product.ID != "a1" {
		t.Errorf("acme gets a1: %+v, %v", g, err)
	}

	// The other's: not found, the error naming the catalog as the caller did.
	notFound := func(what string, err error, name string) {
		t.Helper()
		e := contracts.AsError(err)
		if !errors.Is(err, contracts.ErrNotFound) || !strings.Contains(e.Message, name) || strings.Contains(e.Message, contracts.TenantSeparator) {
			t.Errorf("%s: %v; want not_found naming %q, no stored name", what, err, name)
		}
	}
	_, err = globex.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "target", Query: contracts.Queries{"saw"}})
	notFound("globex searches acme's target", err, "target")
	_, err = globex.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "a1"})
	if !errors.Is(err, contracts.ErrNotFound) {
		t.Errorf("globex gets acme's a1: %v", err)
	}
	_, err = globex.Match(ctx, &contracts.Request{Query: contracts.Queries{"saw"}, Catalog: "target"})
	notFound("globex /predict on target", err, "target")
	// A stored name from a tenant client is refused: it would reach into
	// tenant acme.globex's namespace.
	if _, err := acme.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "globex=shop", Query: contracts.Queries{"saw"}}); !errors.Is(err, contracts.ErrInvalidRequest) {
		t.Errorf("acme names globex=shop: %v, want invalid_request", err)
	}

	// A match job through acme's client reads acme's catalogs and is acme's.
	st, err := acmeJobs.Submit(ctx, &contracts.JobRequest{Match: &contracts.MatchJob{Source: "shop", Target: "target"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = acmeJobs.Wait(ctx, st.ID, 20*time.Millisecond, nil); err != nil || st.State != contracts.JobDone {
		t.Fatalf("match job: %+v, %v", st, err)
	}
	var rows []contracts.MatchResult
	if err := acmeJobs.Lines(ctx, st.ID, func(l any) error { rows = append(rows, l.(contracts.MatchResult)); return nil }); err != nil {
		t.Fatal(err)
	}
	best := map[string]string{}
	for _, r := range rows {
		best[r.SourceID] = r.Matches[0].ID
	}
	if want := map[string]string{"a1": "t1", "a2": "t2", "a3": "t3"}; fmt.Sprint(best) != fmt.Sprint(want) {
		t.Errorf("match job rows %v, want %v", best, want)
	}
	if m, _, err := acmeJobs.Meta(ctx, st.ID); err != nil || m.Owner != "acme" || m.Match.Source != "shop" || m.Match.Target != "target" {
		t.Errorf("acme's entry of its job: %+v, %v", m, err)
	}
	if m, _, err := adminJobs.Meta(ctx, st.ID); err != nil || m.Owner != "acme" || m.Match.Source != "acme=shop" {
		t.Errorf("the stored entry: %+v, %v", m, err)
	}
	if _, err := globexJobs.Status(ctx, st.ID); !errors.Is(err, contracts.ErrNotFound) {
		t.Errorf("globex reads acme's job: %v, want not_found", err)
	}
	_, err = globexJobs.Submit(ctx, &contracts.JobRequest{Match: &contracts.MatchJob{Source: "target", Target: "shop"}})
	notFound("globex matches acme's target", err, `"target"`)
	if _, err := acmeJobs.SubmitFor(ctx, "globex", &contracts.JobRequest{Catalog: "shop", Query: contracts.Queries{"saw"}}); !errors.Is(err, contracts.ErrInvalidRequest) {
		t.Errorf("acme's client submits for globex: %v", err)
	}

	// Through the bridge, acme's key reaches what acme's client made, and its job.
	if got := catalogNames(t, url, keyAcme); !slices.Equal(got, []string{"shop", "target"}) {
		t.Errorf("acme's key lists %v", got)
	}
	if got := searchIDs(t, url, keyAcme, "target"); !slices.Equal(got, []string{"t1", "t2", "t3"}) {
		t.Errorf("acme's key searches target: %v", got)
	}
	var bst contracts.JobStatus
	if err := json.Unmarshal(expect(t, 200, keyAcme, "GET", url+"/v1/jobs/"+st.ID, ""), &bst); err != nil || bst.State != contracts.JobDone {
		t.Errorf("acme's key reads the job: %+v, %v", bst, err)
	}
	expect(t, 404, keyGlobex, "GET", url+"/v1/jobs/"+st.ID, "")
	expect(t, 404, keyGlobex, "POST", url+"/v1/catalogs/target/search", `{"query": "saw"}`)

	// Drop through the client: gone for acme, globex's shop stays.
	if d, err := acme.DropCatalog(ctx, &contracts.DropRequest{Catalog: "shop"}); err != nil || !d.Dropped || d.Catalog != "shop" {
		t.Fatalf("acme drops shop: %+v, %v", d, err)
	}
	if got := ids(globex, "shop"); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("globex's shop after acme dropped its own: %v", got)
	}
}
