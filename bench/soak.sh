#!/usr/bin/env bash
# Soak: the gateway under the highest load this machine takes, for a minute, and what is left
# of it afterwards.
#
#   bash bench/soak.sh
#
# Two fake upstreams (test/fake: an OpenAI-compatible "local" server and a "cloud" Anthropic)
# behind hybridllm (2 event loops, a 50/50 split between them, the default ledger and SQLite
# index). bench/soak/load.mjs first ramps up the concurrency (3 s a step, doubling) while the
# throughput still grows and nothing fails, then runs SOAK_SECONDS at the last step that gained:
# 40% whole answers, 45% streams read to the end, 15% streams dropped by the client after the
# first chunk. The gateway's RSS is sampled every 5 s. Then SIGTERM (the gateway must drain and
# exit 0) and bench/soak/ledger_check.mjs: every answered request has exactly one ledger line
# with status ok, none has two, every dropped stream has its line.
#
# Prints the RSS at start and end (and the highest), errors, and the ledger check. Exits 1 when
# something is broken (errors, a crash, an unclean exit, a failed ledger check); the figures
# are a report.
#
# Knobs: SOAK_SECONDS (default 60), SOAK_CONNS (skip the ramp: this concurrency),
# SOAK_RAMP (the ramp's concurrencies; default 8, 16, ... while throughput grows, up to 1024),
# SOAK_CHUNK_DELAY_MS (the fakes' delay between stream
# chunks, default 2), SOAK_BIN (a hybridllm binary; default: a Release build in build-bench/),
# SOAK_KEEP=1 (keep the temp dir).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SECONDS_=${SOAK_SECONDS:-60}
CHUNK_DELAY=${SOAK_CHUNK_DELAY_MS:-2}

die() { echo "bench/soak.sh: error: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || die "node not found (scripts/deps.sh --test)"

if [[ -n ${SOAK_BIN:-} ]]; then
    BIN=$(realpath "$SOAK_BIN")
else
    echo "== building hybridllm (Release) into build-bench/"
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build-bench -j2 --target hybridllm >build-bench/build.log 2>&1 || {
        grep -E 'error' build-bench/build.log | head -n 20 >&2
        die "the Release build failed (full log: build-bench/build.log)"
    }
    BIN=$ROOT/build-bench/hybridllm
fi
[[ -x $BIN ]] || die "$BIN is not an executable"

TMP=$(mktemp -d /tmp/hybridllm-soak.XXXXXX)
PIDS=()
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$? p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if ((rc != 0)); then
        for f in "$TMP"/*.log; do
            [[ -s $f ]] || continue
            echo "--- last lines of $f" >&2
            tail -n 20 "$f" >&2
        done
    fi
    if [[ ${SOAK_KEEP:-0} == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_fake() { # SCRIPT NAME [ARGS...]: starts a fake on a free port; sets FAKE_PORT
    local script=$1 name=$2 i
    shift 2
    : >"$TMP/$name.log" # before the child opens it: awk below may run first
    node "$ROOT/test/fake/$script" --port 0 "$@" >>"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        FAKE_PORT=$(awk '/^listening /{print $2; exit}' "$TMP/$name.log")
        [[ -n $FAKE_PORT ]] && return 0
        sleep 0.1
    done
    die "fake $name did not start"
}
control() { # PORT JSON
    node -e 'fetch(process.argv[1], {method: "POST", body: process.argv[2]}).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
        "http://127.0.0.1:$1/_control" "$2" || die "could not set up the fake on port $1"
}

export SOAK_ANTHROPIC_KEY=sk-ant-soak-0123456789abcdef
start_fake openai.mjs local --models soak-local
LOCAL_PORT=$FAKE_PORT
start_fake anthropic.mjs cloud --key "$SOAK_ANTHROPIC_KEY" --models claude-3-5-sonnet-20241022
CLOUD_PORT=$FAKE_PORT
control "$LOCAL_PORT" "{\"chunk_delay_ms\": $CHUNK_DELAY}"
control "$CLOUD_PORT" "{\"chunk_delay_ms\": $CHUNK_DELAY}"

# SOAK_LEDGER_STORE="" turns the SQLite index off (its page cache is most of the RSS growth).
STORE_LINE=""
[[ -n ${SOAK_LEDGER_STORE+x} ]] && STORE_LINE="  store: \"${SOAK_LEDGER_STORE}\""
HL_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat >"$TMP/hybridllm.yaml" <<EOF
server:
  listen: 127.0.0.1:$HL_PORT
  threads: 2
ledger:
  path: $TMP/ledger.jsonl
$STORE_LINE
backends:
  - name: local
    kind: openai
    location: local
    base_url: http://127.0.0.1:$LOCAL_PORT/v1
    model: soak-local
    warmup: false
  - name: cloud
    kind: anthropic
    location: cloud
    base_url: http://127.0.0.1:$CLOUD_PORT
    api_key_env: SOAK_ANTHROPIC_KEY
    model: claude-3-5-sonnet-20241022
prices:
  - {model: claude-3-5-sonnet-20241022, input_per_mtok: 3, output_per_mtok: 15}
privacy:
  detect_pii: false
routes:
  - name: half-and-half
    split:
      - {to: local, weight: 1}
      - {to: cloud, weight: 1}
EOF
"$BIN" serve --config "$TMP/hybridllm.yaml" >"$TMP/gateway.log" 2>&1 &
HL_PID=$!
PIDS+=("$HL_PID")
for ((i = 0; i < 100; i++)); do
    kill -0 "$HL_PID" 2>/dev/null || die "the gateway exited during start-up"
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' \
        "http://127.0.0.1:$HL_PORT/readyz" && break
    sleep 0.1
done
((i < 100)) || die "the gateway was not ready within 10 s"

echo "== soak: $SECONDS_ s against hybridllm (pid $HL_PID, $(nproc) cores), binary $BIN"
LOAD_ARGS=(--url "http://127.0.0.1:$HL_PORT" --pid "$HL_PID" --out "$TMP" --seconds "$SECONDS_")
[[ -n ${SOAK_RAMP:-} ]] && LOAD_ARGS+=(--ramp "$SOAK_RAMP")
[[ -n ${SOAK_CONNS:-} ]] && LOAD_ARGS+=(--conns "$SOAK_CONNS")
node "$ROOT/bench/soak/load.mjs" "${LOAD_ARGS[@]}" | tee "$TMP/load.out"

sleep 1 # the last cancelled streams' lines
kill -TERM "$HL_PID"
for ((i = 0; i < 300; i++)); do kill -0 "$HL_PID" 2>/dev/null || break; sleep 0.1; done
EXIT=unknown
if kill -0 "$HL_PID" 2>/dev/null; then
    EXIT="still running 30 s after SIGTERM"
else
    set +e
    wait "$HL_PID"
    EXIT=$?
    set -e
fi

echo "== results"
node -e '
const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const k = s.rss.map((r) => r.kib).filter((x) => x != null);
const mib = (x) => (x / 1024).toFixed(1) + " MiB";
console.log(`load: ${s.conns} connections, ${s.n} requests in ${s.seconds.toFixed(1)} s (${s.rps.toFixed(0)}/s): ${s.answered} answered, ${s.dropped} client disconnects`);
console.log(`RSS: start ${mib(k[0])}, end ${mib(k[k.length - 1])}, highest ${mib(Math.max(...k))} (${k.length} samples)`);
console.log(`errors: ${s.errors} (ramp: ${s.ramp_errors})`);' "$TMP/summary.json"
echo "gateway exit after SIGTERM: $EXIT"
set +e
node "$ROOT/bench/soak/ledger_check.mjs" "$TMP/ledger.jsonl" "$TMP"
LEDGER_RC=$?
set -e
ERRORS=$(node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(s.errors + s.ramp_errors)' "$TMP/summary.json")
[[ $EXIT == 0 ]] || die "the gateway did not exit 0 after SIGTERM ($EXIT)"
((ERRORS == 0)) || die "$ERRORS requests failed"
((LEDGER_RC == 0)) || die "the ledger check failed"
echo "soak: PASS"
