#!/usr/bin/env bash
# Installs the Debian 12 packages hybridllm needs to build, run and test. Idempotent: it
# only calls apt-get when something is missing. Run as root (or with sudo).
set -euo pipefail

# libjs-chart.js: Debian's Chart.js, compiled into the binary for the dashboard (/ui).
pkgs=(build-essential cmake pkg-config libuv1-dev libcurl4-openssl-dev libyaml-dev
      libjansson-dev libpcre2-dev libsqlite3-dev libpq-dev ca-certificates libjs-chart.js)
if [[ "${1:-}" == "--test" ]]; then
    # nodejs/npm: the official SDK clients in the integration tests; postgresql: the real
    # server the PostgreSQL store is tested against (scripts/pg.sh); openssl: the throwaway CA of
    # the https:// tests (test/fake/tls.mjs); chromium: the headless browser the dashboard's
    # tests drive with puppeteer-core (test/integration/ui.test.mjs).
    pkgs+=(postgresql openssl chromium)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
if [[ "${1:-}" == "--fuzz" ]]; then
    # clang and its runtimes (libFuzzer, sanitizers): scripts/fuzz.sh.
    pkgs+=(clang libclang-rt-dev)
fi
if [[ "${1:-}" == "--bench" ]]; then
    pkgs+=(wrk nginx-light)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
