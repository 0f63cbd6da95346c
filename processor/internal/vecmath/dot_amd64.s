#include "textflag.h"

// func dotAVX2(a, b []float32) float64
// Four float64 accumulators of four lanes: lane j of Yk sums the products of
// the elements i with i mod 16 == 4k+j, as dotGeneric's s[4k+j].
TEXT ·dotAVX2(SB), NOSPLIT, $0-56
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	MOVQ b_base+24(FP), DI
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3

loop16:
	CMPQ CX, $16
	JL   combine
	VCVTPS2PD (SI), Y4
	VCVTPS2PD 16(SI), Y5
	VCVTPS2PD 32(SI), Y6
	VCVTPS2PD 48(SI), Y7
	VCVTPS2PD (DI), Y8
	VCVTPS2PD 16(DI), Y9
	VCVTPS2PD 32(DI), Y10
	VCVTPS2PD 48(DI), Y11
	VFMADD231PD Y4, Y8, Y0
	VFMADD231PD Y5, Y9, Y1
	VFMADD231PD Y6, Y10, Y2
	VFMADD231PD Y7, Y11, Y3
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop16

combine:
	// v = (Y0+Y1) + (Y2+Y3)
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	// (v0+v2, v1+v3)
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	// (v0+v2) + (v1+v3)
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0

tail:
	TESTQ CX, CX
	JE    done
	VMOVSS (SI), X1
	VCVTSS2SD X1, X1, X1
	VMOVSS (DI), X2
	VCVTSS2SD X2, X2, X2
	VFMADD231SD X1, X2, X0
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  tail

done:
	VZEROUPPER
	MOVSD X0, ret+48(FP)
	RET

// func sumAVX2(v []float32) float32
// Eight float32 lanes in four accumulators: the cheapest loop that still
// loads every byte (the memory-read baseline of the catalog benchmark).
TEXT ·sumAVX2(SB), NOSPLIT, $0-28
	MOVQ v_base+0(FP), SI
	MOVQ v_len+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

sloop:
	CMPQ CX, $32
	JL   scombine
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  sloop

scombine:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0

stail:
	TESTQ CX, CX
	JE    sdone
	VADDSS (SI), X0, X0
	ADDQ $4, SI
	DECQ CX
	JMP  stail

sdone:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotInt8AVX2(a, b []int8) int32
// len(a) is a multiple of 32. Per 32 bytes: VPSIGNB moves a's sign onto b
// and VPABSB takes |a|, so VPMADDUBSW (unsigned |a| times signed b*sgn(a))
// multiplies exactly; each of its int16 sums of two products is at most
// 2*127*127 = 32258 in magnitude, below 32767, so it never saturates (a
// -128 would break that: QuantizeInt8 never makes one). VPMADDWD by ones
// widens the int16 pairs into eight int32 lanes. Two accumulators over 64
// bytes, then one 32-byte step, then the eight lanes are added: int32 sums
// wrap modulo 2^32 in any order, so the result is dotInt8Generic's.
TEXT ·dotInt8AVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	MOVQ b_base+24(FP), DI
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	// Y15 = sixteen int16 ones.
	VPCMPEQW Y15, Y15, Y15
	VPSRLW   $15, Y15, Y15

i8loop64:
	CMPQ CX, $64
	JL   i8one32
	VMOVDQU (SI), Y2
	VMOVDQU 32(SI), Y3
	VMOVDQU (DI), Y4
	VMOVDQU 32(DI), Y5
	VPSIGNB Y2, Y4, Y4
	VPSIGNB Y3, Y5, Y5
	VPABSB  Y2, Y2
	VPABSB  Y3, Y3
	VPMADDUBSW Y4, Y2, Y2
	VPMADDUBSW Y5, Y3, Y3
	VPMADDWD Y15, Y2, Y2
	VPMADDWD Y15, Y3, Y3
	VPADDD Y2, Y0, Y0
	VPADDD Y3, Y1, Y1
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JMP  i8loop64

i8one32:
	CMPQ CX, $32
	JL   i8combine
	VMOVDQU (SI), Y2
	VMOVDQU (DI), Y4
	VPSIGNB Y2, Y4, Y4
	VPABSB  Y2, Y2
	VPMADDUBSW Y4, Y2, Y2
	VPMADDWD Y15, Y2, Y2
	VPADDD Y2, Y0, Y0

i8combine:
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4E, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xB1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, AX
	VZEROUPPER
	MOVL AX, ret+48(FP)
	RET

// func dotInt8RowsAVX2(q, m []int8, dst []int32)
// dst[r] = dotInt8AVX2(q, row r of m) for the len(dst) consecutive rows of
// len(q) bytes at the start of m; len(q) is a positive multiple of 32 and m
// holds at least len(dst)*len(q) bytes. The same steps as dotInt8AVX2 per
// row, without a call per row, and a prefetch of the line 2 KiB ahead in m
// (a hint: it never faults past the end): the 1M-row scan with 2 workers
// took 22.9 ms without it, 19.5-20 ms with 1, 2 or 4 KiB, 20.9 ms with 512.
TEXT ·dotInt8RowsAVX2(SB), NOSPLIT, $0-72
	MOVQ q_base+0(FP), R8
	MOVQ q_len+8(FP), R9
	MOVQ m_base+24(FP), DI
	MOVQ dst_base+48(FP), DX
	MOVQ dst_len+56(FP), R10
	VPCMPEQW Y15, Y15, Y15
	VPSRLW   $15, Y15, Y15

rrow:
	TESTQ R10, R10
	JE    rdone
	MOVQ  R8, SI
	MOVQ  R9, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1

rloop64:
	CMPQ CX, $64
	JL   rone32
	VMOVDQU (SI), Y2
	VMOVDQU 32(SI), Y3
	PREFETCHT0 2048(DI)
	VMOVDQU (DI), Y4
	VMOVDQU 32(DI), Y5
	VPSIGNB Y2, Y4, Y4
	VPSIGNB Y3, Y5, Y5
	VPABSB  Y2, Y2
	VPABSB  Y3, Y3
	VPMADDUBSW Y4, Y2, Y2
	VPMADDUBSW Y5, Y3, Y3
	VPMADDWD Y15, Y2, Y2
	VPMADDWD Y15, Y3, Y3
	VPADDD Y2, Y0, Y0
	VPADDD Y3, Y1, Y1
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JMP  rloop64

rone32:
	CMPQ CX, $32
	JL   rcombine
	VMOVDQU (SI), Y2
	VMOVDQU (DI), Y4
	VPSIGNB Y2, Y4, Y4
	VPABSB  Y2, Y2
	VPMADDUBSW Y4, Y2, Y2
	VPMADDWD Y15, Y2, Y2
	VPADDD Y2, Y0, Y0
	ADDQ $32, DI

rcombine:
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4E, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xB1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, AX
	MOVL AX, (DX)
	ADDQ $4, DX
	DECQ R10
	JMP  rrow

rdone:
	VZEROUPPER
	RET

// func dotF32x4RowsAVX2(dst, q0, q1, q2, q3, m *float32, d, rows int)
// dst[4r+j] = the float32 dot product of qj with row r of m (d floats a
// row, rows rows; d a positive multiple of 8). Register blocking: three
// rows at a time, twelve accumulators Y(4a+j) for row a and query j; each
// chunk of 8 floats of a row is loaded once for its four FMAs, and each
// chunk of a query once for its three. Lane l of an accumulator sums, by
// one VFMADD231PS a chunk, the products of the elements i = l mod 8, in
// order; then the horizontal sum is ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))
// for the four queries of a row at once (three VHADDPS, one VADDPS). The
// single-row loop does the same operations, so a row's results do not
// depend on its position in the block.
TEXT ·dotF32x4RowsAVX2(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ q0+8(FP), R8
	MOVQ q1+16(FP), R9
	MOVQ q2+24(FP), R10
	MOVQ q3+32(FP), R11
	MOVQ m+40(FP), SI
	MOVQ d+48(FP), DX
	MOVQ rows+56(FP), CX
	SHLQ $2, DX // the row stride in bytes
	LEAQ (SI)(DX*1), R12
	LEAQ (R12)(DX*1), R13

f3rows:
	CMPQ CX, $3
	JL   f1rows
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	XORQ   BX, BX

f3loop:
	VMOVUPS     (SI)(BX*1), Y12
	VMOVUPS     (R12)(BX*1), Y13
	VMOVUPS     (R13)(BX*1), Y14
	VMOVUPS     (R8)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS     (R9)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS     (R10)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS     (R11)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ        $32, BX
	CMPQ        BX, DX
	JL          f3loop

	// Row 0: Y0..Y3 -> (DI).
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (DI)
	// Row 1: Y4..Y7 -> 16(DI).
	VHADDPS      Y5, Y4, Y4
	VHADDPS      Y7, Y6, Y6
	VHADDPS      Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS       X5, X4, X4
	VMOVUPS      X4, 16(DI)
	// Row 2: Y8..Y11 -> 32(DI).
	VHADDPS      Y9, Y8, Y8
	VHADDPS      Y11, Y10, Y10
	VHADDPS      Y10, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPS       X9, X8, X8
	VMOVUPS      X8, 32(DI)
	ADDQ         $48, DI
	LEAQ         (R13)(DX*1), SI
	LEAQ         (SI)(DX*1), R12
	LEAQ         (R12)(DX*1), R13
	SUBQ         $3, CX
	JMP          f3rows

f1rows:
	TESTQ CX, CX
	JE    fdone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   BX, BX

f1loop:
	VMOVUPS     (SI)(BX*1), Y12
	VMOVUPS     (R8)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y0
	VMOVUPS     (R9)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y1
	VMOVUPS     (R10)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y2
	VMOVUPS     (R11)(BX*1), Y15
	VFMADD231PS Y15, Y12, Y3
	ADDQ        $32, BX
	CMPQ        BX, DX
	JL          f1loop

	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (DI)
	ADDQ         $16, DI
	ADDQ         DX, SI
	DECQ         CX
	JMP          f1rows

fdone:
	VZEROUPPER
	RET

// func fmaPeakAVX2(n int)
// n iterations of twelve independent VFMADD231PS (8 lanes each) on
// registers only: the float32 FMA throughput of a core, 192 flops an
// iteration, with no load in the way.
TEXT ·fmaPeakAVX2(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13

ploop:
	TESTQ CX, CX
	JE    pdone
	VFMADD231PS Y12, Y13, Y0
	VFMADD231PS Y12, Y13, Y1
	VFMADD231PS Y12, Y13, Y2
	VFMADD231PS Y12, Y13, Y3
	VFMADD231PS Y12, Y13, Y4
	VFMADD231PS Y12, Y13, Y5
	VFMADD231PS Y12, Y13, Y6
	VFMADD231PS Y12, Y13, Y7
	VFMADD231PS Y12, Y13, Y8
	VFMADD231PS Y12, Y13, Y9
	VFMADD231PS Y12, Y13, Y10
	VFMADD231PS Y12, Y13, Y11
	DECQ CX
	JMP  ploop

pdone:
	VZEROUPPER
	RET
