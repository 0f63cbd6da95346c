package processor_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
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
		srv := proctest.StartBridge(b, ns, func(c *bridge.Config) {})
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

// BenchmarkRank times ranking alone: one query against n descriptions of
// 384 dimensions (cosine, sort, top_k).
//
//	make bench BENCH=Rank
func BenchmarkRank(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("descriptions=%d", n), func(b *testing.B) {
			vec := func(seed int) []float32 {
				v := make([]float32, 384)
				for i := range v {
					v[i] = float32((seed*31+i*17)%101) / 101
				}
				return v
			}
			query := vec(0)
			descs := make([][]float32, n)
			norms := make([]float64, n)
			texts := make([]string, n)
			for i := range descs {
				descs[i] = vec(i + 1)
				var s float64
				for _, x := range descs[i] {
					s += float64(x) * float64(x)
				}
				norms[i] = math.Sqrt(s)
				texts[i] = fmt.Sprint("description ", i)
			}
			k := 10
			b.ReportAllocs()
			for b.Loop() {
				if got := processor.Rank(query, descs, norms, texts, &k, nil); len(got) != min(k, n) {
					b.Fatalf("%d matches", len(got))
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "descriptions/s")
		})
	}
}
