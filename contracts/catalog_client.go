package contracts

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// UpsertProducts adds or replaces products in a catalog (one or many; see
// CatalogLimits.MaxProductsPerCall). When it returns, every search on any
// processor sees the products.
func (c *Client) UpsertProducts(ctx context.Context, req *UpsertRequest) (*UpsertResponse, error) {
	return do[UpsertResponse](ctx, c, SubjectCatalogUpsert, req, req.RequestID)
}

// GetProduct returns one product; ErrNotFound when the catalog or id is unknown.
func (c *Client) GetProduct(ctx context.Context, req *ProductRequest) (*ProductResponse, error) {
	return do[ProductResponse](ctx, c, SubjectCatalogGet, req, req.RequestID)
}

// DeleteProduct removes one product; when it returns, every search on any
// processor no longer sees it.
func (c *Client) DeleteProduct(ctx context.Context, req *ProductRequest) (*DeleteResponse, error) {
	return do[DeleteResponse](ctx, c, SubjectCatalogDelete, req, req.RequestID)
}

// ListCatalogs describes every catalog.
func (c *Client) ListCatalogs(ctx context.Context, req *ListRequest) (*ListResponse, error) {
	return do[ListResponse](ctx, c, SubjectCatalogList, req, req.RequestID)
}

// DropCatalog deletes a catalog with all its products and embeddings.
func (c *Client) DropCatalog(ctx context.Context, req *DropRequest) (*DropResponse, error) {
	return do[DropResponse](ctx, c, SubjectCatalogDrop, req, req.RequestID)
}

// SearchCatalog ranks a catalog's products for each query.
func (c *Client) SearchCatalog(ctx context.Context, req *SearchRequest) (*SearchResponse, error) {
	return do[SearchResponse](ctx, c, SubjectCatalogSearch, req, req.RequestID)
}

// replyError is the *Error a reply's micro error headers and body describe,
// or nil for a success.
func replyError(m *nats.Msg) error {
	code := m.Header.Get(HeaderErrorCode)
	if code == "" {
		return nil
	}
	var body ErrorBody
	if err := json.Unmarshal(m.Data, &body); err != nil || body.Error == nil {
		return &Error{Code: Code(code), Message: m.Header.Get(HeaderError)}
	}
	if body.Error.Code == "" {
		body.Error.Code = Code(code)
	}
	return body.Error
}
