package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a structured logger writing to w. Records logged with a
// context that holds a span carry its trace_id and span_id (see TraceHandler).
func NewLogger(c Common, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "json":
		return slog.New(TraceHandler(slog.NewJSONHandler(w, opts))), nil
	case "text":
		return slog.New(TraceHandler(slog.NewTextHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", c.LogFormat)
}

// Keys of the attributes TraceHandler adds.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// TraceHandler wraps h so that a record logged with a context holding a valid
// span (logger.InfoContext(ctx, ...)) gets the span's trace_id and span_id,
// which join a log line to its trace. A record that already has an attribute
// of that key keeps its own. Inside a WithGroup the two land in the group.
func TraceHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.Handler.Handle(ctx, r)
	}
	hasTrace, hasSpan := false, false
	r.Attrs(func(a slog.Attr) bool {
		hasTrace = hasTrace || a.Key == TraceIDKey
		hasSpan = hasSpan || a.Key == SpanIDKey
		return true
	})
	if !hasTrace || !hasSpan {
		// Clone: the caller's record must not see the added attributes.
		r = r.Clone()
		if !hasTrace {
			r.AddAttrs(slog.String(TraceIDKey, sc.TraceID().String()))
		}
		if !hasSpan {
			r.AddAttrs(slog.String(SpanIDKey, sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
