package processor

import (
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// processCatalog answers a similarity request that names a stored catalog.
func (p *Processor) processCatalog(j *job) {
	if p.cfg.Catalogs == nil {
		p.fail(j, &contracts.Error{Code: contracts.CodeNotFound, Field: "catalog",
			Message: "catalogs are not enabled on this processor (its NATS server has no JetStream); send product_descriptions instead"})
		return
	}
	resp, err := p.cfg.Catalogs.Predict(scheduler.WithTiming(j.ctx, &j.timing), j.body)
	if err != nil {
		p.fail(j, err)
		return
	}
	p.respond(j, resp)
}
