package scheduler

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/simmatch/simmatch/processor/internal/embed"
)

// Each span's instrumentation scope is the import path of the package that
// makes it: tokenize and batch come from the scheduler, inference and
// pooling from the model (which follows the batch span's tracer provider).
func TestSpanInstrumentationScopes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	s, err := New(Config{Model: realModel(t, 1), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	_, err = s.Embed(ctx, []string{"Cordless drill with two batteries"})
	parent.End()
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cerr := s.Close(closeCtx); cerr != nil { // waits for the batch, and so its spans
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}

	const (
		scheduler = "github.com/simmatch/simmatch/processor/scheduler"
		model     = "github.com/simmatch/simmatch/processor/internal/embed"
	)
	want := map[string]string{
		embed.StageTokenize:  scheduler,
		"batch":              scheduler,
		embed.StageInference: model,
		embed.StagePooling:   model,
	}
	seen := map[string]bool{}
	for _, sp := range rec.Ended() {
		scope, ok := want[sp.Name()]
		if !ok {
			continue
		}
		seen[sp.Name()] = true
		if got := sp.InstrumentationScope().Name; got != scope {
			t.Errorf("span %q: instrumentation scope %q, want %q", sp.Name(), got, scope)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no %q span recorded", name)
		}
	}
}
