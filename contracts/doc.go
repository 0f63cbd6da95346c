// Package contracts is simmatch's wire: the NATS subject and queue group, the
// v1 request and response types, the error model with its stable codes, the
// trace-context carrier for NATS headers, the acknowledgement protocol that
// lets callers re-send a request whose processor died (progress.go), and a
// typed client that does so. Other services import it to call the processors
// directly over NATS, without the HTTP bridge.
//
// It depends only on the standard library, nats.go and the OpenTelemetry API.
package contracts
