#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: a fresh cluster in a temporary directory,
# listening on 127.0.0.1 at a free port and on a Unix socket in that directory, trust
# authentication for local connections only.
#
#   eval "$(bash scripts/pg.sh start)"   # exports HL_TEST_PG (a libpq URI) and HL_TEST_PG_DIR
#   bash scripts/pg.sh stop "$HL_TEST_PG_DIR"
#
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user that
# the Debian package creates. Needs the postgresql package (scripts/deps.sh --test).
set -euo pipefail

bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do [[ -x $d/initdb ]] && { echo "$d"; return; }; done
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return; }
    echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    exit 1
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cd /  # the server's owner may not be able to read the caller's directory
case "${1:-}" in
start)
    bin=$(bindir)
    dir=$(mktemp -d /tmp/hl-pg.XXXXXX)
    chmod 755 "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # A free port: ask the kernel for one, then hand it to the server (a race only with
    # another process binding the same port in between; the start then fails loudly).
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
           echo $((20000 + RANDOM % 20000)))
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=100" start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    echo "export HL_TEST_PG='postgresql://postgres@127.0.0.1:$port/postgres'"
    echo "export HL_TEST_PG_DIR='$dir'"
    ;;
stop)
    dir=${2:?usage: pg.sh stop DIR}
    [[ -d $dir/data ]] || exit 0
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg.sh start | pg.sh stop DIR" >&2
    exit 2
    ;;
esac
