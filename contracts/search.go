package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Search modes of a catalog search (SearchOptions.Mode).
const (
	ModeDense   = "dense"   // cosine similarity of the embeddings (the default)
	ModeKeyword = "keyword" // BM25 over the description and the metadata values
	ModeHybrid  = "hybrid"  // both lists, fused (SearchOptions.Fusion)
)

// Fusions of a hybrid search (SearchOptions.Fusion).
const (
	FusionRRF      = "rrf"      // reciprocal rank fusion: sum of 1/(rrf_k + rank) (the default)
	FusionWeighted = "weighted" // alpha * dense + (1 - alpha) * keyword, each min-max normalised
)

// Defaults and bounds of the search options.
const (
	DefaultRRFK       = 60   // rrf_k when none is given
	DefaultAlpha      = 0.5  // alpha when none is given
	DefaultCandidates = 1000 // candidates (the rank window of each list) when none is given
	MaxCandidates     = 10000
	MaxOffset         = 10000 // offset + top_k stay within this window, as in Elasticsearch
	MaxFacets         = 8     // facet keys per request
	MaxFacetValues    = 100   // values returned per facet, the most frequent first
)

// SearchOptions are the catalog search options shared by catalog search and
// by /predict when it names a catalog. The zero value is a dense search of
// the first page.
type SearchOptions struct {
	// Mode is dense (default), keyword or hybrid.
	Mode string `json:"mode,omitempty"`
	// Fusion combines the two lists of a hybrid search: rrf (default) or weighted.
	Fusion string `json:"fusion,omitempty"`
	// RRFK is the k of reciprocal rank fusion; nil means DefaultRRFK.
	RRFK *int `json:"rrf_k,omitempty"`
	// Alpha is the weight of the normalised dense score in a weighted
	// fusion, between 0 and 1; nil means DefaultAlpha.
	Alpha *float64 `json:"alpha,omitempty"`
	// Candidates is how many products each list contributes to a hybrid
	// fusion (and the window in which explain reports ranks); nil means
	// DefaultCandidates. offset + top_k must stay within it.
	Candidates *int `json:"candidates,omitempty"`
	// Explain adds each match's dense and keyword scores and ranks.
	Explain bool `json:"explain,omitempty"`
	// Filter keeps only products whose metadata satisfies every condition;
	// it applies before ranking in every mode.
	Filter Filter `json:"filter,omitempty"`
	// Offset skips that many matches (or groups): with top_k, a page.
	Offset int `json:"offset,omitempty"`
	// Count adds total: the matches left after the filter and the threshold.
	Count bool `json:"count,omitempty"`
	// Facets counts, over the same matches as total, the products per value
	// of each of these metadata keys.
	Facets []string `json:"facets,omitempty"`
	// GroupBy keeps the best match per value of this metadata key; the
	// match's group_size counts the group's matches.
	GroupBy string `json:"group_by,omitempty"`
}

// IsZero reports whether o asks for nothing beyond a plain dense search.
func (o *SearchOptions) IsZero() bool {
	return o.Mode == "" && o.Fusion == "" && o.RRFK == nil && o.Alpha == nil && o.Candidates == nil && !o.Explain &&
		len(o.Filter) == 0 && o.Offset == 0 && !o.Count && len(o.Facets) == 0 && o.GroupBy == ""
}

// EffectiveMode is Mode with its default.
func (o *SearchOptions) EffectiveMode() string { return cmpOr(o.Mode, ModeDense) }

// EffectiveFusion is Fusion with its default.
func (o *SearchOptions) EffectiveFusion() string { return cmpOr(o.Fusion, FusionRRF) }

// EffectiveRRFK is RRFK with its default.
func (o *SearchOptions) EffectiveRRFK() int { return derefOr(o.RRFK, DefaultRRFK) }

// EffectiveAlpha is Alpha with its default.
func (o *SearchOptions) EffectiveAlpha() float64 { return derefOr(o.Alpha, DefaultAlpha) }

// EffectiveCandidates is Candidates with its default.
func (o *SearchOptions) EffectiveCandidates() int { return derefOr(o.Candidates, DefaultCandidates) }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// Validate checks the options of a search that keeps topK matches per page
// and may have a threshold, against lim.
func (o *SearchOptions) Validate(topK int, threshold *float64, lim CatalogLimits) error {
	switch o.Mode {
	case "", ModeDense, ModeKeyword, ModeHybrid:
	default:
		return FieldError("mode", 0, "%q is not a search mode; use dense, keyword or hybrid", o.Mode)
	}
	mode := o.EffectiveMode()
	if o.Fusion != "" || o.RRFK != nil || o.Alpha != nil {
		if mode != ModeHybrid {
			f := "fusion"
			switch {
			case o.RRFK != nil:
				f = "rrf_k"
			case o.Alpha != nil:
				f = "alpha"
			}
			return FieldError(f, 0, "applies to mode hybrid only (mode is %s)", mode)
		}
	}
	switch o.Fusion {
	case "", FusionRRF, FusionWeighted:
	default:
		return FieldError("fusion", 0, "%q is not a fusion; use rrf or weighted", o.Fusion)
	}
	if o.RRFK != nil && (*o.RRFK < 1 || *o.RRFK > 10000) {
		return FieldError("rrf_k", 10000, "must be between 1 and 10000, got %d", *o.RRFK)
	}
	if o.RRFK != nil && o.EffectiveFusion() != FusionRRF {
		return FieldError("rrf_k", 0, "applies to fusion rrf only")
	}
	if o.Alpha != nil && (math.IsNaN(*o.Alpha) || *o.Alpha < 0 || *o.Alpha > 1) {
		return FieldError("alpha", 0, "must be between 0 and 1, got %v", *o.Alpha)
	}
	if o.Alpha != nil && o.EffectiveFusion() != FusionWeighted {
		return FieldError("alpha", 0, "applies to fusion weighted only")
	}
	if o.Candidates != nil && (*o.Candidates < 1 || *o.Candidates > MaxCandidates) {
		return FieldError("candidates", MaxCandidates, "must be between 1 and %d, got %d", MaxCandidates, *o.Candidates)
	}
	if threshold != nil && mode == ModeKeyword {
		return FieldError("threshold", 0, "is a cosine similarity and applies to modes dense and hybrid; keyword scores are BM25")
	}
	if o.Offset < 0 {
		return FieldError("offset", 0, "must be at least 0, got %d", o.Offset)
	}
	if o.Offset+topK > MaxOffset {
		return FieldError("offset", MaxOffset, "offset + top_k is %d; pages reach at most the first %d matches", o.Offset+topK, MaxOffset)
	}
	if mode == ModeHybrid && o.Offset+topK > o.EffectiveCandidates() {
		return FieldError("offset", o.EffectiveCandidates(), "offset + top_k is %d, beyond the %d candidates each list gives the fusion; raise candidates", o.Offset+topK, o.EffectiveCandidates())
	}
	if len(o.Facets) > MaxFacets {
		return FieldError("facets", MaxFacets, "has %d keys; the limit is %d", len(o.Facets), MaxFacets)
	}
	for i, k := range o.Facets {
		if k == "" || (lim.MaxMetadataBytes > 0 && len(k) > lim.MaxMetadataBytes) {
			return FieldError(fmt.Sprintf("facets[%d]", i), lim.MaxMetadataBytes, "must be a metadata key of 1 to %d bytes", lim.MaxMetadataBytes)
		}
		if slices.Index(o.Facets, k) != i {
			return FieldError(fmt.Sprintf("facets[%d]", i), 0, "%q repeats; each key once", k)
		}
	}
	if lim.MaxMetadataBytes > 0 && len(o.GroupBy) > lim.MaxMetadataBytes {
		return FieldError("group_by", lim.MaxMetadataBytes, "is %d bytes; the limit is %d", len(o.GroupBy), lim.MaxMetadataBytes)
	}
	return o.Filter.validate(lim)
}

// Filter maps metadata keys to conditions; a product passes when its
// metadata satisfies every one. On the wire a condition is a string (exact
// match) or an object of operators:
//
//	{"brand": "Bosch", "category": {"$in": ["drills", "saws"]}, "price": {"$gte": 50, "$lt": 100}}
type Filter map[string]Condition

// Condition is what one metadata value must satisfy; every operator given
// must hold. A product without the key passes only $ne and $nin.
// Comparisons ($gt, $gte, $lt, $lte) are numeric: the bound must be a number
// (a JSON number or a string that parses as one) and a product whose value
// does not parse as a number does not pass.
type Condition struct {
	Eq  *string  `json:"$eq,omitempty"`
	Ne  *string  `json:"$ne,omitempty"`
	In  []string `json:"$in,omitempty"`
	Nin []string `json:"$nin,omitempty"`
	Gt  *float64 `json:"$gt,omitempty"`
	Gte *float64 `json:"$gte,omitempty"`
	Lt  *float64 `json:"$lt,omitempty"`
	Lte *float64 `json:"$lte,omitempty"`

	// bad is the first problem found while decoding, reported by Validate
	// with the field's full path.
	bad *Error
}

// Equals is the condition of an exact match, the plain-string form.
func Equals(v string) Condition { return Condition{Eq: &v} }

// Operators of a Condition, in the order the documentation lists them.
var conditionOps = []string{"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"}

// MarshalJSON writes an exact match as a plain string. A condition that
// failed to decode does not encode: the error says why.
func (c Condition) MarshalJSON() ([]byte, error) {
	if c.bad != nil {
		return nil, fmt.Errorf("filter condition %s: %s", c.bad.Field, c.bad.Message)
	}
	if c.Eq != nil && c.Ne == nil && c.In == nil && c.Nin == nil && c.Gt == nil && c.Gte == nil && c.Lt == nil && c.Lte == nil {
		return json.Marshal(*c.Eq)
	}
	type plain Condition
	return json.Marshal(plain(c))
}

// UnmarshalJSON accepts a string or an object of operators. Problems with
// the operators are kept for Validate, which names the field.
func (c *Condition) UnmarshalJSON(b []byte) error {
	*c = Condition{}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		c.Eq = &s
		return nil
	}
	var ops map[string]json.RawMessage
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &ops) != nil {
		c.bad = &Error{Message: "want a string (exact match) or an object of operators ($eq, $ne, $in, $nin, $gt, $gte, $lt, $lte)"}
		return nil
	}
	if len(ops) == 0 {
		c.bad = &Error{Message: "is an empty object; give at least one operator ($eq, $ne, $in, $nin, $gt, $gte, $lt, $lte)"}
		return nil
	}
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, op := range keys {
		raw := ops[op]
		var err string
		switch op {
		case "$eq", "$ne":
			var s string
			if !decodeScalar(raw, &s) {
				err = "want a string or a number"
			} else if op == "$eq" {
				c.Eq = &s
			} else {
				c.Ne = &s
			}
		case "$in", "$nin":
			var l []json.RawMessage
			if json.Unmarshal(raw, &l) != nil || len(l) == 0 {
				err = "want a non-empty list of strings"
				break
			}
			vals := make([]string, len(l))
			for i, r := range l {
				if !decodeScalar(r, &vals[i]) {
					err = fmt.Sprintf("[%d]: want a string or a number", i)
					break
				}
			}
			if op == "$in" {
				c.In = vals
			} else {
				c.Nin = vals
			}
		case "$gt", "$gte", "$lt", "$lte":
			var s string
			f, perr := 0.0, error(nil)
			if !decodeScalar(raw, &s) {
				err = "want a number"
			} else if f, perr = strconv.ParseFloat(strings.TrimSpace(s), 64); perr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				err = fmt.Sprintf("compares numbers, and %q is not one", s)
			}
			if err == "" {
				switch op {
				case "$gt":
					c.Gt = &f
				case "$gte":
					c.Gte = &f
				case "$lt":
					c.Lt = &f
				default:
					c.Lte = &f
				}
			}
		default:
			err = "unknown operator; use " + strings.Join(conditionOps, ", ")
		}
		if err != "" && c.bad == nil {
			c.bad = &Error{Field: op, Message: err}
		}
	}
	return nil
}

// decodeScalar reads a JSON string, or a JSON number as its literal text.
func decodeScalar(raw json.RawMessage, s *string) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		return json.Unmarshal(raw, s) == nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return false
	}
	*s = n.String()
	return true
}

func (f Filter) validate(lim CatalogLimits) error {
	if lim.MaxMetadataKeys > 0 && len(f) > lim.MaxMetadataKeys {
		return FieldError("filter", lim.MaxMetadataKeys, "has %d keys; the limit is %d", len(f), lim.MaxMetadataKeys)
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c := f[k]
		field := "filter." + k
		if k == "" {
			return FieldError("filter", 0, "has an empty key")
		}
		if lim.MaxMetadataBytes > 0 && len(k) > lim.MaxMetadataBytes {
			return FieldError(field, lim.MaxMetadataBytes, "key is over %d bytes", lim.MaxMetadataBytes)
		}
		if c.bad != nil {
			if c.bad.Field != "" {
				field += "." + c.bad.Field
			}
			return FieldError(field, 0, "%s", c.bad.Message)
		}
		if c.Eq == nil && c.Ne == nil && c.In == nil && c.Nin == nil && c.Gt == nil && c.Gte == nil && c.Lt == nil && c.Lte == nil {
			return FieldError(field, 0, "has no operator")
		}
		for _, l := range [][]string{c.In, c.Nin} {
			if lim.MaxTopK > 0 && len(l) > lim.MaxTopK {
				return FieldError(field, lim.MaxTopK, "lists %d values; the limit is %d", len(l), lim.MaxTopK)
			}
		}
		for _, b := range []*float64{c.Gt, c.Gte, c.Lt, c.Lte} {
			if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
				return FieldError(field, 0, "compares numbers, and %v is not a finite one", *b)
			}
		}
	}
	return nil
}

// Match reports whether a product's metadata satisfies every condition.
func (f Filter) Match(meta map[string]string) bool {
	for k, c := range f {
		v, ok := meta[k]
		if !c.Match(v, ok) {
			return false
		}
	}
	return true
}

// Match reports whether a metadata value (present tells whether the key
// exists) satisfies c.
func (c *Condition) Match(v string, present bool) bool {
	if !present {
		return c.Eq == nil && c.In == nil && c.Gt == nil && c.Gte == nil && c.Lt == nil && c.Lte == nil
	}
	if c.Eq != nil && v != *c.Eq {
		return false
	}
	if c.Ne != nil && v == *c.Ne {
		return false
	}
	if c.In != nil && !slices.Contains(c.In, v) {
		return false
	}
	if c.Nin != nil && slices.Contains(c.Nin, v) {
		return false
	}
	if c.Gt != nil || c.Gte != nil || c.Lt != nil || c.Lte != nil {
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(n) {
			return false
		}
		if (c.Gt != nil && !(n > *c.Gt)) || (c.Gte != nil && !(n >= *c.Gte)) ||
			(c.Lt != nil && !(n < *c.Lt)) || (c.Lte != nil && !(n <= *c.Lte)) {
			return false
		}
	}
	return true
}

// Explain is why a product ranked where it did: its score in each list and
// its 1-based rank among that list's candidates (nil when it is not one).
type Explain struct {
	Dense       float64 `json:"dense"`
	Keyword     float64 `json:"keyword"`
	DenseRank   *int    `json:"dense_rank"`
	KeywordRank *int    `json:"keyword_rank"`
}

// firstOption names the first option o sets, for the error of a request
// that sets it where it does not apply.
func firstOption(o *SearchOptions) string {
	for _, f := range []struct {
		name string
		set  bool
	}{{"mode", o.Mode != ""}, {"fusion", o.Fusion != ""}, {"rrf_k", o.RRFK != nil}, {"alpha", o.Alpha != nil},
		{"candidates", o.Candidates != nil}, {"explain", o.Explain}, {"filter", len(o.Filter) > 0}, {"offset", o.Offset != 0},
		{"count", o.Count}, {"facets", len(o.Facets) > 0}, {"group_by", o.GroupBy != ""}} {
		if f.set {
			return f.name
		}
	}
	return "mode"
}
