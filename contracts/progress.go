package contracts

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// The acknowledgement protocol. A caller that wants to know that its request
// is being worked on sends HeaderAck with a heartbeat interval in
// milliseconds. The processor that accepts the request then publishes, on
// the request's reply subject, an empty message with HeaderStatus
// StatusAccepted at once, one with StatusWorking every interval while the
// request is queued or running, and then the final reply (which carries no
// HeaderStatus). A caller that sees no acknowledgement quickly, or sees the
// heartbeats stop, knows the processor is gone and sends the request again;
// similarity requests are idempotent. Requests without HeaderAck get the
// final reply only, so `nats req` keeps working.
const (
	// HeaderAck asks for an acknowledgement and heartbeats every so many milliseconds.
	HeaderAck = "Simmatch-Ack"
	// HeaderStatus marks an acknowledgement or heartbeat; final replies do not carry it.
	HeaderStatus = "Simmatch-Status"
	// StatusAccepted is the acknowledgement: a processor has taken the request.
	StatusAccepted = "accepted"
	// StatusWorking is a heartbeat: the request is still queued or running.
	StatusWorking = "working"
)

// The heartbeat intervals a processor honours: a shorter request is raised to
// MinHeartbeat so that a caller cannot make a processor flood its inbox, a
// longer one is lowered to MaxHeartbeat.
const (
	MinHeartbeat = 20 * time.Millisecond
	MaxHeartbeat = time.Minute
)

// SetAck asks, in h, for an acknowledgement and a heartbeat every interval.
func SetAck(h nats.Header, interval time.Duration) {
	ms := interval.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	h.Set(HeaderAck, strconv.FormatInt(ms, 10))
}

// AckInterval reads HeaderAck from h: the heartbeat interval the caller asks
// for, clamped to [MinHeartbeat, MaxHeartbeat]; ok is false when the header
// is absent. A malformed header is an error naming the header.
func AckInterval(h nats.Header) (d time.Duration, ok bool, err error) {
	v := h.Get(HeaderAck)
	if v == "" {
		return 0, false, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return 0, false, fmt.Errorf("contracts: header %s: want a positive integer of milliseconds, got %q", HeaderAck, v)
	}
	d = MaxHeartbeat
	if ms < int64(MaxHeartbeat/time.Millisecond) {
		d = max(time.Duration(ms)*time.Millisecond, MinHeartbeat)
	}
	return d, true, nil
}

// IsProgress reports whether m is an acknowledgement or a heartbeat rather
// than a final reply, and which of the two (StatusAccepted or StatusWorking).
func IsProgress(m *nats.Msg) (status string, ok bool) {
	if m.Header == nil {
		return "", false
	}
	status = m.Header.Get(HeaderStatus)
	return status, status != ""
}

// StartProgress acknowledges a request that asked for it (its headers h hold
// HeaderAck) by publishing StatusAccepted to reply over nc at once, then
// StatusWorking every interval until stop is called. Call stop before
// sending the final reply: once stop returns, no further heartbeat is
// published. For a request without HeaderAck (or with a malformed one, which
// the caller reports with AckInterval), or without a reply subject,
// StartProgress publishes nothing. Publishing errors are ignored: a caller
// that misses heartbeats retries, which is the point.
func StartProgress(nc *nats.Conn, reply string, h nats.Header) (stop func()) {
	interval, ok, err := AckInterval(h)
	if !ok || err != nil || reply == "" {
		return func() {}
	}
	hb := &heartbeat{nc: nc, reply: reply, interval: interval}
	hb.send(StatusAccepted)
	hb.mu.Lock()
	hb.timer = time.AfterFunc(interval, hb.beat)
	hb.mu.Unlock()
	return hb.stop
}

type heartbeat struct {
	nc       *nats.Conn
	reply    string
	interval time.Duration

	mu      sync.Mutex // held while publishing, so stop waits for a beat in progress
	timer   *time.Timer
	stopped bool
}

func (hb *heartbeat) send(status string) {
	m := nats.NewMsg(hb.reply)
	m.Header.Set(HeaderStatus, status)
	_ = hb.nc.PublishMsg(m)
}

func (hb *heartbeat) beat() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.stopped {
		return
	}
	hb.send(StatusWorking)
	hb.timer.Reset(hb.interval)
}

func (hb *heartbeat) stop() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.stopped = true
	hb.timer.Stop()
}
