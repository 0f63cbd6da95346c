package vecmath

import "math"

// Int8 arithmetic for the approximate first pass of a catalog scan: a row
// quantized to int8 with one scale per row takes a quarter of the memory of
// its float32 form, so a scan that is bound by memory bandwidth reads four
// times fewer bytes; the best candidates are then rescored exactly with Dot.

// QuantizeInt8 quantizes v symmetrically into dst (len(dst) >= len(v)):
// scale is max|v_i| / 127 and dst[i] is v[i]/scale rounded to the nearest
// integer (halves away from zero), clamped to [-127, 127], so dst never holds
// -128 (DotInt8 relies on it). v[i] is approximately float32(dst[i]) * scale,
// within scale/2. A zero vector (or an empty one) gives scale 0 and zeros,
// and so does one whose scale rounds to 0 (all |v_i| below about 9e-44).
// The elements of v must be finite.
func QuantizeInt8(dst []int8, v []float32) (scale float32) {
	dst = dst[:len(v)]
	var m float32
	for _, x := range v {
		m = max(m, abs32(x))
	}
	scale = m / 127
	if scale == 0 { // a zero vector, or subnormals too small to divide
		clear(dst)
		return 0
	}
	inv := 1 / float64(scale)
	for i, x := range v {
		q := math.Round(float64(x) * inv)
		dst[i] = int8(min(max(q, -127), 127))
	}
	return scale
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// DotInt8 is the exact integer dot product of a and b (len(b) >= len(a)),
// whose elements must be in [-127, 127] (as QuantizeInt8 makes them). The
// sum wraps around modulo 2^32 like any int32 arithmetic, which cannot
// happen for len(a) <= 133,144 (133,144 * 127 * 127 < 2^31). On amd64 with
// AVX2 an assembly kernel takes the multiples of 32 elements and Go the
// rest; the result is the same integer as dotInt8Generic's, for any input.
func DotInt8(a, b []int8) int32 {
	b = b[:len(a)]
	if useAVX2 && len(a) >= 32 {
		n := len(a) &^ 31
		return dotInt8AVX2(a[:n], b[:n]) + dotInt8Generic(a[n:], b[n:])
	}
	return dotInt8Generic(a, b)
}

func dotInt8Generic(a, b []int8) int32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += int32(a[i]) * int32(b[i])
		s1 += int32(a[i+1]) * int32(b[i+1])
		s2 += int32(a[i+2]) * int32(b[i+2])
		s3 += int32(a[i+3]) * int32(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += int32(a[i]) * int32(b[i])
	}
	return s0 + s1 + s2 + s3
}

// DotInt8Rows sets dst[r] to DotInt8(q, m[r*len(q):(r+1)*len(q)]) for each
// r < len(dst): one query against consecutive rows of a row-major matrix,
// which is how a scan reads it, without a function call per row. It panics
// when m is shorter than len(dst)*len(q).
func DotInt8Rows(dst []int32, q, m []int8) {
	d := len(q)
	m = m[:len(dst)*d]
	if useAVX2 && d >= 32 && d%32 == 0 {
		dotInt8RowsAVX2(q, m, dst)
		return
	}
	for r := range dst {
		dst[r] = DotInt8(q, m[r*d:(r+1)*d:(r+1)*d])
	}
}

func dotInt8RowsGeneric(q, m []int8, dst []int32) {
	d := len(q)
	for r := range dst {
		dst[r] = dotInt8Generic(q, m[r*d:(r+1)*d])
	}
}
