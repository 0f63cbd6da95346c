// Package cache keeps embeddings so a text is embedded once per model
// version: an in-process LRU bounded in bytes, optionally backed by a NATS
// JetStream key-value bucket that every processor shares. Cache wraps any
// processor.Embedder (the scheduler, or the model itself) and is one too; a
// hit returns the very bits a miss computed.
package cache
