#!/usr/bin/env bash
# Regenerates the engine tests' greedy references with llama.cpp itself (tools/llama_ref/
# llama_ref.c against a llama.cpp build from ../shared/tools/build-llama-cpp.sh):
#   test/engine/data/<model>.greedy.tsv for stories260K (F32), its Q8_0 and Q4_0 files, the
#   prompts in test/engine/data/stories_prompts.txt, 32 greedy steps each, one CPU thread.
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
for m in stories260K derived/stories260K-Q8_0 derived/stories260K-Q4_0; do
  name=$(basename "$m")
  "$out/llama_ref" greedy "$models/$m.gguf" 32 "$root/test/engine/data/stories_prompts.txt" \
    > "$root/test/engine/data/$name.greedy.tsv"
  echo "wrote test/engine/data/$name.greedy.tsv"
done
