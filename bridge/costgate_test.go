package bridge

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// holdingProcessor acknowledges every /predict (with heartbeats, as a
// processor does while a request is queued) and answers it only once
// release is called, so a test can keep requests in flight.
type holdingProcessor struct {
	got      atomic.Int64
	release  func()
	released chan struct{}
}

func startHolding(t testing.TB, ns *server.Server) *holdingProcessor {
	t.Helper()
	nc := connect(t, ns)
	h := &holdingProcessor{released: make(chan struct{})}
	var once sync.Once
	h.release = func() { once.Do(func() { close(h.released) }) }
	t.Cleanup(h.release)
	// Answered after the test may have ended: errors are not reported.
	answer := func(m *nats.Msg) {
		var req contracts.Request
		_ = json.Unmarshal(m.Data, &req)
		resp := contracts.Response{Model: contracts.ModelInfo{Name: "fake", Version: "test", Dimensions: 3}, RequestID: req.RequestID}
		for _, q := range req.Query {
			resp.Results = append(resp.Results, contracts.Result{Query: q, Matches: []contracts.Match{}})
		}
		data, _ := json.Marshal(resp)
		_ = m.Respond(data)
	}
	_, err := nc.QueueSubscribe(contracts.SubjectSimilarity, contracts.DefaultQueueGroup, func(m *nats.Msg) {
		stop := contracts.StartProgress(nc, m.Reply, m.Header)
		h.got.Add(1)
		go func() {
			<-h.released
			stop()
			answer(m)
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return h
}

// predictBody is a /predict body with n descriptions.
func predictBody(n int) string {
	d := make([]string, n)
	for i := range d {
		d[i] = fmt.Sprintf("cordless drill number %d with two batteries and a case", i)
	}
	b, _ := json.Marshal(contracts.Request{Query: contracts.Queries{"drill"}, ProductDescriptions: d})
	return string(b)
}

// postAsync posts body to /predict in the background; the answer's status
// arrives on the channel.
func postAsync(t *testing.T, url, body string) <-chan int {
	ch := make(chan int, 1)
	go func() {
		resp, err := http.Post(url+"/predict", "application/json", strings.NewReader(body))
		if err != nil {
			t.Errorf("post: %v", err)
			ch <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ch <- resp.StatusCode
	}()
	return ch
}

// The model routes admit requests by cost, before their bodies are read:
// big requests while their bytes fit the budget, small ones beside them
// from a reserve of a quarter more, and whatever does not fit is refused at
// once with Retry-After and never reaches a processor.
func TestCostGate(t *testing.T) {
	ns := startNATS(t)
	proc := startHolding(t, ns)
	big, small := predictBody(30), predictBody(1)
	// Two big requests fit, a third does not; a small one is under a
	// sixteenth of the budget: small ones fill what the big ones leave,
	// then the reserve.
	budget := 2*len(big) + len(big)/2
	fit := (budget-2*len(big))/len(small) + (budget/reserveDiv)/len(small)
	if len(small) > budget/smallDiv || fit < 2 {
		t.Fatalf("test set-up: a small body of %d bytes must be small for a budget of %d, and the reserve hold 2 or more", len(small), budget)
	}
	b := startBridge(t, ns, func(c *Config) { c.Flood.MaxInFlightBytes = budget })

	first, second := postAsync(t, b.URL, big), postAsync(t, b.URL, big)
	waitFor(t, 5*time.Second, "two big requests at the processor", func() bool { return proc.got.Load() == 2 })

	resp, raw := b.post(t, "/predict", "application/json", big)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third big request: %d %s, want 429", resp.StatusCode, clip(raw))
	}
	if e := decodeError(t, resp, raw); e.Code != contracts.CodeOverloaded || e.RetryAfterMs < 1000 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the refusal: %+v, Retry-After %q; want overloaded with a wait of at least 1 s", e, resp.Header.Get("Retry-After"))
	}

	// Small requests run beside the big ones, from the reserve, until it
	// is full too.
	var smalls []<-chan int
	for i := range fit {
		smalls = append(smalls, postAsync(t, b.URL, small))
		waitFor(t, 5*time.Second, "a small request at the processor", func() bool { return proc.got.Load() == int64(3+i) })
	}
	if resp, raw := b.post(t, "/predict", "application/json", small); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a small request past the reserve (%d held): %d %s, want 429", fit, resp.StatusCode, clip(raw))
	}

	// A refusal does not wait for the body: a request that declares a big
	// body and never sends it is answered at once.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/predict", pr)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = 128 << 10 // under what net/http would read to keep the connection
	quick := &http.Client{Timeout: 5 * time.Second}
	resp, err := quick.Do(req)
	if err != nil {
		t.Fatalf("a refused request whose body is not sent: %v, want 429 at once", err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !resp.Close {
		t.Errorf("a refused request whose body is not sent: %d, connection closed %t; want 429 and the connection closed", resp.StatusCode, resp.Close)
	}
	_ = raw

	got := proc.got.Load()
	proc.release()
	for i, ch := range append([]<-chan int{first, second}, smalls...) {
		if s := <-ch; s != http.StatusOK {
			t.Errorf("admitted request %d: %d, want 200", i, s)
		}
	}
	// Released, the budget has room again.
	if resp, raw := b.post(t, "/predict", "application/json", big); resp.StatusCode != http.StatusOK {
		t.Errorf("a big request once the budget is free: %d %s, want 200", resp.StatusCode, clip(raw))
	}
	if now := proc.got.Load(); now != got+1 {
		t.Errorf("the processor got %d more requests, want 1: refused ones must never reach it", now-got)
	}
}

// The budget follows the processors' reports: the bytes they finish in
// InFlightWork, each processor counted once; none before a speed is known.
func TestCostGateBudgetFromReports(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, func(c *Config) {
		c.Flood.InFlightWork, c.Flood.FloodInFlightWork, c.Flood.PenaltyWindow = 4*time.Second, time.Second, 10*time.Second
	})
	if budget, _ := b.srv.costs.budget(time.Now()); budget != 0 {
		t.Fatalf("budget before any report: %d, want 0 (no bound)", budget)
	}
	reporter := connect(t, ns)
	publish := func(id string, msPerKB float64) {
		t.Helper()
		data, _ := json.Marshal(contracts.LoadReport{ID: id, MsPerKB: msPerKB})
		if err := reporter.Publish(contracts.SubjectLoad, data); err != nil {
			t.Fatal(err)
		}
	}
	// 100 ms per KiB each: 10 KiB per second each; p3 not measured yet
	// counts as the average.
	waitFor(t, 5*time.Second, "three reports", func() bool {
		publish("p1", 100)
		publish("p2", 100)
		publish("p3", 0)
		b.srv.gate.mu.Lock()
		defer b.srv.gate.mu.Unlock()
		return len(b.srv.gate.reports) == 3
	})
	if budget, _ := b.srv.costs.budget(time.Now()); budget != 4*3*10240 {
		t.Errorf("budget: %d bytes, want %d (4 s of 30 KiB/s)", budget, 4*3*10240)
	}
	// A client resends while refused: a flood is on, the budget is 1 s of
	// work until the penalty window has passed.
	g := b.srv.flood
	g.refused("flooder", time.Second)
	if v, _, _ := g.enter("flooder"); v != resentEarly {
		t.Fatalf("a resend while refused: verdict %v", v)
	}
	if budget, _ := b.srv.costs.budget(time.Now()); budget != 3*10240 {
		t.Errorf("budget during a flood: %d bytes, want %d (1 s of 30 KiB/s)", budget, 3*10240)
	}
	if g.flooding(time.Now().Add(10*time.Second + time.Millisecond)) {
		t.Error("still flooding after the penalty window")
	}
	// A processor silent for longer than speedAge leaves the budget.
	if budget, _ := b.srv.costs.budget(time.Now().Add(speedAge + time.Second)); budget != 0 {
		t.Errorf("budget with every report older than %v: %d, want 0", speedAge, budget)
	}
}

// connClient is an HTTP client on one kept-alive connection: the flood
// guard knows a client by its connection.
func connClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
}

func postWith(t *testing.T, c *http.Client, url, body string) *http.Response {
	t.Helper()
	resp, err := c.Post(url+"/predict", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A client that resends at once while refused has its next refusal held
// back (tarpit) and is not admitted during its penalty, not even when
// there is room; a client that waited as told is.
func TestFloodPenaltyNotAdmitted(t *testing.T) {
	ns := startNATS(t)
	proc := startHolding(t, ns)
	big := predictBody(30)
	b := startBridge(t, ns, func(c *Config) {
		c.Flood.MaxInFlightBytes = len(big)
		c.Flood.PenaltyWindow = time.Minute
		c.Flood.MaxTarpitDelay = 10 * time.Millisecond
	})
	var skew atomic.Int64 // the guard's clock runs ahead by this much
	b.srv.flood.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }

	held := postAsync(t, b.URL, big)
	waitFor(t, 5*time.Second, "a request holding the budget", func() bool { return proc.got.Load() == 1 })
	flooder, polite := connClient(), connClient()
	if r := postWith(t, flooder, b.URL, big); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("flooder, budget full: %d, want 429", r.StatusCode)
	}
	r := postWith(t, polite, b.URL, big)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("polite client, budget full: %d, want 429", r.StatusCode)
	}
	wait, err := time.ParseDuration(r.Header.Get("Retry-After-Ms") + "ms")
	if err != nil || wait < time.Second {
		t.Fatalf("Retry-After-Ms %q, want a wait of at least 1 s", r.Header.Get("Retry-After-Ms"))
	}
	// The flooder resends at once: held back, then refused.
	r = postWith(t, flooder, b.URL, big)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get(headerTarpit) == "" {
		t.Fatalf("flooder resending at once: %d, %s %q; want a 429 held back", r.StatusCode, headerTarpit, r.Header.Get(headerTarpit))
	}

	proc.release()
	if s := <-held; s != http.StatusOK {
		t.Fatalf("the held request: %d, want 200", s)
	}
	skew.Store(int64(wait)) // both waited as long as the polite client was told
	before := proc.got.Load()
	if r := postWith(t, flooder, b.URL, big); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("flooder in its penalty, budget free: %d, want 429", r.StatusCode)
	}
	if got := proc.got.Load(); got != before {
		t.Errorf("the flooder's request reached the processor during its penalty")
	}
	if r := postWith(t, polite, b.URL, big); r.StatusCode != http.StatusOK {
		t.Errorf("polite client after its wait: %d, want 200", r.StatusCode)
	}
}

// rawRefusal is a bridge whose cost budget one held request fills, and a
// raw connection to it on which the tests write requests by hand.
type rawRefusal struct {
	t    *testing.T
	big  string // a body the size of the budget
	head string // the request line and headers of a /predict of big
	conn net.Conn
	br   *bufio.Reader
	// release lets the held request finish and returns its status.
	release func() int
}

func startRawRefusal(t *testing.T) *rawRefusal {
	t.Helper()
	ns := startNATS(t)
	proc := startHolding(t, ns)
	big := predictBody(30)
	b := startBridge(t, ns, func(c *Config) { c.Flood.MaxInFlightBytes = len(big) })
	held := postAsync(t, b.URL, big)
	waitFor(t, 5*time.Second, "a request holding the budget", func() bool { return proc.got.Load() == 1 })
	conn, err := net.Dial("tcp", b.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	status := 0
	r := &rawRefusal{t: t, big: big, conn: conn, br: bufio.NewReader(conn),
		head: fmt.Sprintf("POST /predict HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(big)),
		release: func() int {
			once.Do(func() { proc.release(); status = <-held })
			return status
		}}
	t.Cleanup(func() { r.release() })
	return r
}

func (r *rawRefusal) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawRefusal) read() *http.Response {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("read the answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A refusal of a small body is sent before the body arrives, and the
// connection is kept for the client's next request (the flood guard knows
// a client by its connection). A raw connection shows the order: the 429
// is read before a byte of the body is sent.
func TestRefusalDoesNotWaitForSmallBody(t *testing.T) {
	r := startRawRefusal(t)
	r.send(r.head)
	if resp := r.read(); resp.StatusCode != http.StatusTooManyRequests || resp.Close {
		t.Fatalf("refused before its body was sent: %d, connection closed %t; want 429 on a kept connection", resp.StatusCode, resp.Close)
	}
	r.send(r.big) // late, and dropped
	if s := r.release(); s != http.StatusOK {
		t.Fatalf("the held request: %d, want 200", s)
	}
	r.send(r.head + r.big)
	if resp := r.read(); resp.StatusCode != http.StatusOK {
		t.Errorf("the next request on the same connection: %d, want 200", resp.StatusCode)
	}
}

// A refused client that never sends the body it announced loses its
// connection soon after its 429, instead of holding a handler.
func TestRefusedBodyThatNeverComes(t *testing.T) {
	r := startRawRefusal(t)
	r.send(r.head)
	if resp := r.read(); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("refused: %d, want 429", resp.StatusCode)
	}
	// The body never comes: the bridge closes the connection (EOF), well
	// before this side's 15 s deadline.
	if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the 429 with no body sent: %v, want the connection closed by the bridge", err)
	}
}
