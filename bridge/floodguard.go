package bridge

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// FloodLimits configure the flood guard: what keeps refusals cheap and a
// client that ignores Retry-After from taking the cores that admitted work
// needs. Every decision is made before the request's body is read. The zero
// value of a field means its default.
type FloodLimits struct {
	// MaxConcurrent bounds the requests the bridge works on at once (like
	// TEI's max_concurrent_requests): one more is refused with 429 at once
	// (DefaultMaxConcurrent).
	MaxConcurrent int
	// PenaltyConcurrency bounds the requests in flight, bridge-wide, from
	// clients in bad standing: those that resent a request while refused
	// within the last PenaltyWindow. Their other requests are refused at
	// once, so what they send cannot crowd out the clients that wait as
	// told. 0 (the default): none, a client in bad standing is refused
	// until it waits as told for a whole PenaltyWindow. (A request let
	// through holds a processor's lane ahead of everyone who came later.)
	PenaltyConcurrency int
	// PenaltyWindow is how long a client stays in bad standing after its
	// last resend while refused. 0 (the zero value) turns the per-client
	// guard off: no tarpit, no bad standing (the binaries default to
	// DefaultPenaltyWindow, SIMMATCH_FLOOD_PENALTY_WINDOW).
	PenaltyWindow time.Duration
	// MaxTarpitted bounds the refusals held back at once (the tarpit): a
	// request resent while refused is answered 429 only when its
	// Retry-After is over (at most MaxTarpitDelay), so the client that
	// ignores it is slowed to the pace it was told. Past the bound, the
	// refusal is answered at once and the connection closed
	// (DefaultMaxTarpitted).
	MaxTarpitted int
	// MaxTarpitDelay bounds one held-back refusal (DefaultMaxTarpitDelay).
	MaxTarpitDelay time.Duration
	// InFlightWork bounds the requests of the model routes in flight by
	// cost (costgate.go): their bodies' bytes may add up to what the
	// processors, by their load reports, finish in this long
	// (DefaultInFlightWork); a request that does not fit is refused at once,
	// before its body is read. Until a processor has measured its speed,
	// there is no bound.
	InFlightWork time.Duration
	// FloodInFlightWork is InFlightWork while a flood is on: a client
	// resent a request while refused within the last PenaltyWindow
	// (DefaultFloodInFlightWork). Shorter queues then keep the clients that
	// wait as told served beside the flood; without a flood the longer
	// budget leaves room for bursts and for a processor restarting.
	FloodInFlightWork time.Duration
	// MaxInFlightBytes, when > 0, is that budget in bytes instead of
	// InFlightWork's.
	MaxInFlightBytes int
}

// Defaults of FloodLimits.
const (
	DefaultMaxConcurrent     = 512
	DefaultPenaltyWindow     = 10 * time.Second
	DefaultMaxTarpitted      = 4096
	DefaultMaxTarpitDelay    = 2 * time.Second
	DefaultInFlightWork      = 2 * time.Second
	DefaultFloodInFlightWork = time.Second
)

func (l FloodLimits) withDefaults() FloodLimits {
	if l.MaxConcurrent <= 0 {
		l.MaxConcurrent = DefaultMaxConcurrent
	}
	if l.MaxTarpitted <= 0 {
		l.MaxTarpitted = DefaultMaxTarpitted
	}
	if l.MaxTarpitDelay <= 0 {
		l.MaxTarpitDelay = DefaultMaxTarpitDelay
	}
	if l.InFlightWork <= 0 {
		l.InFlightWork = DefaultInFlightWork
	}
	if l.FloodInFlightWork <= 0 {
		l.FloodInFlightWork = min(DefaultFloodInFlightWork, l.InFlightWork)
	}
	return l
}

// headerTarpit marks a 429 the bridge held back on purpose: its value is the
// delay in milliseconds.
const headerTarpit = "Simmatch-Tarpit-Ms"

// floodGuard tracks, per client, the refusals it was given and whether it
// waited as told. A client is a connection (its remote address): a client
// that resends on the same connection is recognised without reading
// anything but the request line and headers. Behind a proxy that pools
// connections, per-key limits (the keys file's rate=) do the same job.
type floodGuard struct {
	lim       FloodLimits
	now       func() time.Time
	inFlight  atomic.Int64
	penalized atomic.Int64 // requests in flight from clients in bad standing
	lastEarly atomic.Int64 // when a client last resent while refused (Unix ns; 0: never)
	tarpitted atomic.Int64 // refusals being held back now

	mu        sync.Mutex
	clients   map[string]*standing
	lastSweep time.Time
}

// standing is what the guard remembers of one client once it was refused.
type standing struct {
	refusedUntil time.Time // the end of the wait its last refusal asked for
	badUntil     time.Time // in bad standing until then
	seen         time.Time
}

// maxTracked bounds the clients remembered; past it, new clients are not
// tracked until a sweep makes room.
const maxTracked = 1 << 16

func newFloodGuard(lim FloodLimits) *floodGuard {
	return &floodGuard{lim: lim.withDefaults(), now: time.Now, clients: map[string]*standing{}}
}

// verdict is what enter decided for one request.
type verdict int

const (
	admitted      verdict = iota
	resentEarly           // resent while refused: tarpit
	penaltyFull           // bad standing, no penalty slot free
	concurrencyOn         // the bridge-wide concurrency limit is reached
)

// enter decides, from the client's standing alone, whether the request may
// go on. When it may, release must be called once it is answered, with the
// answer's refusal wait (0: not refused).
func (g *floodGuard) enter(client string) (v verdict, wait time.Duration, release func(refused time.Duration)) {
	now := g.now()
	g.mu.Lock()
	st := g.clients[client]
	bad := false
	if st != nil && g.lim.PenaltyWindow > 0 {
		st.seen = now
		if now.Before(st.refusedUntil) {
			st.badUntil = now.Add(g.lim.PenaltyWindow)
			g.lastEarly.Store(now.UnixNano())
			wait = st.refusedUntil.Sub(now)
			g.mu.Unlock()
			return resentEarly, wait, nil
		}
		bad = now.Before(st.badUntil)
	}
	g.mu.Unlock()
	if g.inFlight.Add(1) > int64(g.lim.MaxConcurrent) {
		g.inFlight.Add(-1)
		return concurrencyOn, time.Second, nil
	}
	if bad {
		if g.penalized.Add(1) > int64(g.lim.PenaltyConcurrency) {
			g.penalized.Add(-1)
			g.inFlight.Add(-1)
			return penaltyFull, time.Second, nil
		}
	}
	return admitted, 0, func(refused time.Duration) {
		if bad {
			g.penalized.Add(-1)
		}
		g.inFlight.Add(-1)
		if refused > 0 && g.lim.PenaltyWindow > 0 {
			g.refused(client, refused)
		}
	}
}

// flooding reports whether a flood is on: a client resent a request while
// refused within the last PenaltyWindow.
func (g *floodGuard) flooding(now time.Time) bool {
	t := g.lastEarly.Load()
	return t != 0 && now.Sub(time.Unix(0, t)) < g.lim.PenaltyWindow
}

// refused records that client was told to wait d.
func (g *floodGuard) refused(client string, d time.Duration) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.clients[client]
	if st == nil {
		g.sweep(now)
		if len(g.clients) >= maxTracked {
			return
		}
		st = &standing{}
		g.clients[client] = st
	}
	st.seen = now
	// A client that waits as told may come back a little early by our
	// clock (the wait was measured from before the answer reached it):
	// the last quarter of the wait, and at least 50 ms, is forgiven.
	if until := now.Add(d - max(d/4, 50*time.Millisecond)); until.After(st.refusedUntil) {
		st.refusedUntil = until
	}
}

// sweep forgets the clients not seen for a penalty window, at most every
// few seconds; called with mu held.
func (g *floodGuard) sweep(now time.Time) {
	if now.Sub(g.lastSweep) < 5*time.Second {
		return
	}
	g.lastSweep = now
	for k, st := range g.clients {
		if now.Sub(st.seen) > g.lim.PenaltyWindow && now.After(st.refusedUntil) && now.After(st.badUntil) {
			delete(g.clients, k)
		}
	}
}

// refusalWait is how long an answer just written asks its client to wait:
// 0 unless it is a 429 or 503, read from Retry-After-Ms or Retry-After.
func refusalWait(w http.ResponseWriter, r *http.Request) time.Duration {
	e := infoFrom(r.Context()).err
	if e == nil {
		return 0
	}
	if s := errorStatus(e); s != http.StatusTooManyRequests && s != http.StatusServiceUnavailable {
		return 0
	}
	if ms, err := strconv.Atoi(w.Header().Get("Retry-After-Ms")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	if sec, err := strconv.Atoi(w.Header().Get("Retry-After")); err == nil && sec > 0 {
		return time.Duration(sec) * time.Second
	}
	return time.Second
}

// guard runs next unless the flood guard refuses the request, and records
// the refusals next answers. It reads nothing of the body.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, next http.Handler) {
	client := r.RemoteAddr
	v, wait, release := s.flood.enter(client)
	switch v {
	case admitted:
		next.ServeHTTP(w, r)
		release(refusalWait(w, r))
		return
	case resentEarly:
		e := contracts.Errorf(contracts.CodeRateLimited,
			"this client was asked to wait before sending again and did not: wait %d ms; clients that resend while refused are served last", wait.Milliseconds())
		e.RetryAfterMs = max(1, int(wait.Milliseconds()))
		s.tarpit(w, r, e, wait)
		return
	case penaltyFull:
		e := contracts.Errorf(contracts.CodeOverloaded,
			"this client resent requests while refused in the last %v: it is served only when the bridge has room; retry later", s.flood.lim.PenaltyWindow)
		e.RetryAfterMs = int(wait.Milliseconds())
		writeRefusal(w, r, e)
		if s.flood.lim.PenaltyWindow > 0 {
			s.flood.refused(client, wait)
		}
	default:
		e := contracts.Errorf(contracts.CodeOverloaded,
			"the bridge is working on %d requests, its limit; retry later", s.flood.lim.MaxConcurrent)
		e.RetryAfterMs = int(wait.Milliseconds())
		writeRefusal(w, r, e)
	}
}

// keepAliveBody is the largest unread body a refusal keeps the connection
// for. A refused client's next request on the same connection is what the
// flood guard recognises it by, so for a small body the connection is
// kept: the refusal is sent at once (full duplex), then the body is read
// and dropped, undecoded, to reuse the connection (net/http would read it
// before answering, so a client slow to send its body would wait for its
// 429). A bigger body, or one of unknown length, is not read at all: the
// refusal closes the connection.
const keepAliveBody = 64 << 10

// writeRefusal answers e to a request whose body was not read
// (keepAliveBody).
func writeRefusal(w http.ResponseWriter, r *http.Request, e *contracts.Error) {
	if r.ContentLength < 0 || r.ContentLength > keepAliveBody {
		w.Header().Set("Connection", "close")
		writeError(w, r, e)
		return
	}
	rc := http.NewResponseController(w)
	// HTTP/2 answers an error here: it is full duplex already.
	early := r.ContentLength > 0 && rc.EnableFullDuplex() == nil
	writeError(w, r, e)
	if early && rc.Flush() == nil {
		// A client that does not send the rest of its body soon loses the
		// connection instead of holding a handler until ReadTimeout (net/http
		// would keep a connection whose body read failed, and wait on it).
		_ = rc.SetReadDeadline(time.Now().Add(refusedBodyWait))
		if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, keepAliveBody)); err != nil {
			if conn, _, err := rc.Hijack(); err == nil {
				_ = conn.Close()
			}
		}
	}
}

// refusedBodyWait is how long a refused request's small body may take to
// arrive after its 429 was sent.
const refusedBodyWait = 2 * time.Second

// tarpit answers e after holding it back until the client's wait is over
// (at most MaxTarpitDelay), unless too many refusals are held back already:
// then at once, closing the connection.
func (s *Server) tarpit(w http.ResponseWriter, r *http.Request, e *contracts.Error, wait time.Duration) {
	g := s.flood
	if g.tarpitted.Add(1) > int64(g.lim.MaxTarpitted) {
		g.tarpitted.Add(-1)
		w.Header().Set("Connection", "close")
		writeError(w, r, e)
		return
	}
	defer g.tarpitted.Add(-1)
	d := min(wait, g.lim.MaxTarpitDelay)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		clientGone(w)
		return
	}
	w.Header().Set(headerTarpit, strconv.FormatInt(d.Milliseconds(), 10))
	e.RetryAfterMs = max(1, int((wait - d).Milliseconds()))
	writeRefusal(w, r, e)
}
