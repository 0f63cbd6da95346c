package contracts

import "time"

// SubjectLoad is where every processor publishes its admission state (a
// LoadReport, JSON) every LoadInterval. The bridge uses it to refuse, before
// decoding or sending anything, a request that every live processor would
// refuse: under overload, clients that resend at once after a 429 otherwise
// cost each refusal two JSON decodes and a NATS round trip.
const SubjectLoad = "simmatch.load"

// LoadInterval is how often a processor publishes its LoadReport.
const LoadInterval = 200 * time.Millisecond

// LoadReport is one processor's admission state for requests that name no
// model (its default version).
type LoadReport struct {
	// ID is the processor's micro service id.
	ID string `json:"id"`
	// AheadMs is how long, at the measured speed and with admission's
	// headroom, the work queued and running now will take (milliseconds).
	AheadMs int64 `json:"ahead_ms"`
	// MsPerKB is how long each 1,024 bytes of request text add, the same way
	// (milliseconds); 0 before the speed is measured.
	MsPerKB float64 `json:"ms_per_kb"`
	// QueuedTokens are the tokens waiting for a lane, MaxQueuedTokens their
	// budget, and TokensPerKB the tokens in 1,024 bytes of text as measured.
	QueuedTokens    int     `json:"queued_tokens"`
	MaxQueuedTokens int     `json:"max_queued_tokens"`
	TokensPerKB     float64 `json:"tokens_per_kb"`
	// Refusing says the processor refused a request as overloaded since its
	// last report.
	Refusing bool `json:"refusing"`
}
