package contracts

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// RetryReason says why a call sent its request again.
type RetryReason string

// The reasons a call sends its request again.
const (
	// RetryNoAck: no processor acknowledged the request within the ack timeout.
	RetryNoAck RetryReason = "no_ack"
	// RetrySilent: the processor that acknowledged the request stopped sending heartbeats.
	RetrySilent RetryReason = "silent"
	// RetryNoProcessor: no processor was subscribed (NATS answered "no responders").
	RetryNoProcessor RetryReason = "no_processor"
)

// Backoff before re-sending after "no responders": doubled per retry from
// noProcessorBackoff, at most maxNoProcessorBackoff.
const (
	noProcessorBackoff    = 100 * time.Millisecond
	maxNoProcessorBackoff = time.Second
)

// attempt is one sending of a call's request, with its own reply subject.
type attempt struct {
	sent     time.Time // or the last time the connection was seen down
	lastSeen time.Time // last acknowledgement or heartbeat; zero before the first
	dead     bool      // answered "no responders" or could not be published
}

// pendingCall is one Match in flight. The inbox callback records what arrives; the
// caller's goroutine decides.
type pendingCall struct {
	mu       sync.Mutex
	attempts []*attempt
	final    *nats.Msg
	wake     chan struct{} // capacity 1: "something arrived"
}

func (cl *pendingCall) signal() {
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// inboxMux is one wildcard subscription on a private inbox prefix for all the
// client's calls: each attempt replies to prefix.<n>, and the callback routes
// the message to its call. Messages for finished calls (a late duplicate
// answer, a heartbeat still on its way) are dropped.
type inboxMux struct {
	once   sync.Once
	err    error
	prefix string
	next   atomic.Uint64
	mu     sync.Mutex
	routes map[string]route
}

type route struct {
	call *pendingCall
	n    int // index in call.attempts
}

func (m *inboxMux) start(nc *nats.Conn) error {
	m.once.Do(func() {
		m.prefix = nc.NewInbox()
		m.routes = make(map[string]route)
		sub, err := nc.Subscribe(m.prefix+".*", m.deliver)
		if err != nil {
			m.err = transportError(context.Background(), m.prefix, err)
			return
		}
		// The callback only records and signals, but a burst of heartbeats
		// must never be dropped as a slow consumer.
		_ = sub.SetPendingLimits(1<<20, 256<<20)
	})
	return m.err
}

func (m *inboxMux) deliver(msg *nats.Msg) {
	m.mu.Lock()
	r, ok := m.routes[msg.Subject]
	m.mu.Unlock()
	if !ok {
		return
	}
	cl := r.call
	cl.mu.Lock()
	a := cl.attempts[r.n]
	switch {
	case cl.final != nil:
	case isNoResponders(msg):
		a.dead = true
	default:
		if _, progress := IsProgress(msg); progress {
			a.lastSeen = time.Now()
		} else {
			cl.final = msg
		}
	}
	cl.mu.Unlock()
	cl.signal()
}

// add routes a new reply subject to attempt n of cl.
func (m *inboxMux) add(cl *pendingCall, n int) string {
	subj := m.prefix + "." + strconv.FormatUint(m.next.Add(1), 36)
	m.mu.Lock()
	m.routes[subj] = route{call: cl, n: n}
	m.mu.Unlock()
	return subj
}

func (m *inboxMux) remove(subjects []string) {
	m.mu.Lock()
	for _, s := range subjects {
		delete(m.routes, s)
	}
	m.mu.Unlock()
}

// isNoResponders reports whether m is the server's "503 no responders" status.
func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header != nil && m.Header.Get("Status") == "503"
}

// resilientRequest sends data to subject and returns the first final answer, sending it
// again as the Client documents. Only subjects whose processors acknowledge
// (contracts.StartProgress) may use it: without acknowledgements every
// request would be sent MaxAttempts times.
func (c *Client) resilientRequest(ctx context.Context, span trace.Span, subject string, data []byte, requestID string) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if err := c.inbox.start(c.nc); err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	cl := &pendingCall{wake: make(chan struct{}, 1)}
	var subjects []string
	defer func() { c.inbox.remove(subjects) }()
	// cancel tells the processors to drop the attempts other than answered
	// (SubjectCancel): best effort, nothing waits for it.
	cancel := func(answered string) {
		var others []string
		for _, s := range subjects {
			if s != answered {
				others = append(others, s)
			}
		}
		if len(others) > 0 {
			_ = c.nc.Publish(SubjectCancel, []byte(strings.Join(others, "\n")))
		}
	}

	send := func() error {
		cl.mu.Lock()
		n := len(cl.attempts)
		a := &attempt{sent: time.Now()}
		cl.attempts = append(cl.attempts, a)
		cl.mu.Unlock()
		reply := c.inbox.add(cl, n)
		subjects = append(subjects, reply)
		msg := nats.NewMsg(subject)
		msg.Reply = reply
		msg.Data = data
		if requestID != "" {
			msg.Header.Set(HeaderRequestID, requestID)
		}
		SetTimeout(msg.Header, time.Until(deadline))
		SetAck(msg.Header, c.heartbeat)
		c.prop.Inject(ctx, HeaderCarrier(msg.Header))
		if c.ns.Scoped() {
			msg.Header.Set(HeaderTenant, c.ns.Tenant())
		}
		if err := c.nc.PublishMsg(msg); err != nil {
			if errors.Is(err, nats.ErrMaxPayload) || c.nc.IsClosed() {
				return err
			}
			// E.g. the reconnect buffer is full: count it as no responders.
			cl.mu.Lock()
			a.dead = true
			cl.mu.Unlock()
		}
		return nil
	}
	retry := func(reason RetryReason) error {
		span.AddEvent("simmatch.retry", trace.WithAttributes(
			attribute.String("simmatch.retry.reason", string(reason)),
			attribute.Int("simmatch.attempt", len(cl.attempts)+1)))
		if c.onRetry != nil {
			c.onRetry(reason)
		}
		return send()
	}
	fail := func(err error) error {
		err = transportError(ctx, subject, err)
		var e *Error
		if errors.As(err, &e) {
			e.RequestID = requestID
		}
		return err
	}

	if err := send(); err != nil {
		return nil, fail(err)
	}
	silence := SilentHeartbeats * c.heartbeat
	backoff := noProcessorBackoff
	var retryAt time.Time // when a "no responders" attempt is sent again
	timer := time.NewTimer(c.ackTimeout)
	defer timer.Stop()
	for {
		now := time.Now()
		cl.mu.Lock()
		final := cl.final
		cur := cl.attempts[len(cl.attempts)-1]
		connected := c.nc.IsConnected()
		if !connected {
			// While the connection is down nothing can arrive: the clocks of
			// the attempts stop, so a reconnect does not look like a dead processor.
			for _, a := range cl.attempts {
				a.sent = now
				if !a.lastSeen.IsZero() {
					a.lastSeen = now
				}
			}
		}
		dead, sent, lastSeen := cur.dead, cur.sent, cur.lastSeen
		alive := false // an earlier attempt still has a processor working on it
		for _, a := range cl.attempts[:len(cl.attempts)-1] {
			alive = alive || (!a.dead && !a.lastSeen.IsZero() && now.Sub(a.lastSeen) < silence)
		}
		cl.mu.Unlock()
		if final != nil {
			cancel(final.Subject)
			return final, nil
		}
		more := len(cl.attempts) < c.maxAttempts

		// next is when the current attempt must be looked at again.
		var next time.Time
		switch {
		case dead:
			if !more {
				if alive {
					next = now.Add(silence)
					break
				}
				return nil, fail(nats.ErrNoResponders)
			}
			if retryAt.IsZero() {
				retryAt = now.Add(backoff)
				backoff = min(2*backoff, maxNoProcessorBackoff)
			}
			if !now.Before(retryAt) {
				retryAt = time.Time{}
				if err := retry(RetryNoProcessor); err != nil {
					return nil, fail(err)
				}
				continue
			}
			next = retryAt
		case lastSeen.IsZero():
			next = sent.Add(c.ackTimeout)
			if more && connected && !now.Before(next) {
				if err := retry(RetryNoAck); err != nil {
					return nil, fail(err)
				}
				continue
			}
		default:
			next = lastSeen.Add(silence)
			if more && connected && !now.Before(next) {
				if err := retry(RetrySilent); err != nil {
					return nil, fail(err)
				}
				continue
			}
		}
		wait := time.Until(next)
		if !more || !connected || wait <= 0 {
			wait = c.ackTimeout // only the deadline or an answer can end the call now
		}
		timer.Reset(wait)
		select {
		case <-cl.wake:
		case <-timer.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				cancel("") // the caller gave up; at its deadline the processors stop on their own
			}
			return nil, fail(ctx.Err())
		}
	}
}
