package processor

import (
	"encoding/json"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// loadReporter is an Embedder that can say how loaded it is: a
// *scheduler.Scheduler or a *models.Registry (its default version).
type loadReporter interface {
	AdmissionLoad() scheduler.Load
}

// reportLoad publishes a contracts.LoadReport on contracts.SubjectLoad every
// contracts.LoadInterval until done is closed (Stop), so bridges can refuse
// at once what this processor would refuse. Only for an Embedder that
// reports its load.
func (p *Processor) reportLoad(done <-chan struct{}) {
	lr, ok := p.cfg.Embedder.(loadReporter)
	if !ok {
		return
	}
	t := time.NewTicker(contracts.LoadInterval)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		l := lr.AdmissionLoad()
		b, _ := json.Marshal(contracts.LoadReport{ID: p.svc.Info().ID, AheadMs: l.Ahead.Milliseconds(),
			MsPerKB: float64(l.PerKB) / float64(time.Millisecond), QueuedTokens: l.Queued, MaxQueuedTokens: l.MaxQueued,
			TokensPerKB: l.TokensPerKB, Refusing: l.Refusals != last})
		last = l.Refusals
		_ = p.cfg.NATS.Publish(contracts.SubjectLoad, b)
	}
}
