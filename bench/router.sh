#!/usr/bin/env bash
# The routing decision's cost, per request: bench/router/bench_router.c, built optimized.
#   bash bench/router.sh [iterations]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_router >/dev/null
exec ./build-bench/bench_router "$@"
