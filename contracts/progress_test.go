package contracts_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

func TestAckInterval(t *testing.T) {
	tests := []struct {
		name, value string
		want        time.Duration
		ok, err     bool
	}{
		{"absent", "", 0, false, false},
		{"plain", "250", 250 * time.Millisecond, true, false},
		{"raised to the minimum", "1", contracts.MinHeartbeat, true, false},
		{"lowered to the maximum", "99999999999999999", contracts.MaxHeartbeat, true, false},
		{"zero", "0", 0, false, true},
		{"negative", "-5", 0, false, true},
		{"not a number", "soon", 0, false, true},
		{"overflows int64", "9999999999999999999999", 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			if tc.value != "" {
				h.Set(contracts.HeaderAck, tc.value)
			}
			d, ok, err := contracts.AckInterval(h)
			if d != tc.want || ok != tc.ok || (err != nil) != tc.err {
				t.Fatalf("AckInterval(%q) = %v, %v, %v; want %v, %v, error %v", tc.value, d, ok, err, tc.want, tc.ok, tc.err)
			}
		})
	}
}

// StartProgress acknowledges at once, beats every interval, and is silent
// once stopped; a request without HeaderAck gets nothing.
func TestStartProgress(t *testing.T) {
	ns := startServer(t)
	nc := connect(t, ns)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, nc)

	stop := contracts.StartProgress(nc, inbox, nats.Header{})
	stop()
	h := nats.Header{}
	contracts.SetAck(h, 20*time.Millisecond)
	stop = contracts.StartProgress(nc, inbox, h)
	want := []string{contracts.StatusAccepted, contracts.StatusWorking, contracts.StatusWorking}
	for i, w := range want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if s, ok := contracts.IsProgress(m); !ok || s != w || len(m.Data) != 0 {
			t.Fatalf("message %d: status %q (%v), %d bytes; want %q and no body", i, s, ok, len(m.Data), w)
		}
	}
	stop()
	flush(t, nc)
	// Drop what was sent before stop, then expect silence over several intervals.
	for {
		if _, err := sub.NextMsg(0); err != nil {
			break
		}
	}
	if m, err := sub.NextMsg(100 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("after stop got %v (%v), want nothing", m, err)
	}
	testenv.WaitFor(t, time.Second, "no pending messages", func() bool { n, _, _ := sub.Pending(); return n == 0 })
}
