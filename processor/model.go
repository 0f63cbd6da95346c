package processor

import "github.com/simmatch/simmatch/processor/internal/embed"

// Model is a loaded sentence-transformers model (tokenizer, ONNX session,
// pooling, normalization). Close it when done.
type Model = embed.Model

// ModelOptions configures LoadModel.
type ModelOptions = embed.Options

// LoadModel loads a model directory in the sentence-transformers ONNX layout.
func LoadModel(opts ModelOptions) (*Model, error) { return embed.Load(opts) }
