package catalog_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/catalog"
)

// drills is a catalog of products that differ by model number, brand, voltage and price.
var drills = []contracts.Product{
	{ID: "d1", Description: "DeWalt DCD771C2 20V MAX cordless drill/driver kit, 1/2-inch chuck", Metadata: map[string]string{"brand": "DeWalt", "category": "drills", "price": "99", "family": "dcd"}},
	{ID: "d2", Description: "DeWalt DCD777C2 20V MAX brushless cordless drill/driver kit, 1/2-inch chuck", Metadata: map[string]string{"brand": "DeWalt", "category": "drills", "price": "139", "family": "dcd"}},
	{ID: "d3", Description: "DeWalt DCD791D2 20V MAX XR brushless compact drill/driver kit", Metadata: map[string]string{"brand": "DeWalt", "category": "drills", "price": "179", "family": "dcd"}},
	{ID: "d4", Description: "Bosch GSR12V-300FCB22 12V max FlexiClick 5-in-1 drill/driver system", Metadata: map[string]string{"brand": "Bosch", "category": "drills", "price": "199"}},
	{ID: "d5", Description: "Makita XFD131 18V LXT brushless cordless 1/2-inch driver-drill kit", Metadata: map[string]string{"brand": "Makita", "category": "drills", "price": "169"}},
	{ID: "d6", Description: "Milwaukee 2801-20 M18 compact brushless 1/2-inch drill/driver, tool only", Metadata: map[string]string{"brand": "Milwaukee", "category": "drills", "price": "n/a"}},
	{ID: "s1", Description: "DeWalt DCS391B 20V MAX 6-1/2-inch cordless circular saw, tool only", Metadata: map[string]string{"brand": "DeWalt", "category": "saws", "price": "129"}},
	{ID: "s2", Description: "Makita XSS02Z 18V LXT 6-1/2-inch cordless circular saw", Metadata: map[string]string{"brand": "Makita", "category": "saws", "price": "149"}},
	{ID: "h1", Description: "Estwing E3-16C 16 oz curved claw hammer with shock reduction grip", Metadata: map[string]string{"brand": "Estwing", "category": "hammers", "price": "35"}},
}

func ids(ms []contracts.CatalogMatch) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// A query that is only a model number: keyword and hybrid find the product
// first; the dense result is logged beside them.
func TestModelNumberSearch(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), nil)
	c, ctx := n.client, ctxT(t)
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "tools", Products: drills}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ query, want string }{{"DCD771C2", "d1"}, {"dcd777c2", "d2"}, {"XFD131", "d5"}, {"GSR12V-300FCB22", "d4"}, {"2801-20", "d6"}} {
		ranks := map[string][]string{}
		for _, mode := range []string{contracts.ModeDense, contracts.ModeKeyword, contracts.ModeHybrid} {
			res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "tools", Query: contracts.Queries{q.query}, TopK: ptr(3),
				SearchOptions: contracts.SearchOptions{Mode: mode}})
			if err != nil {
				t.Fatalf("%s %q: %v", mode, q.query, err)
			}
			ranks[mode] = ids(res.Results[0].Matches)
		}
		t.Logf("%-16s dense %v keyword %v hybrid %v", q.query, ranks["dense"], ranks["keyword"], ranks["hybrid"])
		for _, mode := range []string{contracts.ModeKeyword, contracts.ModeHybrid} {
			if len(ranks[mode]) == 0 || ranks[mode][0] != q.want {
				t.Errorf("%s search for %q ranks %v, want %s first", mode, q.query, ranks[mode], q.want)
			}
		}
	}
}

// Explain, RRF, pages, count, facets, group_by and every filter operator
// through NATS, the processor and the real model.
func TestSearchOptions(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), nil)
	c, ctx := n.client, ctxT(t)
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "tools", Products: drills}); err != nil {
		t.Fatal(err)
	}
	search := func(query string, k int, o contracts.SearchOptions) contracts.CatalogResult {
		t.Helper()
		res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "tools", Query: contracts.Queries{query}, TopK: ptr(k), SearchOptions: o})
		if err != nil {
			t.Fatal(err)
		}
		return res.Results[0]
	}

	t.Run("hybrid explain is RRF of both ranks", func(t *testing.T) {
		r := search("DeWalt brushless drill", 5, contracts.SearchOptions{Mode: contracts.ModeHybrid, Explain: true})
		both := 0
		for _, m := range r.Matches {
			e := m.Explain
			if e == nil {
				t.Fatalf("%s has no explain", m.ID)
			}
			want := 0.0
			if e.DenseRank != nil {
				want += 1 / float64(60+*e.DenseRank)
			}
			if e.KeywordRank != nil {
				want += 1 / float64(60+*e.KeywordRank)
				both++
			}
			if m.Score != want {
				t.Errorf("%s: score %v, want 1/(60+dense rank) + 1/(60+keyword rank) = %v (%+v)", m.ID, m.Score, want, e)
			}
		}
		if both == 0 {
			t.Errorf("no match has a keyword rank: %+v", r.Matches)
		}
		r = search("DCD771C2", 9, contracts.SearchOptions{Mode: contracts.ModeHybrid, Explain: true})
		for _, m := range r.Matches {
			if m.ID != "d1" && m.Explain.KeywordRank != nil {
				t.Errorf("%s holds no DCD771C2 but has keyword rank %d", m.ID, *m.Explain.KeywordRank)
			}
			if m.Explain.DenseRank == nil {
				t.Errorf("%s: every product is a dense candidate", m.ID)
			}
		}
	})

	t.Run("pages continue each other", func(t *testing.T) {
		all := search("cordless tool", 9, contracts.SearchOptions{})
		var paged []contracts.CatalogMatch
		for off := 0; off < 9; off += 2 {
			paged = append(paged, search("cordless tool", 2, contracts.SearchOptions{Offset: off}).Matches...)
		}
		if !slices.EqualFunc(all.Matches, paged, func(a, b contracts.CatalogMatch) bool { return a.ID == b.ID && a.Score == b.Score }) {
			t.Fatalf("pages %v, one page %v", ids(paged), ids(all.Matches))
		}
	})

	t.Run("count and facets", func(t *testing.T) {
		r := search("cordless", 2, contracts.SearchOptions{Count: true, Facets: []string{"brand", "category"}, Filter: contracts.Filter{"category": {In: []string{"drills", "saws"}}}})
		if r.Total == nil || *r.Total != 8 {
			t.Fatalf("total %v, want 8 (drills and saws)", r.Total)
		}
		want := map[string]int{"DeWalt": 4, "Bosch": 1, "Makita": 2, "Milwaukee": 1}
		if fmt.Sprint(r.Facets["brand"]) != fmt.Sprint(want) || r.Facets["category"]["saws"] != 2 {
			t.Fatalf("facets %v", r.Facets)
		}
		r = search("DeWalt", 5, contracts.SearchOptions{Mode: contracts.ModeKeyword, Count: true, Facets: []string{"category"}})
		if *r.Total != 4 || r.Facets["category"]["drills"] != 3 || r.Facets["category"]["saws"] != 1 {
			t.Fatalf("keyword total %d facets %v, want 4: 3 drills, 1 saw", *r.Total, r.Facets)
		}
	})

	t.Run("group_by", func(t *testing.T) {
		r := search("drill", 9, contracts.SearchOptions{GroupBy: "brand", Filter: contracts.Filter{"category": contracts.Equals("drills")}})
		if len(r.Matches) != 4 {
			t.Fatalf("%d groups %v, want one per brand: DeWalt, Bosch, Makita, Milwaukee", len(r.Matches), ids(r.Matches))
		}
		for _, m := range r.Matches {
			if want := map[string]int{"DeWalt": 3}[m.Metadata["brand"]]; m.GroupSize != max(want, 1) {
				t.Errorf("%s (%s): group_size %d", m.ID, m.Metadata["brand"], m.GroupSize)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			filter contracts.Filter
			want   []string
		}{
			{"string", contracts.Filter{"brand": contracts.Equals("Makita")}, []string{"d5", "s2"}},
			{"$eq", contracts.Filter{"brand": {Eq: ptr("Bosch")}}, []string{"d4"}},
			{"$in", contracts.Filter{"brand": {In: []string{"Bosch", "Estwing"}}}, []string{"d4", "h1"}},
			{"$ne", contracts.Filter{"category": {Ne: ptr("drills")}}, []string{"h1", "s1", "s2"}},
			{"$nin", contracts.Filter{"category": {Nin: []string{"drills", "saws"}}}, []string{"h1"}},
			{"$gt", contracts.Filter{"price": {Gt: ptr(169.0)}}, []string{"d3", "d4"}},
			{"$gte", contracts.Filter{"price": {Gte: ptr(169.0)}}, []string{"d3", "d4", "d5"}},
			{"$lt", contracts.Filter{"price": {Lt: ptr(99.0)}}, []string{"h1"}},
			{"$lte and $gte", contracts.Filter{"price": {Gte: ptr(99.0), Lte: ptr(130.0)}}, []string{"d1", "s1"}},
			{"two keys", contracts.Filter{"brand": contracts.Equals("DeWalt"), "price": {Lt: ptr(150.0)}}, []string{"d1", "d2", "s1"}},
			{"missing key", contracts.Filter{"family": {Ne: ptr("dcd")}}, []string{"d4", "d5", "d6", "h1", "s1", "s2"}},
		} {
			for _, mode := range []string{contracts.ModeDense, contracts.ModeHybrid} {
				r := search("tool", 9, contracts.SearchOptions{Mode: mode, Filter: tc.filter, Count: true})
				got := ids(r.Matches)
				slices.Sort(got)
				if !slices.Equal(got, tc.want) || *r.Total != len(tc.want) {
					t.Errorf("%s (%s): %v total %d, want %v", tc.name, mode, got, *r.Total, tc.want)
				}
			}
		}
	})

	t.Run("refusals name the field", func(t *testing.T) {
		for _, tc := range []struct {
			body, field string
		}{
			{`{"catalog":"tools","query":"x","filter":{"price":{"$gt":"cheap"}}}`, "filter.price.$gt"},
			{`{"catalog":"tools","query":"x","filter":{"price":{"$between":[1,2]}}}`, "filter.price.$between"},
			{`{"catalog":"tools","query":"x","filter":{"brand":{"$in":"Bosch"}}}`, "filter.brand.$in"},
			{`{"catalog":"tools","query":"x","filter":{"brand":7}}`, "filter.brand"},
			{`{"catalog":"tools","query":"x","mode":"semantic"}`, "mode"},
			{`{"catalog":"tools","query":"x","mode":"keyword","threshold":0.5}`, "threshold"},
			{`{"catalog":"tools","query":"x","fusion":"rrf"}`, "fusion"},
			{`{"catalog":"tools","query":"x","mode":"hybrid","fusion":"weighted","alpha":1.5}`, "alpha"},
			{`{"catalog":"tools","query":"x","mode":"hybrid","top_k":10,"offset":995}`, "offset"},
			{`{"catalog":"tools","query":"x","offset":-1}`, "offset"},
		} {
			var req contracts.SearchRequest
			err := contracts.DecodeCatalog([]byte(tc.body), 1<<20, &req)
			if err == nil {
				err = req.Validate(contracts.DefaultCatalogLimits, contracts.DefaultLimits)
			}
			if err == nil {
				_, err = c.SearchCatalog(ctx, &req) // the processor checks too
			}
			var e *contracts.Error
			if !errors.As(err, &e) || e.Code != contracts.CodeInvalidRequest || e.Field != tc.field {
				t.Errorf("%s: %v, want invalid_request on %s", tc.body, err, tc.field)
			}
		}
	})
}

// A restarted processor loads the keyword index from JetStream with the
// products: a keyword search after the restart embeds nothing.
func TestKeywordIndexSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	{
		ns := testenv.StartNATS(t, testenv.WithJetStream(t, dir))
		a := startNode(t, ns.ClientURL(), nil)
		if _, err := a.client.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "tools", Products: drills}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.client.DeleteProduct(ctx, &contracts.ProductRequest{Catalog: "tools", ID: "d2"}); err != nil {
			t.Fatal(err)
		}
		a.stop(t)
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, dir))
	b := startNode(t, ns.ClientURL(), nil)
	res, err := b.client.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "tools", Query: contracts.Queries{"DCD771C2 DCD777C2"}, TopK: ptr(5),
		SearchOptions: contracts.SearchOptions{Mode: contracts.ModeKeyword}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Results[0].Matches); !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("keyword search after the restart: %v, want [d1] (d2 was deleted)", got)
	}
	if n := b.emb.Texts.Load(); n != 0 {
		t.Fatalf("the restarted processor embedded %d texts; a keyword search needs none", n)
	}
	list, err := b.client.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil || list.Catalogs[0].KeywordBytes <= 0 {
		t.Fatalf("list: %+v, %v; want the keyword index's memory", list, err)
	}
}

// A catalog configured int8 through the real stack: the int8 matrix is a
// quarter of the float32 one, and search answers the exact scores of
// /predict with the descriptions inline.
func TestInt8Catalog(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	n := startNode(t, ns.ClientURL(), func(c *catalog.Config) { c.Int8, c.Int8Dir = []string{"tools"}, t.TempDir() })
	c, ctx := n.client, ctxT(t)
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: "tools", Products: drills}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListCatalogs(ctx, &contracts.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info := list.Catalogs[0]; info.Matrix != "int8" || info.MatrixBytes != int64(len(drills))*(384+4+8) {
		t.Fatalf("catalog %+v, want an int8 matrix of %d bytes", info, len(drills)*(384+12))
	}
	descs := make([]string, len(drills))
	for i, p := range drills {
		descs[i] = p.Description
	}
	query := contracts.Queries{"a cordless drill for wood", "something to drive nails"}
	inline, err := c.Match(ctx, &contracts.Request{Query: query, ProductDescriptions: descs, TopK: ptr(3)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.SearchCatalog(ctx, &contracts.SearchRequest{Catalog: "tools", Query: query, TopK: ptr(3), Threshold: ptr(0.1),
		SearchOptions: contracts.SearchOptions{Explain: true}})
	if err != nil {
		t.Fatal(err)
	}
	for q := range query {
		for i, w := range inline.Results[q].Matches {
			got := res.Results[q].Matches[i]
			if got.ID != drills[w.Index].ID || got.Score != w.Score || got.Explain.Dense != w.Score {
				t.Errorf("query %q rank %d: int8 catalog gives %s %v (explain %v), inline gives %s %v", query[q], i, got.ID, got.Score, got.Explain.Dense, drills[w.Index].ID, w.Score)
			}
		}
	}
}
