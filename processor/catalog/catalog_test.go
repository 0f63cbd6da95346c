package catalog_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/catalog"
)

func TestUpsertSearchDeleteRoundTrip(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), nil)
	c, ctx := n.client, ctxT(t)

	up, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop})
	if err != nil {
		t.Fatal(err)
	}
	if up.Upserted != len(shop) || up.Sequence != uint64(len(shop)) {
		t.Fatalf("upsert = %+v, want %d products at sequence %d", up, len(shop), len(shop))
	}
	// The timing headers are the model's time for the embeddings the
	// operation used.
	if !up.Timing.Known || up.Timing.Inference <= 0 {
		t.Errorf("upsert timing %+v; want the inference of its descriptions", up.Timing)
	}
	res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"a tool to drive nails", "make coffee"}, TopK: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Timing.Known || res.Timing.Inference <= 0 {
		t.Errorf("search timing %+v; want the inference of its queries", res.Timing)
	}
	if got := res.Results[0].Matches[0].ID; got != "hammer" {
		t.Errorf("best match for nails = %q, want hammer", got)
	}
	if got := res.Results[1].Matches[0]; got.ID != "espresso" || got.Metadata["dept"] != "kitchen" {
		t.Errorf("best match for coffee = %+v, want espresso with its metadata", got)
	}
	if len(res.Results[0].Matches) != 2 || res.Model.Name != "all-MiniLM-L6-v2" {
		t.Errorf("got %d matches, model %+v; want 2, all-MiniLM-L6-v2", len(res.Results[0].Matches), res.Model)
	}

	got, err := c.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "saw"})
	if err != nil || got.Product.Description != shop[1].Description {
		t.Fatalf("get saw = %+v, %v", got, err)
	}
	del, err := c.DeleteProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "hammer"})
	if err != nil || !del.Deleted || del.Sequence <= up.Sequence {
		t.Fatalf("delete = %+v, %v; want deleted at a later sequence", del, err)
	}
	if _, err := c.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "hammer"}); !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("get after delete: err = %v, want not_found", err)
	}
	res, err = c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"a tool to drive nails"}, TopK: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Results[0].Matches {
		if m.ID == "hammer" {
			t.Fatal("a deleted product was found")
		}
	}
	if len(res.Results[0].Matches) != len(shop)-1 {
		t.Errorf("%d matches after delete, want %d", len(res.Results[0].Matches), len(shop)-1)
	}

	list, err := c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Catalogs) != 1 || list.Catalogs[0].Products != len(shop)-1 || list.Catalogs[0].Model.Version != "1" || list.Catalogs[0].MatrixBytes == 0 {
		t.Fatalf("list = %+v", list)
	}
	if _, err := c.DropCatalog(ctx, &contracts.DropRequest{Catalog: "shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"x"}}); !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("search after drop: err = %v, want not_found", err)
	}
	if _, err := c.DropCatalog(ctx, &contracts.DropRequest{Catalog: "shop"}); !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("second drop: err = %v, want not_found", err)
	}
}

func TestFiltersAndThreshold(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), nil)
	c, ctx := n.client, ctxT(t)
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop}); err != nil {
		t.Fatal(err)
	}
	res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"a tool to drive nails"},
		TopK: ptr(10), SearchOptions: contracts.SearchOptions{Filter: contracts.Filter{"dept": contracts.Equals("garden")}}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, m := range res.Results[0].Matches {
		ids = append(ids, m.ID)
		if m.Metadata["dept"] != "garden" {
			t.Errorf("filter dept=garden let %s (%v) through", m.ID, m.Metadata)
		}
	}
	if len(ids) != 2 {
		t.Errorf("filter dept=garden found %v, want hose and rake", ids)
	}
	res, err = c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"a tool to drive nails"},
		SearchOptions: contracts.SearchOptions{Filter: contracts.Filter{"dept": contracts.Equals("toys")}}})
	if err != nil || len(res.Results[0].Matches) != 0 {
		t.Fatalf("filter with no product: %+v, %v; want no matches", res, err)
	}
	all, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"a tool to drive nails"}, TopK: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	th := all.Results[0].Matches[2].Score
	res, err = c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"a tool to drive nails"}, TopK: ptr(10), Threshold: &th})
	if err != nil || len(res.Results[0].Matches) != 3 {
		t.Fatalf("threshold at the third score kept %+v, %v; want 3 matches", res, err)
	}
}

func TestLimitsAndErrors(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), func(c *catalog.Config) {
		c.MaxProducts = 4
		c.Limits = contracts.DefaultCatalogLimits
		c.Limits.MaxProductsPerCall = 3
	})
	c, ctx := n.client, ctxT(t)
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop[:3]}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		call  func() error
		want  error
		field string
	}{
		{"unknown catalog", func() error {
			_, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "nope", Query: contracts.Queries{"x"}})
			return err
		}, contracts.ErrNotFound, "catalog"},
		{"unknown product", func() error {
			_, err := c.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: "nope"})
			return err
		}, contracts.ErrNotFound, "id"},
		{"bad catalog name", func() error {
			_, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "a.b", Query: contracts.Queries{"x"}})
			return err
		}, contracts.ErrInvalidRequest, "catalog"},
		{"empty id", func() error {
			_, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: []contracts.Product{{Description: "x"}}})
			return err
		}, contracts.ErrInvalidRequest, "products[0].id"},
		{"long id", func() error {
			_, err := c.GetProduct(ctx, &contracts.ProductRequest{Catalog: "shop", ID: strings.Repeat("x", 257)})
			return err
		}, contracts.ErrInvalidRequest, "id"},
		{"duplicate id", func() error {
			_, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: []contracts.Product{shop[0], shop[0]}})
			return err
		}, contracts.ErrInvalidRequest, "products[1].id"},
		{"too many per call", func() error {
			_, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop[:4]})
			return err
		}, contracts.ErrPayloadTooLarge, "products"},
		{"catalog full", func() error {
			_, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "shop", Products: shop[3:5]})
			return err
		}, contracts.ErrInvalidRequest, "products"},
		{"top_k over limit", func() error {
			_, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "shop", Query: contracts.Queries{"x"}, TopK: ptr(1001)})
			return err
		}, contracts.ErrInvalidRequest, "top_k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *contracts.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Field != tt.field {
				t.Fatalf("err = %#v, want %v on field %q", err, tt.want, tt.field)
			}
		})
	}
	// The refused upserts wrote nothing.
	list, err := c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil || list.Catalogs[0].Products != 3 {
		t.Fatalf("after refused upserts: %+v, %v; want 3 products", list, err)
	}
}

// Any id is stored safely: dots, spaces and wildcards are subject
// separators in NATS, but the id travels base64-encoded.
func TestIDsWithSubjectCharacters(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), nil)
	c, ctx := n.client, ctxT(t)
	ids := []string{"a.b", "*", ">", "with space", "ünï/cödé"}
	var ps []contracts.Product
	for i, id := range ids {
		ps = append(ps, contracts.Product{ID: id, Description: fmt.Sprintf("product number %d", i)})
	}
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "odd", Products: ps}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		got, err := c.GetProduct(ctx, &contracts.ProductRequest{Catalog: "odd", ID: id})
		if err != nil || got.Product.ID != id {
			t.Errorf("get %q = %+v, %v", id, got, err)
		}
	}
}
