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
	return doCatalog(ctx, c, SubjectCatalogUpsert, req, req.RequestID,
		func(r *UpsertRequest) *string { return &r.Catalog }, func(r *UpsertResponse) *string { return &r.Catalog })
}

// GetProduct returns one product; ErrNotFound when the catalog or id is unknown.
func (c *Client) GetProduct(ctx context.Context, req *ProductRequest) (*ProductResponse, error) {
	return doCatalog(ctx, c, SubjectCatalogGet, req, req.RequestID,
		func(r *ProductRequest) *string { return &r.Catalog }, func(r *ProductResponse) *string { return &r.Catalog })
}

// DeleteProduct removes one product; when it returns, every search on any
// processor no longer sees it.
func (c *Client) DeleteProduct(ctx context.Context, req *ProductRequest) (*DeleteResponse, error) {
	return doCatalog(ctx, c, SubjectCatalogDelete, req, req.RequestID,
		func(r *ProductRequest) *string { return &r.Catalog }, func(r *DeleteResponse) *string { return &r.Catalog })
}

// ListCatalogs describes every catalog; a client made WithTenant lists only
// its tenant's, by their unqualified names.
func (c *Client) ListCatalogs(ctx context.Context, req *ListRequest) (*ListResponse, error) {
	resp, err := do[ListResponse](ctx, c, SubjectCatalogList, req, req.RequestID)
	if err != nil || !c.ns.Scoped() {
		return resp, err
	}
	mine := make([]CatalogInfo, 0, len(resp.Catalogs))
	for _, ci := range resp.Catalogs {
		if name, ok := c.ns.Unqualify(ci.Name); ok {
			ci.Name = name
			mine = append(mine, ci)
		}
	}
	resp.Catalogs = mine // sorted still: the names kept share one prefix
	return resp, nil
}

// DropCatalog deletes a catalog with all its products and embeddings.
func (c *Client) DropCatalog(ctx context.Context, req *DropRequest) (*DropResponse, error) {
	return doCatalog(ctx, c, SubjectCatalogDrop, req, req.RequestID,
		func(r *DropRequest) *string { return &r.Catalog }, func(r *DropResponse) *string { return &r.Catalog })
}

// SearchCatalog ranks a catalog's products for each query.
func (c *Client) SearchCatalog(ctx context.Context, req *SearchRequest) (*SearchResponse, error) {
	return doCatalog[SearchRequest, SearchResponse](ctx, c, SubjectCatalogSearch, req, req.RequestID,
		func(r *SearchRequest) *string { return &r.Catalog }, nil)
}

// doCatalog is do for a request that names a catalog (field gives it): in
// a tenant's namespace (WithTenant) a copy of req names the stored catalog,
// and the answer (named gives its catalog, if any) and errors name it as
// req did. req itself is never changed.
func doCatalog[Req, Resp any, P interface {
	*Resp
	timed() *Timed
}](ctx context.Context, c *Client, subject string, req *Req, requestID string, field func(*Req) *string, named func(*Resp) *string) (*Resp, error) {
	if !c.ns.Scoped() || *field(req) == "" { // "": nothing to qualify (the processor says what is missing)
		return do[Resp, P](ctx, c, subject, req, requestID)
	}
	name := *field(req)
	if err := c.ns.Check("catalog", name); err != nil {
		return nil, err
	}
	q := *req
	*field(&q) = c.ns.Qualify(name)
	resp, err := do[Resp, P](ctx, c, subject, &q, requestID)
	if err != nil {
		return nil, c.ns.FixError(err, name)
	}
	if named != nil {
		*named(resp) = name
	}
	return resp, nil
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
