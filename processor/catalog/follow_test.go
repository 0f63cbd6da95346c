package catalog_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/catalog"
)

// A write answered by one processor is seen at once by a search on another.
func TestReadYourWritesAcrossProcessors(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a := startNode(t, ns.ClientURL(), nil)
	b := startNode(t, ns.ClientURL(), nil)
	ctx := ctxT(t)
	if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		id := fmt.Sprintf("new-%d", i)
		up, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: []contracts.Product{
			{ID: id, Description: fmt.Sprintf("Novelty item %d", i), Metadata: map[string]string{"id": id}}}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"novelty"}, SearchOptions: contracts.SearchOptions{Filter: contracts.Filter{"id": contracts.Equals(id)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Results[0].Matches) != 1 || res.Sequence < up.Sequence {
			t.Fatalf("write %d (sequence %d) not seen by the other processor: %+v", i, up.Sequence, res)
		}
		// And a delete answered by b is seen by a.
		if i%2 == 0 {
			continue
		}
		d, err := b.client.DeleteProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: id})
		if err != nil || !d.Deleted {
			t.Fatalf("delete %s: %+v, %v", id, d, err)
		}
		res, err = a.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"novelty"}, SearchOptions: contracts.SearchOptions{Filter: contracts.Filter{"id": contracts.Equals(id)}}})
		if err != nil || len(res.Results[0].Matches) != 0 {
			t.Fatalf("delete of %s not seen: %+v, %v", id, res, err)
		}
	}
}

// A processor that joins later loads the catalog from JetStream without
// embedding a single product: its model only sees the search's query.
func TestJoiningProcessorLoadsWithoutInference(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a := startNode(t, ns.ClientURL(), nil)
	ctx := ctxT(t)
	if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
		t.Fatal(err)
	}
	want, err := a.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"coffee"}, TopK: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, ns.ClientURL(), nil)
	got, err := b.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"coffee"}, TopK: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.emb.Texts.Load(); n != 1 {
		t.Fatalf("the joining processor embedded %d texts; want 1 (the query only)", n)
	}
	if !slices.EqualFunc(want.Results[0].Matches, got.Results[0].Matches, sameMatch) {
		t.Fatalf("joining processor ranks\n%+v\nwant\n%+v", got.Results[0].Matches, want.Results[0].Matches)
	}
}

func sameMatch(a, b contracts.CatalogMatch) bool {
	return a.ID == b.ID && a.Score == b.Score && a.Description == b.Description
}

// Catalogs survive a restart of NATS and of the processor: the new one
// loads them from the same store directory and ranks exactly as before.
func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	var want *contracts.SearchResponse
	{
		ns := testenv.StartNATS(t, testenv.WithJetStream(t, dir))
		a := startNode(t, ns.ClientURL(), nil)
		if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.client.DeleteProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "saw"}); err != nil {
			t.Fatal(err)
		}
		var err error
		if want, err = a.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"tools for the garden"}, TopK: ptr(10)}); err != nil {
			t.Fatal(err)
		}
		a.stop(t)
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, dir))
	b := startNode(t, ns.ClientURL(), nil)
	got, err := b.client.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"tools for the garden"}, TopK: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.emb.Texts.Load(); n != 1 {
		t.Fatalf("after the restart the processor embedded %d texts; want 1 (the query)", n)
	}
	if len(got.Results[0].Matches) != len(shop)-1 || !slices.EqualFunc(want.Results[0].Matches, got.Results[0].Matches, sameMatch) {
		t.Fatalf("after restart\n%+v\nwant\n%+v", got.Results[0].Matches, want.Results[0].Matches)
	}
}

// Upserts, deletes and searches at the same time on two processors (run
// with -race): every search answers, and the end state is exact.
func TestConcurrentUpsertsAndSearches(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a := startNode(t, ns.ClientURL(), nil)
	b := startNode(t, ns.ClientURL(), nil)
	ctx := ctxT(t)
	if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				p := contracts.Product{ID: fmt.Sprintf("w%d-%d", w, i), Description: fmt.Sprintf("Widget %d from workshop %d", i, w)}
				c := a.client
				if i%2 == 1 {
					c = b.client
				}
				if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: []contracts.Product{p}}); err != nil {
					errs <- err
				}
				if i%3 == 0 {
					if _, err := c.DeleteProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: p.ID}); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if _, err := a.client.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"widget"}}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := len(shop) + 4*(10-4) // i = 0, 3, 6, 9 are deleted
	for _, n := range []*node{a, b} {
		res, err := n.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"widget"}, TopK: ptr(1000)})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Results[0].Matches); got != want {
			t.Errorf("a processor holds %d products, want %d", got, want)
		}
	}
}

// A 3-node JetStream cluster with replicas 3: one node dies during upserts
// and searches; every acknowledged product is still there and searches go on.
func TestClusterSurvivesANodeLoss(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	url := cl.URLs()
	a := startNode(t, url, func(c *catalog.Config) { c.Replicas = 3 })
	b := startNode(t, url, func(c *catalog.Config) { c.Replicas = 3 })
	ctx := ctxT(t)
	if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		acked   []string
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		okAfter = make(chan struct{}, 1000)
	)
	wg.Go(func() { // writer: retries each product until acknowledged
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("c%d", i)
			for attempt := 0; attempt < 50; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := a.client.UpsertProducts(cctx, &contracts.UpsertRequest{Catalog: "shop", Products: []contracts.Product{{ID: id, Description: "Cluster widget " + id}}})
				cancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					break
				}
			}
		}
	})
	wg.Go(func() { // reader
		for {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := b.client.SearchCatalog(cctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"widget"}})
			cancel()
			if err == nil {
				select {
				case okAfter <- struct{}{}:
				default:
				}
			}
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	testenv.WaitFor(t, 30*time.Second, "5 acknowledged upserts before the kill", func() bool { return count() >= 5 })
	// Kill the node that leads the catalog's stream, the hardest case.
	killed := 0
	for i, s := range cl.Servers {
		if s.JetStreamIsStreamLeader("$G", "SIMMATCH_CATALOG_shop") {
			killed = i
		}
	}
	cl.Kill(killed)
	before := count()
	for len(okAfter) > 0 {
		<-okAfter
	}
	testenv.WaitFor(t, 30*time.Second, "10 more acknowledged upserts after the kill", func() bool { return count() >= before+10 })
	testenv.WaitFor(t, 30*time.Second, "searches answering after the kill", func() bool { return len(okAfter) >= 3 })
	close(stop)
	wg.Wait()

	mu.Lock()
	ids := slices.Clone(acked)
	mu.Unlock()
	for _, n := range []*node{a, b} {
		for _, id := range ids {
			if _, err := n.client.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: id}); err != nil {
				t.Fatalf("acknowledged product %s lost after the node died: %v", id, err)
			}
		}
		res, err := n.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"cluster widget"}, TopK: ptr(1000)})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Results[0].Matches); got < len(shop)+len(ids) {
			t.Fatalf("a processor holds %d products, want at least %d", got, len(shop)+len(ids))
		}
	}
	t.Logf("%d products acknowledged across the loss of node %d", len(ids), killed+1)
}

// A catalog dropped through one processor leaves the memory of the others
// without waiting for a request to name it.
func TestDropReachesOtherProcessors(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a := startNode(t, ns.ClientURL(), nil)
	b := startNode(t, ns.ClientURL(), nil)
	ctx := ctxT(t)
	if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Search(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"x"}}); err != nil {
		t.Fatal(err)
	}
	if !b.svc.Following("shop") {
		t.Fatal("b does not follow the catalog it searched")
	}
	if _, err := a.client.DropCatalog(ctx, &contracts.DropRequest{Catalog: "shop"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "b to stop following the dropped catalog", func() bool { return !b.svc.Following("shop") })
}
