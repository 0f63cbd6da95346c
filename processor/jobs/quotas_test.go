package jobs_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor/jobs"
)

// Quota test keys: each tenant's key is "sk-<tenant>-quota", the admin's keyOps.
func quotaKey(tenant string) string { return "sk-" + tenant + "-quota-5e6f7a8b" }

// quotaBridge serves a bridge on ns with a key per tenant (each its own
// tenant, scopes predict, catalog:write and jobs), the admin key keyOps,
// and quotas.
func quotaBridge(t *testing.T, ns *server.Server, quotas string, tenants ...string) string {
	t.Helper()
	var keys strings.Builder
	for _, tn := range tenants {
		fmt.Fprintf(&keys, "%s %s predict,catalog:write,jobs\n", tn, bridge.HashKey(quotaKey(tn)))
	}
	fmt.Fprintf(&keys, "ops %s *\n", bridge.HashKey(keyOps))
	ks := proctest.Keys(t, keys.String())
	q, err := bridge.ParseQuotas([]byte(quotas))
	if err != nil {
		t.Fatal(err)
	}
	return proctest.StartBridge(t, ns, func(c *bridge.Config) { c.Keys, c.Quotas = ks, q }).URL
}

// products is a bulk upsert body of n products with ids prefix0...
func products(prefix string, n int) string {
	ps := make([]contracts.Product, n)
	for i := range ps {
		ps[i] = contracts.Product{ID: fmt.Sprintf("%s%d", prefix, i), Description: jobProducts[i%len(jobProducts)]}
	}
	b, _ := json.Marshal(map[string]any{"products": ps})
	return string(b)
}

// quotaRefusal fails unless data is a quota_exceeded error on quota with
// a message holding want.
func quotaRefusal(t *testing.T, data []byte, quota, want string) {
	t.Helper()
	e := errorOf(t, data)
	if e.Code != contracts.CodeQuotaExceeded || e.Field != quota || !strings.Contains(e.Message, want) {
		t.Errorf("refusal %+v; want quota_exceeded on %s with %q", e, quota, want)
	}
}

// The storage quotas (catalogs, products, bytes), through the real bridge,
// processor and JetStream: a write at the limit passes, the one past it is
// refused 413 before anything is stored; deleting frees room; another
// tenant and the admin are not bound by a tenant's quota.
func TestStorageQuotas(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{}, nil)
	url := quotaBridge(t, ns, "* products=100\nacme products=5\ncats catalogs=1\nbytes bytes=10000\n",
		"acme", "globex", "cats", "bytes")
	cats := url + "/v1/catalogs/"
	acme, globex := quotaKey("acme"), quotaKey("globex")

	t.Run("products", func(t *testing.T) {
		expect(t, 200, acme, "POST", cats+"shop/products", products("a", 3))
		expect(t, 200, acme, "POST", cats+"shop/products", products("b", 2)) // at the limit
		quotaRefusal(t, expect(t, 413, acme, "PUT", cats+"shop/products/c0", `{"description": "Garden rake"}`),
			"products", "tenant acme: quota products=5 would be exceeded (5 stored + 1 in this request)")
		// Another catalog of the tenant's counts in the sum.
		quotaRefusal(t, expect(t, 413, acme, "POST", cats+"other/products", products("o", 1)), "products", "(5 stored + 1 in this request)")
		if got := catalogNames(t, url, acme); len(got) != 1 {
			t.Errorf("a refused write created a catalog: %v", got)
		}
		// Rows replacing stored ids count too (an upper bound).
		quotaRefusal(t, expect(t, 413, acme, "POST", cats+"shop/products", products("a", 1)), "products", "(5 stored + 1 in this request)")
		// A delete frees room for one.
		expect(t, 200, acme, "DELETE", cats+"shop/products/a0", "")
		expect(t, 200, acme, "PUT", cats+"shop/products/c0", `{"description": "Garden rake"}`)
		// Another tenant is bound by the * line alone; the admin by none.
		expect(t, 200, globex, "POST", cats+"shop/products", products("g", 5))
		expect(t, 200, globex, "POST", cats+"shop/products", products("h", 5))
		expect(t, 200, keyOps, "POST", cats+"acme=shop/products", products("x", 4))
		quotaRefusal(t, expect(t, 413, acme, "PUT", cats+"shop/products/c1", `{"description": "Garden rake"}`),
			"products", "(9 stored + 1 in this request)")
	})

	t.Run("catalogs", func(t *testing.T) {
		key := quotaKey("cats")
		expect(t, 200, key, "POST", cats+"first/products", products("p", 2))
		e := errorOf(t, expect(t, 413, key, "PUT", cats+"second/products/p0", `{"description": "Garden rake"}`))
		if e.Code != contracts.CodeQuotaExceeded || e.Field != "catalogs" || e.Limit != 1 ||
			e.Message != "tenant cats: quota catalogs=1 would be exceeded (1 stored + 1 in this request)" {
			t.Errorf("refusal %+v", e)
		}
		// Writes into the catalog it has pass; after a drop, a new one may be made.
		expect(t, 200, key, "PUT", cats+"first/products/p9", `{"description": "Garden rake"}`)
		expect(t, 200, key, "DELETE", cats+"first", "")
		expect(t, 200, key, "PUT", cats+"second/products/p0", `{"description": "Garden rake"}`)
	})

	t.Run("bytes", func(t *testing.T) {
		key := quotaKey("bytes")
		expect(t, 200, key, "POST", cats+"shop/products", products("p", 2)) // about 3.4 KB with the embeddings
		var lr contracts.ListResponse
		if err := json.Unmarshal(expect(t, 200, key, "GET", url+"/v1/catalogs", ""), &lr); err != nil || len(lr.Catalogs) != 1 {
			t.Fatalf("list: %+v %v", lr, err)
		}
		stored := lr.Catalogs[0].StoredBytes
		// Six more: their embeddings alone (6 x 384 x 4 bytes) pass the quota.
		quotaRefusal(t, expect(t, 413, key, "POST", cats+"shop/products", products("q", 6)),
			"bytes", fmt.Sprintf("tenant bytes: quota bytes=10000 would be exceeded (%s bytes stored + ", commas(stored)))
		expect(t, 200, key, "POST", cats+"shop/products", products("r", 1))
	})
}

// commas writes n with thousands separators, as the quota errors do.
func commas(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Two upserts of one tenant at once, which together pass its products
// quota: exactly one passes.
func TestProductsQuotaRace(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{}, nil)
	url := quotaBridge(t, ns, "race products=4\n", "race")
	key := quotaKey("race")
	for round := range 3 {
		cat := fmt.Sprintf("%s/v1/catalogs/r%d/products", url, round)
		var wg sync.WaitGroup
		status := make([]int, 2)
		bodies := make([][]byte, 2)
		for i := range 2 {
			wg.Go(func() { status[i], bodies[i] = as(t, key, "POST", cat, products(fmt.Sprintf("w%d-", i), 3)) })
		}
		wg.Wait()
		ok, refused := 0, 0
		for i, s := range status {
			switch s {
			case 200:
				ok++
			case 413:
				refused++
				quotaRefusal(t, bodies[i], "products", "(3 stored + 3 in this request)")
			default:
				t.Fatalf("round %d: %d %s", round, s, bodies[i])
			}
		}
		if ok != 1 || refused != 1 {
			t.Fatalf("round %d: %d passed, %d refused; want one each", round, ok, refused)
		}
		expect(t, 200, key, "DELETE", url+fmt.Sprintf("/v1/catalogs/r%d", round), "")
	}
}

// The jobs quota counts queued jobs, and frees a place once a job ends.
func TestJobsQuotaFreesWhenAJobEnds(t *testing.T) {
	ns := startJobsNATS(t)
	setupJobs(t, ns) // no processor yet: the jobs stay queued
	url := quotaBridge(t, ns, "acme jobs=1\n", "acme")
	key := quotaKey("acme")
	q, _ := json.Marshal(jobProducts)
	job := `{"query": ["a saw to cut wood", "a hammer"], "product_descriptions": ` + string(q) + `}`
	var st contracts.JobStatus
	if err := json.Unmarshal(expect(t, http.StatusAccepted, key, "POST", url+"/v1/jobs", job), &st); err != nil {
		t.Fatal(err)
	}
	quotaRefusal(t, expect(t, http.StatusTooManyRequests, key, "POST", url+"/v1/jobs", job), "jobs",
		"tenant acme: quota jobs=1 would be exceeded (1 submitting, queued or running + 1 in this request)")
	startProcessor(t, ns, nil, jobs.Config{})
	testenv.WaitFor(t, 2*time.Minute, "the job done", func() bool {
		_ = json.Unmarshal(expect(t, http.StatusOK, key, "GET", url+"/v1/jobs/"+st.ID, ""), &st)
		return st.State == contracts.JobDone
	})
	expect(t, http.StatusAccepted, key, "POST", url+"/v1/jobs", job)
}
