package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The assembly kernel and the Go code add in the same order: identical
// results, bit for bit, for every length.
func TestDotKernelEqualsGeneric(t *testing.T) {
	if !useAVX2 {
		t.Log("no AVX2+FMA on this machine: Dot is dotGeneric")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 400; n++ {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()*1e3)
		}
		g := dotGeneric(a, b)
		if d := Dot(a, b); math.Float64bits(d) != math.Float64bits(g) {
			t.Fatalf("n=%d: Dot = %v, dotGeneric = %v", n, d, g)
		}
		var exact float64
		for i := range a {
			exact += float64(a[i]) * float64(b[i])
		}
		if math.Abs(g-exact) > 1e-9*math.Max(1, math.Abs(exact)) {
			t.Fatalf("n=%d: dotGeneric = %v, sequential sum = %v", n, g, exact)
		}
	}
}

func TestCosine(t *testing.T) {
	a := []float32{3, 4}
	if got := Cosine(a, a, Norm(a), Norm(a)); got != 1 {
		t.Errorf("cosine of a vector with itself = %v", got)
	}
	if got := Cosine(a, []float32{0, 0}, Norm(a), 0); got != 0 {
		t.Errorf("cosine with a zero vector = %v, want 0", got)
	}
}

func BenchmarkDot384(b *testing.B) {
	x, y := make([]float32, 384), make([]float32, 384)
	for i := range x {
		x[i], y[i] = float32(i), float32(384-i)
	}
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			_ = Dot(x, y)
		}
	})
	b.Run("generic", func(b *testing.B) {
		for b.Loop() {
			_ = dotGeneric(x, y)
		}
	})
}

func TestSum(t *testing.T) {
	for n := range 100 {
		v := make([]float32, n)
		want := float32(0)
		for i := range v {
			v[i] = float32(i % 7)
			want += v[i]
		}
		if got := Sum(v); got != want {
			t.Fatalf("n=%d: Sum = %v, want %v", n, got, want)
		}
	}
}
