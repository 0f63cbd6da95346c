package contracts_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// These tests are about the transport: the "processors" are plain NATS
// subscribers that follow (or break) the acknowledgement protocol on cue.
// The real processor is tested against it in processor/faults_test.go.

// fastRetry makes retries quick enough for tests.
func fastRetry(hook func(contracts.RetryReason)) []contracts.ClientOption {
	return []contracts.ClientOption{
		contracts.WithAckTimeout(100 * time.Millisecond),
		contracts.WithHeartbeat(50 * time.Millisecond),
		contracts.WithRetryHook(hook),
	}
}

// reasons records the retry hook's calls.
type reasons struct {
	mu sync.Mutex
	rs []contracts.RetryReason
}

func (r *reasons) add(x contracts.RetryReason) { r.mu.Lock(); r.rs = append(r.rs, x); r.mu.Unlock() }
func (r *reasons) get() []contracts.RetryReason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]contracts.RetryReason(nil), r.rs...)
}

// flush makes sure the server knows nc's subscriptions.
func flush(t testing.TB, nc *nats.Conn) {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// standIn starts a server and a stand-in processor on the similarity subject,
// ready when it returns: serve gets every request with its attempt number
// (from 1) and the processor's connection. attempts counts the requests.
func standIn(t testing.TB, serve func(pnc *nats.Conn, m *nats.Msg, attempt int32)) (ns *server.Server, pnc *nats.Conn, attempts *atomic.Int32) {
	t.Helper()
	ns = startServer(t)
	pnc = connect(t, ns)
	attempts = new(atomic.Int32)
	if _, err := pnc.Subscribe(contracts.SubjectSimilarity, func(m *nats.Msg) { serve(pnc, m, attempts.Add(1)) }); err != nil {
		t.Fatal(err)
	}
	flush(t, pnc)
	return ns, pnc, attempts
}

// heartbeats watches reply, on a connection of its own, and closes the
// channel it returns once n heartbeats (StatusWorking) have gone there: a
// fake processor's clock that needs no sleeping.
func heartbeats(t testing.TB, nc *nats.Conn, reply string, n int) <-chan struct{} {
	t.Helper()
	wnc, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(wnc.Close)
	done := make(chan struct{})
	var seen int
	_, err = wnc.Subscribe(reply, func(m *nats.Msg) {
		if s, _ := contracts.IsProgress(m); s == contracts.StatusWorking {
			if seen++; seen == n {
				close(done)
				wnc.Close()
			}
		}
	})
	if err == nil {
		err = wnc.Flush()
	}
	if err != nil {
		t.Error(err)
	}
	return done
}

func answer(t testing.TB, m *nats.Msg, id string) {
	t.Helper()
	b, _ := json.Marshal(contracts.Response{RequestID: id, Results: []contracts.Result{{Query: "q"}}})
	if err := m.Respond(b); err != nil {
		t.Error(err)
	}
}

var matchReq = &contracts.Request{Query: contracts.Queries{"q"}, ProductDescriptions: []string{"d"}}

func TestClientRetriesAndTakesFirstFinalAnswer(t *testing.T) {
	tests := []struct {
		name string
		// first handles attempt 1: it swallows the request (a processor
		// killed before it acknowledged) or acknowledges it and then goes
		// silent (killed while working).
		first func(t *testing.T, nc *nats.Conn, m *nats.Msg)
		want  contracts.RetryReason
	}{
		{"no ack", func(*testing.T, *nats.Conn, *nats.Msg) {}, contracts.RetryNoAck},
		{"heartbeats stop", func(t *testing.T, nc *nats.Conn, m *nats.Msg) {
			// Killed after its third heartbeat.
			beats := heartbeats(t, nc, m.Reply, 3)
			stop := contracts.StartProgress(nc, m.Reply, m.Header)
			go func() { <-beats; stop() }()
		}, contracts.RetrySilent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns, _, attempts := standIn(t, func(pnc *nats.Conn, m *nats.Msg, attempt int32) {
				switch attempt {
				case 1:
					tc.first(t, pnc, m)
				default:
					stop := contracts.StartProgress(pnc, m.Reply, m.Header)
					stop()
					answer(t, m, "second")
				}
			})
			var rs reasons
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			c, err := contracts.NewClient(connect(t, ns), append(fastRetry(rs.add), contracts.WithTracerProvider(tp))...)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Match(context.Background(), matchReq)
			if err != nil {
				t.Fatal(err)
			}
			if resp.RequestID != "second" || attempts.Load() != 2 {
				t.Fatalf("answer from %q after %d attempts, want the second attempt's", resp.RequestID, attempts.Load())
			}
			if got := rs.get(); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("retry reasons %v, want [%s]", got, tc.want)
			}
			spans := rec.Ended()
			if len(spans) != 1 || len(spans[0].Events()) != 1 || spans[0].Events()[0].Name != "simmatch.retry" {
				t.Fatalf("want one CLIENT span with one simmatch.retry event, got %d spans", len(spans))
			}
		})
	}
}

// A processor that keeps sending heartbeats is waited for, however long it
// takes: the request is not sent again.
func TestClientWaitsForWorkingProcessor(t *testing.T) {
	ns, _, attempts := standIn(t, func(pnc *nats.Conn, m *nats.Msg, _ int32) {
		// Works for 12 heartbeats: 3 ack timeouts, 3 silence windows.
		beats := heartbeats(t, pnc, m.Reply, 12)
		stop := contracts.StartProgress(pnc, m.Reply, m.Header)
		go func() {
			<-beats
			stop()
			answer(t, m, "slow")
		}()
	})
	var rs reasons
	c, err := contracts.NewClient(connect(t, ns), fastRetry(rs.add)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Match(context.Background(), matchReq); err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 1 || len(rs.get()) != 0 {
		t.Fatalf("%d attempts, retries %v: a processor that sends heartbeats must not be replaced", attempts.Load(), rs.get())
	}
}

// Error answers are final: invalid_request (and every other code) is never
// sent again.
func TestClientDoesNotRetryErrorAnswers(t *testing.T) {
	ns, _, attempts := standIn(t, func(pnc *nats.Conn, m *nats.Msg, _ int32) {
		e := contracts.FieldError("query", 1, "too many")
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(contracts.HeaderErrorCode, string(e.Code))
		reply.Header.Set(contracts.HeaderError, e.Message)
		reply.Data = e.Marshal()
		if err := pnc.PublishMsg(reply); err != nil {
			t.Error(err)
		}
	})
	var rs reasons
	c, err := contracts.NewClient(connect(t, ns), fastRetry(rs.add)...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Match(context.Background(), matchReq)
	if !errors.Is(err, contracts.ErrInvalidRequest) {
		t.Fatalf("got %v, want invalid_request", err)
	}
	if attempts.Load() != 1 || len(rs.get()) != 0 {
		t.Fatalf("%d attempts, retries %v, want 1 and none", attempts.Load(), rs.get())
	}
}

// "No responders" is retried with a backoff: a processor that subscribes
// meanwhile (a rolling restart) gets the request.
func TestClientRetriesNoProcessor(t *testing.T) {
	ns := startServer(t)
	nc := connect(t, ns)
	var rs reasons
	var once sync.Once
	hook := func(r contracts.RetryReason) {
		rs.add(r)
		// The processor comes up before the first retry; it subscribes on
		// the client's own connection, so the server knows it before the
		// retry arrives.
		once.Do(func() {
			if _, err := nc.Subscribe(contracts.SubjectSimilarity, func(m *nats.Msg) { answer(t, m, "late processor") }); err != nil {
				t.Error(err)
			}
		})
	}
	c, err := contracts.NewClient(nc, fastRetry(hook)...)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Match(context.Background(), matchReq)
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.get(); resp.RequestID != "late processor" || len(got) != 1 || got[0] != contracts.RetryNoProcessor {
		t.Fatalf("answer %q, retries %v; want the late processor's answer after one no_processor retry", resp.RequestID, got)
	}
}

// Retries are bounded: with nobody serving, the call ends with no_processor
// after MaxAttempts sends, well before its deadline.
func TestClientNoProcessorIsBounded(t *testing.T) {
	ns := startServer(t)
	var rs reasons
	c, err := contracts.NewClient(connect(t, ns), append(fastRetry(rs.add), contracts.WithMaxAttempts(3))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Match(ctx, matchReq)
	if !errors.Is(err, contracts.ErrNoProcessor) {
		t.Fatalf("got %v, want no_processor", err)
	}
	if len(rs.get()) != 2 || time.Since(start) > 5*time.Second {
		t.Fatalf("retries %v in %v; want 2 (3 attempts), quickly", rs.get(), time.Since(start))
	}
}

// A silent processor is replaced at most MaxAttempts-1 times; then the call
// waits for its deadline and reports a timeout.
func TestClientLostRequestsAreBounded(t *testing.T) {
	ns, pnc, attempts := standIn(t, func(*nats.Conn, *nats.Msg, int32) {})
	c, err := contracts.NewClient(connect(t, ns), append(fastRetry(nil), contracts.WithMaxAttempts(3))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := c.Match(ctx, matchReq); !errors.Is(err, contracts.ErrTimeout) {
		t.Fatalf("got %v, want timeout", err)
	}
	// The call is over, so no attempt can follow; the last may still be on its way.
	testenv.WaitFor(t, 5*time.Second, "the third attempt to arrive", func() bool { return attempts.Load() >= 3 })
	if err := pnc.Flush(); err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 3 {
		t.Fatalf("%d attempts, want 3", attempts.Load())
	}
}

// A late answer to an attempt that was given up is dropped: it never
// reaches another call.
func TestClientDropsLateDuplicate(t *testing.T) {
	first := make(chan *nats.Msg, 1)
	ns, pnc, _ := standIn(t, func(_ *nats.Conn, m *nats.Msg, attempt int32) {
		if attempt == 1 {
			first <- m // swallowed for now
			return
		}
		var req contracts.Request
		_ = json.Unmarshal(m.Data, &req)
		answer(t, m, req.RequestID)
	})
	c, err := contracts.NewClient(connect(t, ns), fastRetry(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	r1 := *matchReq
	r1.RequestID = "one"
	if resp, err := c.Match(context.Background(), &r1); err != nil || resp.RequestID != "one" {
		t.Fatalf("first call: %v %v", resp, err)
	}
	answer(t, <-first, "late duplicate")
	if err := pnc.Flush(); err != nil {
		t.Fatal(err)
	}
	r2 := *matchReq
	r2.RequestID = "two"
	if resp, err := c.Match(context.Background(), &r2); err != nil || resp.RequestID != "two" {
		t.Fatalf("second call got %v %v, want its own answer", resp, err)
	}
}
