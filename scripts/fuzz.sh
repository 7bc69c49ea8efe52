#!/usr/bin/env bash
# Runs every libFuzzer target (test/fuzz/fuzz_<name>.c) in turn, SECONDS each (default 60),
# starting from its corpus (test/fuzz/corpus/<name>/), against a clang build (build-fuzz/)
# in which the whole library is instrumented (-DHL_FUZZ=ON). The fuzzers grow a scratch copy
# of each corpus, so test/fuzz/corpus/ stays as it is, except that an input that makes a
# target fail is copied into the target's corpus (so the replay tests keep it from coming
# back) and the script exits 1.
# Usage: scripts/fuzz.sh [SECONDS] [NAME...]   e.g. scripts/fuzz.sh 20 config http
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
(($# > 0)) && shift
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [NAME...]" >&2; exit 2; }
bash scripts/deps.sh --fuzz

names=("$@")
if ((${#names[@]} == 0)); then
    for f in test/fuzz/fuzz_*.c; do names+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
fi
dir=build-fuzz
CC=clang cmake -S . -B "$dir" -DHL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j"$(nproc)" --target "${names[@]/#/fuzz_}" >"$dir/build.log" 2>&1 || { cat "$dir/build.log"; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for name in "${names[@]}"; do
    work="$scratch/$name"
    mkdir -p "$work/corpus" "$work/crash"
    cp -r "test/fuzz/corpus/$name/." "$work/corpus/" 2>/dev/null || true
    echo "=== fuzz_$name: ${secs}s from $(ls "$work/corpus" | wc -l) inputs"
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$dir/fuzz_$name" "$work/corpus" -max_total_time="$secs" -artifact_prefix="$work/crash/" \
        >"$work/log" 2>&1; then
        grep -E "inline 8-bit counters|^#[0-9]+[[:space:]]+(INITED|DONE)" "$work/log" | sed 's/^/    /'
    else
        status=1
        # The report: from the sanitizer's or libFuzzer's first word of it to the end.
        awk 'f || /ERROR|runtime error|deadly signal/ {f = 1; print}' "$work/log" | head -n 80
        for f in "$work/crash"/*; do
            [[ -e $f ]] || continue
            dest="test/fuzz/corpus/$name/$(basename "$f")"
            cp "$f" "$dest"
            echo "fuzz_$name FAILED: the input is now $dest (replay: $dir/fuzz_$name $dest)"
        done
    fi
done
exit $status
