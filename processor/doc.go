// Package processor is the simmatch NATS service: it answers v1 similarity
// requests on contracts.SubjectSimilarity in a queue group, embeds queries and
// product descriptions with a sentence-transformers model run by ONNX Runtime,
// and replies with the descriptions ranked by cosine similarity.
//
// Requests are decoded on the subscription and handed to a bounded pool of
// workers, so concurrent requests use every core; Stop drains, so every
// accepted request still gets its answer. Given a Prometheus registerer
// (Config.Metrics), it keeps the simmatch_processor_* and simmatch_model_*
// metrics named in deploy/METRICS.md.
package processor
