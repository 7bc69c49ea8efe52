/* hl_store_pg: the PostgreSQL store backend (hl_store_int.h), one libpq connection.
 *
 * Why: several gateways (one per machine, or per container) share one ledger and one set of
 * budget totals. Each gateway indexes its own journal into the same tables; the key
 * (request_id, attempt) makes every line land exactly once whichever instance replays it, and
 * journal_state rows are named "hostname:path" so instances on different machines with the
 * same journal path keep separate offsets.
 *
 * Same schema and migration numbers as the SQLite backend (hl_store_sqlite.c), in
 * PostgreSQL's dialect. Migrations run at open under a transaction-scoped advisory lock, so
 * gateways starting together against an empty database migrate it once.
 *
 * Inserts are batched: up to `batch` records are streamed with COPY into a temporary table,
 * then one prepared statement moves them into inferences ("on conflict do nothing") and
 * answers, in the same round trip, which records were not inserted and the timestamp of the
 * row already holding their key: that tells a replayed line (duplicate) from another line
 * reusing the key (conflict). COPY's text format carries no per-value parameters to parse:
 * several times faster than a multi-row VALUES on the same batch.
 *
 * Budgets: a statement-level trigger adds the cloud cost of the rows each INSERT actually
 * inserted (its transition table) to cloud_spend (tenant, day) in the same transaction, with
 * one upsert per (tenant, day) in key order. The increment is atomic in the database: two
 * gateways committing at once both land, and a replay adds nothing. Concurrent indexers
 * touching the same (tenant, day) serialize on that row; a deadlock between two multi-batch
 * transactions is detected by the server, fails one pass, and that pass is retried.
 *
 * synchronous_commit is off for this session: as with SQLite, the journal is the durable
 * record and a commit lost with its offset is indexed again.
 *
 * A broken connection (server restarted) is reset at the start of the next transaction or
 * read, so the indexer recovers by itself. */
#include "hl_store_int.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_buf.h"

/* ---- migrations ---- */

static const char *const migrations[] = {
    /* 1: as in hl_store_sqlite.c. */
    "CREATE TABLE inferences (\n"
    "    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    ts                  BIGINT NOT NULL,   -- the line's timestamp: Unix time, ms, UTC\n"
    "    source              TEXT NOT NULL CHECK (source IN ('cloud', 'local')),\n"
    "    input_tokens        BIGINT NOT NULL,\n"
    "    output_tokens       BIGINT NOT NULL,\n"
    "    latency_ms          DOUBLE PRECISION NOT NULL,\n"
    "    cost_usd            DOUBLE PRECISION,  -- NULL: a cloud model without a price\n"
    "    request_id          TEXT NOT NULL,\n"
    "    attempt             BIGINT NOT NULL CHECK (attempt >= 1),\n"
    "    backend             TEXT,\n"
    "    model               TEXT,\n"
    "    route_reason        TEXT,\n"
    "    status              TEXT,              -- ok | error | cancelled | escalated\n"
    "    stream              BOOLEAN NOT NULL DEFAULT false,\n"
    "    ttft_ms             DOUBLE PRECISION,\n"
    "    cached_input_tokens BIGINT NOT NULL DEFAULT 0,\n"
    "    cache_write_tokens  BIGINT NOT NULL DEFAULT 0,\n"
    "    usage_estimated     BOOLEAN NOT NULL DEFAULT false,\n"
    "    tenant              TEXT,\n"
    "    task_type           TEXT,\n"
    "    task_inferred       BOOLEAN NOT NULL DEFAULT false,\n"
    "    sensitive           BOOLEAN NOT NULL DEFAULT false,\n"
    "    confidence          DOUBLE PRECISION,\n"
    "    http_status         BIGINT NOT NULL DEFAULT 0,\n"
    "    error               TEXT,\n"
    "    UNIQUE (request_id, attempt)\n"
    ");\n"
    "CREATE INDEX inferences_ts ON inferences (ts);\n"
    "CREATE INDEX inferences_source_ts ON inferences (source, ts);\n"
    "CREATE INDEX inferences_backend_ts ON inferences (backend, ts);\n"
    "CREATE INDEX inferences_tenant_ts ON inferences (tenant, ts);\n"
    "CREATE TABLE journal_state (\n"
    "    journal     TEXT PRIMARY KEY,  -- hostname:absolute path of the journal\n"
    "    dev         BIGINT NOT NULL,\n"
    "    inode       BIGINT NOT NULL,\n"
    "    byte_offset BIGINT NOT NULL,   -- indexed up to here (just after a newline)\n"
    "    size        BIGINT NOT NULL,   -- the file's size at the last pass\n"
    "    head_len    BIGINT NOT NULL,   -- bytes of the file's start that head_hash covers\n"
    "    head_hash   BIGINT NOT NULL,   -- FNV-1a 64 of them, as a signed integer\n"
    "    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE VIEW ledger AS SELECT\n"
    "    to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')\n"
    "      AS timestamp, source, input_tokens, output_tokens, latency_ms, cost_usd, request_id,\n"
    "    attempt, backend, model, route_reason, status, stream, ttft_ms, cached_input_tokens,\n"
    "    cache_write_tokens, usage_estimated, tenant, task_type, task_inferred, sensitive,\n"
    "    confidence, http_status, error\n"
    "  FROM inferences;\n",
    /* 2: the cloud spend per tenant ('' for none) and UTC day, kept by a trigger from the rows
     * each statement actually inserted. */
    "CREATE TABLE cloud_spend (\n"
    "    tenant   TEXT NOT NULL,\n"
    "    day      BIGINT NOT NULL,  -- UTC days since 1970-01-01 (ts / 86400000)\n"
    "    cost_usd DOUBLE PRECISION NOT NULL,\n"
    "    PRIMARY KEY (tenant, day)\n"
    ");\n"
    "INSERT INTO cloud_spend (tenant, day, cost_usd)\n"
    "  SELECT coalesce(tenant, ''), ts / 86400000, sum(cost_usd) FROM inferences\n"
    "  WHERE source = 'cloud' AND cost_usd > 0 GROUP BY 1, 2;\n"
    "CREATE FUNCTION hybridllm_cloud_spend_add() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  INSERT INTO cloud_spend (tenant, day, cost_usd)\n"
    "    SELECT coalesce(tenant, ''), ts / 86400000, sum(cost_usd) FROM inserted\n"
    "    WHERE source = 'cloud' AND cost_usd > 0 GROUP BY 1, 2 ORDER BY 1, 2\n"
    "    ON CONFLICT (tenant, day) DO UPDATE SET cost_usd = cloud_spend.cost_usd + EXCLUDED.cost_usd;\n"
    "  RETURN NULL;\n"
    "END $$;\n"
    "CREATE TRIGGER inferences_cloud_spend AFTER INSERT ON inferences\n"
    "  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT\n"
    "  EXECUTE FUNCTION hybridllm_cloud_spend_add();\n",    /* 3: client keys (hl_store.h: hl_store_key), stored as SHA-256 hashes; the key each
     * ledger record was made with. */
    "CREATE TABLE client_keys (\n"
    "    id               BIGSERIAL PRIMARY KEY,\n"
    "    name             TEXT NOT NULL UNIQUE,\n"
    "    prefix           TEXT NOT NULL,     -- 'hl-' and 8 characters, shown in lists\n"
    "    key_hash         TEXT NOT NULL UNIQUE, -- SHA-256 of the key, hex\n"
    "    tenant           TEXT,              -- NULL: the name\n"
    "    backends         TEXT,              -- comma-separated; NULL: any\n"
    "    models           TEXT,              -- comma-separated; NULL: any\n"
    "    cloud_allowed    BOOLEAN NOT NULL DEFAULT true,\n"
    "    budget_day_usd   DOUBLE PRECISION,  -- NULL: none\n"
    "    budget_month_usd DOUBLE PRECISION,\n"
    "    rpm              BIGINT NOT NULL DEFAULT 0, -- 0: no limit\n"
    "    tpm              BIGINT NOT NULL DEFAULT 0,\n"
    "    expires_at       BIGINT,            -- Unix ms; NULL: never\n"
    "    created_at       BIGINT NOT NULL,   -- Unix ms\n"
    "    last_used_at     BIGINT,\n"
    "    revoked          BOOLEAN NOT NULL DEFAULT false\n"
    ");\n"
    "ALTER TABLE inferences ADD COLUMN key_id BIGINT;\n"
    "ALTER TABLE inferences ADD COLUMN key_name TEXT;\n"
    "CREATE INDEX inferences_key_ts ON inferences (key_id, ts) WHERE key_id IS NOT NULL;\n",
    /* 4: as in hl_store_sqlite.c. */
    "CREATE TABLE instances (\n"
    "    id        TEXT PRIMARY KEY,\n"
    "    last_seen BIGINT NOT NULL\n"
    ");\n",
    /* 5: as in hl_store_sqlite.c. */
    "ALTER TABLE inferences ADD COLUMN shadow BOOLEAN NOT NULL DEFAULT false;\n"
    "ALTER TABLE inferences ADD COLUMN score DOUBLE PRECISION;\n"
    "ALTER TABLE inferences ADD COLUMN score_method TEXT;\n"
    "ALTER TABLE inferences ADD COLUMN agree BOOLEAN;\n"
    "ALTER TABLE inferences ADD COLUMN reference TEXT;\n"
    "ALTER TABLE inferences ADD COLUMN ref_output_tokens BIGINT;\n"
    "ALTER TABLE inferences ADD COLUMN confidence_margin DOUBLE PRECISION;\n"
    "ALTER TABLE inferences ADD COLUMN confidence_min DOUBLE PRECISION;\n"
    "ALTER TABLE inferences ADD COLUMN eval_run TEXT;\n",
    /* 6: as in hl_store_sqlite.c. */
    "CREATE TABLE budget_leases (\n"
    "    subject  TEXT NOT NULL,\n"
    "    instance TEXT NOT NULL,\n"
    "    amount   DOUBLE PRECISION NOT NULL,\n"
    "    updated  BIGINT NOT NULL,\n"
    "    PRIMARY KEY (subject, instance)\n"
    ");\n",
    /* 7: as in hl_store_sqlite.c; histograms are bigint[] of (bucket << 40 | count) entries,
     * merged by hybridllm_hist_add in the upsert (atomic: two gateways adding to one cell
     * both land). */
    "CREATE TABLE rollups (\n"
    "    hour               BIGINT NOT NULL,\n"
    "    source             TEXT NOT NULL,\n"
    "    backend            TEXT NOT NULL,\n"
    "    model              TEXT NOT NULL,\n"
    "    route_reason       TEXT NOT NULL,\n"
    "    tenant             TEXT NOT NULL,\n"
    "    key_name           TEXT NOT NULL,\n"
    "    task_type          TEXT NOT NULL,\n"
    "    status             TEXT NOT NULL,\n"
    "    flags              INTEGER NOT NULL,\n"
    "    firsts             INTEGER NOT NULL,\n"
    "    attempts           BIGINT NOT NULL,\n"
    "    input_tokens       BIGINT NOT NULL,\n"
    "    output_tokens      BIGINT NOT NULL,\n"
    "    cached_input_tokens BIGINT NOT NULL,\n"
    "    cache_write_tokens BIGINT NOT NULL,\n"
    "    plain_input_tokens BIGINT NOT NULL,\n"
    "    cost_usd           DOUBLE PRECISION NOT NULL,\n"
    "    unpriced           BIGINT NOT NULL,\n"
    "    scored             BIGINT NOT NULL,\n"
    "    agreed             BIGINT NOT NULL,\n"
    "    score_sum          DOUBLE PRECISION NOT NULL,\n"
    "    latency_sum_ms     DOUBLE PRECISION NOT NULL,\n"
    "    latency_hist       BIGINT[],\n"
    "    ttft_hist          BIGINT[],\n"
    "    PRIMARY KEY (hour, source, backend, model, route_reason, tenant, key_name, task_type, status, flags, firsts)\n"
    ");\n"
    "CREATE TABLE rollups_day (LIKE rollups INCLUDING ALL);\n"
    "CREATE FUNCTION hybridllm_hist_add(a BIGINT[], b BIGINT[]) RETURNS BIGINT[] LANGUAGE sql IMMUTABLE AS $$\n"
    "  SELECT array_agg((k << 40) | c ORDER BY k) FROM (\n"
    "    SELECT e >> 40 AS k, sum(e & 1099511627775)::bigint AS c\n"
    "    FROM unnest(coalesce(a, '{}') || coalesce(b, '{}')) AS e GROUP BY 1) t\n"
    "$$;\n",
    /* 8: as in hl_store_sqlite.c. */
    "ALTER TABLE inferences ADD COLUMN replica TEXT;\n",
    /* 9: as in hl_store_sqlite.c, the indexes only: the trigger here runs once per statement
     * (over its transition table), not once per row. */
    "DROP INDEX inferences_source_ts;\n"
    "DROP INDEX inferences_backend_ts;\n"
    "DROP INDEX inferences_tenant_ts;\n",
};
#define ROLLUP_MIGRATION 7
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* Any constant: the advisory lock that serializes migrations between gateways. */
#define MIGRATION_LOCK "7236491013"

enum {
    BATCH = 2000, /* records per COPY + INSERT */
};

#define FETCH_ROWS 10000  /* rows per FETCH of a scan (the number in fetch_sql) */
static const char fetch_sql[] = "FETCH 10000 FROM hl_scan";

#define INSERT_COLS                                                                              \
    "ts, source, input_tokens, output_tokens, latency_ms, cost_usd, request_id, attempt, backend," \
    " model, route_reason, status, stream, ttft_ms, cached_input_tokens, cache_write_tokens,"     \
    " usage_estimated, tenant, task_type, task_inferred, sensitive, confidence, http_status, error," \
    " key_id, key_name, shadow, score, score_method, agree, reference, ref_output_tokens,"      \
    " confidence_margin, confidence_min, eval_run, replica"

/* The session's batch table (gone with the session) and the statement that empties it into
 * inferences. The final SELECT of a CTE sees the table as it was before the INSERT, so e is
 * the row that already held the key. */
static const char batch_table[] =
    "CREATE TEMP TABLE IF NOT EXISTS hl_batch (ord integer, ts bigint, source text,"
    " input_tokens bigint, output_tokens bigint, latency_ms float8, cost_usd float8, request_id text,"
    " attempt bigint, backend text, model text, route_reason text, status text, stream bool,"
    " ttft_ms float8, cached_input_tokens bigint, cache_write_tokens bigint, usage_estimated bool,"
    " tenant text, task_type text, task_inferred bool, sensitive bool, confidence float8,"
    " http_status bigint, error text, key_id bigint, key_name text, shadow bool, score float8,"
    " score_method text, agree bool, reference text, ref_output_tokens bigint,"
    " confidence_margin float8, confidence_min float8, eval_run text, replica text)";
static const char batch_copy[] = "COPY hl_batch (ord, " INSERT_COLS ") FROM STDIN";
static const char batch_insert[] =
    "WITH ins AS (INSERT INTO inferences (" INSERT_COLS ") SELECT " INSERT_COLS
    " FROM hl_batch ORDER BY ord ON CONFLICT (request_id, attempt) DO NOTHING"
    " RETURNING request_id, attempt)"
    " SELECT b.ord, e.ts FROM hl_batch b"
    " LEFT JOIN ins ON ins.request_id = b.request_id AND ins.attempt = b.attempt"
    " LEFT JOIN inferences e ON e.request_id = b.request_id AND e.attempt = b.attempt"
    " WHERE ins.request_id IS NULL";

/* ---- the connection ---- */

typedef struct pg {
    PGconn *c;
    int version;
    char where[512];           /* the location with any password masked, for messages */
    char host[256];            /* this machine's name: the prefix of journal_state keys */
    hl_buf copy;               /* the batch in COPY text format */
    size_t tx_rows;            /* records sent in the open transaction */
    int slot[4 * BATCH];       /* open-addressing set: duplicate keys within a batch */
    int sent[BATCH];           /* index into the batch of each record sent */
} pg;

static hl_err fail(hl_store *s, const char *doing, const PGresult *r) {
    pg *q = s->impl;
    const char *msg = r ? PQresultErrorMessage(r) : "";
    if (!msg || !*msg) msg = q->c ? PQerrorMessage(q->c) : "out of memory";
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
    hl_store_set_error(s, "%s: %s: %.*s", q->where, doing, (int)n, msg);
    return HL_ERR_IO;
}

/* Runs sql (no parameters); HL_OK when the server answered `want`. */
static hl_err exec(hl_store *s, const char *sql, ExecStatusType want, const char *doing) {
    pg *q = s->impl;
    PGresult *r = PQexec(q->c, sql);
    hl_err e = PQresultStatus(r) == want ? HL_OK : fail(s, doing, r);
    PQclear(r);
    return e;
}

/* Per session: commits need not wait for the server's disk (see the top of the file), the
 * server's notices ("relation already exists, skipping") are not ours to print, and the
 * batch table and statement exist. */
static hl_err session_setup(hl_store *s) {
    pg *q = s->impl;
    hl_err e = exec(s, "SET synchronous_commit = off; SET client_min_messages = warning", PGRES_COMMAND_OK,
                    "setting up the session");
    if (e || q->version == 0) return e; /* before the migration: no inferences table yet */
    if ((e = exec(s, batch_table, PGRES_COMMAND_OK, "creating the batch table"))) return e;
    PGresult *r = PQprepare(q->c, "hl_insert", batch_insert, 0, NULL);
    e = PQresultStatus(r) == PGRES_COMMAND_OK ? HL_OK : fail(s, "preparing the insert", r);
    PQclear(r);
    return e;
}

/* A connection the server dropped (restart, failover) is opened again; the caller's
 * transaction was lost with it, which is what a failed pass expects. */
static hl_err ensure_connected(hl_store *s) {
    pg *q = s->impl;
    if (PQstatus(q->c) == CONNECTION_OK) return HL_OK;
    PQreset(q->c);
    if (PQstatus(q->c) != CONNECTION_OK) return fail(s, "reconnecting", NULL);
    return session_setup(s);
}

static hl_err migrate(hl_store *s) {
    pg *q = s->impl;
    hl_err e;
    if ((e = exec(s, "BEGIN", PGRES_COMMAND_OK, "starting the migration")) ||
        (e = exec(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", PGRES_TUPLES_OK, "taking the migration lock")) ||
        (e = exec(s, "CREATE TABLE IF NOT EXISTS schema_version (\n"
                     "    version    INTEGER PRIMARY KEY,\n"
                     "    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()\n"
                     ")", PGRES_COMMAND_OK, "creating schema_version")))
        goto fail;
    PGresult *r = PQexec(q->c, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail(s, "reading schema_version", r);
        PQclear(r);
        goto fail;
    }
    int have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (have > N_MIGRATIONS) {
        hl_store_set_error(s, "%s: schema version %d is newer than this hybridllm knows (%d): use a newer hybridllm",
                           q->where, have, N_MIGRATIONS);
        e = HL_ERR_UNSUPPORTED;
        goto fail;
    }
    for (int v = have + 1; v <= N_MIGRATIONS; v++) {
        char rec[96];
        snprintf(rec, sizeof rec, "INSERT INTO schema_version (version) VALUES (%d)", v);
        if ((e = exec(s, migrations[v - 1], PGRES_COMMAND_OK, "applying a migration")) ||
            (v == ROLLUP_MIGRATION && (e = hl_rollup_backfill(s))) ||
            (e = exec(s, rec, PGRES_COMMAND_OK, "recording a migration")))
            goto fail;
    }
    if ((e = exec(s, "COMMIT", PGRES_COMMAND_OK, "committing the migration"))) goto fail;
    q->version = N_MIGRATIONS;
    return HL_OK;
fail:
    PQclear(PQexec(q->c, "ROLLBACK"));
    return e;
}

static void pg_close(hl_store *s) {
    pg *q = s->impl;
    if (!q) return;
    PQfinish(q->c);
    hl_buf_release(&q->copy);
    free(q);
    s->impl = NULL;
}

static hl_err pg_open(hl_store *s, const char *location, char *errbuf, size_t errbuf_len) {
    pg *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(errbuf, errbuf_len, "postgresql: out of memory");
        return HL_ERR_NOMEM;
    }
    s->impl = q;
    hl_buf_init(&q->copy, 0);
    hl_store_redact(location, q->where, sizeof q->where);
    if (gethostname(q->host, sizeof q->host) != 0) snprintf(q->host, sizeof q->host, "localhost");
    q->host[sizeof q->host - 1] = '\0';
    /* A 10 s connect timeout unless the URI sets one (its parameters come after, so they win):
     * libpq's own default waits for as long as the kernel does on a host that is gone. */
    static const char *const kw[] = {"connect_timeout", "dbname", NULL};
    const char *const val[] = {"10", location, NULL};
    q->c = PQconnectdbParams(kw, val, 1);
    hl_err e;
    if (PQstatus(q->c) != CONNECTION_OK) {
        e = fail(s, "connecting", NULL);
    } else if (!(e = session_setup(s)) && !(e = migrate(s))) {
        e = session_setup(s);
    }
    if (e) {
        snprintf(errbuf, errbuf_len, "%s", hl_store_errmsg(s));
        pg_close(s);
    }
    return e;
}

static int pg_schema_version(hl_store *s) {
    return ((pg *)s->impl)->version;
}

/* ---- indexing ---- */

static hl_err pg_begin(hl_store *s) {
    ((pg *)s->impl)->tx_rows = 0;
    hl_err e = ensure_connected(s);
    return e ? e : exec(s, "BEGIN", PGRES_COMMAND_OK, "BEGIN");
}

/* After a large import the table's statistics are refreshed at once rather than at
 * autovacuum's next round: a report planned on the empty table's statistics probes every
 * earlier attempt with a scan (minutes instead of a second on 200,000 records). */
#define ANALYZE_AFTER_ROWS 10000

static hl_err pg_commit(hl_store *s) {
    pg *q = s->impl;
    hl_err e = exec(s, "COMMIT", PGRES_COMMAND_OK, "COMMIT");
    if (!e && q->tx_rows >= ANALYZE_AFTER_ROWS) PQclear(PQexec(q->c, "ANALYZE inferences"));
    return e;
}

static void pg_rollback(hl_store *s) {
    pg *q = s->impl;
    if (PQtransactionStatus(q->c) != PQTRANS_IDLE) PQclear(PQexec(q->c, "ROLLBACK"));
}

static uint64_t key_hash(const hl_store_record *r) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = r->request_id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (h ^ (uint64_t)r->attempt) * 1099511628211ULL;
}

/* The index in r of an earlier record with r[i]'s key, or -1 (and remembers i). */
static int seen_before(pg *q, const hl_store_record *r, size_t n, size_t i) {
    size_t mask = 1;
    while (mask < 2 * n) mask <<= 1;
    mask--;
    for (size_t k = key_hash(&r[i]) & mask;; k = (k + 1) & mask) {
        int j = q->slot[k];
        if (j < 0) {
            q->slot[k] = (int)i;
            return -1;
        }
        if (r[j].attempt == r[i].attempt && !strcmp(r[j].request_id, r[i].request_id)) return j;
    }
}

static const char *num_ll(char *buf, long long v) {
    snprintf(buf, 32, "%lld", v);
    return buf;
}

/* COPY text format: columns separated by tabs, \N for null, and backslash, tab, newline
 * and carriage return escaped in text. */
static void copy_str(hl_buf *b, const char *v) {
    if (!v) {
        hl_buf_append(b, "\\N\t", 3);
        return;
    }
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '\t' ? "\\t" : *p == '\n' ? "\\n" : *p == '\r' ? "\\r" : NULL;
        if (!esc) continue;
        hl_buf_append(b, run, (size_t)(p - run));
        hl_buf_append(b, esc, 2);
        run = p + 1;
    }
    hl_buf_puts(b, run);
    hl_buf_append(b, "\t", 1);
}

static void copy_ll(hl_buf *b, long long v) { hl_buf_printf(b, "%lld\t", v); }

static void copy_d(hl_buf *b, double v, bool present) {
    if (present) hl_buf_printf(b, "%.17g\t", v);
    else hl_buf_append(b, "\\N\t", 3);
}

static void copy_bool(hl_buf *b, bool v) { hl_buf_append(b, v ? "t\t" : "f\t", 2); }

static void copy_record(hl_buf *b, size_t ord, const hl_store_record *x) {
    copy_ll(b, (long long)ord);
    copy_ll(b, x->ts_ms);
    copy_str(b, x->cloud ? "cloud" : "local");
    copy_ll(b, x->input_tokens);
    copy_ll(b, x->output_tokens);
    copy_d(b, x->latency_ms, true);
    copy_d(b, x->cost_usd, x->cost_known);
    copy_str(b, x->request_id);
    copy_ll(b, x->attempt);
    copy_str(b, x->backend);
    copy_str(b, x->model);
    copy_str(b, x->route_reason);
    copy_str(b, x->status);
    copy_bool(b, x->stream);
    copy_d(b, x->ttft_ms, x->ttft_ms >= 0);
    copy_ll(b, x->cached_input_tokens);
    copy_ll(b, x->cache_write_tokens);
    copy_bool(b, x->usage_estimated);
    copy_str(b, x->tenant);
    copy_str(b, x->task_type);
    copy_bool(b, x->task_inferred);
    copy_bool(b, x->sensitive);
    copy_d(b, x->confidence, x->confidence >= 0);
    copy_ll(b, x->http_status);
    copy_str(b, x->error);
    if (x->key_id > 0) copy_ll(b, x->key_id);
    else copy_str(b, NULL);
    copy_str(b, x->key_name);
    copy_bool(b, x->shadow);
    copy_d(b, x->score, x->scored);
    copy_str(b, x->scored ? x->score_method : NULL);
    if (x->scored) copy_bool(b, x->agree);
    else copy_str(b, NULL);
    copy_str(b, x->scored ? x->reference : NULL);
    if (x->scored) copy_ll(b, x->ref_output_tokens);
    else copy_str(b, NULL);
    copy_d(b, x->confidence_margin, x->signals);
    copy_d(b, x->confidence_min, x->signals);
    copy_str(b, x->eval_run);
    copy_str(b, x->replica);
    if (b->len) b->data[b->len - 1] = '\n'; /* the last column ends the row */
}

/* Streams q->copy into hl_batch (emptied first). */
static hl_err copy_batch(hl_store *s) {
    pg *q = s->impl;
    hl_err e = exec(s, "TRUNCATE hl_batch", PGRES_COMMAND_OK, "emptying the batch table");
    if (e) return e;
    PGresult *r = PQexec(q->c, batch_copy);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        e = fail(s, "starting COPY", r);
        PQclear(r);
        return e;
    }
    PQclear(r);
    if (PQputCopyData(q->c, q->copy.data, (int)q->copy.len) != 1 || PQputCopyEnd(q->c, NULL) != 1)
        e = fail(s, "sending COPY data", NULL);
    while ((r = PQgetResult(q->c))) {
        if (!e && PQresultStatus(r) != PGRES_COMMAND_OK) e = fail(s, "COPY", r);
        PQclear(r);
    }
    return e;
}

static hl_err pg_insert(hl_store *s, const hl_store_record *r, size_t n, hl_store_insert_result *res) {
    pg *q = s->impl;
    if (n > BATCH) return HL_ERR_INVAL;
    /* Records repeating a key seen earlier in this batch are settled here, not sent. */
    size_t mask = 1;
    while (mask < 2 * n) mask <<= 1;
    for (size_t k = 0; k < mask; k++) q->slot[k] = -1;
    hl_buf_reset(&q->copy);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int j = seen_before(q, r, n, i);
        if (j >= 0) {
            res[i] = r[j].ts_ms == r[i].ts_ms ? HL_STORE_DUPLICATE : HL_STORE_CONFLICT;
            continue;
        }
        res[i] = HL_STORE_INSERTED;
        copy_record(&q->copy, m, &r[i]);
        q->sent[m++] = (int)i;
    }
    if (!m) return HL_OK;
    /* One newline per row (newlines in values are escaped): fewer means an append failed. */
    size_t rows = 0;
    for (const char *p = q->copy.data; p && (p = memchr(p, '\n', q->copy.len - (size_t)(p - q->copy.data))); p++) rows++;
    if (rows != m) {
        hl_store_set_error(s, "%s: out of memory", q->where);
        return HL_ERR_NOMEM;
    }
    hl_err e = copy_batch(s);
    if (e) return e;
    q->tx_rows += m;
    PGresult *pr = PQexecPrepared(q->c, "hl_insert", 0, NULL, NULL, NULL, 0);
    if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
        e = fail(s, "inserting records", pr);
        PQclear(pr);
        return e;
    }
    for (int row = 0; row < PQntuples(pr); row++) {
        long ord = strtol(PQgetvalue(pr, row, 0), NULL, 10);
        if (ord < 0 || (size_t)ord >= m) continue;
        size_t i = (size_t)q->sent[ord];
        if (PQgetisnull(pr, row, 1)) {
            /* Refused without a row holding the key: cannot happen with ON CONFLICT DO NOTHING
             * unless the row vanished meanwhile. Say so rather than count it as stored. */
            hl_store_set_error(s, "%s: record %s/%lld was neither inserted nor found", q->where,
                               r[i].request_id, r[i].attempt);
            PQclear(pr);
            return HL_ERR_INVAL;
        }
        long long ts = strtoll(PQgetvalue(pr, row, 1), NULL, 10);
        res[i] = ts == r[i].ts_ms ? HL_STORE_DUPLICATE : HL_STORE_CONFLICT;
    }
    PQclear(pr);
    return HL_OK;
}

/* The journal_state key: this host's name and the journal's path. */
static void state_key(pg *q, const char *journal, hl_buf *out) {
    hl_buf_printf(out, "%s:%s", q->host, journal);
}

static hl_err pg_load_state(hl_store *s, const char *journal, hl_store_journal_state *js, bool *found) {
    pg *q = s->impl;
    memset(js, 0, sizeof *js);
    *found = false;
    hl_err e = ensure_connected(s);
    if (e) return e;
    hl_buf key;
    hl_buf_init(&key, 0);
    state_key(q, journal, &key);
    const char *p[1] = {key.data};
    PGresult *r = PQexecParams(q->c, "SELECT dev, inode, byte_offset, size, head_len, head_hash"
                                     " FROM journal_state WHERE journal = $1", 1, NULL, p, NULL, NULL, 0);
    hl_buf_release(&key);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail(s, "reading journal_state", r);
    } else if (PQntuples(r) == 1) {
        *found = true;
        js->dev = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        js->ino = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        js->offset = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        js->size = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        js->head_len = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
        js->head_hash = (uint64_t)strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    }
    PQclear(r);
    return e;
}

static hl_err pg_save_state(hl_store *s, const char *journal, const hl_store_journal_state *js) {
    pg *q = s->impl;
    hl_buf key;
    hl_buf_init(&key, 0);
    state_key(q, journal, &key);
    char n[6][32];
    const char *p[7] = {key.data, num_ll(n[0], js->dev), num_ll(n[1], js->ino), num_ll(n[2], js->offset),
                        num_ll(n[3], js->size), num_ll(n[4], js->head_len), num_ll(n[5], (long long)js->head_hash)};
    PGresult *r = PQexecParams(q->c, "INSERT INTO journal_state (journal, dev, inode, byte_offset, size,"
                                     " head_len, head_hash, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
                                     " ON CONFLICT (journal) DO UPDATE SET dev = EXCLUDED.dev,"
                                     " inode = EXCLUDED.inode, byte_offset = EXCLUDED.byte_offset,"
                                     " size = EXCLUDED.size, head_len = EXCLUDED.head_len,"
                                     " head_hash = EXCLUDED.head_hash, updated_at = now()",
                               7, NULL, p, NULL, NULL, 0);
    hl_buf_release(&key);
    hl_err e = PQresultStatus(r) == PGRES_COMMAND_OK ? HL_OK : fail(s, "saving journal_state", r);
    PQclear(r);
    return e;
}

/* ---- reading ---- */

static hl_err pg_count(hl_store *s, unsigned long long *out) {
    pg *q = s->impl;
    *out = 0;
    hl_err e = ensure_connected(s);
    if (e) return e;
    PGresult *r = PQexec(q->c, "SELECT count(*) FROM inferences");
    if (PQresultStatus(r) == PGRES_TUPLES_OK) *out = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    else e = fail(s, "counting records", r);
    PQclear(r);
    return e;
}

/* The condition that an earlier attempt j agrees with row i on one varying dimension (bit k
 * of a `same` set): constant text, as in hl_store_sqlite.c. */
static const char *const same_sql[4] = {" AND j.source IS NOT DISTINCT FROM i.source",
                                        " AND j.backend IS NOT DISTINCT FROM i.backend",
                                        " AND j.model IS NOT DISTINCT FROM i.model",
                                        " AND j.route_reason IS NOT DISTINCT FROM i.route_reason"};

/* The filter (hl_store_filter): $3..$6, NULL for a field not filtered on; it applies to the
 * earlier attempts j too, as a group does. */
#define PG_FILTER(t)                                                                               \
    " AND ($3::text IS NULL OR " t "tenant = $3) AND ($4::text IS NULL OR " t "backend = $4)"    \
    " AND ($5::text IS NULL OR " t "task_type = $5) AND ($6::text IS NULL OR " t "source = $6)"
static const char scan_fmt[] =
    "DECLARE hl_scan NO SCROLL CURSOR FOR"
    " SELECT NULL, i.ts, i.source = 'cloud', i.input_tokens, i.output_tokens, i.cached_input_tokens,"
    " i.cache_write_tokens, i.latency_ms, i.ttft_ms, i.cost_usd, i.status, i.stream,"
    " i.attempt <= 1 OR NOT EXISTS (SELECT 1 FROM inferences j WHERE j.request_id = i.request_id"
    "  AND j.attempt < i.attempt%s),"
    " i.attempt <= 1 OR NOT EXISTS (SELECT 1 FROM inferences j WHERE j.request_id = i.request_id"
    "  AND j.attempt < i.attempt%s),"
    " i.shadow, i.score, i.agree, i.eval_run IS NOT NULL,"
    " i.source, i.backend, i.model, i.route_reason, i.tenant, i.key_name, i.task_type, i.sensitive"
    " FROM inferences i WHERE i.ts >= $1 AND i.ts < $2"
    " AND ($3::text IS NULL OR i.tenant = $3::text) AND ($4::text IS NULL OR i.key_name = $4::text)"
    " AND ($5::text IS NULL OR i.backend = $5::text) AND ($6::text IS NULL OR i.model = $6::text)"
    " AND ($7::text IS NULL OR i.task_type = $7::text) AND ($8::text IS NULL OR i.source = $8::text)";

static bool is_t(const PGresult *r, int row, int col) { return PQgetvalue(r, row, col)[0] == 't'; }

static const char *val_or_null(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static void filter_params(const hl_store_filter *f, const char **p) {
    p[0] = f->tenant;
    p[1] = f->key_name;
    p[2] = f->backend;
    p[3] = f->model;
    p[4] = f->task_type;
    p[5] = f->source;
}

/* Rows come through a cursor in a read-only snapshot, FETCH_ROWS at a time: memory stays
 * flat on any ledger size, and the report sees one consistent state while indexers write. */
static hl_err pg_scan(hl_store *s, const hl_store_query *qu, hl_store_row_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    char cond[2][256] = {"", ""}, sql[sizeof scan_fmt + 512];
    for (int k = 0; k < 4; k++) {
        if (qu->same & (1u << k)) strcat(cond[0], same_sql[k]);
        if (qu->same_total & (1u << k)) strcat(cond[1], same_sql[k]);
    }
    snprintf(sql, sizeof sql, scan_fmt, cond[0], cond[1]);
    char b0[32], b1[32];
    const char *p[8] = {num_ll(b0, qu->from_ms), num_ll(b1, qu->to_ms)};
    filter_params(&qu->filter, p + 2);
    if ((e = exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "starting the scan")))
        return e;
    PGresult *r = PQexecParams(q->c, sql, 8, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) e = fail(s, "declaring the scan", r);
    PQclear(r);
    while (!e) {
        r = PQexec(q->c, fetch_sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            e = fail(s, "scanning", r);
            PQclear(r);
            break;
        }
        int rows = PQntuples(r);
        for (int k = 0; k < rows && !e; k++) {
            hl_store_row w;
            w.group = NULL;
            w.ts_ms = strtoll(PQgetvalue(r, k, 1), NULL, 10);
            w.cloud = is_t(r, k, 2);
            w.input_tokens = strtoll(PQgetvalue(r, k, 3), NULL, 10);
            w.output_tokens = strtoll(PQgetvalue(r, k, 4), NULL, 10);
            w.cached_input_tokens = strtoll(PQgetvalue(r, k, 5), NULL, 10);
            w.cache_write_tokens = strtoll(PQgetvalue(r, k, 6), NULL, 10);
            w.latency_ms = strtod(PQgetvalue(r, k, 7), NULL);
            w.ttft_ms = PQgetisnull(r, k, 8) ? -1 : strtod(PQgetvalue(r, k, 8), NULL);
            w.cost_known = !PQgetisnull(r, k, 9);
            w.cost_usd = w.cost_known ? strtod(PQgetvalue(r, k, 9), NULL) : 0;
            w.status = hl_store_status_parse(val_or_null(r, k, 10));
            w.stream = is_t(r, k, 11);
            w.first_in_group = is_t(r, k, 12);
            w.first_in_range = is_t(r, k, 13);
            w.shadow = is_t(r, k, 14);
            w.scored = !PQgetisnull(r, k, 15);
            w.score = w.scored ? strtod(PQgetvalue(r, k, 15), NULL) : 0;
            w.agree = w.scored && !PQgetisnull(r, k, 16) && is_t(r, k, 16);
            w.eval = is_t(r, k, 17);
            w.source = val_or_null(r, k, 18);
            w.backend = val_or_null(r, k, 19);
            w.model = val_or_null(r, k, 20);
            w.route_reason = val_or_null(r, k, 21);
            w.tenant = val_or_null(r, k, 22);
            w.key_name = val_or_null(r, k, 23);
            w.task_type = val_or_null(r, k, 24);
            w.sensitive = is_t(r, k, 25);
            e = fn(ctx, &w);
        }
        PQclear(r);
        if (rows < FETCH_ROWS) break;
    }
    pg_rollback(s); /* read only: ends the snapshot and closes the cursor */
    return e;
}

/* ---- rollups (hl_rollup.h) ---- */

static hl_err pg_prior(hl_store *s, const char *request_id, long long attempt, hl_store_prior_fn fn, void *ctx) {
    pg *q = s->impl;
    char b[32];
    const char *p[2] = {request_id, num_ll(b, attempt)};
    PGresult *r = PQexecParams(q->c, "SELECT source, backend, model, route_reason FROM inferences"
                                     " WHERE request_id = $1 AND attempt < $2::bigint", 2, NULL, p, NULL, NULL, 0);
    hl_err e = HL_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail(s, "looking up earlier attempts", r);
    } else {
        for (int k = 0; k < PQntuples(r); k++) {
            hl_rollup_dims d = {val_or_null(r, k, 0), val_or_null(r, k, 1), val_or_null(r, k, 2), val_or_null(r, k, 3)};
            fn(ctx, &d);
        }
    }
    PQclear(r);
    return e;
}

/* Within the open transaction (the migration's), through a cursor. */
static hl_err pg_each_record(hl_store *s, hl_store_record_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = exec(s, "DECLARE hl_all NO SCROLL CURSOR FOR SELECT ts, source = 'cloud', input_tokens,"
                       " output_tokens, latency_ms, cost_usd, request_id, attempt, backend, model, route_reason,"
                       " status, stream, ttft_ms, cached_input_tokens, cache_write_tokens, tenant, task_type,"
                       " key_name, sensitive, shadow, score, agree, eval_run FROM inferences"
                       " ORDER BY request_id, attempt", PGRES_COMMAND_OK, "declaring the backfill");
    while (!e) {
        PGresult *r = PQexec(q->c, "FETCH 10000 FROM hl_all");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            e = fail(s, "reading the records", r);
            PQclear(r);
            break;
        }
        int rows = PQntuples(r);
        for (int k = 0; k < rows && !e; k++) {
            hl_store_record x = {0};
            x.ts_ms = strtoll(PQgetvalue(r, k, 0), NULL, 10);
            x.cloud = is_t(r, k, 1);
            x.input_tokens = strtoll(PQgetvalue(r, k, 2), NULL, 10);
            x.output_tokens = strtoll(PQgetvalue(r, k, 3), NULL, 10);
            x.latency_ms = strtod(PQgetvalue(r, k, 4), NULL);
            x.cost_known = !PQgetisnull(r, k, 5);
            x.cost_usd = x.cost_known ? strtod(PQgetvalue(r, k, 5), NULL) : 0;
            x.request_id = PQgetvalue(r, k, 6);
            x.attempt = strtoll(PQgetvalue(r, k, 7), NULL, 10);
            x.backend = val_or_null(r, k, 8);
            x.model = val_or_null(r, k, 9);
            x.route_reason = val_or_null(r, k, 10);
            x.status = val_or_null(r, k, 11);
            x.stream = is_t(r, k, 12);
            x.ttft_ms = PQgetisnull(r, k, 13) ? -1 : strtod(PQgetvalue(r, k, 13), NULL);
            x.cached_input_tokens = strtoll(PQgetvalue(r, k, 14), NULL, 10);
            x.cache_write_tokens = strtoll(PQgetvalue(r, k, 15), NULL, 10);
            x.tenant = val_or_null(r, k, 16);
            x.task_type = val_or_null(r, k, 17);
            x.key_name = val_or_null(r, k, 18);
            x.sensitive = is_t(r, k, 19);
            x.shadow = is_t(r, k, 20);
            x.scored = !PQgetisnull(r, k, 21);
            x.score = x.scored ? strtod(PQgetvalue(r, k, 21), NULL) : 0;
            x.agree = x.scored && !PQgetisnull(r, k, 22) && is_t(r, k, 22);
            x.eval_run = val_or_null(r, k, 23);
            e = fn(ctx, &x);
        }
        PQclear(r);
        if (rows < 10000) break;
    }
    PQclear(PQexec(q->c, "CLOSE hl_all"));
    return e;
}

#define ROLLUP_KEY "hour, source, backend, model, route_reason, tenant, key_name, task_type, status, flags, firsts"
#define ROLLUP_SUMS                                                                                          \
    "attempts, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, plain_input_tokens,"  \
    " cost_usd, unpriced, scored, agreed, score_sum, latency_sum_ms"
#define ROLLUP_ADD(c) " " c " = rollups." c " + EXCLUDED." c
#define ROLLUP_UPDATE                                                                                          \
    ROLLUP_ADD("attempts") "," ROLLUP_ADD("input_tokens") "," ROLLUP_ADD("output_tokens") ","                 \
    ROLLUP_ADD("cached_input_tokens") "," ROLLUP_ADD("cache_write_tokens") "," ROLLUP_ADD("plain_input_tokens") \
    "," ROLLUP_ADD("cost_usd") "," ROLLUP_ADD("unpriced") "," ROLLUP_ADD("scored") "," ROLLUP_ADD("agreed")     \
    "," ROLLUP_ADD("score_sum") "," ROLLUP_ADD("latency_sum_ms")                                                \
    ", latency_hist = hybridllm_hist_add(rollups.latency_hist, EXCLUDED.latency_hist)"                          \
    ", ttft_hist = hybridllm_hist_add(rollups.ttft_hist, EXCLUDED.ttft_hist)"

static void copy_hist(hl_buf *b, const uint64_t *w, size_t n) {
    if (!n) {
        copy_str(b, NULL);
        return;
    }
    hl_buf_puts(b, "{");
    for (size_t i = 0; i < n; i++) hl_buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)w[i]);
    hl_buf_puts(b, "}\t");
}

/* The cells go by COPY into a session table, then one upsert adds them in key order (so two
 * gateways adding to the same cells take their row locks in the same order). */
static hl_err pg_rollup_merge(hl_store *s, bool day, const hl_rollup_cell *c, size_t n) {
    pg *q = s->impl;
    hl_err e = exec(s, "CREATE TEMP TABLE IF NOT EXISTS hl_cells (LIKE rollups); TRUNCATE hl_cells",
                    PGRES_COMMAND_OK, "creating the cells table");
    if (e) return e;
    hl_buf_reset(&q->copy);
    for (size_t i = 0; i < n; i++) {
        const hl_rollup_cell *x = &c[i];
        copy_ll(&q->copy, x->hour);
        const char *txt[8] = {x->source, x->backend, x->model, x->route_reason, x->tenant,
                              x->key_name, x->task_type, x->status};
        for (int k = 0; k < 8; k++) copy_str(&q->copy, txt[k]);
        copy_ll(&q->copy, x->flags);
        copy_ll(&q->copy, x->firsts);
        long long ints[6] = {x->attempts, x->input_tokens, x->output_tokens, x->cached_input_tokens,
                             x->cache_write_tokens, x->plain_input_tokens};
        for (int k = 0; k < 6; k++) copy_ll(&q->copy, ints[k]);
        copy_d(&q->copy, x->cost_usd, true);
        copy_ll(&q->copy, x->unpriced);
        copy_ll(&q->copy, x->scored);
        copy_ll(&q->copy, x->agreed);
        copy_d(&q->copy, x->score_sum, true);
        copy_d(&q->copy, x->latency_sum_ms, true);
        copy_hist(&q->copy, x->lat, x->lat_n);
        copy_hist(&q->copy, x->ttft, x->ttft_n);
        q->copy.data[q->copy.len - 1] = '\n';
    }
    PGresult *r = PQexec(q->c, "COPY hl_cells FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        e = fail(s, "starting COPY of the cells", r);
        PQclear(r);
        return e;
    }
    PQclear(r);
    if (PQputCopyData(q->c, q->copy.data, (int)q->copy.len) != 1 || PQputCopyEnd(q->c, NULL) != 1)
        e = fail(s, "sending the cells", NULL);
    while ((r = PQgetResult(q->c))) {
        if (!e && PQresultStatus(r) != PGRES_COMMAND_OK) e = fail(s, "COPY of the cells", r);
        PQclear(r);
    }
    if (e) return e;
    return exec(s, day ? "INSERT INTO rollups_day AS rollups SELECT * FROM hl_cells ORDER BY " ROLLUP_KEY
                     " ON CONFLICT (" ROLLUP_KEY ") DO UPDATE SET" ROLLUP_UPDATE
                   : "INSERT INTO rollups SELECT * FROM hl_cells ORDER BY " ROLLUP_KEY
                     " ON CONFLICT (" ROLLUP_KEY ") DO UPDATE SET" ROLLUP_UPDATE,
                PGRES_COMMAND_OK, "adding to the rollups");
}

/* Binary results (PostgreSQL's send formats, big-endian): a rollup scan reads a few hundred
 * thousand cells of 25 columns, and the server's text output of them, bigint[] above all,
 * cost more than the scan itself. */
static uint64_t be64(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | u[i];
    return v;
}

static uint32_t be32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static long long bin_int(const PGresult *r, int row, int col) {
    const char *v = PQgetvalue(r, row, col);
    return PQgetlength(r, row, col) == 8 ? (long long)be64(v) : PQgetlength(r, row, col) == 4 ? (int32_t)be32(v) : 0;
}

static double bin_double(const PGresult *r, int row, int col) {
    if (PQgetlength(r, row, col) != 8) return 0;
    uint64_t u = be64(PQgetvalue(r, row, col));
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Reads a bigint[] in binary (ndim, has-nulls, element type, then per dimension its size and
 * lower bound, then per element its length and value) into words from offset at; sets *n.
 * NULL, empty or anything but one dimension of non-null 8-byte values: HL_ERR_IO. */
static hl_err parse_hist(uint64_t **words, size_t *cap, const PGresult *r, int row, int col, size_t at, size_t *n) {
    *n = 0;
    if (PQgetisnull(r, row, col)) return HL_OK;
    const char *p = PQgetvalue(r, row, col);
    size_t len = (size_t)PQgetlength(r, row, col);
    if (len < 12) return HL_ERR_IO;
    uint32_t ndim = be32(p);
    if (ndim == 0) return HL_OK;
    if (ndim != 1 || len < 20) return HL_ERR_IO;
    size_t count = be32(p + 12);
    if (len != 20 + count * 12) return HL_ERR_IO;
    if (at + count > *cap) {
        size_t c = (at + count) * 2;
        uint64_t *w = realloc(*words, c * sizeof *w);
        if (!w) return HL_ERR_NOMEM;
        *words = w;
        *cap = c;
    }
    for (size_t k = 0; k < count; k++) {
        const char *e = p + 20 + k * 12;
        if (be32(e) != 8) return HL_ERR_IO;
        (*words)[at + k] = be64(e + 4);
    }
    *n = count;
    return HL_OK;
}

static const char *none_null(const char *v) { return v && *v ? v : NULL; }

static hl_err pg_rollup_scan(hl_store *s, bool day, long long from_hour, long long to_hour, const hl_store_filter *f,
                             hl_rollup_row_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    char b0[32], b1[32];
    const char *p[8] = {num_ll(b0, from_hour), num_ll(b1, to_hour)};
    filter_params(f, p + 2);
    if ((e = exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "starting the scan")))
        return e;
    char sql[1024];
    snprintf(sql, sizeof sql, "DECLARE hl_scan NO SCROLL CURSOR FOR SELECT " ROLLUP_KEY ", " ROLLUP_SUMS
                                     ", latency_hist, ttft_hist FROM %s WHERE hour >= $1 AND hour < $2"
                                     " AND ($3::text IS NULL OR tenant = $3::text) AND ($4::text IS NULL OR key_name = $4::text)"
                                     " AND ($5::text IS NULL OR backend = $5::text) AND ($6::text IS NULL OR model = $6::text)"
                                     " AND ($7::text IS NULL OR task_type = $7::text) AND ($8::text IS NULL OR source = $8::text)",
             day ? "rollups_day" : "rollups");
    PGresult *r = PQexecParams(q->c, sql, 8, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) e = fail(s, "declaring the rollup scan", r);
    PQclear(r);
    uint64_t *words = NULL;
    size_t cap = 0;
    while (!e) {
        r = PQexecParams(q->c, fetch_sql, 0, NULL, NULL, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            e = fail(s, "reading the rollups", r);
            PQclear(r);
            break;
        }
        int rows = PQntuples(r);
        for (int k = 0; k < rows && !e; k++) {
            hl_rollup_row w;
            w.hour = bin_int(r, k, 0);
            w.source = none_null(PQgetvalue(r, k, 1)); /* libpq ends every value with a NUL */
            w.backend = none_null(PQgetvalue(r, k, 2));
            w.model = none_null(PQgetvalue(r, k, 3));
            w.route_reason = none_null(PQgetvalue(r, k, 4));
            w.tenant = none_null(PQgetvalue(r, k, 5));
            w.key_name = none_null(PQgetvalue(r, k, 6));
            w.task_type = none_null(PQgetvalue(r, k, 7));
            w.status = hl_store_status_parse(PQgetvalue(r, k, 8));
            w.flags = (unsigned)bin_int(r, k, 9);
            w.firsts = (unsigned)bin_int(r, k, 10);
            w.attempts = bin_int(r, k, 11);
            w.input_tokens = bin_int(r, k, 12);
            w.output_tokens = bin_int(r, k, 13);
            w.cached_input_tokens = bin_int(r, k, 14);
            w.cache_write_tokens = bin_int(r, k, 15);
            w.plain_input_tokens = bin_int(r, k, 16);
            w.cost_usd = bin_double(r, k, 17);
            w.unpriced = bin_int(r, k, 18);
            w.scored = bin_int(r, k, 19);
            w.agreed = bin_int(r, k, 20);
            w.score_sum = bin_double(r, k, 21);
            w.latency_sum_ms = bin_double(r, k, 22);
            if ((e = parse_hist(&words, &cap, r, k, 23, 0, &w.latency_n)) ||
                (e = parse_hist(&words, &cap, r, k, 24, w.latency_n, &w.ttft_n))) {
                if (e == HL_ERR_IO) hl_store_set_error(s, "%s: a rollup histogram is not a bigint[]", q->where);
                break;
            }
            w.latency_hist = words;
            w.ttft_hist = words + w.latency_n;
            e = fn(ctx, &w);
        }
        PQclear(r);
        if (rows < FETCH_ROWS) break;
    }
    free(words);
    pg_rollback(s);
    return e;
}

static hl_err pg_cloud_spend(hl_store *s, long long day, long long month_day, hl_store_spend_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    char b0[32], b1[32];
    const char *p[2] = {num_ll(b0, day), num_ll(b1, month_day)};
    PGresult *r = PQexecParams(q->c, "SELECT tenant, coalesce(sum(cost_usd) FILTER (WHERE day >= $1), 0),"
                                     " sum(cost_usd) FROM cloud_spend WHERE day >= $2 GROUP BY tenant",
                               2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail(s, "reading cloud_spend", r);
    } else {
        for (int k = 0; k < PQntuples(r); k++)
            fn(ctx, PQgetvalue(r, k, 0), strtod(PQgetvalue(r, k, 1), NULL), strtod(PQgetvalue(r, k, 2), NULL));
    }
    PQclear(r);
    return e;
}

/* ---- client keys ---- */

#define KEY_COLS "id, name, prefix, key_hash, tenant, backends, models, cloud_allowed, budget_day_usd," \
                 " budget_month_usd, rpm, tpm, expires_at, created_at, last_used_at, revoked"

/* The text parameters $1..$11 that insert and update both write; bufs holds the numbers. */
static void key_params(const hl_store_key *k, const char *p[11], char bufs[6][32]) {
    p[0] = k->name;
    p[1] = k->tenant;
    p[2] = k->backends;
    p[3] = k->models;
    p[4] = k->cloud_allowed ? "t" : "f";
    p[5] = NULL;
    p[6] = NULL;
    if (k->budget_day_usd >= 0) snprintf(bufs[0], 32, "%.17g", k->budget_day_usd), p[5] = bufs[0];
    if (k->budget_month_usd >= 0) snprintf(bufs[1], 32, "%.17g", k->budget_month_usd), p[6] = bufs[1];
    p[7] = num_ll(bufs[2], k->rpm);
    p[8] = num_ll(bufs[3], k->tpm);
    p[9] = k->expires_at_ms ? num_ll(bufs[4], k->expires_at_ms) : NULL;
    p[10] = k->revoked ? "t" : "f";
}

/* A failed write: a UNIQUE violation (SQLSTATE 23505) is the caller's (a name taken). */
static hl_err key_write_result(hl_store *s, PGresult *r, const char *doing) {
    pg *q = s->impl;
    hl_err e = HL_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && !strcmp(state, "23505")) {
            hl_store_set_error(s, "%s: %s: a key with this name already exists", q->where, doing);
            e = HL_ERR_INVAL;
        } else {
            e = fail(s, doing, r);
        }
    }
    return e;
}

static hl_err pg_key_insert(hl_store *s, const hl_store_key *k, long long *id_out) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    const char *p[14];
    char bufs[6][32];
    key_params(k, p, bufs);
    p[11] = k->prefix;
    p[12] = k->hash;
    p[13] = num_ll(bufs[5], k->created_at_ms);
    PGresult *r = PQexecParams(q->c,
                               "INSERT INTO client_keys (name, tenant, backends, models, cloud_allowed,"
                               " budget_day_usd, budget_month_usd, rpm, tpm, expires_at, revoked, prefix,"
                               " key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
                               " $12, $13, $14) RETURNING id", 14, NULL, p, NULL, NULL, 0);
    e = key_write_result(s, r, "inserting a key");
    if (!e && id_out) *id_out = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return e;
}

static hl_err pg_key_update(hl_store *s, const hl_store_key *k) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    const char *p[12];
    char bufs[6][32];
    key_params(k, p, bufs);
    p[11] = num_ll(bufs[5], k->id);
    PGresult *r = PQexecParams(q->c,
                               "UPDATE client_keys SET name = $1, tenant = $2, backends = $3, models = $4,"
                               " cloud_allowed = $5, budget_day_usd = $6, budget_month_usd = $7, rpm = $8,"
                               " tpm = $9, expires_at = $10, revoked = $11 WHERE id = $12", 12, NULL, p, NULL,
                               NULL, 0);
    e = key_write_result(s, r, "updating a key");
    if (!e && atoll(PQcmdTuples(r)) == 0) {
        hl_store_set_error(s, "%s: no key with id %lld", q->where, k->id);
        e = HL_ERR_NOTFOUND;
    }
    PQclear(r);
    return e;
}

static const char *opt_val(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static hl_err pg_keys_list(hl_store *s, hl_store_key_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    PGresult *r = PQexec(q->c, "SELECT " KEY_COLS " FROM client_keys ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail(s, "listing keys", r);
        PQclear(r);
        return e;
    }
    for (int i = 0; i < PQntuples(r) && !e; i++) {
        hl_store_key k = {
            .id = atoll(PQgetvalue(r, i, 0)),
            .name = PQgetvalue(r, i, 1),
            .prefix = PQgetvalue(r, i, 2),
            .hash = PQgetvalue(r, i, 3),
            .tenant = opt_val(r, i, 4),
            .backends = opt_val(r, i, 5),
            .models = opt_val(r, i, 6),
            .cloud_allowed = is_t(r, i, 7),
            .budget_day_usd = PQgetisnull(r, i, 8) ? -1 : strtod(PQgetvalue(r, i, 8), NULL),
            .budget_month_usd = PQgetisnull(r, i, 9) ? -1 : strtod(PQgetvalue(r, i, 9), NULL),
            .rpm = atoll(PQgetvalue(r, i, 10)),
            .tpm = atoll(PQgetvalue(r, i, 11)),
            .expires_at_ms = atoll(PQgetvalue(r, i, 12)),
            .created_at_ms = atoll(PQgetvalue(r, i, 13)),
            .last_used_at_ms = atoll(PQgetvalue(r, i, 14)),
            .revoked = is_t(r, i, 15),
        };
        e = fn(ctx, &k);
    }
    PQclear(r);
    return e;
}

static hl_err pg_key_touch(hl_store *s, long long id, long long ms) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    char b0[32], b1[32];
    const char *p[2] = {num_ll(b0, id), num_ll(b1, ms)};
    PGresult *r = PQexecParams(q->c, "UPDATE client_keys SET last_used_at = $2 WHERE id = $1 AND"
                                     " coalesce(last_used_at, 0) < $2", 2, NULL, p, NULL, NULL, 0);
    e = PQresultStatus(r) == PGRES_COMMAND_OK ? HL_OK : fail(s, "recording a key's use", r);
    PQclear(r);
    return e;
}

/* Runs sql with n text parameters; HL_OK when the server answered `want`. */
static hl_err exec_params(hl_store *s, const char *sql, int n, const char *const *p, ExecStatusType want,
                          const char *doing) {
    PGresult *r = PQexecParams(((pg *)s->impl)->c, sql, n, NULL, p, NULL, NULL, 0);
    hl_err e = PQresultStatus(r) == want ? HL_OK : fail(s, doing, r);
    PQclear(r);
    return e;
}

static hl_err heartbeat_only(hl_store *s, const char *id, long long now_ms) {
    char b0[32];
    const char *p[2] = {id, num_ll(b0, now_ms)};
    return exec_params(s, "INSERT INTO instances (id, last_seen) VALUES ($1, $2) ON CONFLICT (id)"
                          " DO UPDATE SET last_seen = GREATEST(instances.last_seen, EXCLUDED.last_seen)",
                       2, p, PGRES_COMMAND_OK, "recording the heartbeat");
}

static hl_err pg_heartbeat(hl_store *s, const char *id, long long now_ms, long long since_ms, int *live) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e || (e = heartbeat_only(s, id, now_ms))) return e;
    char b1[32];
    const char *pd[2] = {id, num_ll(b1, since_ms)};
    if ((e = exec_params(s, "DELETE FROM budget_leases WHERE instance <> $1 AND instance"
                            " NOT IN (SELECT id FROM instances WHERE last_seen >= $2)",
                         2, pd, PGRES_COMMAND_OK, "expiring the leases of dead instances")))
        return e;
    PGresult *r;
    const char *p1[1] = {num_ll(b1, since_ms)};
    r = PQexecParams(q->c, "SELECT count(*) FROM instances WHERE last_seen >= $1", 1, NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) *live = atoi(PQgetvalue(r, 0, 0));
    else e = fail(s, "counting live instances", r);
    PQclear(r);
    return e;
}

/* Any constant: with hashtext(subject), the advisory lock that serializes a subject's grants. */
#define LEASE_LOCK "72364910"

static hl_err pg_lease_read(hl_store *s, const char *subject, const hl_store_lease_ask *a, long long day,
                           long long month_day, long long now_ms, long long live_since_ms,
                           hl_store_lease_result *out, double *mine) {
    pg *q = s->impl;
    char b0[32], b1[32], b2[32], b3[32];
    const char *pl[1] = {subject};
    const char *pd[3] = {subject, s->instance, num_ll(b0, live_since_ms)};
    hl_err e;
    if ((e = exec_params(s, "SELECT pg_advisory_xact_lock(" LEASE_LOCK ", hashtext($1))", 1, pl, PGRES_TUPLES_OK,
                         "taking the lease lock")) ||
        (e = heartbeat_only(s, s->instance, now_ms)) ||
        (e = exec_params(s, "DELETE FROM budget_leases WHERE subject = $1 AND instance <> $2 AND instance"
                            " NOT IN (SELECT id FROM instances WHERE last_seen >= $3)",
                         3, pd, PGRES_COMMAND_OK, "expiring the leases of dead instances")))
        return e;
    /* One statement: one snapshot of the spend and the leases (READ COMMITTED). */
    const char *p[6] = {subject, s->instance, a->key_id ? num_ll(b1, a->key_id) : NULL, num_ll(b2, day * 86400000),
                        num_ll(b3, month_day * 86400000), a->tenant ? a->tenant : ""};
    PGresult *r = PQexecParams(q->c, a->key_id
        ? "SELECT coalesce(sum(cost_usd) FILTER (WHERE ts >= $4::bigint), 0), coalesce(sum(cost_usd), 0),"
          " (SELECT coalesce(sum(amount), 0) FROM budget_leases WHERE subject = $1 AND instance <> $2),"
          " (SELECT coalesce(sum(amount), 0) FROM budget_leases WHERE subject = $1 AND instance = $2),"
          " $6::text FROM inferences WHERE key_id = $3::bigint AND source = 'cloud' AND ts >= $5::bigint"
        : "SELECT coalesce(sum(cost_usd) FILTER (WHERE day >= $4::bigint / 86400000), 0), coalesce(sum(cost_usd), 0),"
          " (SELECT coalesce(sum(amount), 0) FROM budget_leases WHERE subject = $1 AND instance <> $2),"
          " (SELECT coalesce(sum(amount), 0) FROM budget_leases WHERE subject = $1 AND instance = $2),"
          " $3::bigint FROM cloud_spend WHERE tenant = $6 AND day >= $5::bigint / 86400000",
        6, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        out->spend_day = strtod(PQgetvalue(r, 0, 0), NULL);
        out->spend_month = strtod(PQgetvalue(r, 0, 1), NULL);
        out->others = strtod(PQgetvalue(r, 0, 2), NULL);
        *mine = strtod(PQgetvalue(r, 0, 3), NULL);
    } else {
        e = fail(s, "reading the spend and leases", r);
    }
    PQclear(r);
    return e;
}

static hl_err pg_lease_add(hl_store *s, const char *subject, double delta, long long now_ms) {
    char b0[40], b1[32];
    snprintf(b0, sizeof b0, "%.17g", delta);
    const char *p[4] = {subject, s->instance, b0, num_ll(b1, now_ms)};
    return exec_params(s, delta > 0
        ? "INSERT INTO budget_leases (subject, instance, amount, updated) VALUES ($1, $2, $3, $4)"
          " ON CONFLICT (subject, instance) DO UPDATE SET amount = GREATEST(0, budget_leases.amount +"
          " EXCLUDED.amount), updated = EXCLUDED.updated"
        : "UPDATE budget_leases SET amount = GREATEST(0, amount + $3::float8), updated = $4"
          " WHERE subject = $1 AND instance = $2",
        4, p, PGRES_COMMAND_OK, "changing a lease");
}

static hl_err pg_leases_list(hl_store *s, hl_store_lease_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    const char *p[1] = {s->instance};
    PGresult *r = PQexecParams(q->c, "SELECT subject, amount FROM budget_leases WHERE instance = $1 ORDER BY subject",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int k = 0; k < PQntuples(r); k++) fn(ctx, PQgetvalue(r, k, 0), strtod(PQgetvalue(r, k, 1), NULL));
    } else {
        e = fail(s, "listing the leases", r);
    }
    PQclear(r);
    return e;
}

static hl_err pg_key_spend(hl_store *s, long long day, long long month_day, hl_store_key_spend_fn fn, void *ctx) {
    pg *q = s->impl;
    hl_err e = ensure_connected(s);
    if (e) return e;
    char b0[32], b1[32];
    const char *p[2] = {num_ll(b0, day * 86400000), num_ll(b1, month_day * 86400000)};
    PGresult *r = PQexecParams(q->c, "SELECT key_id, coalesce(sum(cost_usd) FILTER (WHERE ts >= $1), 0),"
                                     " coalesce(sum(cost_usd), 0) FROM inferences WHERE key_id IS NOT NULL"
                                     " AND source = 'cloud' AND ts >= $2 GROUP BY key_id",
                               2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        e = fail(s, "reading the key spend", r);
    } else {
        for (int k = 0; k < PQntuples(r); k++)
            fn(ctx, atoll(PQgetvalue(r, k, 0)), strtod(PQgetvalue(r, k, 1), NULL), strtod(PQgetvalue(r, k, 2), NULL));
    }
    PQclear(r);
    return e;
}

const hl_store_ops hl_store_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .schema_version = pg_schema_version,
    .load_state = pg_load_state,
    .begin = pg_begin,
    .insert = pg_insert,
    .batch = BATCH,
    .save_state = pg_save_state,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .scan = pg_scan,
    .prior = pg_prior,
    .each_record = pg_each_record,
    .rollup_merge = pg_rollup_merge,
    .rollup_scan = pg_rollup_scan,
    .count = pg_count,
    .cloud_spend = pg_cloud_spend,
    .key_insert = pg_key_insert,
    .key_update = pg_key_update,
    .keys_list = pg_keys_list,
    .key_touch = pg_key_touch,
    .heartbeat = pg_heartbeat,
    .key_spend = pg_key_spend,
    .lease_read = pg_lease_read,
    .lease_add = pg_lease_add,
    .leases_list = pg_leases_list,
    .shared = true,
};
