package catalog_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
