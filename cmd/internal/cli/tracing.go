package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// SetupTracing installs the global tracer provider and the W3C propagators.
// It is configured by the standard OTEL_* variables: spans are exported over
// OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set;
// otherwise traces are still created, so trace ids reach logs and the
// Trace-Id header, but not exported. OTEL_SERVICE_NAME overrides service.
func SetupTracing(ctx context.Context, service string, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
			return nil, errors.New("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=" + p + " is not supported; use http/protobuf (port 4318)")
		}
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// Observe builds a service's logger (NewLogger) and then installs its tracing
// (SetupTracing); the caller defers stop, which flushes the spans.
func Observe(ctx context.Context, c Common, service string, getenv func(string) string, w io.Writer) (logger *slog.Logger, stop func(), err error) {
	if logger, err = NewLogger(c, w); err != nil {
		return nil, nil, err
	}
	shutdown, err := SetupTracing(ctx, service, getenv)
	if err != nil {
		return nil, nil, err
	}
	return logger, func() { shutdown(context.Background()) }, nil
}
