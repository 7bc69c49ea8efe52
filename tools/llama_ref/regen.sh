#!/usr/bin/env bash
# Regenerates the engine tests' references with llama.cpp itself (tools/llama_ref/
# llama_ref.c against a llama.cpp build from ../shared/tools/build-llama-cpp.sh):
#   test/engine/data/<model>.greedy.tsv for stories260K (F32), its Q8_0 and Q4_0 files, the
#   prompts in test/engine/data/stories_prompts.txt, 32 greedy steps each, one CPU thread;
#   test/engine/data/{qwen3,phi3_short,phi3_long}_ref.tsv: next-token probabilities on the tiny
#   qwen3 and phi3 models tools/hl_mkgguf writes (the arguments must stay those of mk_common
#   and the tests in test/engine/test_model.c), from $HL_BUILD (default build/).
# Usage: tools/llama_ref/regen.sh [LLAMA_CPP_DIR]   (default /tmp/llama-cpp: the directory
#        build-llama-cpp.sh was given; its source tree is DIR/src, its build DIR/src/build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-/tmp/llama-cpp}
src=$dir/src
lib=$src/build
models=${HL_MODELS_DIR:-$root/../shared/models}
for a in "$lib/src/libllama.a" "$lib/ggml/src/libggml.a" "$lib/ggml/src/libggml-cpu.a" "$lib/ggml/src/libggml-base.a"; do
  [ -f "$a" ] || { echo "regen.sh: $a missing: build llama.cpp with ../shared/tools/build-llama-cpp.sh $dir" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -Wall -I"$src/include" -I"$src/ggml/include" "$root/tools/llama_ref/llama_ref.c" -o "$out/llama_ref" \
  "$lib/src/libllama.a" "$lib/ggml/src/libggml.a" "$lib/ggml/src/libggml-cpu.a" "$lib/ggml/src/libggml-base.a" \
  -lstdc++ -lgomp -lm -lpthread
mk=${HL_BUILD:-$root/build}/tools/hl_mkgguf
[ -x "$mk" ] || { echo "regen.sh: $mk missing: build the project first" >&2; exit 1; }
common="--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 96 --vocab 300 --ctx 4096 --amp 0.3"
prompt="1 260 261 262 263 264 265 266 267 268 269 270"
data=$root/test/engine/data
"$mk" "$out/qwen3.gguf" $common --arch qwen3 --head-dim 32 >/dev/null
"$mk" "$out/phi3.gguf" $common --arch phi3 --orig-ctx 1024 >/dev/null
"$out/llama_ref" probs "$out/qwen3.gguf" $prompt > "$data/qwen3_ref.tsv"
# A context of 256 is within phi3's original 1024 (short factors); 2048 is beyond (long).
LLAMA_REF_CTX=256 "$out/llama_ref" probs "$out/phi3.gguf" $prompt > "$data/phi3_short_ref.tsv"
LLAMA_REF_CTX=2048 "$out/llama_ref" probs "$out/phi3.gguf" $prompt > "$data/phi3_long_ref.tsv"
echo "wrote test/engine/data/{qwen3,phi3_short,phi3_long}_ref.tsv"
for m in stories260K derived/stories260K-Q8_0 derived/stories260K-Q4_0; do
  name=$(basename "$m")
  "$out/llama_ref" greedy "$models/$m.gguf" 32 "$root/test/engine/data/stories_prompts.txt" \
    > "$root/test/engine/data/$name.greedy.tsv"
  echo "wrote test/engine/data/$name.greedy.tsv"
done
