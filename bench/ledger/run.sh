#!/usr/bin/env bash
# Ledger store benchmark: index time and `report` time on 1M synthetic ledger records (and 10M
# with HL_BENCH_10M=1), printed as figures. See bench/ledger/bench_ledger.c for what is run.
#
#   bash bench/ledger/run.sh                   1M records
#   HL_BENCH_10M=1 bash bench/ledger/run.sh    1M and 10M (about 10 minutes; 9 GB of disk
#                                              under HL_BENCH_DIR, default /tmp)
#   bash bench/ledger/run.sh 200000            the sizes given
#   HL_BENCH_PG=auto bash bench/ledger/run.sh  also PostgreSQL: a throwaway server (scripts/pg.sh)
#   HL_BENCH_PG=postgresql://... ...           also PostgreSQL: that database (tables dropped)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ ${HL_BENCH_PG:-} == auto ]]; then
    eval "$(bash scripts/pg.sh start)"
    trap 'bash scripts/pg.sh stop "$HL_TEST_PG_DIR"' EXIT
    export HL_BENCH_PG=$HL_TEST_PG
fi
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_ledger >/dev/null
./build-bench/bench_ledger "$@"
