#!/usr/bin/env bash
# Decode throughput with 1, 2, 4 and 8 sequences generated together (hl_bench_seqs.c), at 1
# and 2 threads, on the TinyLlama-shaped Q4_0 file (made like bench.sh does when missing) or
# on the GGUF files given. Binaries and models go to $HL_BENCH_DIR (default
# /tmp/hl_engine_bench), never into the repository.
#
#   bench/engine/seqs.sh
#   bench/engine/seqs.sh ../shared/models/stories260K.gguf
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${HL_BENCH_DIR:-/tmp/hl_engine_bench}
CC=${CC:-cc}
mkdir -p "$DIR"
cd "$ROOT"
. bench/engine/engine_src.sh
# shellcheck disable=SC2086
$CC $CFLAGS $SRC bench/engine/hl_bench_seqs.c -lm -lpthread -o "$DIR/hl_bench_seqs"
if [ $# -eq 0 ]; then
    if [ ! -f "$DIR/tinyllama-Q4_0.gguf" ]; then
        # shellcheck disable=SC2086
        $CC $CFLAGS $SRC tools/hl_mkgguf.c -lm -lpthread -o "$DIR/hl_mkgguf"
        "$DIR/hl_mkgguf" "$DIR/tinyllama-Q4_0.gguf" --tinyllama --type Q4_0 >/dev/null
    fi
    set -- "$DIR/tinyllama-Q4_0.gguf"
fi
for m in "$@"; do
    for t in 1 2; do
        echo "== $(basename "$m"), $t thread(s), ${HL_BENCH_DECODE:-32} decode steps"
        "$DIR/hl_bench_seqs" "$m" "$t" "${HL_BENCH_DECODE:-32}"
    done
done
