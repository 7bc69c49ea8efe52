#!/usr/bin/env bash
# The main job: install what is missing, build, and start the gateway on the shipped config
# (config/hybridllm.yaml). Backends come from the environment: ANTHROPIC_API_KEY,
# OPENAI_API_KEY, and a local OpenAI-compatible server on its usual port (vLLM 8000,
# llama.cpp server 8080, Ollama 11434). Extra arguments go to `hybridllm serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target hybridllm
exec ./build/hybridllm serve --config "${HYBRIDLLM_CONFIG:-config/hybridllm.yaml}" "$@"
