#!/bin/sh
# bench/engine/bench.sh: hybridllm's embedded engine vs llama.cpp (node-llama-cpp 3.21.1, CPU
# build) on the same GGUF files, in one run: prefill tok/s (one 128-token batch) and decode
# tok/s (greedy steps after it) at 1 and 2 threads, with the ratios, plus the machine's read
# bandwidth and the decode ceiling it implies (bandwidth / weight bytes read per token).
#
# Usage: bench/engine/bench.sh [MODEL.gguf ...]
#   Default models: TinyLlama-1.1B-shaped random-weight Q4_0 and Q8_0 files made with
#   tools/hl_mkgguf (dim 2048, 22 layers, 32 heads, 4 KV heads, ffn 5632, vocab 32000).
# Environment:
#   HL_BENCH_DIR   scratch folder outside the repo for binaries, models and node_modules
#                  (default /tmp/hl_engine_bench)
#   HL_BENCH_DECODE decode steps (default 64)
#   CC             compiler (default cc)
# Everything else stays out of the repository; node-llama-cpp is installed into
# $HL_BENCH_DIR/nlc on first use (npm i -E --omit=optional node-llama-cpp@3.21.1
# @node-llama-cpp/linux-x64@3.21.1).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${HL_BENCH_DIR:-/tmp/hl_engine_bench}
NDEC=${HL_BENCH_DECODE:-64}
CC=${CC:-cc}
mkdir -p "$DIR"

cd "$ROOT"
. bench/engine/engine_src.sh
# shellcheck disable=SC2086
$CC $CFLAGS $SRC bench/engine/hl_bench.c -lm -lpthread -o "$DIR/hl_bench"
# shellcheck disable=SC2086
$CC $CFLAGS $SRC tools/hl_mkgguf.c -lm -lpthread -o "$DIR/hl_mkgguf"
$CC -O2 bench/engine/hl_membw.c -lpthread -o "$DIR/hl_membw"

if [ ! -d "$DIR/nlc/node_modules/node-llama-cpp" ]; then
    mkdir -p "$DIR/nlc"
    (cd "$DIR/nlc" && npm init -y >/dev/null &&
     npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 >/dev/null)
fi
cp bench/engine/llama_bench.mjs "$DIR/nlc/"

if [ $# -eq 0 ]; then
    for t in Q4_0 Q8_0; do
        f="$DIR/tinyllama-$t.gguf"
        [ -f "$f" ] || "$DIR/hl_mkgguf" "$f" --tinyllama --type "$t"
        set -- "$@" "$f"
    done
fi

bw1=$("$DIR/hl_membw" 1 | sed 's/.*gb_s=//')
bw2=$("$DIR/hl_membw" 2 | sed 's/.*gb_s=//')
echo "memory read bandwidth: $bw1 GB/s (1 thread), $bw2 GB/s (2 threads)"
printf '%-26s %3s | %9s %9s %6s | %9s %9s %6s | %8s\n' model thr "pf ours" "pf llama" ratio \
    "dec ours" "dec llama" ratio ceiling
for m in "$@"; do
    for t in 1 2; do
        ours=$("$DIR/hl_bench" "$m" "$t" "$NDEC")
        theirs=$(cd "$DIR/nlc" && node llama_bench.mjs "$m" "$t" "$NDEC")
        pf=$(echo "$ours" | sed 's/.*prefill_tok_s=\([0-9.]*\).*/\1/')
        dec=$(echo "$ours" | sed 's/.*decode_tok_s=\([0-9.]*\).*/\1/')
        wb=$(echo "$ours" | sed 's/.*weights_bytes=\([0-9]*\).*/\1/')
        lpf=$(echo "$theirs" | sed 's/.*prefill_tok_s=\([0-9.]*\).*/\1/')
        ldec=$(echo "$theirs" | sed 's/.*decode_tok_s=\([0-9.]*\).*/\1/')
        bw=$bw1
        [ "$t" = 2 ] && bw=$bw2
        awk -v m="$(basename "$m")" -v t="$t" -v pf="$pf" -v lpf="$lpf" -v dec="$dec" \
            -v ldec="$ldec" -v bw="$bw" -v wb="$wb" 'BEGIN {
            printf "%-26s %3s | %9.2f %9.2f %5.2fx | %9.2f %9.2f %5.2fx | %8.2f\n",
                m, t, pf, lpf, pf / lpf, dec, ldec, dec / ldec, bw * 1e9 / wb }'
    done
done
echo "(tok/s; ceiling = decode tok/s if every weight byte came at the measured bandwidth)"
