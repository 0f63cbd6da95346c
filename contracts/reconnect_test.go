package contracts_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

func TestReconnectDelayBacksOff(t *testing.T) {
	tests := []struct {
		attempts int
		base     time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{5, 1600 * time.Millisecond},
		{6, 2 * time.Second},
		{1000, 2 * time.Second},
	}
	for _, tc := range tests {
		for range 20 {
			if d := contracts.ReconnectDelay(tc.attempts); d < tc.base || d >= tc.base+100*time.Millisecond {
				t.Fatalf("ReconnectDelay(%d) = %v, want %v plus under 100ms of jitter", tc.attempts, d, tc.base)
			}
		}
	}
}

func TestReconnectOptions(t *testing.T) {
	o := nats.GetDefaultOptions()
	for _, opt := range contracts.ReconnectOptions() {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.MaxReconnect != -1 || o.ReconnectBufSize != contracts.ReconnectBufSize || o.CustomReconnectDelayCB == nil {
		t.Fatalf("options %+v: want endless reconnects, a %d-byte buffer and the backoff", o, contracts.ReconnectBufSize)
	}
}
