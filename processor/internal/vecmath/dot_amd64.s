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
