//go:build !amd64

package vecmath

const useAVX2 = false

func dotAVX2(a, b []float32) float64 { return dotGeneric(a, b) }

func sumAVX2(v []float32) float32 { return sumGeneric(v) }

func dotInt8AVX2(a, b []int8) int32 { return dotInt8Generic(a, b) }

func dotInt8RowsAVX2(q, m []int8, dst []int32) { dotInt8RowsGeneric(q, m, dst) }

func dotF32x4RowsAVX2(dst, q0, q1, q2, q3, m *float32, d, rows int) {
	panic("vecmath: no AVX2 kernel")
}

func fmaPeakAVX2(n int) { panic("vecmath: no AVX2 kernel") }
