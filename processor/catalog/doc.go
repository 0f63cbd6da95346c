// Package catalog keeps named product catalogs in NATS JetStream and searches
// them: products are embedded once when they are upserted, stored with their
// embeddings, and every processor holds each catalog as one contiguous
// float32 matrix that an exact top-K scan reads at memory speed. Processors
// follow the catalogs' streams, so a new or restarted processor loads a
// catalog without running the model.
package catalog
