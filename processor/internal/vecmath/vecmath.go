// Package vecmath holds the one dot product and norm that every score in
// simmatch goes through: inline /predict ranking and the catalog scan use the
// same code, so a catalog search scores exactly what /predict scores for the
// same descriptions.
package vecmath

import "math"

// Dot is the dot product of a and b (len(b) >= len(a)), accumulated in
// float64. Each float32 product is exact in float64, so the result depends
// only on the order of the additions, which is fixed: sixteen partial sums
// (element i goes to sum i mod 16), combined pairwise, then the elements past
// the last multiple of 16 one by one. On amd64 with AVX2 and FMA an assembly
// kernel does the same additions in the same order, four float64 lanes at a
// time (a fused multiply-add of an exact product rounds like an add), so
// both give identical results and the catalog scan runs at memory speed.
func Dot(a, b []float32) float64 {
	b = b[:len(a)]
	if useAVX2 && len(a) >= 16 {
		return dotAVX2(a, b)
	}
	return dotGeneric(a, b)
}

func dotGeneric(a, b []float32) float64 {
	var s [16]float64
	i := 0
	for ; i+16 <= len(a); i += 16 {
		x, y := a[i:i+16:i+16], b[i:i+16:i+16]
		for j := range 16 {
			s[j] += float64(x[j]) * float64(y[j])
		}
	}
	// The lanes as the kernel combines them: (Y0+Y1) + (Y2+Y3), then the
	// two halves, then the last two lanes.
	var v [4]float64
	for k := range 4 {
		v[k] = (s[k] + s[4+k]) + (s[8+k] + s[12+k])
	}
	sum := (v[0] + v[2]) + (v[1] + v[3])
	for ; i < len(a); i++ {
		sum += float64(a[i]) * float64(b[i])
	}
	return sum
}

// Norm is the L2 norm of v.
func Norm(v []float32) float64 { return math.Sqrt(Dot(v, v)) }

// Cosine follows sentence_transformers.util.cos_sim: the dot product of the
// two vectors after scaling each to unit length (a zero vector scores 0).
// na and nb are the vectors' norms (Norm).
func Cosine(a, b []float32, na, nb float64) float64 {
	if na == 0 || nb == 0 {
		return 0
	}
	return Dot(a, b) / (na * nb)
}

// Sum adds v's elements in float32, in no promised order. It is the
// cheapest loop that reads every element: the memory-read baseline the
// catalog scan is measured against.
func Sum(v []float32) float32 {
	if useAVX2 {
		return sumAVX2(v)
	}
	return sumGeneric(v)
}

func sumGeneric(v []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(v); i += 8 {
		s0 += v[i]
		s1 += v[i+1]
		s2 += v[i+2]
		s3 += v[i+3]
		s4 += v[i+4]
		s5 += v[i+5]
		s6 += v[i+6]
		s7 += v[i+7]
	}
	for ; i < len(v); i++ {
		s0 += v[i]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}
