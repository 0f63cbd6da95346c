package vecmath

import "golang.org/x/sys/cpu"

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotAVX2 is Dot for len(a) >= 16 (dot_amd64.s).
//
//go:noescape
func dotAVX2(a, b []float32) float64

// sumAVX2 is Sum with AVX2 (dot_amd64.s).
//
//go:noescape
func sumAVX2(v []float32) float32

// dotInt8AVX2 is DotInt8 for len(a) a multiple of 32 (dot_amd64.s).
//
//go:noescape
func dotInt8AVX2(a, b []int8) int32

// dotInt8RowsAVX2 is DotInt8Rows for len(q) a positive multiple of 32
// (dot_amd64.s).
//
//go:noescape
func dotInt8RowsAVX2(q, m []int8, dst []int32)

// dotF32x4RowsAVX2 is DotF32x4Rows for d a positive multiple of 8: dst
// holds 4*rows floats, m rows*d, each q d (dot_amd64.s).
//
//go:noescape
func dotF32x4RowsAVX2(dst, q0, q1, q2, q3, m *float32, d, rows int)

// fmaPeakAVX2 runs n iterations of 12 register-only 8-lane FMAs (dot_amd64.s).
//
//go:noescape
func fmaPeakAVX2(n int)
