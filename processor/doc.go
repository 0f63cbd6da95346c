// Package processor is the simmatch NATS service: it answers v1 similarity
// requests on contracts.SubjectSimilarity in a queue group, embeds queries and
// product descriptions with a sentence-transformers model run by ONNX Runtime,
// and replies with the descriptions ranked by cosine similarity.
//
// A request flows one way: intake (intake.go: decode, validate, deadline) ->
// the Embedder, normally a scheduler.Scheduler (admission, batching across
// requests on every core) -> ranking (rank.go) -> reply (reply.go), each
// request answered exactly once. Stop drains, so every received request
// still gets its answer. Given a Prometheus registerer (Config.Metrics), it
// keeps the simmatch_processor_* and simmatch_model_* metrics named in
// docs/metrics.md.
package processor
