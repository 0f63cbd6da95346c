package contracts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
)

// startServer runs a NATS server in-process on a free port until the test ends.
func startServer(tb testing.TB, configure ...func(*server.Options)) *server.Server {
	tb.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	for _, f := range configure {
		f(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("nats server not ready for connections")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// connect opens a connection to s that closes when the test ends.
func connect(tb testing.TB, s *server.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// respond serves subject with handler on a connection of its own, and
// returns once the server has registered the subscription. Handlers run on
// another goroutine: they report through channels, never through t.
func respond(tb testing.TB, s *server.Server, subject string, handler nats.MsgHandler) {
	tb.Helper()
	nc := connect(tb, s)
	if _, err := nc.Subscribe(subject, handler); err != nil {
		tb.Fatalf("subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatalf("flush: %v", err)
	}
}

// newClient returns a Client on a fresh connection to s.
func newClient(tb testing.TB, s *server.Server, opts ...contracts.ClientOption) *contracts.Client {
	tb.Helper()
	c, err := contracts.NewClient(connect(tb, s), opts...)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	return c
}

func reply(m *nats.Msg, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	_ = m.Respond(data)
}

func TestNewClientOptions(t *testing.T) {
	nc := connect(t, startServer(t))
	tests := []struct {
		name string
		nc   *nats.Conn
		opts []contracts.ClientOption
	}{
		{"nil connection", nil, nil},
		{"empty subject", nc, []contracts.ClientOption{contracts.WithSubject("")}},
		{"zero timeout", nc, []contracts.ClientOption{contracts.WithTimeout(0)}},
		{"negative timeout", nc, []contracts.ClientOption{contracts.WithTimeout(-time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := contracts.NewClient(tc.nc, tc.opts...)
			if err == nil || c != nil {
				t.Errorf("NewClient = %v, %v; want an error", c, err)
			}
		})
	}
}

func TestClientMatch(t *testing.T) {
	s := startServer(t)
	got := make(chan *contracts.Request, 1)
	respond(t, s, contracts.SubjectSimilarity, func(m *nats.Msg) {
		req, err := contracts.DecodeRequest(m.Data, contracts.DefaultLimits)
		if err != nil {
			_ = m.Respond(contracts.AsError(err).Marshal())
			return
		}
		got <- req
		reply(m, sampleResponse)
	})
	c := newClient(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Match(ctx, fullRequest)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	if !reflect.DeepEqual(resp, sampleResponse) {
		t.Errorf("Match = %+v\nwant %+v", resp, sampleResponse)
	}
	if req := <-got; !reflect.DeepEqual(req, fullRequest) {
		t.Errorf("processor received %+v\nwant %+v", req, fullRequest)
	}
}

func TestClientMatchHeaders(t *testing.T) {
	s := startServer(t)
	seen := make(chan nats.Header, 1)
	respond(t, s, contracts.SubjectSimilarity, func(m *nats.Msg) {
		seen <- m.Header
		reply(m, sampleResponse)
	})
	parent := testSpanContext(t)

	tests := []struct {
		name      string
		opts      []contracts.ClientOption
		deadline  time.Duration // 0: a context without deadline
		requestID string
		budget    time.Duration // what the header should be close to
	}{
		{name: "context deadline", deadline: 20 * time.Second, requestID: "req-ctx", budget: 20 * time.Second},
		{name: "client timeout", opts: []contracts.ClientOption{contracts.WithTimeout(15 * time.Second)}, requestID: "req-opt", budget: 15 * time.Second},
		{name: "default timeout", budget: contracts.DefaultTimeout},
		{name: "context deadline wins over client timeout", opts: []contracts.ClientOption{contracts.WithTimeout(time.Hour)}, deadline: 20 * time.Second, budget: 20 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]contracts.ClientOption{contracts.WithPropagator(propagation.TraceContext{})}, tc.opts...)
			c := newClient(t, s, opts...)
			// The global tracer provider is a no-op, so the caller's span
			// context is what must travel.
			ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			req := *originalRequest
			req.RequestID = tc.requestID
			if _, err := c.Match(ctx, &req); err != nil {
				t.Fatalf("Match: %v", err)
			}
			h := <-seen

			d, ok, err := contracts.Timeout(h)
			if err != nil || !ok {
				t.Fatalf("%s = %q: %v, %v", contracts.HeaderTimeout, h.Get(contracts.HeaderTimeout), ok, err)
			}
			if d > tc.budget || d < tc.budget-5*time.Second {
				t.Errorf("%s = %v, want close to %v", contracts.HeaderTimeout, d, tc.budget)
			}

			if got, present := h[contracts.HeaderRequestID]; tc.requestID == "" && present {
				t.Errorf("%s = %q sent for an empty request id", contracts.HeaderRequestID, got)
			} else if tc.requestID != "" && h.Get(contracts.HeaderRequestID) != tc.requestID {
				t.Errorf("%s = %q, want %q", contracts.HeaderRequestID, h.Get(contracts.HeaderRequestID), tc.requestID)
			}

			if h.Get("traceparent") == "" {
				t.Fatalf("no traceparent header in %v", h)
			}
			sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), contracts.HeaderCarrier(h)))
			if sc.TraceID() != parent.TraceID() {
				t.Errorf("traceparent = %q, want trace id %s", h.Get("traceparent"), parent.TraceID())
			}
		})
	}
}

func TestClientMatchNoProcessor(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name    string
		opts    []contracts.ClientOption
		subject string
	}{
		{name: "default subject", subject: contracts.SubjectSimilarity},
		{name: "custom subject", opts: []contracts.ClientOption{contracts.WithSubject("tools.similarity")}, subject: "tools.similarity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, s, tc.opts...)
			// A long deadline: no responders must fail fast, not wait it out.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			_, err := c.Match(ctx, originalRequest)
			if !errors.Is(err, contracts.ErrNoProcessor) {
				t.Fatalf("Match err = %v, want ErrNoProcessor", err)
			}
			if elapsed := time.Since(start); elapsed > 20*time.Second {
				t.Errorf("Match took %v to report no processor", elapsed)
			}
			if !strings.Contains(err.Error(), tc.subject) {
				t.Errorf("error %q does not name subject %q", err, tc.subject)
			}
			if !contracts.AsError(err).Code.Retryable() {
				t.Errorf("%v should be retryable", err)
			}
		})
	}
	// The golden sample is what the client really says.
	_, err := newClient(t, s).Match(context.Background(), originalRequest)
	if e := contracts.AsError(err); e.Message != sampleNoProcessor.Message {
		t.Errorf("message %q differs from error_no_processor.json's %q", e.Message, sampleNoProcessor.Message)
	}
}

func TestClientMatchTimeout(t *testing.T) {
	s := startServer(t)
	received := make(chan struct{}, 10)
	respond(t, s, contracts.SubjectSimilarity, func(*nats.Msg) { received <- struct{}{} }) // never answers

	tests := []struct {
		name     string
		opts     []contracts.ClientOption
		deadline time.Duration
	}{
		{name: "context deadline", deadline: 200 * time.Millisecond},
		{name: "client timeout", opts: []contracts.ClientOption{contracts.WithTimeout(200 * time.Millisecond)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, s, tc.opts...)
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			_, err := c.Match(ctx, originalRequest)
			if !errors.Is(err, contracts.ErrTimeout) {
				t.Fatalf("Match err = %v, want ErrTimeout", err)
			}
			<-received // the request did reach the silent processor
		})
	}
}

func TestClientMatchCanceled(t *testing.T) {
	s := startServer(t)
	received := make(chan struct{}, 1)
	respond(t, s, contracts.SubjectSimilarity, func(*nats.Msg) { received <- struct{}{} }) // never answers
	c := newClient(t, s)

	t.Run("while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Match(ctx, originalRequest)
			errc <- err
		}()
		<-received
		cancel()
		err := <-errc
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Match err = %v, want context.Canceled", err)
		}
		if errors.Is(err, contracts.ErrTimeout) {
			t.Errorf("a canceled call must not look like a timeout: %v", err)
		}
	})
	t.Run("before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Match(ctx, originalRequest); !errors.Is(err, context.Canceled) {
			t.Fatalf("Match err = %v, want context.Canceled", err)
		}
	})
}

// TestClientMatchReplies covers how the client reads what a processor answers.
func TestClientMatchReplies(t *testing.T) {
	type answer struct {
		headers map[string]string
		body    string
	}
	full := &contracts.Error{Code: contracts.CodeInvalidRequest, Message: "product_descriptions[3]: too long",
		Field: "product_descriptions[3]", Limit: 8192, RequestID: "error with JSON body"}
	tests := []struct {
		name    string
		answer  answer
		want    *contracts.Response
		wantErr *contracts.Error // compared field by field
		is      error
	}{
		{
			name: "error with JSON body",
			answer: answer{map[string]string{contracts.HeaderErrorCode: "invalid_request", contracts.HeaderError: full.Message},
				string(full.Marshal())},
			wantErr: full, is: contracts.ErrInvalidRequest,
		},
		{
			name:    "error without body",
			answer:  answer{map[string]string{contracts.HeaderErrorCode: "overloaded", contracts.HeaderError: "queue full"}, ""},
			wantErr: &contracts.Error{Code: contracts.CodeOverloaded, Message: "queue full"}, is: contracts.ErrOverloaded,
		},
		{
			name:    "error with a non-JSON body",
			answer:  answer{map[string]string{contracts.HeaderErrorCode: "model_error", contracts.HeaderError: "session failed"}, "stack trace..."},
			wantErr: &contracts.Error{Code: contracts.CodeModelError, Message: "session failed"}, is: contracts.ErrModelError,
		},
		{
			name:    "error with a null error body",
			answer:  answer{map[string]string{contracts.HeaderErrorCode: "timeout", contracts.HeaderError: "too slow"}, `{"error":null}`},
			wantErr: &contracts.Error{Code: contracts.CodeTimeout, Message: "too slow"}, is: contracts.ErrTimeout,
		},
		{
			name:    "error body without a code takes the header's",
			answer:  answer{map[string]string{contracts.HeaderErrorCode: "overloaded", contracts.HeaderError: "queue full"}, `{"error":{"message":"queue full, retry"}}`},
			wantErr: &contracts.Error{Code: contracts.CodeOverloaded, Message: "queue full, retry"}, is: contracts.ErrOverloaded,
		},
		{
			name:   "undecodable success body",
			answer: answer{nil, "<html>502</html>"},
			is:     contracts.ErrInternal,
		},
		{
			name:   "empty success body",
			answer: answer{nil, ""},
			is:     contracts.ErrInternal,
		},
		{
			name:   "success",
			answer: answer{nil, mustJSON(t, sampleResponse)},
			want:   sampleResponse,
		},
	}
	answers := make(map[string]answer, len(tests))
	for _, tc := range tests {
		answers[tc.name] = tc.answer
	}
	s := startServer(t)
	respond(t, s, contracts.SubjectSimilarity, func(m *nats.Msg) {
		a := answers[m.Header.Get(contracts.HeaderRequestID)]
		out := nats.NewMsg(m.Reply)
		for k, v := range a.headers {
			out.Header.Set(k, v)
		}
		out.Data = []byte(a.body)
		_ = m.RespondMsg(out)
	})
	c := newClient(t, s)

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := *originalRequest
			req.RequestID = tc.name
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := c.Match(ctx, &req)
			if tc.is == nil {
				if err != nil || !reflect.DeepEqual(resp, tc.want) {
					t.Fatalf("Match = %+v, %v; want %+v", resp, err, tc.want)
				}
				return
			}
			if resp != nil || !errors.Is(err, tc.is) {
				t.Fatalf("Match = %+v, %v; want errors.Is %v", resp, err, tc.is)
			}
			var e *contracts.Error
			if !errors.As(err, &e) {
				t.Fatalf("err %T is not a *contracts.Error", err)
			}
			if tc.wantErr != nil && !reflect.DeepEqual(e, tc.wantErr) {
				t.Errorf("error = %+v, want %+v", e, tc.wantErr)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClientMicroService uses the real nats micro framework on the processor
// side: its error headers must be the ones the client reads, and Ping must
// find the service by name.
func TestClientMicroService(t *testing.T) {
	s := startServer(t)
	c := newClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := c.Ping(ctx); !errors.Is(err, contracts.ErrNoProcessor) {
		t.Fatalf("Ping without a service = %v, want ErrNoProcessor", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, contracts.ErrNoProcessor) {
		t.Fatalf("Ping without a deadline or a service = %v, want ErrNoProcessor", err)
	}

	overloaded := &contracts.Error{Code: contracts.CodeOverloaded, Message: "all 4 workers are busy; retry later"}
	svcConn := connect(t, s)
	svc, err := micro.AddService(svcConn, micro.Config{
		Name:    contracts.ServiceName,
		Version: "0.0.1",
		Endpoint: &micro.EndpointConfig{
			Subject:    contracts.SubjectSimilarity,
			QueueGroup: contracts.DefaultQueueGroup,
			Handler: micro.HandlerFunc(func(r micro.Request) {
				if r.Headers().Get(contracts.HeaderRequestID) == "busy" {
					_ = r.Error(string(overloaded.Code), overloaded.Message, overloaded.Marshal())
					return
				}
				_ = r.RespondJSON(sampleResponse)
			}),
		},
	})
	if err != nil {
		t.Fatalf("micro.AddService: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	// AddService does not flush its subscriptions; the server must know them
	// before another connection pings.
	if err := svcConn.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping with the service running = %v", err)
	}
	if resp, err := c.Match(ctx, originalRequest); err != nil || !reflect.DeepEqual(resp, sampleResponse) {
		t.Errorf("Match = %+v, %v; want the sample response", resp, err)
	}
	busy := *originalRequest
	busy.RequestID = "busy"
	_, err = c.Match(ctx, &busy)
	if e := contracts.AsError(err); !errors.Is(err, contracts.ErrOverloaded) || !reflect.DeepEqual(e, overloaded) {
		t.Errorf("Match = %+v, want %+v", e, overloaded)
	}

	// Another service name does not count.
	otherConn := connect(t, s)
	other, err := micro.AddService(otherConn, micro.Config{Name: "other", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop() })
	if err := otherConn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := svcConn.Flush(); err != nil { // the server has the unsubscriptions
		t.Fatal(err)
	}
	if err := c.Ping(ctx); !errors.Is(err, contracts.ErrNoProcessor) {
		t.Errorf("Ping after the service stopped = %v, want ErrNoProcessor", err)
	}
}

func TestClientMatchRequestTooLarge(t *testing.T) {
	s := startServer(t, func(o *server.Options) { o.MaxPayload = 1024 })
	respond(t, s, contracts.SubjectSimilarity, func(m *nats.Msg) { reply(m, sampleResponse) })
	c := newClient(t, s)
	req := &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{strings.Repeat("saw ", 512)}}
	if _, err := c.Match(context.Background(), req); !errors.Is(err, contracts.ErrPayloadTooLarge) {
		t.Errorf("Match err = %v, want ErrPayloadTooLarge", err)
	}
}

func TestClientMatchClosedConnection(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	c, err := contracts.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := c.Match(context.Background(), originalRequest); !errors.Is(err, contracts.ErrInternal) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Match on a closed connection = %v, want ErrInternal naming the cause", err)
	}
}

func TestClientMatchUnencodable(t *testing.T) {
	c := newClient(t, startServer(t))
	req := *originalRequest
	req.Threshold = float64Ptr(math.NaN())
	if _, err := c.Match(context.Background(), &req); !errors.Is(err, contracts.ErrInvalidRequest) {
		t.Errorf("Match err = %v, want ErrInvalidRequest", err)
	}
}

// TestClientConcurrent shares one client across goroutines (run with -race):
// every caller must get its own answer.
func TestClientConcurrent(t *testing.T) {
	s := startServer(t)
	respond(t, s, contracts.SubjectSimilarity, func(m *nats.Msg) {
		resp := *sampleResponse
		resp.RequestID = m.Header.Get(contracts.HeaderRequestID)
		reply(m, &resp)
	})
	c := newClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			req := *originalRequest
			req.RequestID = fmt.Sprintf("req-%d", i)
			resp, err := c.Match(ctx, &req)
			switch {
			case err != nil:
				errs <- err
			case resp.RequestID != req.RequestID:
				errs <- fmt.Errorf("request %s got the answer to %s", req.RequestID, resp.RequestID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClientSpan(t *testing.T) {
	parent := testSpanContext(t)
	tests := []struct {
		name       string
		responder  bool
		wantStatus codes.Code
		wantDesc   string
	}{
		{name: "success", responder: true, wantStatus: codes.Unset},
		{name: "no processor", responder: false, wantStatus: codes.Error, wantDesc: string(contracts.CodeNoProcessor)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			seen := make(chan nats.Header, 1)
			if tc.responder {
				respond(t, s, contracts.SubjectSimilarity, func(m *nats.Msg) {
					seen <- m.Header
					reply(m, sampleResponse)
				})
			}
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			c := newClient(t, s, contracts.WithTracerProvider(tp), contracts.WithPropagator(propagation.TraceContext{}))

			ctx, cancel := context.WithTimeout(trace.ContextWithRemoteSpanContext(context.Background(), parent), 30*time.Second)
			defer cancel()
			_, err := c.Match(ctx, fullRequest)
			if tc.responder != (err == nil) {
				t.Fatalf("Match err = %v", err)
			}

			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("recorded %d spans, want 1", len(spans))
			}
			span := spans[0]
			if span.Name() != "send similarity.request" || span.SpanKind() != trace.SpanKindClient {
				t.Errorf("span %q kind %v, want %q kind client", span.Name(), span.SpanKind(), "send similarity.request")
			}
			if span.Parent().SpanID() != parent.SpanID() || span.SpanContext().TraceID() != parent.TraceID() {
				t.Errorf("span is not a child of the caller's span %v", parent.SpanID())
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, kv := range span.Attributes() {
				attrs[kv.Key] = kv.Value
			}
			for k, want := range map[attribute.Key]string{
				"messaging.system":           "nats",
				"messaging.destination.name": contracts.SubjectSimilarity,
				"simmatch.request_id":        fullRequest.RequestID,
			} {
				if got := attrs[k].AsString(); got != want {
					t.Errorf("attribute %s = %q, want %q", k, got, want)
				}
			}
			if st := span.Status(); st.Code != tc.wantStatus || st.Description != tc.wantDesc {
				t.Errorf("status = %v %q, want %v %q", st.Code, st.Description, tc.wantStatus, tc.wantDesc)
			}
			if tc.wantStatus == codes.Error && attrs["error.type"].AsString() != tc.wantDesc {
				t.Errorf("error.type = %q, want %q", attrs["error.type"].AsString(), tc.wantDesc)
			}

			if !tc.responder {
				return
			}
			h := <-seen
			sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), contracts.HeaderCarrier(h)))
			if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() {
				t.Errorf("processor saw traceparent %q, want the client span %s/%s",
					h.Get("traceparent"), span.SpanContext().TraceID(), span.SpanContext().SpanID())
			}
		})
	}
}
