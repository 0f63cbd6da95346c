package contracts

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// UpsertProducts adds or replaces products in a catalog (one or many; see
// CatalogLimits.MaxProductsPerCall). When it returns, every search on any
// processor sees the products.
func (c *Client) UpsertProducts(ctx context.Context, req *UpsertRequest) (*UpsertResponse, error) {
	return call[UpsertResponse](ctx, c, SubjectCatalogUpsert, req, req.RequestID)
}

// GetProduct returns one product; ErrNotFound when the catalog or id is unknown.
func (c *Client) GetProduct(ctx context.Context, req *ProductRequest) (*ProductResponse, error) {
	return call[ProductResponse](ctx, c, SubjectCatalogGet, req, req.RequestID)
}

// DeleteProduct removes one product; when it returns, every search on any
// processor no longer sees it.
func (c *Client) DeleteProduct(ctx context.Context, req *ProductRequest) (*DeleteResponse, error) {
	return call[DeleteResponse](ctx, c, SubjectCatalogDelete, req, req.RequestID)
}

// ListCatalogs describes every catalog.
func (c *Client) ListCatalogs(ctx context.Context, req *ListRequest) (*ListResponse, error) {
	return call[ListResponse](ctx, c, SubjectCatalogList, req, req.RequestID)
}

// DropCatalog deletes a catalog with all its products and embeddings.
func (c *Client) DropCatalog(ctx context.Context, req *DropRequest) (*DropResponse, error) {
	return call[DropResponse](ctx, c, SubjectCatalogDrop, req, req.RequestID)
}

// SearchCatalog ranks a catalog's products for each query.
func (c *Client) SearchCatalog(ctx context.Context, req *SearchRequest) (*SearchResponse, error) {
	return call[SearchResponse](ctx, c, SubjectCatalogSearch, req, req.RequestID)
}

// call sends req on subject and decodes the reply into a Resp, with the same
// span, deadline header and error model as Match.
func call[Resp any](ctx context.Context, c *Client, subject string, req any, requestID string) (*Resp, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Code: CodeInvalidRequest, Message: "encode request: " + err.Error()}
	}
	ctx, span := c.tracer.Start(ctx, "send "+subject, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", subject),
			attribute.Int("messaging.message.body.size", len(data)),
			attribute.String("simmatch.request_id", requestID),
		))
	defer span.End()
	reply, err := c.request(ctx, subject, data, requestID)
	if err == nil {
		err = replyError(reply)
	}
	if err != nil {
		e := AsError(err)
		span.SetStatus(codes.Error, string(e.Code))
		span.SetAttributes(attribute.String("error.type", string(e.Code)))
		return nil, err
	}
	var resp Resp
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, Errorf(CodeInternal, "decode processor reply: %v", err)
	}
	return &resp, nil
}

// request sends data on subject with the deadline, request id and trace
// context headers and returns the raw reply.
func (c *Client) request(ctx context.Context, subject string, data []byte, requestID string) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	msg := nats.NewMsg(subject)
	msg.Data = data
	if requestID != "" {
		msg.Header.Set(HeaderRequestID, requestID)
	}
	SetTimeout(msg.Header, time.Until(deadline))
	c.prop.Inject(ctx, HeaderCarrier(msg.Header))
	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		err = transportError(ctx, subject, err)
		var e *Error
		if errors.As(err, &e) {
			e.RequestID = requestID
		}
		return nil, err
	}
	return reply, nil
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
