#!/bin/sh
# bench/engine/bench.sh: hybridllm's embedded engine vs llama.cpp on the same GGUF files, in
# one run: prefill tok/s (one 128-token batch) and decode tok/s (greedy steps after it) at 1
# and 2 threads, ours against llama.cpp built from source (llama-bench, native CPU flags) and,
# unless HL_BENCH_PREBUILT=0, node-llama-cpp's prebuilt CPU build; the sides run interleaved,
# HL_BENCH_ROUNDS times, and the medians are printed with the ratios, the machine's read
# bandwidth, the decode ceiling it implies (bandwidth / weight bytes read per token) and the
# share of it we reach; the bandwidth is also read in each round, just before its decodes, and
# a second share taken against the median of those (this VM's bandwidth, two threads above
# all, jumps for seconds at a time: a best-of-3 taken once can catch a burst no decode sees);
# then the peak RSS of `hybridllm run` and of llama-completion on the
# same files (/usr/bin/time -v). The load average is printed before and after.
#
# Usage: bench/engine/bench.sh [MODEL.gguf ...]
#   Default models: TinyLlama-1.1B-shaped random-weight files (dim 2048, 22 layers, 32 heads,
#   4 KV heads, ffn 5632, vocab 32000): Q4_0 and Q8_0 written by tools/hl_mkgguf, Q4_K_M,
#   Q5_K_M and Q6_K made by llama-quantize from the F32 file tools/hl_mkgguf writes.
# Environment:
#   HL_BENCH_DIR     scratch folder outside the repo (default /tmp/hl_engine_bench)
#   HL_BENCH_DECODE  decode steps (default 64)
#   HL_BENCH_ROUNDS  interleaved rounds per (model, threads); medians printed (default 3)
#   HL_BENCH_TYPES   default models' types (default "Q4_0 Q8_0 Q4_K_M Q5_K_M Q6_K")
#   HL_LLAMA_CPP_DIR llama.cpp build with bin/llama-bench, bin/llama-quantize,
#                    bin/llama-completion (default $HL_BENCH_DIR/llama-cpp; built there with
#                    bench/engine/build_llama_cpp.sh when missing, about 25 minutes)
#   HL_BENCH_PREBUILT 0 to leave out node-llama-cpp's prebuilt build (installed into
#                    $HL_BENCH_DIR/nlc on first use: node-llama-cpp@3.21.1)
#   CC               compiler (default cc)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${HL_BENCH_DIR:-/tmp/hl_engine_bench}
NDEC=${HL_BENCH_DECODE:-64}
ROUNDS=${HL_BENCH_ROUNDS:-3}
TYPES=${HL_BENCH_TYPES:-"Q4_0 Q8_0 Q4_K_M Q5_K_M Q6_K"}
LCPP=${HL_LLAMA_CPP_DIR:-$DIR/llama-cpp}
PREBUILT=${HL_BENCH_PREBUILT:-1}
CC=${CC:-cc}
mkdir -p "$DIR"

cd "$ROOT"
. bench/engine/engine_src.sh
# shellcheck disable=SC2086
$CC $CFLAGS $SRC bench/engine/hl_bench.c -lm -lpthread -o "$DIR/hl_bench"
# shellcheck disable=SC2086
$CC $CFLAGS $SRC tools/hl_mkgguf.c -lm -lpthread -o "$DIR/hl_mkgguf"
$CC -O2 bench/engine/hl_membw.c -lpthread -o "$DIR/hl_membw"
HL=${HL_BIN:-$ROOT/build/hybridllm}

for t in llama-bench llama-quantize llama-completion; do
    [ -x "$LCPP/bin/$t" ] || { echo "building llama.cpp from source into $LCPP" >&2;
                               bench/engine/build_llama_cpp.sh "$LCPP"; break; }
done
if [ "$PREBUILT" != 0 ]; then
    if [ ! -d "$DIR/nlc/node_modules/node-llama-cpp" ]; then
        mkdir -p "$DIR/nlc"
        (cd "$DIR/nlc" && npm init -y >/dev/null &&
         npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 >/dev/null)
    fi
    cp bench/engine/llama_bench.mjs "$DIR/nlc/"
fi

if [ $# -eq 0 ]; then
    for t in $TYPES; do
        f="$DIR/tinyllama-$t.gguf"
        if [ ! -f "$f" ]; then
            case $t in
            Q4_0|Q8_0|F32) "$DIR/hl_mkgguf" "$f" --tinyllama --type "$t" >/dev/null ;;
            *) f32="$DIR/tinyllama-F32.gguf"
               [ -f "$f32" ] || "$DIR/hl_mkgguf" "$f32" --tinyllama --type F32 >/dev/null
               "$LCPP/bin/llama-quantize" "$f32" "$f" "$t" >/dev/null 2>&1 ;;
            esac
        fi
        set -- "$@" "$f"
    done
    rm -f "$DIR/tinyllama-F32.gguf" # 4.4 GB, quick to write again
fi

median() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# the best of 3: on a shared machine a single run may have had company
bw() { for i in 1 2 3; do "$DIR/hl_membw" "$1" | field gb_s; done | sort -g | tail -1; }
bw1=$(bw 1)
bw2=$(bw 2)
echo "memory read bandwidth: $bw1 GB/s (1 thread), $bw2 GB/s (2 threads)"
echo "medians of $ROUNDS interleaved rounds; src: llama.cpp built from source (llama-bench -p 128 -n $NDEC)"
printf '%-26s %3s | %7s %7s %6s %7s %6s | %7s %7s %6s %7s %6s | %7s %5s | %5s %5s\n' model thr "pf ours" "pf src" ratio \
    "pf pre" ratio "dec our" "dec src" ratio "dec pre" ratio ceiling "of it" "rd bw" "of it"
for m in "$@"; do
    for t in 1 2; do
        : >"$DIR/r.tsv"
        r=0
        while [ "$r" -lt "$ROUNDS" ]; do
            rbw=$("$DIR/hl_membw" "$t" | field gb_s)
            o=$("$DIR/hl_bench" "$m" "$t" "$NDEC")
            l=$("$LCPP/bin/llama-bench" -m "$m" -t "$t" -p 128 -n "$NDEC" -r 1 -o csv 2>/dev/null |
                awk -F, 'NR > 1 {gsub(/"/, ""); print $(NF - 1)}' | tr '\n' ' ')
            pre="0 0"
            if [ "$PREBUILT" != 0 ]; then
                p=$(cd "$DIR/nlc" && node llama_bench.mjs "$m" "$t" "$NDEC")
                pre="$(echo "$p" | field prefill_tok_s) $(echo "$p" | field decode_tok_s)"
            fi
            echo "$(echo "$o" | field prefill_tok_s) $(echo "$o" | field decode_tok_s) $l $pre $(echo "$o" | field weights_bytes) $rbw" >>"$DIR/r.tsv"
            r=$((r + 1))
        done
        med() { awk -v c="$1" '{print $c}' "$DIR/r.tsv" | median; }
        bw=$bw1
        [ "$t" = 2 ] && bw=$bw2
        awk -v m="$(basename "$m")" -v t="$t" -v pf="$(med 1)" -v dec="$(med 2)" -v lpf="$(med 3)" \
            -v ldec="$(med 4)" -v ppf="$(med 5)" -v pdec="$(med 6)" -v wb="$(med 7)" -v bw="$bw" \
            -v rbw="$(med 8)" 'BEGIN {
            c = bw * 1e9 / wb
            cr = rbw * 1e9 / wb
            printf "%-26s %3s | %7.1f %7.1f %5.2fx %7.1f %5.2fx | %7.2f %7.2f %5.2fx %7.2f %5.2fx | %7.2f %4.0f%% | %5.1f %4.0f%%\n",
                m, t, pf, lpf, pf / lpf, ppf, ppf ? pf / ppf : 0, dec, ldec, dec / ldec, pdec,
                pdec ? dec / pdec : 0, c, 100 * dec / c, rbw, 100 * dec / cr }'
    done
done
echo "(tok/s; ceiling = decode tok/s if every weight byte came at the measured bandwidth; rd bw: the median of the bandwidths read just before each round's decodes, GB/s, and the share of the ceiling it implies; pre: node-llama-cpp's prebuilt build, 0 when left out)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -x "$HL" ]; then
    echo "peak RSS (/usr/bin/time -v), 16 tokens after a short prompt, 1 thread:"
    for m in "$@"; do
        size=$(stat -c %s "$m")
        ours=$(/usr/bin/time -v "$HL" run "$m" -p "Hello" -n 16 --temp 0 --ctx 512 2>&1 >/dev/null |
               sed -n 's/.*Maximum resident set size (kbytes): //p')
        theirs=$(/usr/bin/time -v "$LCPP/bin/llama-completion" -m "$m" -p "Hello" -n 16 --temp 0 -c 512 \
                 -t 1 -no-cnv 2>&1 >/dev/null </dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p')
        awk -v m="$(basename "$m")" -v s="$size" -v o="$ours" -v l="$theirs" 'BEGIN {
            printf "%-26s file %6.0f MB | ours %6.0f MB (%.2fx file) | llama.cpp %6.0f MB (%.2fx file)\n",
                m, s / 1e6, o * 1024 / 1e6, o * 1024 / s, l * 1024 / 1e6, l * 1024 / s }'
    done
else
    echo "(no $HL: build the project for the peak-RSS comparison)"
fi
