package contracts_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

var catalogCases = []struct {
	name  string
	body  string
	want  error // nil: valid
	field string
}{
	{"valid", `{"catalog":"shop","products":[{"id":"a","description":"x","metadata":{"k":"v"}}]}`, nil, ""},
	{"bad name", `{"catalog":"a b","products":[{"id":"a","description":"x"}]}`, contracts.ErrInvalidRequest, "catalog"},
	{"no products", `{"catalog":"shop","products":[]}`, contracts.ErrInvalidRequest, "products"},
	{"empty id", `{"catalog":"shop","products":[{"id":"","description":"x"}]}`, contracts.ErrInvalidRequest, "products[0].id"},
	{"long id", `{"catalog":"shop","products":[{"id":"` + strings.Repeat("i", 257) + `","description":"x"}]}`, contracts.ErrInvalidRequest, "products[0].id"},
	{"duplicate id", `{"catalog":"shop","products":[{"id":"a","description":"x"},{"id":"a","description":"y"}]}`, contracts.ErrInvalidRequest, "products[1].id"},
	{"blank description", `{"catalog":"shop","products":[{"id":"a","description":"  "}]}`, contracts.ErrInvalidRequest, "products[0].description"},
	{"empty metadata key", `{"catalog":"shop","products":[{"id":"a","description":"x","metadata":{"":"v"}}]}`, contracts.ErrInvalidRequest, "products[0].metadata"},
	{"metadata not strings", `{"catalog":"shop","products":[{"id":"a","description":"x","metadata":{"k":1}}]}`, contracts.ErrInvalidRequest, "products.metadata"},
	{"unknown field", `{"catalog":"shop","products":[],"extra":1}`, contracts.ErrInvalidRequest, "extra"},
	{"not json", `{"catalog":`, contracts.ErrMalformedJSON, ""},
}

func TestUpsertRequestValidation(t *testing.T) {
	for _, tt := range catalogCases {
		t.Run(tt.name, func(t *testing.T) {
			var req contracts.UpsertRequest
			err := contracts.DecodeCatalog([]byte(tt.body), 1<<20, &req)
			if err == nil {
				err = req.Validate(contracts.DefaultCatalogLimits, contracts.DefaultLimits)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			var e *contracts.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Field != tt.field {
				t.Fatalf("err = %#v, want %v on field %q", err, tt.want, tt.field)
			}
		})
	}
}

func TestTooManyProductsIs413(t *testing.T) {
	lim := contracts.DefaultCatalogLimits
	lim.MaxProductsPerCall = 2
	req := contracts.UpsertRequest{Catalog: "c", Products: []contracts.Product{{ID: "a", Description: "x"}, {ID: "b", Description: "x"}, {ID: "c", Description: "x"}}}
	err := req.Validate(lim, contracts.DefaultLimits)
	var e *contracts.Error
	if !errors.As(err, &e) || e.Code.HTTPStatus() != 413 || e.Limit != 2 || e.Field != "products" {
		t.Fatalf("err = %#v, want 413 payload_too_large with limit 2 on products", err)
	}
}

func TestSearchAndPredictWithCatalog(t *testing.T) {
	tests := []struct {
		name  string
		req   contracts.SearchRequest
		field string
	}{
		{"valid", contracts.SearchRequest{Catalog: "c", Query: contracts.Queries{"q"}}, ""},
		{"no query", contracts.SearchRequest{Catalog: "c"}, "query"},
		{"top_k zero", contracts.SearchRequest{Catalog: "c", Query: contracts.Queries{"q"}, TopK: new(0)}, "top_k"},
		{"top_k over", contracts.SearchRequest{Catalog: "c", Query: contracts.Queries{"q"}, TopK: new(1001)}, "top_k"},
		{"bad filter", contracts.SearchRequest{Catalog: "c", Query: contracts.Queries{"q"}, SearchOptions: contracts.SearchOptions{Filter: contracts.Filter{"": contracts.Equals("x")}}}, "filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate(contracts.DefaultCatalogLimits, contracts.DefaultLimits)
			var e *contracts.Error
			if tt.field == "" && err != nil || tt.field != "" && (!errors.As(err, &e) || e.Field != tt.field) {
				t.Fatalf("err = %v, want field %q", err, tt.field)
			}
		})
	}
	// /predict names a catalog or carries descriptions, never both.
	if _, err := contracts.DecodeRequest([]byte(`{"query":"q","catalog":"c"}`), contracts.DefaultLimits); err != nil {
		t.Fatalf("predict with catalog refused: %v", err)
	}
	_, err := contracts.DecodeRequest([]byte(`{"query":"q","catalog":"c","product_descriptions":["x"]}`), contracts.DefaultLimits)
	var e *contracts.Error
	if !errors.As(err, &e) || e.Field != "catalog" {
		t.Fatalf("both catalog and descriptions: err = %v, want field catalog", err)
	}
	// A catalog match carries its id on the wire; an inline one does not.
	b, _ := json.Marshal(contracts.Match{Index: 0, Description: "d", Score: 1})
	if strings.Contains(string(b), `"id"`) {
		t.Errorf("inline match carries an id: %s", b)
	}
}

// FuzzDecodeCatalog: no input crashes the catalog decoder or its
// validation, and every refusal is an *Error with a code.
func FuzzDecodeCatalog(f *testing.F) {
	for _, tt := range catalogCases {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var up contracts.UpsertRequest
		err := contracts.DecodeCatalog(data, 1<<16, &up)
		if err == nil {
			err = up.Validate(contracts.DefaultCatalogLimits, contracts.DefaultLimits)
		}
		if err != nil {
			var e *contracts.Error
			if !errors.As(err, &e) || e.Code == "" {
				t.Fatalf("error without a code: %#v", err)
			}
		}
		var s contracts.SearchRequest
		if contracts.DecodeCatalog(data, 1<<16, &s) == nil {
			_ = s.Validate(contracts.DefaultCatalogLimits, contracts.DefaultLimits)
		}
	})
}
