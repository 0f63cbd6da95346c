package contracts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// Defaults of the client's retry settings (see Client).
const (
	// DefaultAckTimeout is how long the client waits for a processor's
	// acknowledgement before it sends the request again.
	DefaultAckTimeout = 500 * time.Millisecond
	// DefaultHeartbeat is the heartbeat interval the client asks for; a
	// request whose heartbeats stop for SilentHeartbeats intervals is sent again.
	DefaultHeartbeat = 250 * time.Millisecond
	// DefaultMaxAttempts bounds how many times one call sends its request.
	DefaultMaxAttempts = 5
	// SilentHeartbeats is how many heartbeat intervals without news make an
	// acknowledged request count as lost.
	SilentHeartbeats = 4
)

const instrumentationName = "github.com/simmatch/simmatch/contracts"

// Client calls simmatch processors over NATS. It is safe for concurrent use.
//
// It does not lose a request to a processor that dies: it asks for an
// acknowledgement and heartbeats (HeaderAck), and sends the request again,
// with the remaining deadline, when no acknowledgement arrives within the ack
// timeout or the heartbeats stop; the first final answer wins and later ones
// are dropped. An answer "no_processor" is retried too, with a short backoff,
// while the deadline allows (a rolling restart, a NATS reconnect). Error
// answers (invalid_request, overloaded, ...) are returned as they are.
type Client struct {
	nc          *nats.Conn
	subject     string
	timeout     time.Duration
	ackTimeout  time.Duration
	heartbeat   time.Duration
	maxAttempts int
	onRetry     func(reason RetryReason)
	tracer      trace.Tracer
	prop        propagation.TextMapPropagator
	inbox       inboxMux
	ns          CatalogNamespace // WithTenant; the zero value passes names as they are
}

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithSubject sends requests to subject instead of SubjectSimilarity.
func WithSubject(subject string) ClientOption {
	return func(c *Client) error {
		if subject == "" {
			return errors.New("contracts: empty subject")
		}
		c.subject = subject
		return nil
	}
}

// WithTimeout sets the timeout for calls whose context has no deadline.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("contracts: timeout must be positive, got %v", d)
		}
		c.timeout = d
		return nil
	}
}

// WithAckTimeout sets how long the client waits for a processor's
// acknowledgement before it sends the request again (DefaultAckTimeout).
func WithAckTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("contracts: ack timeout must be positive, got %v", d)
		}
		c.ackTimeout = d
		return nil
	}
}

// WithHeartbeat sets the heartbeat interval the client asks processors for
// (DefaultHeartbeat); SilentHeartbeats missed heartbeats count as a lost request.
func WithHeartbeat(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d < MinHeartbeat || d > MaxHeartbeat {
			return fmt.Errorf("contracts: heartbeat must be between %v and %v, got %v", MinHeartbeat, MaxHeartbeat, d)
		}
		c.heartbeat = d
		return nil
	}
}

// WithMaxAttempts bounds how many times one call sends its request
// (DefaultMaxAttempts); 1 never sends it again.
func WithMaxAttempts(n int) ClientOption {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("contracts: max attempts must be at least 1, got %d", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// WithRetryHook calls f each time a call sends its request again, with the
// reason; the bridge counts retries with it. f must not block.
func WithRetryHook(f func(reason RetryReason)) ClientOption {
	return func(c *Client) error {
		c.onRetry = f
		return nil
	}
}

// WithTenant makes the client act for tenant, in its namespace: every
// catalog name it sends (catalog operations, a catalog /predict, a job's
// catalogs through jobstore) is qualified (QualifyCatalogName), every name
// it gets back (answers, lists, errors) is the tenant's own, lists show only
// the tenant's catalogs, and requests carry the tenant in HeaderTenant. It
// gives the names the bridge gives the tenant's API keys, so both reach the
// same catalogs. Names the caller gives are plain (ValidateUserCatalogName).
//
// It is a namespace, not a permission: whoever holds the NATS credentials
// may make a client for any tenant, or none (see the package doc).
func WithTenant(tenant string) ClientOption {
	return func(c *Client) error {
		if err := ValidateTenant(tenant); err != nil {
			return err
		}
		c.ns = TenantNamespace(tenant)
		return nil
	}
}

// Namespace is the client's catalog namespace: its tenant's (WithTenant),
// or the zero value.
func (c *Client) Namespace() CatalogNamespace { return c.ns }

// WithTracerProvider sets the tracer provider; the default is the global one.
func WithTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(c *Client) error {
		c.tracer = tp.Tracer(instrumentationName)
		return nil
	}
}

// WithPropagator sets the propagator; the default is the global one.
func WithPropagator(p propagation.TextMapPropagator) ClientOption {
	return func(c *Client) error {
		c.prop = p
		return nil
	}
}

// NewClient returns a client that sends requests over nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) (*Client, error) {
	if nc == nil {
		return nil, errors.New("contracts: nil NATS connection")
	}
	c := &Client{nc: nc, subject: SubjectSimilarity, timeout: DefaultTimeout,
		ackTimeout: DefaultAckTimeout, heartbeat: DefaultHeartbeat, maxAttempts: DefaultMaxAttempts}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.tracer == nil {
		c.tracer = otel.GetTracerProvider().Tracer(instrumentationName)
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	return c, nil
}

// Match sends req to a processor and waits for its answer until ctx's
// deadline (or the client's timeout). Failures are *Error values: match them
// with errors.Is against ErrNoProcessor, ErrTimeout, ErrInvalidRequest, ...
// A request naming a catalog names it in the client's namespace (WithTenant).
func (c *Client) Match(ctx context.Context, req *Request) (*Response, error) {
	return doCatalog[Request, Response](ctx, c, c.subject, req, req.RequestID, func(r *Request) *string { return &r.Catalog }, nil)
}

// do is the one call path of every method: it sends req on subject within
// a CLIENT span, with the deadline, request id and trace context headers,
// asks for an acknowledgement and sends the request again to another
// processor as the Client documents (every operation is idempotent), and
// decodes the reply into a Resp with the processor's timing, or returns the
// *Error the reply describes.
func do[Resp any, P interface {
	*Resp
	timed() *Timed
}](ctx context.Context, c *Client, subject string, req any, requestID string) (*Resp, error) {
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
	reply, err := c.resilientRequest(ctx, span, subject, data, requestID)
	var resp Resp
	if err == nil {
		err = decodeReplyInto(reply, &resp)
	}
	if err != nil {
		e := AsError(err)
		span.SetStatus(codes.Error, string(e.Code))
		span.SetAttributes(attribute.String("error.type", string(e.Code)))
		return nil, err
	}
	P(&resp).timed().Timing = TimingFrom(reply.Header)
	return &resp, nil
}

// DecodeReply decodes a processor's similarity reply: a Response, or the
// *Error that the micro error headers and the JSON body describe.
func DecodeReply(m *nats.Msg) (*Response, error) {
	var resp Response
	if err := decodeReplyInto(m, &resp); err != nil {
		return nil, err
	}
	resp.Timing = TimingFrom(m.Header)
	return &resp, nil
}

// decodeReplyInto decodes a success reply into v, or returns the *Error that
// the micro error headers and the JSON body describe.
func decodeReplyInto(m *nats.Msg, v any) error {
	if err := replyError(m); err != nil {
		return err
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		return Errorf(CodeInternal, "decode processor reply: %v", err)
	}
	return nil
}

func transportError(ctx context.Context, subject string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &Error{Code: CodeNoProcessor, Message: "no processor is serving " + subject + "; start one or retry later"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &Error{Code: CodeTimeout, Message: "no answer from a processor within the deadline"}
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("contracts: request canceled: %w", ctx.Err())
	case errors.Is(err, nats.ErrMaxPayload):
		return &Error{Code: CodePayloadTooLarge, Message: "request is larger than the NATS server's max_payload"}
	}
	return Errorf(CodeInternal, "nats request: %v", err)
}

// Ping asks the processors' micro service for a PING answer and reports
// whether at least one processor answered before ctx ends.
func (c *Client) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if _, err := c.nc.RequestWithContext(ctx, "$SRV.PING."+ServiceName, nil); err != nil {
		return transportError(ctx, c.subject, err)
	}
	return nil
}
