/* hl_swiglu: the feed-forward gate, silu(g) * u, computed the way llama.cpp's CPU backend
 * computes it, to the bit, so that greedy decoding follows llama.cpp's on quantized files.
 *
 * Why it matters: llama.cpp computes silu's exp(-g) with a vectorized polynomial (range
 * reduction by ln 2, a degree-5 polynomial, scaling by 2^n: within about 1.5 ulp of expf)
 * over as many whole vectors of the row as fit, and with libm's expf for the last
 * n % width values. A last-bit difference in a gate value is harmless in itself, but the
 * next matmul rounds its input to F16 or Q8_0, and a last-bit difference there sometimes
 * moves a value to the neighbouring code: on stories260K that alone changed greedy tokens
 * (see test/engine/test_model.c, greedy parity).
 *
 * width: the vector width llama.cpp runs on this CPU (16 with AVX-512, 8 with AVX2 + FMA;
 * 0: every value through expf, which is what we do where we have no such vectors). */
#ifndef HL_SWIGLU_H
#define HL_SWIGLU_H

#include <stddef.h>

/* The width hl_swiglu() should use here, following hl_quant_best_isa() (and so
 * HL_QUANT_ISA). */
int hl_swiglu_width(void);
/* g[i] = silu(g[i]) * u[i] for i < n: the first n - n % width through the polynomial exp
 * (vectorized where the CPU allows), the rest through expf. */
void hl_swiglu(float *g, const float *u, size_t n, int width);
/* The polynomial exp(x) for one value, with fmaf: the reference the vector code matches. */
float hl_swiglu_exp(float x);

#endif
