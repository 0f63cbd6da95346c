// Package processor is the simmatch NATS service: it answers similarity and
// embeddings requests in a queue group, embeds queries and product
// descriptions with a sentence-transformers model run by ONNX Runtime, and
// replies with the descriptions ranked by cosine similarity.
//
// Every subject is an Endpoint served by one pipeline (endpoint.go):
// deadline from the caller's header, SERVER span, acknowledgement and
// heartbeats, cancellation, panic recovery, one reply path and metrics by
// subject, each request answered exactly once. Similarity and embeddings
// (similarity.go, rank.go) are the processor's own endpoints; the catalogs
// (processor/catalog) and model control (processor/models) add theirs. The
// work goes to the Embedder, normally a scheduler.Scheduler (admission,
// batching across requests on every core). Stop drains, so every received
// request still gets its answer. Given a Prometheus registerer
// (Config.Metrics), it keeps the simmatch_processor_* and simmatch_model_*
// metrics named in docs/metrics.md.
package processor
