package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"
)

// NATS subjects of the catalog operations; processors serve each in their
// queue group.
const (
	SubjectCatalogUpsert = "simmatch.catalog.upsert" // one or many products
	SubjectCatalogGet    = "simmatch.catalog.get"
	SubjectCatalogDelete = "simmatch.catalog.delete"
	SubjectCatalogList   = "simmatch.catalog.list"
	SubjectCatalogDrop   = "simmatch.catalog.drop"
	SubjectCatalogSearch = "simmatch.catalog.search"
)

// Product is one catalog entry.
type Product struct {
	// ID identifies the product in its catalog: 1 to CatalogLimits.MaxIDBytes
	// bytes of UTF-8, any characters.
	ID string `json:"id"`
	// Description is the text that is embedded and searched.
	Description string `json:"description"`
	// Metadata is a flat string map that search filters match exactly.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// CatalogLimits bound catalog requests. Processors enforce them, so a direct
// NATS client cannot bypass them.
type CatalogLimits struct {
	MaxProductsPerCall int // products in one upsert
	MaxIDBytes         int // bytes per product id
	MaxMetadataKeys    int // keys per product's metadata
	MaxMetadataBytes   int // bytes per metadata key or value
	MaxTopK            int // top_k of a search
	MaxBodyBytes       int // encoded request size
}

// DefaultCatalogLimits are the catalog limits used when none are configured.
var DefaultCatalogLimits = CatalogLimits{
	MaxProductsPerCall: 10000,
	MaxIDBytes:         256,
	MaxMetadataKeys:    32,
	MaxMetadataBytes:   1024,
	MaxTopK:            1000,
	MaxBodyBytes:       8 << 20,
}

// DefaultCatalogTopK is the top_k of a catalog search or catalog /predict
// that sets none: a catalog may hold millions of products.
const DefaultCatalogTopK = 10

var (
	catalogName          = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	qualifiedCatalogName = regexp.MustCompile(`^(?:[A-Za-z0-9_=-]{1,64}=)?[A-Za-z0-9_-]{1,64}$`)
)

// TenantSeparator ends the tenant part of a qualified catalog name
// (QualifyCatalogName). '=' is valid in JetStream stream names, subject
// tokens and key-value keys, and catalog names never hold it.
const TenantSeparator = "="

// QualifyCatalogName is the name under which tenant's catalog name is
// stored: the tenant, its '.'s (which stream names and subjects reserve)
// replaced by '=', then '=', then name. Tenants never hold '=' and catalog
// names never hold '.' or '=', so the mapping is one to one: the last '='
// ends the tenant (SplitCatalogName). Processors treat the result as any
// other catalog name, so tenants stay apart without a lookup.
func QualifyCatalogName(tenant, name string) string {
	return TenantCatalogPrefix(tenant) + name
}

// TenantCatalogPrefix is what QualifyCatalogName puts before a tenant's
// catalog names.
func TenantCatalogPrefix(tenant string) string {
	return strings.ReplaceAll(tenant, ".", TenantSeparator) + TenantSeparator
}

// SplitCatalogName undoes QualifyCatalogName: the tenant and the name, or
// ok false for a name that is not qualified.
func SplitCatalogName(qualified string) (tenant, name string, ok bool) {
	i := strings.LastIndex(qualified, TenantSeparator)
	if i < 0 {
		return "", qualified, false
	}
	return strings.ReplaceAll(qualified[:i], TenantSeparator, "."), qualified[i+1:], true
}

// ValidateCatalogName checks a catalog name as processors take it: 1 to 64
// letters, digits, '_' or '-', optionally qualified by a tenant
// (QualifyCatalogName). Names from users are checked with
// ValidateUserCatalogName.
func ValidateCatalogName(name string) error {
	if !qualifiedCatalogName.MatchString(name) {
		return FieldError("catalog", 64, "%q is not a catalog name: want 1 to 64 letters, digits, '_' or '-', optionally after a tenant and '='", name)
	}
	return nil
}

// ValidateUserCatalogName checks a catalog name a tenant gives: 1 to 64
// letters, digits, '_' or '-' (never a qualified name: the bridge qualifies
// it).
func ValidateUserCatalogName(name string) error {
	if !catalogName.MatchString(name) {
		return FieldError("catalog", 64, "%q is not a catalog name: want 1 to 64 letters, digits, '_' or '-'", name)
	}
	return nil
}

// ValidateProductID checks a product id against lim.
func ValidateProductID(field, id string, lim CatalogLimits) error {
	switch {
	case id == "":
		return FieldError(field, 0, "required: a non-empty product id")
	case !utf8.ValidString(id):
		return FieldError(field, 0, "is not valid UTF-8")
	case lim.MaxIDBytes > 0 && len(id) > lim.MaxIDBytes:
		return FieldError(field, lim.MaxIDBytes, "is %d bytes; the limit is %d", len(id), lim.MaxIDBytes)
	}
	return nil
}

// UpsertRequest adds or replaces products in a catalog, creating the catalog
// on first use. Each product is stored whole (description, metadata and
// embedding) or not at all.
type UpsertRequest struct {
	Catalog  string    `json:"catalog"`
	Products []Product `json:"products"`
	// Model chooses the model ("name", its default version, or
	// "name@version") of a catalog this upsert creates; for a catalog that
	// exists it must name the catalog's model (409 otherwise). Empty: the
	// processors' default model.
	Model     string `json:"model,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Validate checks r against lim and the text limits of tl.
func (r *UpsertRequest) Validate(lim CatalogLimits, tl Limits) error {
	if err := ValidateCatalogName(r.Catalog); err != nil {
		return err
	}
	if len(r.Products) == 0 {
		return FieldError("products", 0, "required: a non-empty list of products")
	}
	if lim.MaxProductsPerCall > 0 && len(r.Products) > lim.MaxProductsPerCall {
		return &Error{Code: CodePayloadTooLarge, Field: "products", Limit: lim.MaxProductsPerCall,
			Message: fmt.Sprintf("products: has %d products; the limit per call is %d (split the upload)", len(r.Products), lim.MaxProductsPerCall)}
	}
	seen := make(map[string]int, len(r.Products))
	for i, p := range r.Products {
		f := fmt.Sprintf("products[%d]", i)
		if err := ValidateProductID(f+".id", p.ID, lim); err != nil {
			return err
		}
		if j, dup := seen[p.ID]; dup {
			return FieldError(f+".id", 0, "%q repeats products[%d].id; each id once per call", p.ID, j)
		}
		seen[p.ID] = i
		if err := checkTexts(f+".description", []string{p.Description}, tl); err != nil {
			return &Error{Code: CodeInvalidRequest, Field: f + ".description", Limit: AsError(err).Limit,
				Message: strings.Replace(AsError(err).Message, f+".description[0]", f+".description", 1)}
		}
		if err := checkMetadata(f+".metadata", p.Metadata, lim); err != nil {
			return err
		}
	}
	if len(r.RequestID) > 128 {
		return FieldError("request_id", 128, "is %d bytes; the limit is 128", len(r.RequestID))
	}
	if r.Model != "" {
		if _, _, err := ParseModelRef(r.Model); err != nil {
			return FieldError("model", 0, "%v", err)
		}
	}
	return nil
}

func checkMetadata(field string, m map[string]string, lim CatalogLimits) error {
	if lim.MaxMetadataKeys > 0 && len(m) > lim.MaxMetadataKeys {
		return FieldError(field, lim.MaxMetadataKeys, "has %d keys; the limit is %d", len(m), lim.MaxMetadataKeys)
	}
	for k, v := range m {
		if k == "" {
			return FieldError(field, 0, "has an empty key")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return FieldError(field+"."+k, 0, "is not valid UTF-8")
		}
		if lim.MaxMetadataBytes > 0 && (len(k) > lim.MaxMetadataBytes || len(v) > lim.MaxMetadataBytes) {
			return FieldError(field+"."+k, lim.MaxMetadataBytes, "key or value is over %d bytes", lim.MaxMetadataBytes)
		}
	}
	return nil
}

// UpsertResponse answers an UpsertRequest.
type UpsertResponse struct {
	Catalog  string `json:"catalog"`
	Upserted int    `json:"upserted"`
	// Sequence is the catalog's stream sequence after the write: every search
	// answered after this reply, by any processor, sees the write.
	Sequence  uint64 `json:"sequence"`
	RequestID string `json:"request_id,omitempty"`
	Timed
}

// ProductRequest names one product, for get and delete.
type ProductRequest struct {
	Catalog   string `json:"catalog"`
	ID        string `json:"id"`
	RequestID string `json:"request_id,omitempty"`
}

// Validate checks r against lim.
func (r *ProductRequest) Validate(lim CatalogLimits) error {
	if err := ValidateCatalogName(r.Catalog); err != nil {
		return err
	}
	return ValidateProductID("id", r.ID, lim)
}

// ProductResponse answers a get.
type ProductResponse struct {
	Catalog   string  `json:"catalog"`
	Product   Product `json:"product"`
	Sequence  uint64  `json:"sequence"`
	RequestID string  `json:"request_id,omitempty"`
	Timed
}

// DeleteResponse answers a delete. Deleting an id that is not there is not
// an error (Deleted is false), so retries are safe.
type DeleteResponse struct {
	Catalog   string `json:"catalog"`
	ID        string `json:"id"`
	Deleted   bool   `json:"deleted"`
	Sequence  uint64 `json:"sequence"`
	RequestID string `json:"request_id,omitempty"`
	Timed
}

// ListRequest asks for every catalog.
type ListRequest struct {
	RequestID string `json:"request_id,omitempty"`
}

// CatalogInfo describes one catalog.
type CatalogInfo struct {
	Name string `json:"name"`
	// Products is the number of products.
	Products int `json:"products"`
	// Model is the model whose embeddings the catalog stores.
	Model ModelInfo `json:"model"`
	// StoredBytes is the size of the catalog in JetStream.
	StoredBytes uint64 `json:"stored_bytes"`
	// Matrix is the type of the scanned matrix on the processor that
	// answered: fp32, int8 (rescored exactly from float32 rows in a file), or
	// not_loaded (beyond that processor's SIMMATCH_CATALOG_MEMORY_BYTES).
	Matrix string `json:"matrix"`
	// MatrixBytes is the memory the embedding matrix takes in each processor.
	MatrixBytes int64 `json:"matrix_bytes"`
	// KeywordBytes is the memory the keyword index takes in each processor.
	KeywordBytes int64  `json:"keyword_bytes"`
	Sequence     uint64 `json:"sequence"`
}

// ListResponse answers a ListRequest, catalogs sorted by name.
type ListResponse struct {
	Catalogs  []CatalogInfo `json:"catalogs"`
	RequestID string        `json:"request_id,omitempty"`
	Timed
}

// DropRequest deletes a whole catalog.
type DropRequest struct {
	Catalog   string `json:"catalog"`
	RequestID string `json:"request_id,omitempty"`
}

// DropResponse answers a DropRequest.
type DropResponse struct {
	Catalog   string `json:"catalog"`
	Dropped   bool   `json:"dropped"`
	RequestID string `json:"request_id,omitempty"`
	Timed
}

// SearchRequest ranks a catalog's products for each query.
type SearchRequest struct {
	Catalog string  `json:"catalog"`
	Query   Queries `json:"query"`
	// TopK keeps the K best matches per query; nil means DefaultCatalogTopK.
	TopK *int `json:"top_k,omitempty"`
	// Threshold drops matches whose cosine similarity is below it (modes
	// dense and hybrid).
	Threshold *float64 `json:"threshold,omitempty"`
	SearchOptions
	RequestID string `json:"request_id,omitempty"`
}

// Validate checks r against lim and the query limits of tl.
func (r *SearchRequest) Validate(lim CatalogLimits, tl Limits) error {
	if err := ValidateCatalogName(r.Catalog); err != nil {
		return err
	}
	if len(r.Query) == 0 {
		return FieldError("query", 0, "required: a non-empty string or list of strings")
	}
	if tl.MaxQueries > 0 && len(r.Query) > tl.MaxQueries {
		return FieldError("query", tl.MaxQueries, "has %d texts; the limit is %d", len(r.Query), tl.MaxQueries)
	}
	if err := checkTexts("query", r.Query, tl); err != nil {
		return err
	}
	if err := checkTopK(r.TopK, lim); err != nil {
		return err
	}
	if r.Threshold != nil && (math.IsNaN(*r.Threshold) || *r.Threshold < -1 || *r.Threshold > 1) {
		return FieldError("threshold", 0, "must be a cosine similarity between -1 and 1, got %v", *r.Threshold)
	}
	if err := r.SearchOptions.Validate(derefOr(r.TopK, DefaultCatalogTopK), r.Threshold, lim); err != nil {
		return err
	}
	if len(r.RequestID) > 128 {
		return FieldError("request_id", 128, "is %d bytes; the limit is 128", len(r.RequestID))
	}
	return nil
}

func checkTopK(k *int, lim CatalogLimits) error {
	if k == nil {
		return nil
	}
	if *k < 1 {
		return FieldError("top_k", 0, "must be at least 1, got %d", *k)
	}
	if lim.MaxTopK > 0 && *k > lim.MaxTopK {
		return FieldError("top_k", lim.MaxTopK, "is %d; the limit for a catalog is %d", *k, lim.MaxTopK)
	}
	return nil
}

// SearchResponse answers a SearchRequest.
type SearchResponse struct {
	Results []CatalogResult `json:"results"`
	Model   ModelInfo       `json:"model"`
	// Sequence is the catalog stream sequence the search saw.
	Sequence  uint64 `json:"sequence"`
	RequestID string `json:"request_id,omitempty"`
	Timed
}

// CatalogResult holds the ranked matches of one query.
type CatalogResult struct {
	Query   string         `json:"query"`
	Matches []CatalogMatch `json:"matches"`
	// Total counts the matches left after the filter and the threshold
	// (keyword mode: those holding a query term), when count was asked.
	Total *int `json:"total,omitempty"`
	// Facets counts, over the same matches as Total, the products per value
	// of each requested key, the MaxFacetValues most frequent values.
	Facets map[string]map[string]int `json:"facets,omitempty"`
}

// CatalogMatch is one product and its score: the cosine similarity in mode
// dense, BM25 in mode keyword, the fused score in mode hybrid.
type CatalogMatch struct {
	ID          string            `json:"id"`
	Description string            `json:"description"`
	Score       float64           `json:"score"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Explain gives the match's score and rank in each list, when asked.
	Explain *Explain `json:"explain,omitempty"`
	// GroupSize counts the matches that share this match's group_by value
	// (this one included), when group_by was asked.
	GroupSize int `json:"group_size,omitempty"`
}

// DecodeCatalog decodes a JSON catalog request into v (a pointer to one of
// the request types), rejecting unknown fields, invalid UTF-8 and bodies over
// maxBytes. Validation is the caller's next step.
func DecodeCatalog(data []byte, maxBytes int, v any) error {
	if e := decodeStrict(data, maxBytes, "the limit", v, catalogDecodeError); e != nil {
		return e
	}
	return nil
}

// catalogDecodeError maps the decoder's errors for catalog requests, whose
// fields are nested (products[3].description).
func catalogDecodeError(err error) *Error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return FieldError(typ.Field, 0, "want %s, got %s", jsonType(typ.Type), typ.Value)
	}
	e := decodeError(err)
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		e.Message = e.Field + ": unknown field"
	} else if e.Field != "" {
		e.Message = fmt.Sprintf("%s: %v", e.Field, err)
	}
	return e
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Map:
		return "an object of strings"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return "an object"
}

// CatalogStream is the JetStream stream that stores catalog name (a stored
// name, QualifyCatalogName for a tenant's): processors write it, the
// bridge reads its size for the tenants' quotas.
func CatalogStream(name string) string { return "SIMMATCH_CATALOG_" + name }
