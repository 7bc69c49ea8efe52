/* hl_quant_x86: the x86 SIMD kernels behind hl_quant (private to hl_quant.c and its tests).
 * Each is compiled for its instruction set with __attribute__((target(...))), so the rest of
 * the build stays baseline x86-64, and is only handed out when __builtin_cpu_supports says
 * the running CPU has that instruction set. */
#ifndef HL_QUANT_X86_H
#define HL_QUANT_X86_H

#include <stdbool.h>
#include "hl_quant.h"

bool hl_quant_x86_has_avx2(void);   /* AVX2, FMA and F16C */
bool hl_quant_x86_has_avx512(void); /* AVX-512 F, BW, VL and VNNI */
/* Kernels for a weight type; NULL where none exists at that level. */
hl_quant_dot_fn hl_quant_x86_kernel_avx2(uint32_t type);
hl_quant_dot_fn hl_quant_x86_kernel_avx512(uint32_t type);
/* Kernels on repacked weights (hl_quant_x4_*) at an ISA level; NULL where none. */
hl_quant_x4_fn hl_quant_x86_x4(uint32_t type, hl_quant_isa isa);
hl_quant_gemm_fn hl_quant_x86_gemm_x4(uint32_t type, hl_quant_isa isa);
/* GEMM kernels at an ISA level; NULL where none. */
hl_quant_gemm_fn hl_quant_x86_gemm(uint32_t type, hl_quant_isa isa);
/* HL_ACT_Q8X quantization with SIMD where this CPU has it (same bytes); false where not. */
bool hl_quant_x86_quantize_q8x(const float *x, hl_act_q8x *dst, int n);
/* HL_ACT_Q8K quantization likewise (n a multiple of 256). */
bool hl_quant_x86_quantize_q8k(const float *x, hl_act_q8k *dst, int n);
/* hl_quant_actx_pack() with SIMD where this CPU has it (same bytes); false where not. */
bool hl_quant_x86_actx_pack(const float *x, size_t x_stride, int nt, int n, void *dst);
/* Vector helpers at an ISA level; NULL where none. */
const hl_quant_vec_ops *hl_quant_x86_vec(hl_quant_isa isa);

#endif
