package catalog_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/catalog"
)

// A catalog's stream carries the configured MaxBytes and DiscardNew: an
// upsert past it is refused naming the setting, the products already stored
// stay; a stream without a limit (made before there were limits) gets one
// when a processor follows it.
func TestCatalogStreamMaxBytes(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	// A record is ~1.7 KB (384 float32s and the JSON): 3 fit, not 6.
	const limit = 5000
	n := startNode(t, ns.ClientURL(), func(c *catalog.Config) { c.MaxBytes = limit })
	c, ctx := n.client, ctxT(t)
	js := jetStream(t, ns.ClientURL())

	_, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop})
	if !errors.Is(err, contracts.ErrInsufficientStorage) || !strings.Contains(err.Error(), catalog.SettingMaxBytes) {
		t.Fatalf("upsert past the limit: err = %v, want insufficient_storage naming %s", err, catalog.SettingMaxBytes)
	}
	if s := contracts.CodeInsufficientStorage.HTTPStatus(); s != 507 {
		t.Errorf("insufficient_storage is HTTP %d, want 507", s)
	}
	st, err := js.Stream(ctx, "SIMMATCH_CATALOG_shop")
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.MaxBytes != limit || info.Config.Discard != jetstream.DiscardNew {
		t.Fatalf("stream MaxBytes %d, discard %v; want %d, DiscardNew", info.Config.MaxBytes, info.Config.Discard, limit)
	}
	if info.State.Msgs == 0 || info.State.Bytes > limit {
		t.Fatalf("stream holds %d messages, %d bytes; want the first products within %d bytes", info.State.Msgs, info.State.Bytes, limit)
	}
	// The products stored before the refusal are searchable.
	res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"hammer"}, TopK: ptr(10)})
	if err != nil || len(res.Results[0].Matches) != int(info.State.Msgs) {
		t.Fatalf("search after the refusal = %+v, %v; want the %d products stored", res, err, info.State.Msgs)
	}

	// A stream without a limit gets one when a processor starts following it.
	n.stop(t)
	cfg := info.Config
	cfg.MaxBytes, cfg.Discard = -1, jetstream.DiscardOld
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	startNode(t, ns.ClientURL(), func(c *catalog.Config) { c.MaxBytes = 1 << 20 })
	testenv.WaitFor(t, 30*time.Second, "the stream bounded by the new processor", func() bool {
		st, err := js.Stream(ctx, "SIMMATCH_CATALOG_shop")
		return err == nil && st.CachedInfo().Config.MaxBytes == 1<<20 && st.CachedInfo().Config.Discard == jetstream.DiscardNew
	})
}

// A processor whose catalog memory budget holds one of two catalogs loads
// the smaller at start, reports the other as not loaded (and answers it 507
// naming the budget), refuses writes past the budget, and keeps serving.
func TestCatalogMemoryBudget(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a := startNode(t, ns.ClientURL(), nil)
	c, ctx := a.client, ctxT(t)
	for name, ps := range map[string][]contracts.Product{"small": shop[:2], "big": shop} {
		if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: name, Products: ps}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	mem := map[string]int64{}
	for _, ci := range l.Catalogs {
		mem[ci.Name] = ci.MatrixBytes + ci.KeywordBytes
	}
	a.stop(t)

	// Room for big alone, or small alone, not both: smallest first loads
	// small (big, measured once loaded, does not fit beside it).
	budget := mem["big"] + mem["small"]/2
	b := startNode(t, ns.ClientURL(), func(c *catalog.Config) { c.MemoryBytes = budget })
	testenv.WaitFor(t, 30*time.Second, "the catalogs listed, small loaded and big not", func() bool {
		st := b.svc.State()
		return st.Listed && len(st.Loading) == 0 && st.Following == 1 && slices.Equal(st.NotLoaded, []string{"big"})
	})
	if !b.svc.Following("small") || b.svc.MemoryBytes() != mem["small"] {
		t.Fatalf("following small %v, memory %d; want small held in %d bytes", b.svc.Following("small"), b.svc.MemoryBytes(), mem["small"])
	}
	if _, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "small", Query: contracts.Queries{"hammer"}}); err != nil {
		t.Fatalf("search small: %v", err)
	}
	_, err = c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "big", Query: contracts.Queries{"hammer"}})
	if !errors.Is(err, contracts.ErrInsufficientStorage) || !strings.Contains(err.Error(), catalog.SettingMemoryBytes) {
		t.Fatalf("search big: err = %v, want insufficient_storage naming %s", err, catalog.SettingMemoryBytes)
	}
	// The list still answers, saying which catalog is not loaded here.
	l, err = c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil || len(l.Catalogs) != 2 || l.Catalogs[0].Name != "big" || l.Catalogs[0].Matrix != "not_loaded" || l.Catalogs[1].Matrix != "fp32" {
		t.Fatalf("list = %+v, %v; want big not_loaded and small fp32", l, err)
	}
	// Writes past the budget: into a loaded catalog, and a new one.
	more := make([]contracts.Product, 12)
	for i := range more {
		more[i] = contracts.Product{ID: fmt.Sprintf("more-%d", i), Description: shop[i%len(shop)].Description}
	}
	for _, name := range []string{"small", "third"} {
		_, err = c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: name, Products: more})
		if !errors.Is(err, contracts.ErrInsufficientStorage) || !strings.Contains(err.Error(), catalog.SettingMemoryBytes) {
			t.Fatalf("upsert %d products into %s: err = %v, want insufficient_storage naming %s", len(more), name, err, catalog.SettingMemoryBytes)
		}
	}
	// Dropping small makes room: big loads on its next request.
	if _, err := c.DropCatalog(ctx, &contracts.DropRequest{Catalog: "small"}); err != nil {
		t.Fatal(err)
	}
	res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "big", Query: contracts.Queries{"hammer"}})
	if err != nil || res.Results[0].Matches[0].ID != "hammer" {
		t.Fatalf("search big after small was dropped = %+v, %v", res, err)
	}
	if st := b.svc.State(); len(st.NotLoaded) != 0 {
		t.Fatalf("not loaded %v after big loaded", st.NotLoaded)
	}
}

func jetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// budgetProducts are n products with distinct descriptions.
func budgetProducts(prefix string, n int) []contracts.Product {
	ps := make([]contracts.Product, n)
	for i := range ps {
		ps[i] = contracts.Product{ID: fmt.Sprintf("%s-%d", prefix, i), Description: fmt.Sprintf("%s, model %d", shop[i%len(shop)].Description, i)}
	}
	return ps
}

// catalogMemory is what a catalog takes in memory, as the list says.
func catalogMemory(t *testing.T, c *contracts.Client, name string) int64 {
	t.Helper()
	l, err := c.ListCatalogs(ctxT(t), &contracts.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range l.Catalogs {
		if ci.Name == name {
			return ci.MatrixBytes + ci.KeywordBytes
		}
	}
	t.Fatalf("catalog %s not listed: %+v", name, l.Catalogs)
	return 0
}

// Two concurrent upserts into one processor, each within its memory budget
// but not both: exactly one passes (the bytes of the first are reserved
// before it is embedded), and the processor stays within the budget.
func TestCatalogMemoryBudgetConcurrentUpserts(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	ps := budgetProducts("p", 40)
	probe := startNode(t, ns.ClientURL(), nil)
	ctx := ctxT(t)
	if _, err := probe.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "probe", Products: ps}); err != nil {
		t.Fatal(err)
	}
	one := catalogMemory(t, probe.client, "probe")
	if _, err := probe.svc.Drop(ctx, &contracts.DropRequest{Catalog: "probe"}); err != nil {
		t.Fatal(err)
	}
	probe.stop(t)

	budget := one + one/4 // one catalog of ps, not two (each is mostly float32 rows)
	n := startNode(t, ns.ClientURL(), func(c *catalog.Config) { c.MemoryBytes = budget })
	testenv.WaitFor(t, 30*time.Second, "the processor listed the catalogs", func() bool { return n.svc.State().Listed })
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, name := range []string{"one", "two"} {
		wg.Go(func() {
			_, errs[i] = n.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: name, Products: ps})
		})
	}
	wg.Wait()
	passed := 0
	for i, err := range errs {
		switch {
		case err == nil:
			passed++
		case !errors.Is(err, contracts.ErrInsufficientStorage) || !strings.Contains(err.Error(), catalog.SettingMemoryBytes):
			t.Errorf("upsert %d: err = %v, want insufficient_storage naming %s", i, err, catalog.SettingMemoryBytes)
		}
	}
	if passed != 1 {
		t.Fatalf("%d of 2 concurrent upserts passed a budget of %d bytes that holds one (%d bytes): %v", passed, budget, one, errs)
	}
	if used := n.svc.MemoryBytes(); used != one || used > budget {
		t.Fatalf("catalogs take %d bytes; want the one catalog's %d, within the budget of %d", used, one, budget)
	}
	if st := n.svc.State(); st.Following != 1 || len(st.NotLoaded) != 0 {
		t.Fatalf("state %+v; want the one catalog followed, none not loaded", st)
	}
}

// A processor that follows a catalog grown past its memory budget by writes
// taken by another processor unloads it: it reports it not loaded, answers
// its searches 507 naming the budget, stays within the budget and keeps
// serving; the writer still serves the catalog.
func TestCatalogMemoryBudgetFollowerOverBudget(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a := startNode(t, ns.ClientURL(), nil)
	ctx := ctxT(t)
	for name, ps := range map[string][]contracts.Product{"grow": shop[:2], "other": shop[2:3]} {
		if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: name, Products: ps}); err != nil {
			t.Fatal(err)
		}
	}
	small := catalogMemory(t, a.client, "grow") + catalogMemory(t, a.client, "other")

	budget := small + 768 // both as they are, not half a row more
	b := startNode(t, ns.ClientURL(), func(c *catalog.Config) { c.MemoryBytes = budget })
	testenv.WaitFor(t, 30*time.Second, "b loaded both catalogs", func() bool {
		st := b.svc.State()
		return st.Listed && st.Following == 2 && len(st.Loading) == 0 && len(st.NotLoaded) == 0
	})
	// Writes through a (whose budget is unbounded) that b's budget cannot hold.
	if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "grow", Products: budgetProducts("more", 8)}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "b unloaded grow", func() bool {
		st := b.svc.State()
		return st.Following == 1 && slices.Equal(st.NotLoaded, []string{"grow"})
	})
	if used := b.svc.MemoryBytes(); used > budget {
		t.Fatalf("b's catalogs take %d bytes, over its budget of %d", used, budget)
	}
	_, err := b.svc.Search(ctx, &contracts.SearchRequest{Catalog: "grow", Query: contracts.Queries{"hammer"}})
	if !errors.Is(err, contracts.ErrInsufficientStorage) || !strings.Contains(err.Error(), catalog.SettingMemoryBytes) {
		t.Fatalf("search grow on b: err = %v, want insufficient_storage naming %s", err, catalog.SettingMemoryBytes)
	}
	if res, err := b.svc.Search(ctx, &contracts.SearchRequest{Catalog: "other", Query: contracts.Queries{"hose"}}); err != nil || res.Results[0].Matches[0].ID != "hose" {
		t.Fatalf("search other on b = %+v, %v; want b still serving", res, err)
	}
	l, err := b.svc.List(ctx, &contracts.ListRequest{})
	if err != nil || len(l.Catalogs) != 2 || l.Catalogs[0].Name != "grow" || l.Catalogs[0].Matrix != "not_loaded" {
		t.Fatalf("b's list = %+v, %v; want grow not_loaded", l, err)
	}
	if res, err := a.svc.Search(ctx, &contracts.SearchRequest{Catalog: "grow", Query: contracts.Queries{"hammer"}, TopK: ptr(20)}); err != nil || len(res.Results[0].Matches) != 10 {
		t.Fatalf("search grow on a = %+v, %v; want its 10 products", res, err)
	}
}
