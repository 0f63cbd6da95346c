package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkLoneRequest times one request alone on the machine, by how its
// texts are spread: lanes (batches at once; a lone request is split across
// idle lanes) x ONNX Runtime intra-op threads per run. It is what picks the
// defaults of SIMMATCH_WORKERS and SIMMATCH_INTRA_OP_THREADS:
//
//	make bench BENCH=LoneRequest
func BenchmarkLoneRequest(b *testing.B) {
	for _, texts := range []int{1, 11} {
		for _, c := range []struct{ lanes, intra int }{{1, 1}, {1, 2}, {2, 1}, {2, 2}} {
			b.Run(fmt.Sprintf("texts=%d/lanes=%d/intra=%d", texts, c.lanes, c.intra), func(b *testing.B) {
				s := newScheduler(b, func(cfg *Config) { cfg.Model, cfg.Pool = realModel(b, c.intra), NewPool(c.lanes) })
				seed := 0
				b.ReportAllocs()
				for b.Loop() {
					seed++ // fresh texts every time, as a cache would otherwise hide the model
					if _, err := s.Embed(context.Background(), freshTexts(seed, texts)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(texts*b.N)/b.Elapsed().Seconds(), "sentences/s")
			})
		}
	}
}

// BenchmarkScheduler drives the scheduler end to end (tokenize, admission,
// batching, model, hand-back) from 1 and 16 concurrent callers, each sending
// requests of 11 fresh texts (a query and 10 descriptions), with the default
// lanes and one intra-op thread:
//
//	make bench BENCH=Scheduler
func BenchmarkScheduler(b *testing.B) {
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s := newScheduler(b, nil)
			var seed atomic.Int64
			b.ReportAllocs()
			var mu sync.Mutex
			var errs []error
			for b.Loop() {
				var wg sync.WaitGroup
				for range callers {
					wg.Go(func() {
						if _, err := s.Embed(context.Background(), freshTexts(int(seed.Add(1)), 11)); err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
			}
			if len(errs) > 0 {
				b.Fatal(errs[0])
			}
			b.ReportMetric(float64(11*callers*b.N)/b.Elapsed().Seconds(), "sentences/s")
			b.ReportMetric(float64(callers*b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
