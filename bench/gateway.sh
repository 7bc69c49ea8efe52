#!/usr/bin/env bash
# Gateway overhead benchmark: hybridllm as a user runs it, against nginx as a plain reverse
# proxy, in one run (issue #17's targets).
#
#   bash bench/gateway.sh
#
# A fast fake upstream (nginx answering a fixed OpenAI chat.completion, and on a second port a
# fixed chat.completion.chunk stream) runs on loopback; wrk then loads, with the same small chat
# request (bench/gateway/post.lua):
#   direct   the upstream itself                                           (the floor)
#   hybrid   hybridllm, DEFAULT config: the ledger's SQLite index on (ledger.db beside the
#            journal, the background indexer), 2 event loops               (what we measure)
#   noidx    hybridllm, the same with `ledger.store: ""` (indexer off)     (beside it)
#   nginx    nginx proxy_pass in front of the upstream (2 workers, upstream keepalive)
#   shadow   noidx with the route's shadow.rate 0.1 (a tenth of the requests asked again of a
#            second backend on the same upstream and compared), at the first connection count
#            only: its cost against noidx (not a target)
# For each connection count (BENCH_CONNS, default "32 256") runs are interleaved
# direct hybrid noidx nginx shadow, direct ..., each after a warm-up, and the medians are
# reported: requests/s, p50/p99 latency, and the CPU time each process spent per request (the
# server's, and the upstream's during the same run; steadier than requests/s when other work
# shares the machine), and the share of requests that reached the upstream on a connection
# already open (its nginx stub_status counts the connections it accepts). After each run of hybrid: the indexer's lag (journal bytes and about how
# many lines it is behind, from /metrics' hybridllm_ledger_index_lag_bytes) and how long it
# then takes to catch up. Then p99 at 1 connection (hybrid, noidx, nginx, interleaved; each
# run after `sync`, see settle_writeback), and the
# time to the first content byte of a streamed answer (bench/gateway/ttfb.py, one connection,
# hybrid vs nginx, interleaved). Peak RSS is each server's VmHWM at the end.
#
# Targets (issue #17; on the project's 2-core machine; against nginx in the same run):
#   CPU per request (hybrid / nginx) <= 1.3 and throughput (hybrid / nginx) >= 0.8, at each
#   connection count; hybrid's peak RSS <= 64 MiB; p99 at 1 connection (hybrid / noidx) <= 1.2;
#   the indexer keeps up (after every hybrid run it is caught up within 2 s, twice the index
#   interval); streaming time to first content byte <= nginx's + 0.05 ms.
# A missed target prints FAIL but exits 0 (this is a report); anything broken (a build or
# server that fails, an error response, a socket error, a crash, a ledger mismatch) exits 1.
#
# Knobs (environment): BENCH_DURATION (s, default 8), BENCH_WARMUP (s, default 2),
# BENCH_ROUNDS (default 3), BENCH_CONNS (default "32 256"), BENCH_THREADS (wrk threads,
# default 1), BENCH_ONE (s per 1-connection run, default 4), BENCH_TTFB (streamed requests per
# TTFB round, default 2000), BENCH_CMAKE_ARGS (extra cmake configure arguments), BENCH_KEEP=1
# (keep the temp dir), BENCH_PERF=1 (perf record -g hybrid during its first measured run;
# the report is left in the kept temp dir).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS_LIST=${BENCH_CONNS:-32 256}
THREADS=${BENCH_THREADS:-1}
ONE_SECS=${BENCH_ONE:-4}
TTFB_N=${BENCH_TTFB:-2000}
LUA=$ROOT/bench/gateway/post.lua
BODY='{"model":"auto","messages":[{"role":"user","content":"Classify: the movie was great"}]}'
SBODY='{"model":"stream","stream":true,"messages":[{"role":"user","content":"Classify: the movie was great"}]}'
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

die() { echo "bench/gateway.sh: error: $*" >&2; exit 1; }

# ------------------------------------------------------------------ tools and build
bash scripts/deps.sh --bench
for t in wrk nginx cmake timeout awk python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
done
NGINX=$(command -v nginx)

echo "== building hybridllm (Release) into build-bench/"
# shellcheck disable=SC2086  # BENCH_CMAKE_ARGS is a list of arguments
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release ${BENCH_CMAKE_ARGS:-} >/dev/null
cmake --build build-bench -j2 --target hybridllm >build-bench/build.log 2>&1 || {
    grep -E 'error' build-bench/build.log | head -n 20 >&2
    die "the Release build failed (full log: build-bench/build.log)"
}
BIN=$ROOT/build-bench/hybridllm
[[ -x $BIN ]] || die "$BIN missing after the build"

# ------------------------------------------------------------------ temp dir and clean-up
TMP=$(mktemp -d /tmp/hybridllm-bench.XXXXXX)
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
        for f in "$TMP"/*.log "$TMP"/*/error.log "$TMP"/*/stderr.log; do
            [[ -s $f ]] || continue
            echo "--- last lines of $f" >&2
            tail -n 20 "$f" >&2
        done
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers
# One HTTP/1.0 request over bash's /dev/tcp (no client dependency); prints the response.
# shellcheck disable=SC2016  # the single-quoted scripts expand their own arguments
http() { # METHOD PORT PATH [BODY]
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" \
            "$0" "$2" "${#3}" "$3" >&3
        cat <&3' "$1" "$2" "$3" "${4:-}" 2>/dev/null
}
status_of() { http "$@" | head -n 1 | awk '{print $2}'; }
# shellcheck disable=SC2016
port_busy() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
NEXT_PORT=18100
free_port() { # sets PORT to the next port from NEXT_PORT that nobody listens on
    local i
    for ((i = 0; i < 200; i++)); do
        PORT=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1))
        port_busy "$PORT" || return 0
    done
    die "no free port in 18100..$NEXT_PORT"
}
wait_status() { # PID PORT PATH WANT NAME: polls for up to 10 s
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || die "$5 exited during start-up"
        [[ $(status_of GET "$2" "$3" || true) == "$4" ]] && return 0
        sleep 0.1
    done
    die "$5 did not answer GET $3 with $4 within 10 s"
}

# ------------------------------------------------------------------ the fake upstream
free_port; UP_PORT=$PORT
free_port; UPS_PORT=$PORT
free_port; HL_PORT=$PORT
free_port; NI_PORT=$PORT
free_port; NX_PORT=$PORT
free_port; NXS_PORT=$PORT
free_port; SH_PORT=$PORT

CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"positive"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":1,"total_tokens":15}}'
MODELS_JSON='{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"bench"}]}'
CHUNK='{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","choices":[{"index":0,"delta":'
# The stream: role, content, finish, usage, [DONE] (a quoted nginx string keeps its newlines).
SSE="data: $CHUNK{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}

data: $CHUNK{\"content\":\"positive\"},\"finish_reason\":null}]}

data: $CHUNK{},\"finish_reason\":\"stop\"}]}

data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"fake-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":1,\"total_tokens\":15}}

data: [DONE]

"

# nginx common part: everything under the instance's own directory; as root, workers run as
# root too, so they can use the (0700) temp dir.
nginx_conf() { # DIR WORKERS
    local d=$1
    [[ $(id -u) -eq 0 ]] && echo "user root;"
    cat <<EOC
worker_processes $2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
EOC
}
nginx_http_common() { # DIR
    cat <<EOC
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOC
}
start_nginx() { # DIR NAME: checks DIR/nginx.conf, starts nginx with it in the background
    "$NGINX" -p "$1" -c "$1/nginx.conf" -e "$1/error.log" -t >"$1/check.log" 2>&1 ||
        { cat "$1/check.log" >&2; die "$2: bad nginx config"; }
    "$NGINX" -p "$1" -c "$1/nginx.conf" -e "$1/error.log" >"$1/stderr.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

mkdir -p "$TMP/upstream" "$TMP/proxy"
{
    nginx_conf "$TMP/upstream" 1
    echo "http {"
    nginx_http_common "$TMP/upstream"
    cat <<EOC
    server {
        listen 127.0.0.1:$UP_PORT;
        location = /v1/chat/completions { default_type application/json; return 200 '$CHAT_JSON'; }
        location = /v1/models { default_type application/json; return 200 '$MODELS_JSON'; }
        location = /nginx_status { stub_status; }
        location / { return 404; }
    }
    server {
        listen 127.0.0.1:$UPS_PORT;
        location = /v1/chat/completions { default_type text/event-stream; return 200 '$SSE'; }
        location = /v1/models { default_type application/json; return 200 '$MODELS_JSON'; }
        location / { return 404; }
    }
}
EOC
} >"$TMP/upstream/nginx.conf"
start_nginx "$TMP/upstream" "fake upstream"
UP_PID=$LAST_PID
wait_status "$UP_PID" "$UP_PORT" /v1/models 200 "fake upstream (nginx)"

# ------------------------------------------------------------------ nginx as proxy
{
    nginx_conf "$TMP/proxy" 2
    echo "http {"
    nginx_http_common "$TMP/proxy"
    cat <<EOC
    upstream fake { server 127.0.0.1:$UP_PORT; keepalive 64; }
    upstream fakes { server 127.0.0.1:$UPS_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NX_PORT;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:$NXS_PORT;
        location / {
            proxy_pass http://fakes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOC
} >"$TMP/proxy/nginx.conf"
start_nginx "$TMP/proxy" "nginx proxy"
NX_PID=$LAST_PID
wait_status "$NX_PID" "$NX_PORT" /v1/models 200 "nginx proxy"

# ------------------------------------------------------------------ hybridllm instances
hl_config() { # PORT LEDGER STORE_LINE [SHADOW]: the store line is omitted for the default
    cat <<EOC
server:
  listen: "127.0.0.1:$1"
  threads: 2
  shutdown_timeout_ms: 2000
ledger:
  path: $2
$3
backends:
  - name: local
    kind: openai
    location: local
    base_url: http://127.0.0.1:$UP_PORT/v1
    model: fake-model
  - name: local-b
    kind: openai
    location: local
    base_url: http://127.0.0.1:$UP_PORT/v1
    model: fake-model
  - name: stream
    kind: openai
    location: local
    base_url: http://127.0.0.1:$UPS_PORT/v1
    model: fake-model
routes:
  - name: default
    to: [local]
EOC
    [[ -n ${4:-} ]] && echo "    shadow: {rate: 0.1, to: [local-b]}"
    return 0
}
start_hl() { # NAME PORT: starts hybridllm with $TMP/NAME.yaml, sets LAST_PID
    "$BIN" serve --config "$TMP/$1.yaml" >"$TMP/$1.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_status "$LAST_PID" "$2" /healthz 200 "hybridllm ($1)"
}
# hybrid: the default config; the store is ledger.db beside the journal.
hl_config "$HL_PORT" "$TMP/hybrid/ledger.jsonl" "" >"$TMP/hybrid.yaml"
hl_config "$NI_PORT" "$TMP/noidx/ledger.jsonl" '  store: ""' >"$TMP/noidx.yaml"
hl_config "$SH_PORT" "$TMP/shadow/ledger.jsonl" '  store: ""' shadow >"$TMP/shadow.yaml"
mkdir -p "$TMP/hybrid" "$TMP/noidx" "$TMP/shadow"
start_hl hybrid "$HL_PORT"; HL_PID=$LAST_PID
start_hl noidx "$NI_PORT"; NI_PID=$LAST_PID
start_hl shadow "$SH_PORT"; SH_PID=$LAST_PID
[[ -f $TMP/hybrid/ledger.db ]] || die "the default config made no ledger.db beside the journal"

# One request through each target before loading them: the same answer must come back.
declare -A PORT_OF=([direct]=$UP_PORT [hybrid]=$HL_PORT [noidx]=$NI_PORT [shadow]=$SH_PORT [nginx]=$NX_PORT)
declare -A PID_OF=([direct]=$UP_PID [hybrid]=$HL_PID [noidx]=$NI_PID [shadow]=$SH_PID [nginx]=$NX_PID)
declare -A SERVED=([hybrid]=0 [noidx]=0 [shadow]=0) SLACK=([hybrid]=0 [noidx]=0 [shadow]=0)
for t in direct hybrid noidx shadow nginx; do
    resp=$(http POST "${PORT_OF[$t]}" /v1/chat/completions "$BODY" || true)
    [[ $(head -n 1 <<<"$resp") == *" 200 "* && $resp == *'"chat.completion"'* && $resp == *positive* ]] ||
        die "smoke request through $t failed; response:"$'\n'"$resp"
    [[ -n ${SERVED[$t]:-} ]] && SERVED[$t]=$((SERVED[$t] + 1))
done
for t in "hybrid $HL_PORT" "nginx $NXS_PORT"; do
    read -r name port <<<"$t"
    resp=$(http POST "$port" /v1/chat/completions "$SBODY" || true)
    [[ $(head -n 1 <<<"$resp") == *" 200 "* && $resp == *'data: '* && $resp == *positive* ]] ||
        die "streamed smoke request through $name failed; response:"$'\n'"$resp"
done
SERVED[hybrid]=$((SERVED[hybrid] + 1))

# ------------------------------------------------------------------ measuring helpers
HZ=$(getconf CLK_TCK)
# The processes of a target's server: hybridllm's process (all threads), an nginx master's
# workers.
server_pids() {
    local m
    case $1 in
        direct | upstream) m=$UP_PID ;;
        nginx) m=$NX_PID ;;
        *) echo "${PID_OF[$1]}"; return ;;
    esac
    cat "/proc/$m/task/$m/children" 2>/dev/null || pgrep -P "$m" 2>/dev/null || true
}
cpu_ticks() {
    local s=0 p n=0
    for p in $(server_pids "$1"); do
        s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); n=$((n + 1))
    done
    if ((n)); then echo "$s"; else echo -1; fi
}
peak_rss_kib() { # the largest VmHWM among a target's processes
    local p m=0 v
    for p in $(server_pids "$1"); do
        v=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        ((v > m)) && m=$v
    done
    echo "$m"
}

# Prints "rps p50_ms p99_ms requests non2xx socket_errors" from wrk --latency output.
parse_wrk() {
    awk '
        function ms(v, n) {
            n = v
            if (sub(/us$/, "", n)) return n / 1000
            if (sub(/ms$/, "", n)) return n + 0
            if (sub(/m$/, "", n)) return n * 60000
            if (sub(/s$/, "", n)) return n * 1000
            return -1
        }
        /^ +50% / { p50 = ms($2) }
        /^ +99% / { p99 = ms($2) }
        / requests in / { req = $1 }
        /Socket errors:/ { gsub(/,/, ""); serr = $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { bad = $5 }
        /^Requests\/sec:/ { rps = $2 }
        END {
            if (rps == "" || p50 == "" || p99 == "" || req == "") exit 1
            printf "%s %.3f %.3f %d %d %d\n", rps, p50, p99, req, bad + 0, serr + 0
        }' "$1"
}

# Connections the fake upstream accepted so far (nginx stub_status; this request is one).
up_accepts() { http GET "$UP_PORT" /nginx_status | awk 'f { print $1; exit } /server accepts handled requests/ { f = 1 }'; }

# CPU ticks over REQUESTS as microseconds a request, to 0.1 us (whole microseconds, cut, moved
# a ratio of ~20 us figures by up to 6%).
per_req() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { printf "%.1f", t * 1000000 / hz / n }'; }

# Runs wrk; sets WRK_LINE to "rps p50 p99 requests non2xx socket_errors cpu_us upstream_cpu_us
# upstream_connections_opened".
run_wrk() { # TARGET CONNS SECONDS OUTFILE
    local target=$1 conns=$2 secs=$3 out=$4 line req bad serr c0 c1 u0 u1 a0 a1 cpu=-1 ucpu=-1 perf_pid=
    a0=$(up_accepts)
    c0=$(cpu_ticks "$target") u0=$(cpu_ticks upstream)
    if [[ ${PERF_NOW:-0} == 1 ]]; then
        perf record -g -F 999 -p "${PID_OF[$target]}" -o "$TMP/perf-$target.data" -- sleep "$secs" \
            >"$TMP/perf-$target.log" 2>&1 &
        perf_pid=$!
    fi
    timeout $((secs + 30)) wrk -t"$THREADS" -c"$conns" -d"${secs}s" --latency -s "$LUA" \
        "http://127.0.0.1:${PORT_OF[$target]}/v1/chat/completions" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk against $target failed"; }
    [[ -n $perf_pid ]] && wait "$perf_pid"
    c1=$(cpu_ticks "$target") u1=$(cpu_ticks upstream)
    a1=$(up_accepts)
    line=$(parse_wrk "$out") || { cat "$out" >&2; die "cannot parse wrk's output for $target"; }
    read -r _ _ _ req bad serr <<<"$line"
    if ((bad != 0 || serr != 0)); then
        cat "$out" >&2
        die "$target: $bad non-2xx responses and $serr socket errors out of $req requests"
    fi
    kill -0 "${PID_OF[$target]}" 2>/dev/null || die "$target's server died during the run"
    if [[ -n ${SERVED[$target]:-} ]]; then
        SERVED[$target]=$((SERVED[$target] + req)) SLACK[$target]=$((SLACK[$target] + conns))
    fi
    if ((c0 >= 0 && c1 >= c0 && req > 0)); then cpu=$(per_req $((c1 - c0)) "$req"); fi
    if ((u0 >= 0 && u1 >= u0 && req > 0)); then ucpu=$(per_req $((u1 - u0)) "$req"); fi
    WRK_LINE="$line $cpu $ucpu $((a1 - a0 - 1))"
}

metric() { # PORT NAME: a gauge's value from /metrics
    http GET "$1" /metrics | awk -v n="$2" '$1 == n {print $2; exit}'
}
# After a run of hybrid: the indexer's lag now, and the seconds until it is caught up (-1: not
# within 60 s). Sets LAG_BYTES LAG_LINES CATCHUP_S.
measure_lag() {
    local t0 t1 b lines bytes i
    LAG_BYTES=$(metric "$HL_PORT" hybridllm_ledger_index_lag_bytes)
    [[ -n $LAG_BYTES ]] || die "hybrid's /metrics has no hybridllm_ledger_index_lag_bytes"
    lines=$(wc -l <"$TMP/hybrid/ledger.jsonl") bytes=$(stat -c %s "$TMP/hybrid/ledger.jsonl")
    LAG_LINES=$(awk -v l="$LAG_BYTES" -v n="$lines" -v b="$bytes" 'BEGIN { printf "%d", (b > 0 ? l * n / b : 0) }')
    t0=$(date +%s%N)
    CATCHUP_S=-1
    for ((i = 0; i < 600; i++)); do
        b=$(metric "$HL_PORT" hybridllm_ledger_index_lag_bytes)
        if [[ $b == 0 ]]; then
            t1=$(date +%s%N)
            CATCHUP_S=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
            break
        fi
        sleep 0.1
    done
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# ------------------------------------------------------------------ load: 32 and 256 connections
declare -A RPS P50 P99 CPU UCPU REUSE M_RPS M_P50 M_P99 M_CPU M_UCPU M_REUSE LAGL CATCH
first_conns=${CONNS_LIST%% *}
PERF_DONE=0
for conns in $CONNS_LIST; do
    targets=(direct hybrid noidx nginx)
    [[ $conns == "$first_conns" ]] && targets+=(shadow)
    echo "== $conns connections: $ROUNDS rounds x (${WARMUP}s warm-up + ${DURATION}s) per target; wrk -t$THREADS, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in "${targets[@]}"; do
            run_wrk "$t" "$conns" "$WARMUP" "$TMP/wrk-$t-$conns-$r-warm.txt"
            PERF_NOW=0
            if [[ ${BENCH_PERF:-0} == 1 && $t == hybrid && $PERF_DONE == 0 ]]; then PERF_NOW=1 PERF_DONE=1; fi
            run_wrk "$t" "$conns" "$DURATION" "$TMP/wrk-$t-$conns-$r.txt"
            PERF_NOW=0
            read -r rps p50 p99 req _ _ cpu ucpu newc <<<"$WRK_LINE"
            k="$t,$conns"
            RPS[$k,$r]=$rps P50[$k,$r]=$p50 P99[$k,$r]=$p99 CPU[$k,$r]=$cpu UCPU[$k,$r]=$ucpu
            REUSE[$k,$r]=$(awk -v n="$newc" -v q="$req" 'BEGIN { printf "%.4f", (q > 0 ? 100 * (1 - n / q) : 0) }')
            extra=""
            if [[ $t == hybrid ]]; then
                measure_lag
                LAGL[$conns,$r]=$LAG_LINES CATCH[$conns,$r]=$CATCHUP_S
                extra=", index lag ~$LAG_LINES lines ($LAG_BYTES bytes), caught up in ${CATCHUP_S}s"
            fi
            printf '   round %d  %-7s %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  CPU/req %5.1f us (upstream %4.1f us)  %d requests, %d upstream connections opened%s\n' \
                "$r" "$t" "$rps" "$p50" "$p99" "$cpu" "$ucpu" "$req" "$newc" "$extra"
        done
    done
    for t in "${targets[@]}"; do
        k="$t,$conns" a=() b=() c=() d=() e=() g=()
        for ((r = 1; r <= ROUNDS; r++)); do
            a+=("${RPS[$k,$r]}") b+=("${P50[$k,$r]}") c+=("${P99[$k,$r]}") d+=("${CPU[$k,$r]}") e+=("${UCPU[$k,$r]}")
            g+=("${REUSE[$k,$r]}")
        done
        M_REUSE[$k]=$(median "${g[@]}")
        M_RPS[$k]=$(median "${a[@]}") M_P50[$k]=$(median "${b[@]}") M_P99[$k]=$(median "${c[@]}")
        M_CPU[$k]=$(median "${d[@]}") M_UCPU[$k]=$(median "${e[@]}")
    done
done

# ------------------------------------------------------------------ p99 at one connection
# The load runs leave gigabytes of journal and index pages dirty. The kernel writes them back
# about 30 s later, in worker threads that hold a core for up to a millisecond at a time
# (perf sched timehist: the chain's tasks waited 0.5-1.3 ms behind kworkers), and that lands
# on whichever server the one-connection runs measure then: with the index off measured first
# after a load of its own, its p99 was the one at 1.3 ms. So each of these runs starts after
# `sync`: what it measures is the server's own work meanwhile, its indexer's included.
settle_writeback() {
    local t0 t1
    t0=$(date +%s%N)
    sync
    t1=$(date +%s%N)
    SYNC_MS=$(((t1 - t0) / 1000000))
}
declare -A ONE
echo "== 1 connection: $ROUNDS rounds x ${ONE_SECS}s per target (hybrid, noidx, nginx), each after sync"
for ((r = 1; r <= ROUNDS; r++)); do
    for t in hybrid noidx nginx; do
        settle_writeback
        run_wrk "$t" 1 "$ONE_SECS" "$TMP/wrk-$t-1-$r.txt"
        read -r rps _ p99 _ <<<"$WRK_LINE"
        ONE[$t,$r]=$p99
        printf '   round %d  %-7s %8.0f req/s  p99 %7.3f ms  (sync before it: %d ms)\n' "$r" "$t" "$rps" "$p99" "$SYNC_MS"
    done
done
declare -A M_ONE
for t in hybrid noidx nginx; do
    a=(); for ((r = 1; r <= ROUNDS; r++)); do a+=("${ONE[$t,$r]}"); done
    M_ONE[$t]=$(median "${a[@]}")
done
measure_lag # let the index catch up before the streaming runs

# ------------------------------------------------------------------ streaming: first content byte
declare -A TT TT99
echo "== streaming, 1 connection: $ROUNDS rounds x $TTFB_N requests per target (hybrid, nginx)"
for ((r = 1; r <= ROUNDS; r++)); do
    for t in "hybrid $HL_PORT" "nginx $NXS_PORT"; do
        read -r name port <<<"$t"
        line=$(python3 "$ROOT/bench/gateway/ttfb.py" "$port" "$TTFB_N" "$SBODY") || die "ttfb.py against $name failed"
        read -r med p99 n <<<"$line"
        TT[$name,$r]=$med TT99[$name,$r]=$p99
        [[ $name == hybrid ]] && SERVED[hybrid]=$((SERVED[hybrid] + n))
        printf '   round %d  %-7s first content byte: median %.3f ms, p99 %.3f ms\n' "$r" "$name" "$med" "$p99"
    done
done
declare -A M_TT M_TT99
for t in hybrid nginx; do
    a=() b=(); for ((r = 1; r <= ROUNDS; r++)); do a+=("${TT[$t,$r]}") b+=("${TT99[$t,$r]}"); done
    M_TT[$t]=$(median "${a[@]}") M_TT99[$t]=$(median "${b[@]}")
done
measure_lag
FINAL_CATCHUP=$CATCHUP_S

# ------------------------------------------------------------------ report
declare -A HWM
for t in hybrid noidx nginx direct shadow; do HWM[$t]=$(peak_rss_kib "$t"); done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "== results: medians of $ROUNDS runs (wrk -t$THREADS -d${DURATION}s, loopback, $(nproc) CPUs; load average $LOAD_START at the start, $LOAD_END at the end)"
ALL_OK=1
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else printf "n/a" }'; }
verdict() { # OK(0/1) TEXT
    printf '   %-86s %s\n' "$2" "$( (($1)) && echo PASS || echo FAIL)"
    (($1)) || ALL_OK=0
}
for conns in $CONNS_LIST; do
    echo "-- $conns connections"
    printf '   %-34s %10s %9s %9s %11s %13s %10s\n' target "req/s" "p50 ms" "p99 ms" "CPU us/req" "upstream us" "conn reuse"
    for t in direct hybrid noidx nginx shadow; do
        k="$t,$conns"
        [[ -n ${M_RPS[$k]:-} ]] || continue
        case $t in
            direct) label="upstream direct" ;;
            hybrid) label="hybridllm, default (indexer on)" ;;
            noidx) label="hybridllm, indexer off" ;;
            nginx) label="nginx proxy_pass" ;;
            shadow) label="hybridllm off, shadow.rate 0.1" ;;
        esac
        printf '   %-34s %10.0f %9.3f %9.3f %11s %13s %9.2f%%\n' "$label" "${M_RPS[$k]}" "${M_P50[$k]}" "${M_P99[$k]}" \
            "${M_CPU[$k]}" "$([[ $t == direct ]] && echo - || echo "${M_UCPU[$k]}")" "${M_REUSE[$k]}"
    done
    r=$(ratio "${M_CPU[hybrid,$conns]}" "${M_CPU[nginx,$conns]}")
    verdict "$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r <= 1.3) }')" "CPU per request, hybridllm / nginx: $r (${M_CPU[hybrid,$conns]} vs ${M_CPU[nginx,$conns]} us; target <= 1.3)"
    r=$(ratio "${M_RPS[hybrid,$conns]}" "${M_RPS[nginx,$conns]}")
    verdict "$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r >= 0.8) }')" "throughput, hybridllm / nginx: $r (target >= 0.8)"
    echo "   (indexer on / off: CPU per request $(ratio "${M_CPU[hybrid,$conns]}" "${M_CPU[noidx,$conns]}"), throughput $(ratio "${M_RPS[hybrid,$conns]}" "${M_RPS[noidx,$conns]}"); indexer off / nginx: CPU per request $(ratio "${M_CPU[noidx,$conns]}" "${M_CPU[nginx,$conns]}"), throughput $(ratio "${M_RPS[noidx,$conns]}" "${M_RPS[nginx,$conns]}"))"
    a=() b=(); for ((r = 1; r <= ROUNDS; r++)); do a+=("${LAGL[$conns,$r]}") b+=("${CATCH[$conns,$r]}"); done
    worst=$(maxof "${b[@]}")
    ok=$(awk -v w="$worst" 'BEGIN { print (w >= 0 && w <= 2.0) }')
    [[ " ${b[*]} " == *" -1 "* ]] && ok=0
    verdict "$ok" "indexer lag at the end of each run: ~$(maxof "${a[@]}") lines at most; caught up in ${worst}s at most (target <= 2 s)"
done
if [[ -n ${M_RPS[shadow,$first_conns]:-} ]]; then
    awk -v r0="${M_RPS[noidx,$first_conns]}" -v r1="${M_RPS[shadow,$first_conns]}" -v c0="${M_CPU[noidx,$first_conns]}" \
        -v c1="${M_CPU[shadow,$first_conns]}" 'BEGIN {
        printf "   shadow.rate 0.1 vs 0 (indexer off, %s connections): throughput ratio %.2f", "'"$first_conns"'", r1 / r0
        if (c0 > 0 && c1 > 0) printf ", CPU per request %.2fx", c1 / c0
        printf "   (not a target)\n" }'
fi
echo "-- 1 connection: p99 hybridllm ${M_ONE[hybrid]} ms (indexer on), ${M_ONE[noidx]} ms (off), nginx ${M_ONE[nginx]} ms"
r=$(ratio "${M_ONE[hybrid]}" "${M_ONE[noidx]}")
verdict "$(awk -v r="$r" 'BEGIN { print (r != "n/a" && r <= 1.2) }')" "p99 at 1 connection, indexer on / off: $r (target <= 1.2)"
echo "-- streaming: time to the first content byte, median (p99): hybridllm ${M_TT[hybrid]} (${M_TT99[hybrid]}) ms, nginx ${M_TT[nginx]} (${M_TT99[nginx]}) ms"
gap=$(awk -v a="${M_TT[hybrid]}" -v b="${M_TT[nginx]}" 'BEGIN { printf "%+.3f", a - b }')
verdict "$(awk -v d="$gap" 'BEGIN { print (d <= 0.05) }')" "first content byte, hybridllm - nginx: $gap ms (target <= +0.05 ms)"
echo "-- peak RSS (VmHWM): hybridllm default $(awk -v k="${HWM[hybrid]}" 'BEGIN { printf "%.1f", k / 1024 }') MiB, indexer off $(awk -v k="${HWM[noidx]}" 'BEGIN { printf "%.1f", k / 1024 }') MiB, nginx worker $(awk -v k="${HWM[nginx]}" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
verdict "$(awk -v k="${HWM[hybrid]}" 'BEGIN { print (k <= 65536) }')" "hybridllm peak RSS with the indexer on: $(awk -v k="${HWM[hybrid]}" 'BEGIN { printf "%.1f", k / 1024 }') MiB (target <= 64 MiB)"
echo "   after the last load the index caught up in ${FINAL_CATCHUP}s"

# Each instance's ledger: one ok line per request it answered. wrk counts only the responses it
# received; when it stops, each connection may have a request in flight that hybridllm still
# answers (ok) or records as cancelled, so up to one extra line per connection per wrk run.
ledger_ok=1
for t in hybrid noidx shadow; do
    f=$TMP/$t/ledger.jsonl
    lines=$(grep -vc '"shadow":true' "$f" || true)
    ok=$(grep -v '"shadow":true' "$f" | grep -c '"status":"ok"' || true)
    cancelled=$(grep -v '"shadow":true' "$f" | grep -c '"status":"cancelled"' || true)
    other=$((lines - ok - cancelled))
    st=OK
    if ((ok < SERVED[$t] || lines > SERVED[$t] + SLACK[$t] || other != 0)); then st=MISMATCH ledger_ok=0; fi
    printf '   ledger %-6s %d lines for %d requests answered: %d ok, %d cancelled when wrk stopped, %d other (<= %d extra allowed)  %s\n' \
        "$t" "$lines" "${SERVED[$t]}" "$ok" "$cancelled" "$other" "${SLACK[$t]}" "$st"
    w=$(grep -cE 'Z (warn|error) ' "$TMP/$t.log" || true)
    if ((w > 0)); then
        echo "   $t logged $w warning/error lines; the first ones:"
        grep -E 'Z (warn|error) ' "$TMP/$t.log" | head -n 5 | sed 's/^/     /'
    fi
done
rows=$(sqlite3 "$TMP/hybrid/ledger.db" 'SELECT count(*) FROM inferences' 2>/dev/null || echo "?")
echo "   hybrid's index holds $rows rows for $(wc -l <"$TMP/hybrid/ledger.jsonl") journal lines"
for f in "$TMP/upstream/error.log" "$TMP/proxy/error.log"; do
    if [[ -s $f ]]; then
        echo "   note: $f is not empty:"
        head -n 5 "$f" | sed 's/^/     /'
    fi
done
if [[ ${BENCH_PERF:-0} == 1 && -f $TMP/perf-hybrid.data ]]; then
    perf report -i "$TMP/perf-hybrid.data" --no-children --percent-limit 1 --stdio >"$TMP/perf-hybrid.txt" 2>/dev/null || true
    echo "   perf profile of hybrid: $TMP/perf-hybrid.txt (BENCH_KEEP=1 keeps it)"
fi
((ledger_ok)) || die "a hybridllm ledger does not match the requests it served"
echo
echo "== targets: $( ((ALL_OK)) && echo 'all PASS' || echo 'some FAIL (see above)')"
exit 0
