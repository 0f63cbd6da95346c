package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceHandler(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	withSpan := trace.ContextWithSpanContext(context.Background(), sc)
	tests := []struct {
		name      string
		ctx       context.Context
		log       func(*slog.Logger, context.Context)
		wantTrace string
		wantSpan  string
	}{
		{"span in context", withSpan, func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hello", "request_id", "r1") },
			sc.TraceID().String(), sc.SpanID().String()},
		{"no span", context.Background(), func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hello") }, "", ""},
		{"record's own trace_id wins", withSpan, func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hello", "trace_id", "mine") },
			"mine", sc.SpanID().String()},
		{"through With", withSpan, func(l *slog.Logger, ctx context.Context) { l.With("component", "x").InfoContext(ctx, "hello") },
			sc.TraceID().String(), sc.SpanID().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := NewLogger(Common{LogLevel: "info", LogFormat: "json"}, &buf)
			if err != nil {
				t.Fatal(err)
			}
			tt.log(logger, tt.ctx)
			// Encoding/json keeps the last of duplicate keys; count them in the text.
			if n := strings.Count(buf.String(), `"trace_id"`); n > 1 {
				t.Fatalf("trace_id appears %d times: %s", n, buf.String())
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not one JSON line: %v: %s", err, buf.String())
			}
			got := func(k string) string { s, _ := line[k].(string); return s }
			if got(TraceIDKey) != tt.wantTrace || got(SpanIDKey) != tt.wantSpan {
				t.Fatalf("trace_id %q span_id %q, want %q %q", got(TraceIDKey), got(SpanIDKey), tt.wantTrace, tt.wantSpan)
			}
		})
	}
}
