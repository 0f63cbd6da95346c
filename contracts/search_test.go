package contracts_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// A filter condition round-trips: an exact match as a plain string, other
// operators as an object; numbers come as JSON numbers or numeric strings.
func TestFilterJSON(t *testing.T) {
	var f contracts.Filter
	in := `{"brand":"Bosch","price":{"$gte":"10","$lt":99.5},"color":{"$in":["red",7]},"size":{"$ne":"XL","$nin":["S"]}}`
	if err := json.Unmarshal([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	if err := (&contracts.SearchOptions{Filter: f}).Validate(10, nil, contracts.DefaultCatalogLimits); err != nil {
		t.Fatal(err)
	}
	if *f["brand"].Eq != "Bosch" || *f["price"].Gte != 10 || *f["price"].Lt != 99.5 || f["color"].In[1] != "7" || *f["size"].Ne != "XL" {
		t.Fatalf("decoded %+v", f)
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"brand":"Bosch","color":{"$in":["red","7"]},"price":{"$gte":10,"$lt":99.5},"size":{"$ne":"XL","$nin":["S"]}}`
	if string(out) != want {
		t.Fatalf("encoded %s, want %s", out, want)
	}
	for _, tc := range []struct {
		meta map[string]string
		want bool
	}{
		{map[string]string{"brand": "Bosch", "price": "50", "color": "red"}, true},
		{map[string]string{"brand": "Bosch", "price": "99.5", "color": "red"}, false},  // $lt is strict
		{map[string]string{"brand": "Bosch", "price": "cheap", "color": "red"}, false}, // not a number: no match
		{map[string]string{"brand": "Bosch", "price": "50", "color": "7", "size": "XL"}, false},
		{map[string]string{"brand": "Bosch", "price": "50", "color": "7", "size": "M"}, true},
		{map[string]string{"price": "50", "color": "red"}, false}, // a missing key fails $eq
	} {
		if got := f.Match(tc.meta); got != tc.want {
			t.Errorf("Match(%v) = %v, want %v", tc.meta, got, tc.want)
		}
	}
}

// Search options outside a catalog request are refused, naming the option.
func TestSearchOptionsNeedACatalog(t *testing.T) {
	_, err := contracts.DecodeRequest([]byte(`{"query":"x","product_descriptions":["a"],"mode":"keyword"}`), contracts.DefaultLimits)
	if e := contracts.AsError(err); e == nil || e.Field != "mode" || e.Code != contracts.CodeInvalidRequest {
		t.Fatalf("err = %v, want invalid_request on mode", err)
	}
	r, err := contracts.DecodeRequest([]byte(`{"query":"x","catalog":"shop","mode":"hybrid","explain":true,"filter":{"brand":"Bosch"}}`), contracts.DefaultLimits)
	if err != nil || r.Mode != "hybrid" || !r.Explain || *r.Filter["brand"].Eq != "Bosch" {
		t.Fatalf("request %+v, %v", r, err)
	}
}

// A condition that failed to decode does not encode as something else.
func TestBadConditionDoesNotEncode(t *testing.T) {
	var f contracts.Filter
	if err := json.Unmarshal([]byte(`{"price":{"$gt":"cheap"}}`), &f); err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(f); err == nil || !strings.Contains(err.Error(), "$gt") {
		t.Fatalf("encoding a bad condition: %v, want an error naming $gt", err)
	}
}
