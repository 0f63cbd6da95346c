package catalog_test

import (
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// A catalog search (mode dense, the default), a /predict naming the
// catalog and a /predict carrying the same descriptions inline give the
// same scores, bit for bit, in the same order.
func TestCatalogRanksExactlyAsInlinePredict(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), nil)
	c, ctx := n.client, ctxT(t)
	// A duplicate description ties exactly: row order breaks the tie, as
	// request order does inline.
	products := append(append([]contracts.Product{}, shop...), contracts.Product{ID: "saw-2", Description: shop[1].Description})
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: products}); err != nil {
		t.Fatal(err)
	}
	descs := make([]string, len(products))
	for i, p := range products {
		descs[i] = p.Description
	}
	queries := contracts.Queries{"a tool to cut wood", "make coffee", "water the lawn"}
	inline, err := c.Match(ctx, &contracts.Request{Query: queries, ProductDescriptions: descs})
	if err != nil {
		t.Fatal(err)
	}
	byCatalog, err := c.Match(ctx, &contracts.Request{Query: queries, Catalog: "shop", TopK: ptr(len(products))})
	if err != nil {
		t.Fatal(err)
	}
	search, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: queries, TopK: ptr(len(products)),
		SearchOptions: contracts.SearchOptions{Mode: contracts.ModeDense}})
	if err != nil {
		t.Fatal(err)
	}
	for q := range queries {
		want := inline.Results[q].Matches
		got, found := byCatalog.Results[q].Matches, search.Results[q].Matches
		if len(got) != len(want) || len(found) != len(want) {
			t.Fatalf("query %q: %d and %d matches, want %d", queries[q], len(got), len(found), len(want))
		}
		for i, w := range want {
			id := products[w.Index].ID
			if got[i].ID != id || got[i].Score != w.Score || got[i].Index != i {
				t.Errorf("query %q rank %d: /predict with catalog gives %+v, inline gives %s %v", queries[q], i, got[i], id, w.Score)
			}
			if found[i].ID != id || found[i].Score != w.Score {
				t.Errorf("query %q rank %d: search gives %+v, inline gives %s %v", queries[q], i, found[i], id, w.Score)
			}
		}
	}
	if byCatalog.Results[0].Matches[0].ID != "saw" || byCatalog.Results[0].Matches[1].ID != "saw-2" {
		t.Errorf("the tie between saw and saw-2 is not broken by catalog order: %+v", byCatalog.Results[0].Matches[:2])
	}
}
