package bridge

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// catalogReadRoutes adds the /v1/catalogs routes that read (scope
// predict): REST over the catalog operations of contracts.Client.
func (s *Server) catalogReadRoutes(r chi.Router) {
	r.Get("/v1/catalogs", s.listCatalogs)
	r.Get("/v1/catalogs/{catalog}/products/{id}", productCall(s, s.client.GetProduct,
		func(resp *contracts.ProductResponse, name string) { resp.Catalog = name }))
	r.Post("/v1/catalogs/{catalog}/search", s.searchCatalog)
}

// catalogWriteRoutes adds the /v1/catalogs routes that change catalogs
// (scope catalog:write).
func (s *Server) catalogWriteRoutes(r chi.Router) {
	r.Delete("/v1/catalogs/{catalog}", s.dropCatalog)
	r.Post("/v1/catalogs/{catalog}/products", s.bulkUpsert)
	r.Put("/v1/catalogs/{catalog}/products/{id}", s.putProduct)
	r.Delete("/v1/catalogs/{catalog}/products/{id}", productCall(s, s.client.DeleteProduct,
		func(resp *contracts.DeleteResponse, name string) { resp.Catalog = name }))
}

// pathParam is a path parameter, percent-decoded: chi matches on the raw
// path when the URL has escapes (an id holding '/' arrives as %2F).
func pathParam(r *http.Request, name string) (string, *contracts.Error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", contracts.FieldError(name, 0, "bad percent-encoding in the path: %v", err)
	}
	return d, nil
}

// productBody is the body of PUT /v1/catalogs/{catalog}/products/{id}.
type productBody struct {
	Description string            `json:"description"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	RequestID   string            `json:"request_id,omitempty"`
}

func (s *Server) putProduct(w http.ResponseWriter, r *http.Request) {
	t, cat, id, ok := s.productPath(w, r)
	if !ok {
		return
	}
	body, ok := decode[productBody](w, r, s.catalogLimit(), writeError)
	if !ok {
		return
	}
	req := &contracts.UpsertRequest{Catalog: t.qualify(cat), RequestID: bodyRequestID(w, r, body.RequestID),
		Products: []contracts.Product{{ID: id, Description: body.Description, Metadata: body.Metadata}}}
	if err := req.Validate(s.cfg.CatalogLimits, s.cfg.Limits); err != nil {
		// One product: name its fields as the body does.
		e := *contracts.AsError(err)
		e.Field = strings.TrimPrefix(e.Field, "products[0].")
		e.Message = strings.TrimPrefix(e.Message, "products[0].")
		if e.Field == "id" {
			e.Message = strings.Replace(e.Message, "id:", "id (in the path):", 1)
		}
		writeError(w, r, &e)
		return
	}
	s.relayUpsert(w, r, t, cat, req)
}

// bulkBody is the body of POST /v1/catalogs/{catalog}/products.
type bulkBody struct {
	Products []contracts.Product `json:"products"`
	// Model chooses the model of a catalog this upsert creates (contracts.UpsertRequest.Model).
	Model     string `json:"model,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// relayUpsert sends req (on the caller's catalog cat), once the tenant's
// quotas admit it (admitWrite), and answers.
func (s *Server) relayUpsert(w http.ResponseWriter, r *http.Request, t tenancy, cat string, req *contracts.UpsertRequest) {
	relay(w, r, s.cfg.CatalogWriteTimeout, func(ctx context.Context) (*contracts.UpsertResponse, error) {
		release, err := s.admitWrite(ctx, t, cat, int64(len(req.Products)), upsertBytes(req.Products))
		if err != nil {
			return nil, err
		}
		defer release()
		resp, err := s.client.UpsertProducts(ctx, req)
		if err != nil {
			return nil, t.fixErr(err, cat)
		}
		resp.Catalog = cat
		return resp, nil
	}, asIs, writeError)
}

func (s *Server) bulkUpsert(w http.ResponseWriter, r *http.Request) {
	t, cat, ok := s.catalogPath(w, r)
	if !ok {
		return
	}
	body, ok := decode[bulkBody](w, r, s.catalogLimit(), writeError)
	if !ok {
		return
	}
	req := &contracts.UpsertRequest{Catalog: t.qualify(cat), Products: body.Products, Model: body.Model, RequestID: bodyRequestID(w, r, body.RequestID)}
	if err := req.Validate(s.cfg.CatalogLimits, s.cfg.Limits); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	s.relayUpsert(w, r, t, cat, req)
}

// productCall serves GET and DELETE of one product: both relay the path's
// product to call; rename sets the reply's catalog to the caller's name.
func productCall[Resp any](s *Server, call func(context.Context, *contracts.ProductRequest) (Resp, error), rename func(Resp, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, cat, id, ok := s.productPath(w, r)
		if !ok {
			return
		}
		req := &contracts.ProductRequest{Catalog: t.qualify(cat), ID: id, RequestID: infoFrom(r.Context()).id}
		relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (Resp, error) {
			resp, err := call(ctx, req)
			if err != nil {
				return resp, t.fixErr(err, cat)
			}
			rename(resp, cat)
			return resp, nil
		}, asIs, writeError)
	}
}

// listCatalogs lists the caller's catalogs: a tenant's, unqualified; an
// admin's (or with authentication off) every one, as stored.
func (s *Server) listCatalogs(w http.ResponseWriter, r *http.Request) {
	t := tenancyOf(r.Context())
	req := &contracts.ListRequest{RequestID: infoFrom(r.Context()).id}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.ListResponse, error) {
		resp, err := s.client.ListCatalogs(ctx, req)
		if err != nil || !t.ns.Scoped() {
			return resp, err
		}
		mine := make([]contracts.CatalogInfo, 0, len(resp.Catalogs))
		for _, c := range resp.Catalogs {
			if name, ok := t.unqualify(c.Name); ok {
				c.Name = name
				mine = append(mine, c)
			}
		}
		// Sorted still: the names kept share one prefix.
		resp.Catalogs = mine
		return resp, nil
	}, asIs, writeError)
}

func (s *Server) dropCatalog(w http.ResponseWriter, r *http.Request) {
	t, cat, ok := s.catalogPath(w, r)
	if !ok {
		return
	}
	req := &contracts.DropRequest{Catalog: t.qualify(cat), RequestID: infoFrom(r.Context()).id}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.DropResponse, error) {
		resp, err := s.client.DropCatalog(ctx, req)
		if err != nil {
			return nil, t.fixErr(err, cat)
		}
		resp.Catalog = cat
		return resp, nil
	}, asIs, writeError)
}

func (s *Server) searchCatalog(w http.ResponseWriter, r *http.Request) {
	t, cat, ok := s.catalogPath(w, r)
	if !ok {
		return
	}
	req, ok := decode[contracts.SearchRequest](w, r, s.catalogLimit(), writeError)
	if !ok {
		return
	}
	if req.Catalog != "" && req.Catalog != cat {
		writeError(w, r, contracts.FieldError("catalog", 0, "the body names catalog %q but the path names %q; omit it from the body", req.Catalog, cat))
		return
	}
	req.Catalog = t.qualify(cat)
	req.RequestID = bodyRequestID(w, r, req.RequestID)
	if err := req.Validate(s.cfg.CatalogLimits, s.cfg.Limits); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.SearchResponse, error) {
		resp, err := s.client.SearchCatalog(ctx, req)
		return resp, t.fixErr(err, cat)
	}, asIs, writeError)
}

// catalogPath is the path's catalog as the caller named it (checked with
// tenancy.check), and the caller's tenancy, which qualifies it.
func (s *Server) catalogPath(w http.ResponseWriter, r *http.Request) (tenancy, string, bool) {
	t := tenancyOf(r.Context())
	cat, e := pathParam(r, "catalog")
	if e == nil {
		e = t.check("catalog", cat)
	}
	if e != nil {
		writeError(w, r, e)
		return t, "", false
	}
	return t, cat, true
}

func (s *Server) productPath(w http.ResponseWriter, r *http.Request) (t tenancy, cat, id string, ok bool) {
	if t, cat, ok = s.catalogPath(w, r); !ok {
		return t, "", "", false
	}
	id, e := pathParam(r, "id")
	if e == nil {
		if err := contracts.ValidateProductID("id", id, s.cfg.CatalogLimits); err != nil {
			e = contracts.AsError(err)
		}
	}
	if e != nil {
		writeError(w, r, e)
		return t, "", "", false
	}
	return t, cat, id, true
}
