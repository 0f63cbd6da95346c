package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// loadGate follows the processors' load reports (contracts.SubjectLoad) and
// refuses at once, before the body is decoded or anything is sent, a
// /predict that every live processor would refuse as overloaded. Under
// overload, clients that resend at once after a 429 would otherwise cost
// each refusal a JSON decode here and at a processor and a NATS round trip,
// on the cores the admitted requests need.
//
// It errs towards letting requests through: it refuses only while every
// processor heard from in the last three report intervals said it refused
// work since its previous report, and when even an optimistic reading of
// each report (its queue drained by the report's age, the request's tokens
// estimated low) says the request would not finish before its deadline.
// Everything else goes to a processor, whose admission decides exactly.
type loadGate struct {
	mu      sync.Mutex
	reports map[string]gateReport
}

type gateReport struct {
	contracts.LoadReport
	at time.Time
}

// gateMargin scales the request's estimated time down: its body's bytes
// include JSON syntax, and a refusal here must be certain.
const gateMargin = 0.7

func startLoadGate(nc *nats.Conn) (*loadGate, error) {
	g := &loadGate{reports: map[string]gateReport{}}
	_, err := nc.Subscribe(contracts.SubjectLoad, func(m *nats.Msg) {
		var r contracts.LoadReport
		if json.Unmarshal(m.Data, &r) != nil || r.ID == "" {
			return
		}
		g.mu.Lock()
		g.reports[r.ID] = gateReport{r, time.Now()}
		g.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: subscribe to %s: %w", contracts.SubjectLoad, err)
	}
	return g, nil
}

// refuse says whether a request with this body and deadline would be
// refused by every live processor, and when to retry.
func (g *loadGate) refuse(body []byte, timeout time.Duration, now time.Time) (*contracts.Error, bool) {
	// A request naming a model or a catalog may be served by a version
	// or a path the reports do not describe.
	if bytes.Contains(body, []byte(`"model"`)) || bytes.Contains(body, []byte(`"catalog"`)) {
		return nil, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	live, wait := 0, time.Duration(-1)
	for id, r := range g.reports {
		age := now.Sub(r.at)
		if age > speedAge {
			delete(g.reports, id)
		}
		if age > 3*contracts.LoadInterval {
			continue
		}
		live++
		if !r.Refusing || r.MsPerKB <= 0 {
			return nil, false
		}
		// Either the deadline or the queue's token budget, each read with
		// the queue drained by the report's age.
		kb := gateMargin * float64(len(body)) / 1024
		ahead := max(time.Duration(r.AheadMs)*time.Millisecond-age, 0)
		over := ahead + time.Duration(kb*r.MsPerKB*float64(time.Millisecond)) - timeout
		if r.MaxQueuedTokens > 0 && r.TokensPerKB > 0 {
			msPerToken := r.MsPerKB / r.TokensPerKB
			queued := max(float64(r.QueuedTokens)-float64(age.Milliseconds())/msPerToken, 0)
			if excess := queued + kb*r.TokensPerKB - float64(r.MaxQueuedTokens); excess > 0 {
				over = max(over, time.Duration(excess*msPerToken*float64(time.Millisecond)))
			}
		}
		if over <= 0 {
			return nil, false
		}
		if wait < 0 || over < wait {
			wait = over
		}
	}
	if live == 0 {
		return nil, false
	}
	e := contracts.Errorf(contracts.CodeOverloaded,
		"every processor (%d) is refusing work: this request would go over its queue or miss the %v deadline; retry later or add processors", live, timeout)
	e.RetryAfterMs = contracts.RetryAfterMs(wait)
	return e, true
}

// speedAge is how long a processor's report counts for speed: longer than
// for refusing, because a processor starved of CPU for a moment (which is
// when the cost gate matters) still works, but short enough that a dead
// one leaves the budget in a couple of seconds.
const speedAge = 10 * contracts.LoadInterval

// speed is how many bytes of request per second the processors heard from
// in the last speedAge finish together, with their admission's headroom,
// from their last reports; a processor whose speed is not measured yet
// counts as the average of the others. 0 when none is measured.
func (g *loadGate) speed(now time.Time) float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	live, measured, sum := 0, 0, 0.0
	for id, r := range g.reports {
		if now.Sub(r.at) > speedAge {
			delete(g.reports, id)
			continue
		}
		live++
		if r.MsPerKB > 0 {
			measured++
			sum += 1024 * 1000 / r.MsPerKB
		}
	}
	if measured == 0 {
		return 0
	}
	return sum * float64(live) / float64(measured)
}
