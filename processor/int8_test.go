package processor_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
)

// TestInt8AgreesWithFP32 measures, with the real runtime, how far the int8
// all-MiniLM-L6-v2 (models/all-MiniLM-L6-v2/int8) strays from the fp32 one on
// the parity corpus: the cosine between the two embeddings of every text, and
// on the ranking cases, top-1 agreement, Kendall's tau-b and top-3 overlap.
// It logs the figures docs/models.md quotes (go test -v -run TestInt8AgreesWithFP32).
func TestInt8AgreesWithFP32(t *testing.T) {
	_, lib := testenv.ModelPaths(t)
	int8Model, err := processor.LoadModel(processor.ModelOptions{
		Dir: testenv.ModelVersionDir(t, "int8"), Library: lib, Name: "all-MiniLM-L6-v2", Version: "int8"})
	if err != nil {
		t.Fatal(err)
	}
	defer int8Model.Close()
	fp32Model := realModel(t)
	both := func(texts []string) (fp, q [][]float32) {
		t.Helper()
		fp, err := vectors(fp32Model.Embed(context.Background(), texts))
		if err != nil {
			t.Fatal(err)
		}
		q, err = vectors(int8Model.Embed(context.Background(), texts))
		if err != nil {
			t.Fatal(err)
		}
		return fp, q
	}

	var g goldenEmbeddings
	readGolden(t, "embeddings.json", &g)
	texts := make([]string, len(g.Texts))
	for i, x := range g.Texts {
		texts[i] = x.Text
	}
	fp, q := both(texts)
	lowest, lowestAt, sum := 1.0, 0, 0.0
	for i := range texts {
		c := dot(fp[i], q[i])
		sum += c
		if c < lowest {
			lowest, lowestAt = c, i
		}
	}
	mean := sum / float64(len(texts))
	t.Logf("embeddings: %d texts; int8 vs fp32 cosine mean %.4f, lowest %.4f (text %d: %.60q)", len(texts), mean, lowest, lowestAt, texts[lowestAt])

	var r goldenRankings
	readGolden(t, "rankings.json", &r)
	var queries, top1, top3 int
	var tauSum, overlapSum float64
	minTau := 1.0
	for _, tc := range r.Cases {
		fpD, qD := both(tc.Descriptions)
		fpQ, qQ := both(tc.Queries)
		for qi := range tc.Queries {
			a, b := scores(fpQ[qi], fpD), scores(qQ[qi], qD)
			queries++
			// Top-1 agrees when int8's best is fp32's best or ties with it.
			best := slices.Max(a)
			if a[argmax(b)] >= best-1e-6 {
				top1++
			}
			tau := kendallTauB(a, b)
			tauSum += tau
			minTau = min(minTau, tau)
			k := min(3, len(a))
			o := overlap(topK(a, k), topK(b, k))
			overlapSum += float64(o) / float64(k)
			if o == k {
				top3++
			}
		}
	}
	meanTau, meanOverlap := tauSum/float64(queries), overlapSum/float64(queries)
	t.Logf("rankings: %d cases, %d queries; top-1 agreement %d/%d; Kendall tau-b mean %.3f, lowest %.3f; top-3 overlap mean %.3f (%d/%d identical sets)",
		len(r.Cases), queries, top1, queries, meanTau, minTau, meanOverlap, top3, queries)

	// Bounds: quantization may move embeddings a little, never flip what a
	// user sees first on most queries.
	if lowest < 0.93 || mean < 0.98 {
		t.Errorf("int8 vs fp32 cosine: mean %.4f (want >= 0.98), lowest %.4f (want >= 0.93)", mean, lowest)
	}
	if float64(top1) < 0.9*float64(queries) {
		t.Errorf("top-1 agreement %d/%d, want >= 90%%", top1, queries)
	}
	if meanTau < 0.8 || meanOverlap < 0.85 {
		t.Errorf("Kendall tau-b mean %.3f (want >= 0.8), top-3 overlap mean %.3f (want >= 0.85)", meanTau, meanOverlap)
	}
}

func dot(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// scores are the cosines of a unit query vector against unit description vectors.
func scores(q []float32, ds [][]float32) []float64 {
	s := make([]float64, len(ds))
	for i, d := range ds {
		s[i] = dot(q, d)
	}
	return s
}

func argmax(s []float64) int {
	best := 0
	for i, v := range s {
		if v > s[best] {
			best = i
		}
	}
	return best
}

// topK is the indices of the k highest scores (ties by lower index).
func topK(s []float64, k int) []int {
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case s[a] > s[b]:
			return -1
		case s[a] < s[b]:
			return 1
		}
		return 0
	})
	return idx[:k]
}

func overlap(a, b []int) int {
	n := 0
	for _, x := range a {
		if slices.Contains(b, x) {
			n++
		}
	}
	return n
}

// kendallTauB is Kendall's rank correlation between two score lists, tau-b
// (corrected for ties, which the parity corpus has on purpose: scores within
// 1e-6 count as tied). 1 when both orders agree; 1 too when nothing can be ordered.
func kendallTauB(a, b []float64) float64 {
	sign := func(x float64) int {
		switch {
		case x > 1e-6:
			return 1
		case x < -1e-6:
			return -1
		}
		return 0
	}
	var conc, disc, tieA, tieB int
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			sa, sb := sign(a[i]-a[j]), sign(b[i]-b[j])
			switch {
			case sa == 0 && sb == 0:
			case sa == 0:
				tieA++
			case sb == 0:
				tieB++
			case sa == sb:
				conc++
			default:
				disc++
			}
		}
	}
	den := math.Sqrt(float64(conc+disc+tieA) * float64(conc+disc+tieB))
	if den == 0 {
		return 1
	}
	return float64(conc-disc) / den
}
