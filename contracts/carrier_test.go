package contracts_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/simmatch/simmatch/contracts"
)

func testSpanContext(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
}

func TestHeaderCarrierTraceContext(t *testing.T) {
	prop := propagation.TraceContext{}
	sc := testSpanContext(t)
	h := nats.Header{}
	prop.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), contracts.HeaderCarrier(h))

	// NATS headers are case-sensitive: the key must be exactly W3C's.
	if got, want := h["traceparent"], []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}; !slices.Equal(got, want) {
		t.Errorf(`h["traceparent"] = %q, want %q (headers: %v)`, got, want, h)
	}
	if _, ok := h["Traceparent"]; ok {
		t.Errorf("carrier canonicalized the key: %v", h)
	}
	if got := h.Get("tracestate"); got != "vendor=value" {
		t.Errorf("tracestate = %q", got)
	}
	keys := contracts.HeaderCarrier(h).Keys()
	slices.Sort(keys)
	if want := []string{"traceparent", "tracestate"}; !slices.Equal(keys, want) {
		t.Errorf("Keys() = %q, want %q", keys, want)
	}

	got := trace.SpanContextFromContext(prop.Extract(context.Background(), contracts.HeaderCarrier(h)))
	if !got.Equal(sc) {
		t.Errorf("extracted %+v, want %+v", got, sc)
	}
}

func TestHeaderCarrierGetSet(t *testing.T) {
	c := contracts.HeaderCarrier(nats.Header{})
	if got := c.Get("traceparent"); got != "" {
		t.Errorf("Get on empty carrier = %q", got)
	}
	c.Set("traceparent", "a")
	c.Set("traceparent", "b")
	if got := nats.Header(c).Values("traceparent"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after two Sets, values = %q, want [b]", got)
	}
	if got := c.Get("Traceparent"); got != "" {
		t.Errorf("Get is case-sensitive, but Get(Traceparent) = %q", got)
	}
	nats.Header(c)["empty"] = []string{}
	if got := c.Get("empty"); got != "" {
		t.Errorf("Get of a key with no values = %q", got)
	}
}

func TestTimeoutHeader(t *testing.T) {
	tests := []struct {
		name   string
		set    time.Duration
		want   time.Duration
		header string
	}{
		{"seconds", 1500 * time.Millisecond, 1500 * time.Millisecond, "1500"},
		{"truncated to milliseconds", 2*time.Second + 999*time.Microsecond, 2 * time.Second, "2000"},
		{"below a millisecond rounds up to 1ms", 300 * time.Microsecond, time.Millisecond, "1"},
		{"expired budget is 1ms", -time.Second, time.Millisecond, "1"},
		{"an hour", time.Hour, time.Hour, "3600000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			contracts.SetTimeout(h, tc.set)
			if got := h.Get(contracts.HeaderTimeout); got != tc.header {
				t.Errorf("header %s = %q, want %q", contracts.HeaderTimeout, got, tc.header)
			}
			d, ok, err := contracts.Timeout(h)
			if err != nil || !ok || d != tc.want {
				t.Errorf("Timeout() = %v, %v, %v; want %v, true, nil", d, ok, err, tc.want)
			}
		})
	}
}

func TestTimeoutHeaderAbsentOrMalformed(t *testing.T) {
	tests := []struct {
		name    string
		value   *string // nil: header absent
		wantErr bool
	}{
		{name: "absent"},
		{name: "empty", value: ptr("")},
		{name: "not a number", value: ptr("soon"), wantErr: true},
		{name: "fraction", value: ptr("1.5"), wantErr: true},
		{name: "unit", value: ptr("100ms"), wantErr: true},
		{name: "zero", value: ptr("0"), wantErr: true},
		{name: "negative", value: ptr("-5"), wantErr: true},
		{name: "padded", value: ptr(" 5"), wantErr: true},
		{name: "beyond int64", value: ptr("99999999999999999999"), wantErr: true},
		{name: "overflows a Duration", value: ptr("9223372036854775807"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			if tc.value != nil {
				h[contracts.HeaderTimeout] = []string{*tc.value}
			}
			d, ok, err := contracts.Timeout(h)
			if ok || d != 0 {
				t.Errorf("Timeout() = %v, %v; want 0, false", d, ok)
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("Timeout() err = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
	// The largest representable budget still reads back positive.
	h := nats.Header{contracts.HeaderTimeout: []string{"9223372036854"}}
	if d, ok, err := contracts.Timeout(h); err != nil || !ok || d <= 0 {
		t.Errorf("Timeout(max) = %v, %v, %v; want a positive duration", d, ok, err)
	}
}

func ptr[T any](v T) *T { return &v }
