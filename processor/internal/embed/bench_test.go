package embed

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// benchTexts are short product sentences like the service's traffic.
func benchTexts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("Cordless drill number %d with two batteries, a charger and a carrying case.", i)
	}
	return out
}

// loadBenchModel loads the real model with the given intra-op threads.
func loadBenchModel(b *testing.B, threads int) *Model {
	b.Helper()
	m, err := Load(Options{Dir: os.Getenv("SIMMATCH_MODEL_DIR"), Library: os.Getenv("SIMMATCH_ORT_LIB"), IntraOpThreads: threads})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func encodeAll(b *testing.B, m *Model, texts []string) []Encoding {
	b.Helper()
	encs := make([]Encoding, len(texts))
	for i, t := range texts {
		var err error
		if encs[i], err = m.Encode(t); err != nil {
			b.Fatal(err)
		}
	}
	return encs
}

// BenchmarkStages times each stage of the model runtime alone, by batch
// size and ONNX Runtime intra-op threads: tokenize (per text; threads do
// not apply), inference (one ORT run), pooling (mean + L2 of one run's
// output). Run it on a quiet machine and compare with benchstat:
//
//	make bench BENCH=Stages
func BenchmarkStages(b *testing.B) {
	sizes := []int{1, 8, 32, 64}
	b.Run("tokenize", func(b *testing.B) {
		m := loadBenchModel(b, 1)
		texts := benchTexts(64)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if _, err := m.Encode(texts[n%len(texts)]); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sentences/s")
	})
	for _, threads := range []int{1, 2} {
		m := loadBenchModel(b, threads)
		for _, size := range sizes {
			bt := newBatch(encodeAll(b, m, benchTexts(size)))
			b.Run(fmt.Sprintf("inference/batch=%d/threads=%d", size, threads), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := m.infer(context.Background(), bt); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "sentences/s")
			})
		}
	}
	m := loadBenchModel(b, 1)
	for _, size := range sizes {
		bt := newBatch(encodeAll(b, m, benchTexts(size)))
		raw, shape, err := m.infer(context.Background(), bt)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("pooling/batch=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				vecs, err := m.pool(raw, shape, bt)
				if err != nil {
					b.Fatal(err)
				}
				for _, v := range vecs {
					l2Normalize(v)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
}
