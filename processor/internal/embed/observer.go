package embed

import (
	"context"
	"time"
)

// The stages Embed reports to an Observer.
const (
	StageTokenize  = "tokenize"
	StageInference = "inference"
	StagePooling   = "pooling"
)

// Observer receives what one Embed call measures. The caller attaches it to
// the context (WithObserver) rather than to the Model, because one Model may
// serve several processors, each with its own metrics. Its methods must be
// safe for concurrent use and fast: they run on the request's path.
type Observer interface {
	// ObserveStage reports how long one stage took: StageTokenize once per
	// Embed call, StageInference and StagePooling once per ONNX Runtime run.
	// Failed stages are reported too; they cost the time all the same.
	ObserveStage(stage string, d time.Duration)
	// ObserveBatch reports one ONNX Runtime run: how many texts it embedded
	// and how many real (non-padding) tokens they had.
	ObserveBatch(texts, tokens int)
}

type observerKey struct{}

// WithObserver returns a copy of ctx that makes Embed report to o.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// observerFrom returns the context's Observer, or one that discards everything.
func observerFrom(ctx context.Context) Observer {
	if o, ok := ctx.Value(observerKey{}).(Observer); ok && o != nil {
		return o
	}
	return nopObserver{}
}

type nopObserver struct{}

func (nopObserver) ObserveStage(string, time.Duration) {}
func (nopObserver) ObserveBatch(int, int)              {}
