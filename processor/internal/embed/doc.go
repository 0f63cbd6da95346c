// Package embed turns texts into sentence embeddings the way
// sentence-transformers does: a Hugging Face tokenizer (daulet/tokenizers),
// an ONNX graph run by ONNX Runtime (yalue/onnxruntime_go), pooling and L2
// normalization, all configured from a model directory in the
// sentence-transformers layout.
package embed
