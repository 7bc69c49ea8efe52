#!/usr/bin/env bash
# The whole test suite: installs what is missing, then builds twice (optimized, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs, against each build, the C unit
# tests, the fuzz-corpus replays and the integration tests that drive the real gateway with
# the official OpenAI and Anthropic SDKs (installed with npm ci from package-lock.json). The
# PostgreSQL store is tested against a real server started here (scripts/pg.sh). The engine
# is tested against the shared test models (../shared/models, or $HL_MODELS_DIR): here,
# without them the run fails instead of skipping those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# HL_REQUIRE_MODELS=1: a missing model fails the engine tests instead of skipping them.
models=${HL_MODELS_DIR:-$PWD/../shared/models}
if [[ ! -f $models/stories260K.gguf ]]; then
    echo "scripts/test.sh: the test models are missing: no $models/stories260K.gguf" >&2
    echo "  (the engine tests need ../shared/models beside the checkout, or HL_MODELS_DIR)" >&2
    exit 1
fi
export HL_REQUIRE_MODELS=1
bash scripts/deps.sh --test
npm ci --no-audit --no-fund --loglevel=error

# A real PostgreSQL server for the PostgreSQL store's tests, unless HL_TEST_PG names one.
# HL_REQUIRE_PG=1: here a missing server fails those tests instead of skipping them.
if [[ -z ${HL_TEST_PG:-} ]]; then
    eval "$(bash scripts/pg.sh start)"
    trap 'bash scripts/pg.sh stop "$HL_TEST_PG_DIR"' EXIT
fi
export HL_TEST_PG HL_REQUIRE_PG=1

# The dashboard's browser tests: here a missing chromium fails them instead of skipping them.
if ! command -v "${HL_CHROMIUM:-chromium}" >/dev/null 2>&1; then
    echo "scripts/test.sh: chromium is missing (scripts/deps.sh --test installs it): the dashboard's" >&2
    echo "  browser tests (test/integration/ui.test.mjs) cannot run" >&2
    exit 1
fi
export HL_REQUIRE_CHROMIUM=1

jobs=$(nproc)
status=0
for variant in release asan; do
    dir="build-test-$variant"
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    [[ $variant == asan ]] && flags+=(-DHL_SANITIZE=ON)
    echo "=== [$variant] build"
    cmake -S . -B "$dir" "${flags[@]}" >/dev/null
    cmake --build "$dir" -j"$jobs"
    echo "=== [$variant] unit tests and fuzz-corpus replays"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$dir" --output-on-failure -j"$jobs" || status=1
    echo "=== [$variant] integration tests (official SDKs against the real gateway)"
    HL_BIN="$PWD/$dir/hybridllm" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        npm run --silent test:integration || status=1
done
exit $status
