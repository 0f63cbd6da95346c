package processor_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/bridge"
)

// BenchmarkBaseline measures, in one run on one machine, ONNX Runtime alone
// (the model's Embed at batch 1 and 32) and single-query requests end to end
// through the HTTP bridge, NATS and a processor at 16 concurrent clients.
// Compare sentences/s of ort/batch=1 with requests/s of e2e to see what the
// service around the model costs:
//
//	make bench BENCH=Baseline
func BenchmarkBaseline(b *testing.B) {
	m := realModel(b)
	sentences := make([]string, 32)
	for i := range sentences {
		sentences[i] = fmt.Sprintf("Cordless drill number %d with two batteries, a charger and a carrying case.", i)
	}
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("ort/batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Embed(context.Background(), sentences[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
	b.Run("e2e/clients=16", func(b *testing.B) {
		ns := startNATS(b)
		startProcessor(b, ns, nil)
		srv := startBridge(b, ns, func(c *bridge.Config) {})
		body := `{"query": ["What can I use to cut wood?"], "product_descriptions": ["` + hammer + `", "` + saw + `"]}`
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
		// RunParallel runs parallelism x GOMAXPROCS goroutines: 16 clients in all.
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Post(srv.URL+"/predict", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
	})
}
