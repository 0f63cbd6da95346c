package processor

import (
	"encoding/json"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// loadReporter is an Embedder that can say how loaded it is: a
// *scheduler.Scheduler or a *models.Registry (its default version).
type loadReporter interface {
	AdmissionLoad() (ahead, perKB time.Duration, refusals uint64)
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
		ahead, perKB, refusals := lr.AdmissionLoad()
		b, _ := json.Marshal(contracts.LoadReport{ID: p.svc.Info().ID, AheadMs: ahead.Milliseconds(),
			MsPerKB: float64(perKB) / float64(time.Millisecond), Refusing: refusals != last})
		last = refusals
		_ = p.cfg.NATS.Publish(contracts.SubjectLoad, b)
	}
}
