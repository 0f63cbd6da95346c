package bridge

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// The bridge refuses at once, without decoding or sending it, a request
// that every live processor reports it would refuse; anything else goes to
// a processor.
func TestLoadGate(t *testing.T) {
	ns := startNATS(t)
	fake := startFake(t, ns, rank(t))
	b := startBridge(t, ns, nil) // 10 s request timeout
	reporter := connect(t, ns)
	report := func(id string, refusing bool, aheadMs int64) {
		t.Helper()
		data, _ := json.Marshal(contracts.LoadReport{ID: id, AheadMs: aheadMs, MsPerKB: 5, Refusing: refusing})
		if err := reporter.Publish(contracts.SubjectLoad, data); err != nil {
			t.Fatal(err)
		}
		if err := reporter.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	descs := make([]string, 20)
	for i := range descs {
		descs[i] = fmt.Sprintf("cordless saw number %d with two batteries", i)
	}
	body, _ := json.Marshal(contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: descs})
	sent := func() int { return len(fake.received()) }
	post := func(body string) (int, *contracts.Error) {
		t.Helper()
		resp, raw := b.post(t, "/predict", "application/json", body)
		if resp.StatusCode == 200 {
			return 200, nil
		}
		e := decodeError(t, resp, raw)
		if resp.StatusCode == 429 && (resp.Header.Get("Retry-After") == "" || e.RetryAfterMs < 1000) {
			t.Errorf("429 without a Retry-After of at least 1 s: %q, retry_after_ms %d", resp.Header.Get("Retry-After"), e.RetryAfterMs)
		}
		return resp.StatusCode, e
	}

	// Both processors refusing, 20 s of work ahead of a 10 s deadline.
	// Reports are re-sent while polling: the bridge's subscription may reach
	// the server after the first ones, as with real processors' next reports.
	waitFor(t, 5*time.Second, "the bridge has both reports", func() bool {
		report("p1", true, 20_000)
		report("p2", true, 25_000)
		b.srv.gate.mu.Lock()
		defer b.srv.gate.mu.Unlock()
		return len(b.srv.gate.reports) == 2
	})
	before := sent()
	if status, e := post(string(body)); status != 429 || e.Code != contracts.CodeOverloaded || !strings.Contains(e.Message, "every processor (2)") {
		t.Fatalf("all refusing: %d %+v, want 429 overloaded from the bridge", status, e)
	}
	if sent() != before {
		t.Fatal("the refused request reached a processor")
	}
	// Naming a model: not judged here.
	withModel := strings.Replace(string(body), `{`, `{"model": "all-MiniLM-L6-v2",`, 1)
	if status, _ := post(withModel); status != 200 || sent() != before+1 {
		t.Fatalf("a request naming a model: %d, %d sent; want it sent", status, sent()-before)
	}
	// One processor not refusing: sent.
	report("p2", false, 25_000)
	waitFor(t, 5*time.Second, "p2's new report", func() bool {
		b.srv.gate.mu.Lock()
		defer b.srv.gate.mu.Unlock()
		return !b.srv.gate.reports["p2"].Refusing
	})
	if status, _ := post(string(body)); status != 200 || sent() != before+2 {
		t.Fatalf("one processor accepting: %d; want the request sent", status)
	}
	// Both refusing, but the queue ahead leaves room for this request.
	report("p2", true, 1_000)
	report("p1", true, 1_000)
	waitFor(t, 5*time.Second, "the 1 s reports", func() bool {
		b.srv.gate.mu.Lock()
		defer b.srv.gate.mu.Unlock()
		return b.srv.gate.reports["p1"].AheadMs == 1_000 && b.srv.gate.reports["p2"].AheadMs == 1_000
	})
	if status, _ := post(string(body)); status != 200 || sent() != before+3 {
		t.Fatalf("room before the deadline: %d; want the request sent", status)
	}
	// Room before the deadline but not in the queues' token budgets.
	full := func(id string) {
		t.Helper()
		data, _ := json.Marshal(contracts.LoadReport{ID: id, AheadMs: 1_000, MsPerKB: 500, Refusing: true,
			QueuedTokens: 1000, MaxQueuedTokens: 1000, TokensPerKB: 250})
		if err := reporter.Publish(contracts.SubjectLoad, data); err != nil {
			t.Fatal(err)
		}
	}
	full("p1")
	full("p2")
	waitFor(t, 5*time.Second, "the full-queue reports", func() bool {
		b.srv.gate.mu.Lock()
		defer b.srv.gate.mu.Unlock()
		return b.srv.gate.reports["p1"].MaxQueuedTokens == 1000 && b.srv.gate.reports["p2"].MaxQueuedTokens == 1000
	})
	if status, _ := post(string(body)); status != 429 || sent() != before+3 {
		t.Fatalf("queues full: %d; want 429 from the bridge", status)
	}
	// Reports gone stale (processors stopped or unreachable): sent. The
	// reports are aged by hand: nothing else publishes here.
	b.srv.gate.mu.Lock()
	for id, r := range b.srv.gate.reports {
		r.at = r.at.Add(-3*contracts.LoadInterval - time.Millisecond)
		b.srv.gate.reports[id] = r
	}
	b.srv.gate.mu.Unlock()
	if status, _ := post(string(body)); status != 200 || sent() != before+4 {
		t.Fatalf("stale reports: %d; want the request sent", status)
	}
}
