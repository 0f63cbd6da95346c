// Package embedding is the contract between whoever asks for embeddings
// (the processor, catalogs, jobs) and whatever computes them (the model,
// the scheduler, the cache, the model registry): an Embedder returns a
// Result, the vectors together with their token counts and timing, so
// nothing travels back through the context and nothing is tokenized twice.
// It is a leaf (only contracts, for ModelInfo) so every implementer can
// import it without a cycle; contracts stays the wire, and this is not.
package embedding

import (
	"context"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// Embedder turns texts into embeddings. Embed returns one vector and one
// token count per text, in order; Info identifies the model.
type Embedder interface {
	Embed(ctx context.Context, texts []string) (Result, error)
	Info() contracts.ModelInfo
}

// Result is what one Embed call computed.
type Result struct {
	// Vectors holds one embedding per text, in order.
	Vectors [][]float32
	// Tokens holds, per text, the tokens the model reads: special tokens
	// included, after truncation at the model's maximum length.
	Tokens []int
	// Timing is where the call spent its time; zero for texts served
	// without the model (a cache hit).
	Timing Timing
}

// Timing is where an Embed call spent its time: Queue from arrival to the
// start of the first batch holding one of its texts, Inference from then to
// the end of its last batch.
type Timing struct {
	Queue, Inference time.Duration
}

// Add is t followed by u: the time of two sequential calls.
func (t Timing) Add(u Timing) Timing {
	return Timing{Queue: t.Queue + u.Queue, Inference: t.Inference + u.Inference}
}

// Wire is t as the reply's contracts.Timing.
func (t Timing) Wire() contracts.Timing {
	return contracts.Timing{Queue: t.Queue, Inference: t.Inference, Known: true}
}
