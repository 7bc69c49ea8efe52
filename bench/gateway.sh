#!/usr/bin/env bash
# Gateway overhead benchmark: hybridllm against nginx as a plain reverse proxy, in one run.
#
#   bash bench/gateway.sh
#
# A fast fake upstream (nginx answering a fixed OpenAI chat.completion) runs on loopback; wrk
# then loads, with the same small chat request (bench/gateway/post.lua):
#   (a) direct   the upstream itself                         (the floor)
#   (b) hybrid   hybridllm in front of it (2 event loops)    (what we measure)
#   (c) nginx    nginx proxy_pass in front of it (2 workers, upstream keepalive)
#   (d) shadow   hybridllm as (b) with the route's shadow.rate 0.1 (a tenth of the requests
#                asked again of a second backend on the same upstream, after the answer, and
#                compared): its cost against (b), which is shadow.rate 0
# Runs are interleaved a b d c a b d c ..., each after a 2 s warm-up, and the medians are
# reported: requests/s, p50 and p99 latency, the p99 latency each proxy adds over (a), the
# ratio of hybridllm's added p99 to nginx's, the throughput ratio hybridllm / nginx, and
# hybridllm's peak RSS; and the throughput, p99 and CPU per request of (d) against (b), with
# the shadow comparisons (d) made and dropped (not a target). It also prints the CPU time each server spent per request (steadier
# than requests/s when other work shares the machine) and checks that hybridllm wrote one
# ledger line per request it served.
#
# Targets (on the project's 2-core machine): added p99 ratio <= 1.5, throughput ratio >= 0.7.
# A missed target prints FAIL but exits 0 (this is a report); anything broken (a build or
# server that fails, an error response, a socket error, a crash, a ledger mismatch) exits 1.
#
# Knobs (environment): BENCH_DURATION (s, default 8), BENCH_WARMUP (s, default 2),
# BENCH_ROUNDS (default 3), BENCH_CONNS (default 32), BENCH_THREADS (wrk threads, default 1),
# BENCH_CMAKE_ARGS (extra cmake configure arguments), BENCH_KEEP=1 (keep the temp dir),
# BENCH_LEDGER_STORE (a SQLite file: also run the background ledger indexer; default: off, so
# the figures are the request path's; bench/ledger/ measures the indexer).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-1}
LUA=$ROOT/bench/gateway/post.lua
BODY='{"model":"auto","messages":[{"role":"user","content":"Classify: the movie was great"}]}'

die() { echo "bench/gateway.sh: error: $*" >&2; exit 1; }

# ------------------------------------------------------------------ tools and build
bash scripts/deps.sh --bench
for t in wrk nginx cmake timeout awk; do
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

# ------------------------------------------------------------------ (a) the fake upstream
free_port; UP_PORT=$PORT
free_port; HL_PORT=$PORT
free_port; NX_PORT=$PORT
free_port; SH_PORT=$PORT

CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"positive"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":1,"total_tokens":15}}'
MODELS_JSON='{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"bench"}]}'

# nginx common part: everything under the instance's own directory; as root, workers run as
# root too, so they can use the (0700) temp dir.
nginx_conf() { # DIR WORKERS
    local d=$1
    [[ $(id -u) -eq 0 ]] && echo "user root;"
    cat <<EOF
worker_processes $2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() { # DIR
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
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
    cat <<EOF
    server {
        listen 127.0.0.1:$UP_PORT;
        location = /v1/chat/completions { default_type application/json; return 200 '$CHAT_JSON'; }
        location = /v1/models { default_type application/json; return 200 '$MODELS_JSON'; }
        location / { return 404; }
    }
}
EOF
} >"$TMP/upstream/nginx.conf"
start_nginx "$TMP/upstream" "fake upstream"
UP_PID=$LAST_PID
wait_status "$UP_PID" "$UP_PORT" /v1/models 200 "fake upstream (nginx)"

# ------------------------------------------------------------------ (c) nginx as proxy
{
    nginx_conf "$TMP/proxy" 2
    echo "http {"
    nginx_http_common "$TMP/proxy"
    cat <<EOF
    upstream fake { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NX_PORT;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$TMP/proxy/nginx.conf"
start_nginx "$TMP/proxy" "nginx proxy"
NX_PID=$LAST_PID
wait_status "$NX_PID" "$NX_PORT" /v1/models 200 "nginx proxy"

# ------------------------------------------------------------------ (b) hybridllm
cat >"$TMP/hybridllm.yaml" <<EOF
server:
  listen: "127.0.0.1:$HL_PORT"
  threads: 2
  shutdown_timeout_ms: 2000
ledger:
  path: $TMP/ledger.jsonl
  store: "${BENCH_LEDGER_STORE:-}"
backends:
  - name: local
    kind: openai
    location: local
    base_url: http://127.0.0.1:$UP_PORT/v1
    model: fake-model
routes:
  - name: default
    to: [local]
EOF
"$BIN" serve --config "$TMP/hybridllm.yaml" >"$TMP/hybridllm.log" 2>&1 &
HL_PID=$!
PIDS+=("$HL_PID")
wait_status "$HL_PID" "$HL_PORT" /healthz 200 "hybridllm"

# ------------------------------------------------------------------ (d) hybridllm, shadow.rate 0.1
cat >"$TMP/shadow.yaml" <<EOF
server:
  listen: "127.0.0.1:$SH_PORT"
  threads: 2
  shutdown_timeout_ms: 2000
ledger:
  path: $TMP/ledger-shadow.jsonl
  store: "${BENCH_LEDGER_STORE:+$BENCH_LEDGER_STORE.shadow}"
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
routes:
  - name: default
    to: [local]
    shadow: {rate: 0.1, to: [local-b]}
EOF
"$BIN" serve --config "$TMP/shadow.yaml" >"$TMP/shadow.log" 2>&1 &
SH_PID=$!
PIDS+=("$SH_PID")
wait_status "$SH_PID" "$SH_PORT" /healthz 200 "hybridllm (shadow)"

# One request through each target before loading them: the same answer must come back.
for t in "direct $UP_PORT" "hybridllm $HL_PORT" "shadow $SH_PORT" "nginx $NX_PORT"; do
    read -r name port <<<"$t"
    resp=$(http POST "$port" /v1/chat/completions "$BODY" || true)
    [[ $(head -n 1 <<<"$resp") == *" 200 "* && $resp == *'"chat.completion"'* && $resp == *positive* ]] ||
        die "smoke request through $name failed; response:"$'\n'"$resp"
done
SMOKE_HL=1 # hybridllm requests served outside wrk (ledger accounting)
hl_rss_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$HL_PID/status"; }
RSS_START=$(hl_rss_kib VmRSS)

# ------------------------------------------------------------------ load
declare -A PORT_OF=([direct]=$UP_PORT [hybridllm]=$HL_PORT [shadow]=$SH_PORT [nginx]=$NX_PORT)
declare -A PID_OF=([direct]=$UP_PID [hybridllm]=$HL_PID [shadow]=$SH_PID [nginx]=$NX_PID)
TARGETS=(direct hybridllm shadow nginx)
declare -A RPS P50 P99 CPU
HL_WRK_REQUESTS=0
HZ=$(getconf CLK_TCK)

# CPU time the target's own server processes used (ticks): hybridllm's process (all threads),
# an nginx master's workers. Requests/s on a shared 2-core machine moves with whatever else
# runs; CPU per request much less so, which makes it the steadier cost comparison.
server_pids() {
    local m
    case $1 in
        hybridllm) echo "$HL_PID"; return ;;
        shadow) echo "$SH_PID"; return ;;
        direct) m=$UP_PID ;;
        nginx) m=$NX_PID ;;
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

run_wrk() { # TARGET SECONDS OUTFILE: runs wrk, checks it, sets WRK_LINE to the parsed line
    local target=$1 secs=$2 out=$3 line req bad serr c0 c1 cpu=-1
    c0=$(cpu_ticks "$target")
    timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$LUA" \
        "http://127.0.0.1:${PORT_OF[$target]}/v1/chat/completions" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk against $target failed"; }
    c1=$(cpu_ticks "$target")
    line=$(parse_wrk "$out") || { cat "$out" >&2; die "cannot parse wrk's output for $target"; }
    read -r _ _ _ req bad serr <<<"$line"
    if ((bad != 0 || serr != 0)); then
        cat "$out" >&2
        die "$target: $bad non-2xx responses and $serr socket errors out of $req requests"
    fi
    kill -0 "${PID_OF[$target]}" 2>/dev/null || die "$target's server died during the run"
    if [[ $target == hybridllm ]]; then HL_WRK_REQUESTS=$((HL_WRK_REQUESTS + req)); fi
    if ((c0 >= 0 && c1 >= c0 && req > 0)); then cpu=$(((c1 - c0) * 1000000 / HZ / req)); fi
    WRK_LINE="$line $cpu"
}

echo "== $ROUNDS rounds x (${WARMUP}s warm-up + ${DURATION}s) per target; wrk -t$THREADS -c$CONNS, $(nproc) CPUs"
for ((r = 1; r <= ROUNDS; r++)); do
    for t in "${TARGETS[@]}"; do
        run_wrk "$t" "$WARMUP" "$TMP/wrk-$t-$r-warm.txt"
        run_wrk "$t" "$DURATION" "$TMP/wrk-$t-$r.txt"
        read -r rps p50 p99 req _ _ cpu <<<"$WRK_LINE"
        RPS[$t,$r]=$rps P50[$t,$r]=$p50 P99[$t,$r]=$p99 CPU[$t,$r]=$cpu
        extra=""
        [[ $t == hybridllm ]] && extra=$(awk -v k="$(hl_rss_kib VmRSS)" 'BEGIN { printf ", RSS %.1f MiB", k / 1024 }')
        printf '   round %d  %-9s %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %4d us CPU/req  (%d requests%s)\n' \
            "$r" "$t" "$rps" "$p50" "$p99" "$cpu" "$req" "$extra"
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A M_RPS M_P50 M_P99 M_CPU
for t in "${TARGETS[@]}"; do
    a=() b=() c=() d=()
    for ((r = 1; r <= ROUNDS; r++)); do
        a+=("${RPS[$t,$r]}") b+=("${P50[$t,$r]}") c+=("${P99[$t,$r]}") d+=("${CPU[$t,$r]}")
    done
    M_RPS[$t]=$(median "${a[@]}") M_P50[$t]=$(median "${b[@]}") M_P99[$t]=$(median "${c[@]}")
    M_CPU[$t]=$(median "${d[@]}")
done

# ------------------------------------------------------------------ hybridllm: memory, ledger
RSS_END=$(hl_rss_kib VmRSS)
HWM=$(hl_rss_kib VmHWM)
LEDGER_LINES=$(wc -l <"$TMP/ledger.jsonl")
LEDGER_OK=$(grep -c '"status":"ok"' "$TMP/ledger.jsonl" || true)
LEDGER_CANCELLED=$(grep -c '"status":"cancelled"' "$TMP/ledger.jsonl" || true)
LEDGER_OTHER=$((LEDGER_LINES - LEDGER_OK - LEDGER_CANCELLED))
HL_SERVED=$((HL_WRK_REQUESTS + SMOKE_HL))
HL_WARNINGS=$(grep -cE 'Z (warn|error) ' "$TMP/hybridllm.log" || true)

# ------------------------------------------------------------------ report
echo
echo "== results: medians of $ROUNDS runs (wrk -t$THREADS -c$CONNS -d${DURATION}s, loopback, $(nproc) CPUs)"
printf '   %-26s %10s %10s %10s %14s\n' target "req/s" "p50 ms" "p99 ms" "CPU us/req"
for t in "${TARGETS[@]}"; do
    case $t in
        direct) label="(a) upstream direct" ;;
        hybridllm) label="(b) hybridllm -> upstream" ;;
        nginx) label="(c) nginx -> upstream" ;;
        shadow) label="(d) hybridllm, shadow 0.1" ;;
    esac
    printf '   %-26s %10.0f %10.3f %10.3f %14s\n' "$label" "${M_RPS[$t]}" "${M_P50[$t]}" "${M_P99[$t]}" \
        "$(awk -v v="${M_CPU[$t]}" 'BEGIN { if (v < 0) print "n/a"; else printf "%.0f", v }')"
done

verdicts=$(awk -v a="${M_P99[direct]}" -v b="${M_P99[hybridllm]}" -v c="${M_P99[nginx]}" \
    -v rb="${M_RPS[hybridllm]}" -v rc="${M_RPS[nginx]}" -v hwm="$HWM" -v rs="$RSS_START" -v re="$RSS_END" \
    -v cb="${M_CPU[hybridllm]}" -v cc="${M_CPU[nginx]}" '
    BEGIN {
        addb = b - a; addc = c - a
        printf "   added p99 over direct:   hybridllm %+.3f ms, nginx %+.3f ms\n", addb, addc
        if (addc > 0.001) {
            lr = addb / addc
            lat = (lr <= 1.5)
            printf "   added p99 ratio (hybridllm / nginx):   %.2f   (target <= 1.5)  %s\n", lr, (lat ? "PASS" : "FAIL")
        } else {
            lat = (addb <= 0.001)
            printf "   added p99 ratio (hybridllm / nginx):   n/a, nginx added no measurable p99  %s\n", (lat ? "PASS" : "FAIL")
        }
        tr = rb / rc
        thr = (tr >= 0.7)
        printf "   throughput ratio (hybridllm / nginx):  %.2f   (target >= 0.7)  %s\n", tr, (thr ? "PASS" : "FAIL")
        if (cb > 0 && cc > 0)
            printf "   server CPU per request (hybridllm / nginx): %.2f   (%.0f us vs %.0f us; not a target)\n", cb / cc, cb, cc
        printf "   hybridllm peak RSS (VmHWM): %.1f MiB (RSS %.1f MiB after start-up, %.1f MiB after the runs)\n", hwm / 1024, rs / 1024, re / 1024
        if (lat && thr) exit 0
        exit 1
    }') && targets_ok=1 || targets_ok=0
echo "$verdicts"

# (d) against (b): what shadowing a tenth of the requests costs the clients.
SH_METRICS=$(http GET "$SH_PORT" /metrics || true)
shadow_count() { awk -v r="$1" -F'"' '/^hybridllm_shadow_total\{result="/ && $2 == r {split($3, v, " "); print v[2]}' <<<"$SH_METRICS"; }
SH_LINES=$(grep -c '"shadow":true' "$TMP/ledger-shadow.jsonl" || true)
awk -v r0="${M_RPS[hybridllm]}" -v r1="${M_RPS[shadow]}" -v p0="${M_P99[hybridllm]}" -v p1="${M_P99[shadow]}" \
    -v c0="${M_CPU[hybridllm]}" -v c1="${M_CPU[shadow]}" 'BEGIN {
    printf "   shadow.rate 0.1 vs 0: throughput ratio %.2f, p99 %+.3f ms", r1 / r0, p1 - p0
    if (c0 > 0 && c1 > 0) printf ", CPU per request %.2fx", c1 / c0
    printf "   (not a target)\n" }'
printf '   shadow comparisons: %s compared, %s dropped busy, %s failed; %d shadow ledger lines\n' \
    "$(shadow_count compared)" "$(shadow_count dropped_busy)" "$(shadow_count failed)" "$SH_LINES"

# wrk counts only the responses it received. When it stops, each connection may have a request
# in flight: hybridllm still answers it (status ok) or records it as cancelled ("client
# disconnected"), so the ledger may hold up to CONNS lines more per wrk run than wrk counted.
slack=$((CONNS * ROUNDS * 2))
ledger_ok=1
if ((LEDGER_OK < HL_SERVED || LEDGER_LINES > HL_SERVED + slack || LEDGER_OTHER != 0)); then
    ledger_ok=0
fi
printf '   ledger: %d lines for %d requests hybridllm answered (%d counted by wrk + %d smoke test): %d ok, %d cancelled when wrk stopped, %d other; %d extra lines (<= %d allowed)  %s\n' \
    "$LEDGER_LINES" "$HL_SERVED" "$HL_WRK_REQUESTS" "$SMOKE_HL" "$LEDGER_OK" "$LEDGER_CANCELLED" "$LEDGER_OTHER" \
    $((LEDGER_LINES - HL_SERVED)) "$slack" \
    "$( ((ledger_ok)) && echo OK || echo MISMATCH)"
if ((HL_WARNINGS > 0)); then
    echo "   hybridllm logged $HL_WARNINGS warning/error lines; the first ones:"
    grep -E 'Z (warn|error) ' "$TMP/hybridllm.log" | head -n 5 | sed 's/^/     /'
fi
for f in "$TMP/upstream/error.log" "$TMP/proxy/error.log"; do
    if [[ -s $f ]]; then
        echo "   note: $f is not empty:"
        head -n 5 "$f" | sed 's/^/     /'
    fi
done
((ledger_ok)) || {
    grep -vE '"status":"(ok|cancelled)"' "$TMP/ledger.jsonl" | head -n 3 >&2
    die "hybridllm's ledger does not match the requests it served"
}
echo
echo "== targets: $( ((targets_ok)) && echo PASS || echo 'FAIL (see above)')"
exit 0
