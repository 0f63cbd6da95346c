package contracts

import (
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
)

// ReconnectBufSize is how much a connection made with ReconnectOptions
// buffers while it reconnects: requests sent during a NATS restart go out
// once it is back. A full buffer makes a publish fail, which Client retries.
const ReconnectBufSize = 32 << 20

// The backoff between passes over the server list: it doubles from
// reconnectBase per pass up to reconnectMax, plus up to reconnectJitter so
// that many clients do not come back in lockstep.
const (
	reconnectBase   = 100 * time.Millisecond
	reconnectMax    = 2 * time.Second
	reconnectJitter = 100 * time.Millisecond
)

// ReconnectOptions are the connection options every simmatch process uses,
// and that services using Client should use too: once connected, reconnect
// forever, backing off from 100 ms to 2 s between passes over the server
// list, and buffer publishes meanwhile. Give every cluster node's URL:
// losing one node moves the connection to another at once. Add
// nats.RetryOnFailedConnect(true) to keep trying a first connect too.
func ReconnectOptions() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(ReconnectBufSize),
		nats.CustomReconnectDelay(ReconnectDelay),
		// A server that vanished without closing the socket is noticed
		// after two missed pings (10 s), not the default 4 minutes.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
	}
}

// ReconnectDelay is the wait after the attempts-th failed pass over the
// server list (attempts counts from 1).
func ReconnectDelay(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 6 {
		d = min(reconnectBase<<max(attempts-1, 0), reconnectMax)
	}
	return d + rand.N(reconnectJitter)
}
