# Sourced by bench.sh and seqs.sh: the engine's sources and flags for building the benchmark
# programs directly (no CMake, no gateway dependencies), from the repository root.
SRC="src/core/hl_buf.c src/core/hl_err.c src/engine/hl_gguf.c src/engine/hl_gguf_write.c
     src/engine/hl_quant.c src/engine/hl_quant_x86.c src/engine/hl_quant_k.c
     src/engine/hl_quant_k_x86.c src/engine/hl_model.c
     src/engine/hl_engine_pool.c src/engine/hl_swiglu.c"
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -Isrc/core -Isrc/engine -Isrc/engine/internal"
