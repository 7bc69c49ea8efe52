/* hl_store_sqlite: the embedded store backend (hl_store_int.h), one SQLite file.
 *
 * The schema is created and upgraded by numbered migrations applied when the store opens,
 * each in the transaction that records it in schema_version, so a store is always exactly
 * at one version and two processes opening a new file at once cannot both migrate it.
 * Migrations are append-only: a released one is never edited; a change is a new one.
 *
 * WAL mode lets reports read while the indexer writes; synchronous=NORMAL is enough
 * because the journal, not this file, is the durable record: a commit lost to a power cut
 * is re-indexed from the journal (its offset was lost with it). The checkpoints, the only
 * fsyncs, come every 64 MiB of WAL rather than SQLite's 4 MiB: an fsync makes ext4 commit its
 * journal, and the gateway's ledger write()s wait behind that commit for milliseconds (seen
 * with strace at one connection: 3 ms writes during the indexer's fdatasync, p99 x2 or more).
 *
 * Every statement that carries data is prepared once and bound. The only SQL assembled at
 * run time is the scan, from the constant fragments in group_sql[] (never from input). */
#include "hl_store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WAL_CHECKPOINT_BYTES = 64 << 20 }; /* see above: the checkpoint, an fsync, this often */

/* ---- migrations ---- */

/* The columns of migration 7's two rollup tables. */
#define ROLLUP_COLUMNS \
    "    hour               INTEGER NOT NULL,  -- ts / 3600000\n" \
    "    source             TEXT NOT NULL,\n" \
    "    backend            TEXT NOT NULL,\n" \
    "    model              TEXT NOT NULL,\n" \
    "    route_reason       TEXT NOT NULL,\n" \
    "    tenant             TEXT NOT NULL,\n" \
    "    key_name           TEXT NOT NULL,\n" \
    "    task_type          TEXT NOT NULL,\n" \
    "    status             TEXT NOT NULL,     -- ok | error | cancelled | escalated | other\n" \
    "    flags              INTEGER NOT NULL,  -- 1 shadow, 2 eval, 4 sensitive\n" \
    "    firsts             INTEGER NOT NULL,  -- hl_rollup.h: which groupings count these lines as requests\n" \
    "    attempts           INTEGER NOT NULL,\n" \
    "    input_tokens       INTEGER NOT NULL,\n" \
    "    output_tokens      INTEGER NOT NULL,\n" \
    "    cached_input_tokens INTEGER NOT NULL,\n" \
    "    cache_write_tokens INTEGER NOT NULL,\n" \
    "    plain_input_tokens INTEGER NOT NULL,\n" \
    "    cost_usd           REAL NOT NULL,\n" \
    "    unpriced           INTEGER NOT NULL,\n" \
    "    scored             INTEGER NOT NULL,\n" \
    "    agreed             INTEGER NOT NULL,\n" \
    "    score_sum          REAL NOT NULL,\n" \
    "    latency_sum_ms     REAL NOT NULL,\n" \
    "    latency_hist       BLOB,              -- (bucket << 40 | count) little-endian words\n" \
    "    ttft_hist          BLOB,\n" \
    "    PRIMARY KEY (hour, source, backend, model, route_reason, tenant, key_name, task_type, status, flags, firsts)\n" \

static const char *const migrations[] = {
    /* 1: the ledger's records, one row per journal line, every field a column; where the
     * indexer is in each journal; a view that shows timestamps as the journal writes them. */
    "CREATE TABLE inferences (\n"
    "    id                  INTEGER PRIMARY KEY,\n"
    "    ts                  INTEGER NOT NULL,  -- the line's timestamp: Unix time, ms, UTC\n"
    "    source              TEXT NOT NULL CHECK (source IN ('cloud', 'local')),\n"
    "    input_tokens        INTEGER NOT NULL,\n"
    "    output_tokens       INTEGER NOT NULL,\n"
    "    latency_ms          REAL NOT NULL,\n"
    "    cost_usd            REAL,              -- NULL: a cloud model without a price\n"
    "    request_id          TEXT NOT NULL,\n"
    "    attempt             INTEGER NOT NULL CHECK (attempt >= 1),\n"
    "    backend             TEXT,\n"
    "    model               TEXT,\n"
    "    route_reason        TEXT,\n"
    "    status              TEXT,              -- ok | error | cancelled | escalated\n"
    "    stream              INTEGER NOT NULL DEFAULT 0,\n"
    "    ttft_ms             REAL,\n"
    "    cached_input_tokens INTEGER NOT NULL DEFAULT 0,\n"
    "    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,\n"
    "    usage_estimated     INTEGER NOT NULL DEFAULT 0,\n"
    "    tenant              TEXT,\n"
    "    task_type           TEXT,\n"
    "    task_inferred       INTEGER NOT NULL DEFAULT 0,\n"
    "    sensitive           INTEGER NOT NULL DEFAULT 0,\n"
    "    confidence          REAL,\n"
    "    http_status         INTEGER NOT NULL DEFAULT 0,\n"
    "    error               TEXT,\n"
    "    UNIQUE (request_id, attempt)\n"
    ");\n"
    "CREATE INDEX inferences_ts ON inferences (ts);\n"
    "CREATE INDEX inferences_source_ts ON inferences (source, ts);\n"
    "CREATE INDEX inferences_backend_ts ON inferences (backend, ts);\n"
    "CREATE INDEX inferences_tenant_ts ON inferences (tenant, ts);\n"
    "CREATE TABLE journal_state (\n"
    "    journal     TEXT PRIMARY KEY,  -- absolute path of the journal\n"
    "    dev         INTEGER NOT NULL,\n"
    "    inode       INTEGER NOT NULL,\n"
    "    byte_offset INTEGER NOT NULL,  -- indexed up to here (just after a newline)\n"
    "    size        INTEGER NOT NULL,  -- the file's size at the last pass\n"
    "    head_len    INTEGER NOT NULL,  -- bytes of the file's start that head_hash covers\n"
    "    head_hash   INTEGER NOT NULL,  -- FNV-1a 64 of them, as a signed integer\n"
    "    updated_at  TEXT NOT NULL\n"
    ");\n"
    "CREATE VIEW ledger AS SELECT\n"
    "    strftime('%Y-%m-%dT%H:%M:%fZ', ts / 1000.0, 'unixepoch') AS timestamp, source,\n"
    "    input_tokens, output_tokens, latency_ms, cost_usd, request_id, attempt, backend, model,\n"
    "    route_reason, status, stream, ttft_ms, cached_input_tokens, cache_write_tokens,\n"
    "    usage_estimated, tenant, task_type, task_inferred, sensitive, confidence, http_status,\n"
    "    error\n"
    "  FROM inferences;\n",
    /* 2: the cloud spend per tenant ('' for none) and UTC day, kept by a trigger from the rows
     * actually inserted (an ignored duplicate adds nothing): what budgets are checked
     * against without summing the month's records. */
    "CREATE TABLE cloud_spend (\n"
    "    tenant   TEXT NOT NULL,\n"
    "    day      INTEGER NOT NULL,  -- UTC days since 1970-01-01 (ts / 86400000)\n"
    "    cost_usd REAL NOT NULL,\n"
    "    PRIMARY KEY (tenant, day)\n"
    ") WITHOUT ROWID;\n"
    "INSERT INTO cloud_spend (tenant, day, cost_usd)\n"
    "  SELECT coalesce(tenant, ''), ts / 86400000, sum(cost_usd) FROM inferences\n"
    "  WHERE source = 'cloud' AND cost_usd > 0 GROUP BY 1, 2;\n"
    "CREATE TRIGGER inferences_cloud_spend AFTER INSERT ON inferences\n"
    "  WHEN NEW.source = 'cloud' AND NEW.cost_usd > 0 BEGIN\n"
    "    INSERT INTO cloud_spend (tenant, day, cost_usd)\n"
    "      VALUES (coalesce(NEW.tenant, ''), NEW.ts / 86400000, NEW.cost_usd)\n"
    "      ON CONFLICT (tenant, day) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd;\n"
    "  END;\n",
    /* 3: client keys (hl_store.h: hl_store_key), stored as SHA-256 hashes; the key each
     * ledger record was made with. */
    "CREATE TABLE client_keys (\n"
    "    id               INTEGER PRIMARY KEY,\n"
    "    name             TEXT NOT NULL UNIQUE,\n"
    "    prefix           TEXT NOT NULL,     -- 'hl-' and 8 characters, shown in lists\n"
    "    key_hash         TEXT NOT NULL UNIQUE, -- SHA-256 of the key, hex\n"
    "    tenant           TEXT,              -- NULL: the name\n"
    "    backends         TEXT,              -- comma-separated; NULL: any\n"
    "    models           TEXT,              -- comma-separated; NULL: any\n"
    "    cloud_allowed    INTEGER NOT NULL DEFAULT 1,\n"
    "    budget_day_usd   REAL,              -- NULL: none\n"
    "    budget_month_usd REAL,\n"
    "    rpm              INTEGER NOT NULL DEFAULT 0, -- 0: no limit\n"
    "    tpm              INTEGER NOT NULL DEFAULT 0,\n"
    "    expires_at       INTEGER,           -- Unix ms; NULL: never\n"
    "    created_at       INTEGER NOT NULL,  -- Unix ms\n"
    "    last_used_at     INTEGER,\n"
    "    revoked          INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "ALTER TABLE inferences ADD COLUMN key_id INTEGER;\n"
    "ALTER TABLE inferences ADD COLUMN key_name TEXT;\n"
    "CREATE INDEX inferences_key_ts ON inferences (key_id, ts) WHERE key_id IS NOT NULL;\n",
    /* 4: the gateways' heartbeats (hl_store.h: hl_store_heartbeat). */
    "CREATE TABLE instances (\n"
    "    id        TEXT PRIMARY KEY,  -- the gateway's instance id\n"
    "    last_seen INTEGER NOT NULL   -- Unix ms of its last index pass\n"
    ");\n",
    /* 5: quality (hl_ledger.h "Quality"): shadow attempts, comparisons, confidence signals,
     * eval runs. */
    "ALTER TABLE inferences ADD COLUMN shadow INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE inferences ADD COLUMN score REAL;             -- NULL: not compared\n"
    "ALTER TABLE inferences ADD COLUMN score_method TEXT;\n"
    "ALTER TABLE inferences ADD COLUMN agree INTEGER;\n"
    "ALTER TABLE inferences ADD COLUMN reference TEXT;\n"
    "ALTER TABLE inferences ADD COLUMN ref_output_tokens INTEGER;\n"
    "ALTER TABLE inferences ADD COLUMN confidence_margin REAL;\n"
    "ALTER TABLE inferences ADD COLUMN confidence_min REAL;\n"
    "ALTER TABLE inferences ADD COLUMN eval_run TEXT;\n",
    /* 6: budget leases (hl_store.h): budget an instance has taken to admit requests with. */
    "CREATE TABLE budget_leases (\n"
    "    subject  TEXT NOT NULL,     -- 'key:ID' or 'tenant:NAME'\n"
    "    instance TEXT NOT NULL,     -- instances.id\n"
    "    amount   REAL NOT NULL,     -- USD taken, not yet spent\n"
    "    updated  INTEGER NOT NULL,  -- Unix ms\n"
    "    PRIMARY KEY (subject, instance)\n"
    ");\n",
    /* 7: rollups (hl_rollup.h): per hour and dimensions, the sums and histograms report reads
     * instead of the rows. Strings are '' for none. Filled from the existing rows by
     * hl_rollup_backfill in this migration's transaction. */
    "CREATE TABLE rollups (\n" ROLLUP_COLUMNS ") WITHOUT ROWID;\n"
    "-- the same per UTC day (hour: the day's first hour): what reports over whole days read\n"
    "CREATE TABLE rollups_day (\n" ROLLUP_COLUMNS ") WITHOUT ROWID;\n",
    /* 8: the replica an attempt went to (hl_ledger.h "Replicas"). */
    "ALTER TABLE inferences ADD COLUMN replica TEXT;\n",
    /* 9: cheaper inserts (issue #17: the indexer was a third of the gateway's CPU). The
     * (source|backend|tenant, ts) indexes go: reports read the rollups, and the row scan
     * reads an id range NOT INDEXED, so nothing read them. The cloud_spend trigger goes:
     * a row trigger makes SQLite open a statement journal for every insert; sq_insert
     * now adds each batch's spend itself, in the same transaction. */
    "DROP INDEX inferences_source_ts;\n"
    "DROP INDEX inferences_backend_ts;\n"
    "DROP INDEX inferences_tenant_ts;\n"
    "DROP TRIGGER inferences_cloud_spend;\n",
};
#define ROLLUP_MIGRATION 7
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- the connection ---- */

typedef struct sq {
    sqlite3 *db;
    int version;
    sqlite3_stmt *begin, *commit, *rollback;
    /* [0]: every column; [1]: a plain record's (is_plain). insert_many: INSERT_ROWS records at once */
    sqlite3_stmt *insert[2], *insert_many[2], *lookup;
    sqlite3_stmt *load_state, *save_state;
    sqlite3_stmt *count, *bounds, *spend, *spend_add;
    sqlite3_stmt *scan[256];   /* per `same` | `same_total` << 4; prepared on first use */
    sqlite3_stmt *prior, *merge[2], *rollup_scan[2]; /* prepared on first use; [1]: rollups_day */
    uint64_t *words;           /* decoded histograms of the rollup scan */
    size_t words_cap;
} sq;

static hl_err map_rc(int rc) {
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return HL_OK;
    case SQLITE_NOMEM: return HL_ERR_NOMEM;
    case SQLITE_BUSY: case SQLITE_LOCKED: return HL_ERR_TIMEOUT;
    case SQLITE_NOTADB: case SQLITE_CORRUPT: return HL_ERR_PARSE;
    case SQLITE_TOOBIG: return HL_ERR_LIMIT;
    default: return HL_ERR_IO;
    }
}

/* Records sqlite's message for rc, prefixed with what was being done; returns the hl_err. */
static hl_err fail(hl_store *s, int rc, const char *doing) {
    sq *q = s->impl;
    hl_store_set_error(s, "%s: %s: %s", s->location, doing,
                       q && q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    return map_rc(rc);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **out) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

/* Steps a statement that returns no row we need, then resets it. */
static int run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int exec(sqlite3 *db, const char *sql) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---- histograms as blobs (hl_rollup.h) ---- */

static void put_words(unsigned char *out, const uint64_t *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) out[i * 8 + b] = (unsigned char)(w[i] >> (8 * b));
}

static void get_words(const unsigned char *in, size_t n, uint64_t *w) {
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        for (int b = 7; b >= 0; b--) v = (v << 8) | in[i * 8 + b];
        w[i] = v;
    }
}

/* hl_hist_add(a, b): the merged histogram (either may be NULL). Only this program's writes
 * use it (the indexer's upsert), so the schema does not depend on it. */
static void hist_add_fn(sqlite3_context *cx, int argc, sqlite3_value **argv) {
    (void)argc;
    size_t na = (size_t)sqlite3_value_bytes(argv[0]) / 8, nb = (size_t)sqlite3_value_bytes(argv[1]) / 8;
    const unsigned char *pa = sqlite3_value_blob(argv[0]), *pb = sqlite3_value_blob(argv[1]);
    uint64_t *w = malloc((2 * (na + nb) + 1) * sizeof *w);
    unsigned char *out = malloc((na + nb) * 8 + 1);
    if (!w || !out) {
        free(w);
        free(out);
        sqlite3_result_error_nomem(cx);
        return;
    }
    get_words(pa, pa ? na : 0, w);
    get_words(pb, pb ? nb : 0, w + na);
    size_t n = hl_hist_merge(w, pa ? na : 0, w + na, pb ? nb : 0, w + na + nb);
    put_words(out, w + na + nb, n);
    free(w);
    sqlite3_result_blob(cx, out, (int)(n * 8), free);
}

/* Applies the migrations the file lacks, in one transaction. */
static hl_err migrate(hl_store *s, sq *q, char *errbuf, size_t errbuf_len) {
    const char *doing = "starting the migration";
    sqlite3_stmt *cur = NULL, *rec = NULL;
    int rc = exec(q->db, "BEGIN IMMEDIATE");
    if (rc) goto fail;
    doing = "creating schema_version";
    rc = exec(q->db, "CREATE TABLE IF NOT EXISTS schema_version (\n"
                     "    version    INTEGER PRIMARY KEY,\n"
                     "    applied_at TEXT NOT NULL\n"
                     ")");
    if (rc) goto fail;
    doing = "reading schema_version";
    if ((rc = prep(q->db, "SELECT coalesce(max(version), 0) FROM schema_version", &cur))) goto fail;
    if ((rc = sqlite3_step(cur)) != SQLITE_ROW) goto fail;
    int have = sqlite3_column_int(cur, 0);
    sqlite3_reset(cur); /* a statement left running makes DROP fail ("table is locked") */
    rc = SQLITE_OK;
    if (have > N_MIGRATIONS) {
        exec(q->db, "ROLLBACK");
        sqlite3_finalize(cur);
        snprintf(errbuf, errbuf_len, "%s: schema version %d is newer than this hybridllm knows (%d): "
                 "use a newer hybridllm", s->location, have, N_MIGRATIONS);
        return HL_ERR_UNSUPPORTED;
    }
    doing = "recording a migration";
    if ((rc = prep(q->db, "INSERT INTO schema_version (version, applied_at) "
                          "VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", &rec)))
        goto fail;
    for (int v = have + 1; v <= N_MIGRATIONS; v++) {
        doing = "applying a migration";
        if ((rc = exec(q->db, migrations[v - 1]))) goto fail;
        if (v == ROLLUP_MIGRATION && hl_rollup_backfill(s)) {
            snprintf(errbuf, errbuf_len, "%s: building the rollups: %s", s->location, hl_store_errmsg(s));
            sqlite3_finalize(cur);
            sqlite3_finalize(rec);
            exec(q->db, "ROLLBACK");
            return HL_ERR_IO;
        }
        sqlite3_bind_int(rec, 1, v);
        if ((rc = run(rec))) goto fail;
    }
    doing = "committing the migration";
    if ((rc = exec(q->db, "COMMIT"))) goto fail;
    q->version = N_MIGRATIONS;
    sqlite3_finalize(cur);
    sqlite3_finalize(rec);
    return HL_OK;
fail:
    snprintf(errbuf, errbuf_len, "%s: %s: %s", s->location, doing, sqlite3_errmsg(q->db));
    sqlite3_finalize(cur);
    sqlite3_finalize(rec);
    exec(q->db, "ROLLBACK");
    return map_rc(rc ? rc : SQLITE_ERROR);
}

/* The columns of an inferences row as the indexer writes them, bound at ?(ncol i + 1).. by
 * bind_record: first the INSERT_NCOL_PLAIN every record has, then the key's, the quality
 * fields and the replica. Most lines have none of the latter (is_plain): their statement names
 * only the first ones and the rest take the schema's defaults (NULL; shadow 0), a third fewer
 * values bound and copied a row. */
#define INSERT_COLUMNS_PLAIN                                                                        \
    "ts, source, input_tokens, output_tokens, latency_ms, cost_usd, request_id, attempt, backend,"  \
    " model, route_reason, status, stream, ttft_ms, cached_input_tokens, cache_write_tokens,"       \
    " usage_estimated, tenant, task_type, task_inferred, sensitive, confidence, http_status, error"
#define INSERT_COLUMNS_REST                                                                         \
    ", key_id, key_name, shadow, score, score_method, agree, reference, ref_output_tokens,"         \
    " confidence_margin, confidence_min, eval_run, replica"
enum { INSERT_NCOL = 36, INSERT_NCOL_PLAIN = 24, INSERT_ROWS = 16 };

/* INSERT OR IGNORE of `rows` records in one statement: a statement's start and end (opening
 * the table's and indexes' cursors, halting) cost as much as a row's work, so a full batch goes
 * INSERT_ROWS rows a step. plain: the plain records' columns only. */
static int prep_insert(sqlite3 *db, int rows, bool plain, sqlite3_stmt **out) {
    char sql[INSERT_ROWS * INSERT_NCOL * 8 + 512];
    int ncol = plain ? INSERT_NCOL_PLAIN : INSERT_NCOL;
    size_t o = (size_t)snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO inferences (%s%s) VALUES ",
                                INSERT_COLUMNS_PLAIN, plain ? "" : INSERT_COLUMNS_REST);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < ncol; c++)
            o += (size_t)snprintf(sql + o, sizeof sql - o, "%s?%d%s", c ? ", " : r ? ", (" : "(",
                                  r * ncol + c + 1, c == ncol - 1 ? ")" : "");
    return prep(db, sql, out);
}

static void sq_close(hl_store *s) {
    sq *q = s->impl;
    if (!q) return;
    sqlite3_stmt *all[] = {q->begin, q->commit, q->rollback, q->insert[0], q->insert[1], q->insert_many[0],
                           q->insert_many[1], q->lookup,
                           q->load_state, q->save_state, q->count, q->bounds, q->spend,
                           q->spend_add};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
    for (size_t i = 0; i < sizeof q->scan / sizeof q->scan[0]; i++) sqlite3_finalize(q->scan[i]);
    sqlite3_finalize(q->prior);
    for (int i = 0; i < 2; i++) {
        sqlite3_finalize(q->merge[i]);
        sqlite3_finalize(q->rollup_scan[i]);
    }
    free(q->words);
    sqlite3_close(q->db);
    free(q);
    s->impl = NULL;
}

/* Refuses, before anything writes to it, a database that is not a hybridllm ledger: one with
 * objects but no schema_version table (another program's), or, when the store must exist, an
 * empty one. Returns 0, or a SQLite code (errbuf left to the caller), or -1 with errbuf
 * filled. */
static int check_ours(hl_store *s, sq *q, const char *location, char *errbuf, size_t errbuf_len) {
    sqlite3_stmt *st = NULL;
    int rc = prep(q->db, "SELECT count(*), coalesce(sum(type = 'table' AND name = 'schema_version'), 0)"
                         " FROM sqlite_master", &st);
    if (rc) return rc;
    rc = sqlite3_step(st);
    long long objects = sqlite3_column_int64(st, 0), versioned = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return rc;
    if (objects && !versioned)
        snprintf(errbuf, errbuf_len, "%s: a SQLite database but not a hybridllm ledger (no schema_version "
                 "table): refusing to change it", location);
    else if (!objects && s->must_exist)
        snprintf(errbuf, errbuf_len, "%s: an empty database, not a hybridllm ledger (index a journal into "
                 "it first: hybridllm ledger index)", location);
    else
        return 0;
    return -1;
}

/* Before SQLite's first use in the process: no memory statistics. They are kept under a
 * global mutex taken on every allocation (2.5% of the indexer's instructions), and nothing
 * here reads them. Too late (SQLite already initialized elsewhere): it stays as it was. */
static void sq_configure(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

static hl_err sq_open(hl_store *s, const char *location, char *errbuf, size_t errbuf_len) {
    sq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(errbuf, errbuf_len, "%s: out of memory", location);
        return HL_ERR_NOMEM;
    }
    s->impl = q;
    /* NOMUTEX: a connection is used by one thread at a time (hl_store.h says so). */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sq_configure);
    int rc = sqlite3_open_v2(location, &q->db, SQLITE_OPEN_READWRITE | (s->must_exist ? 0 : SQLITE_OPEN_CREATE) |
                             SQLITE_OPEN_NOMUTEX, NULL);
    const char *doing = "opening";
    if (rc) goto fail;
    sqlite3_busy_timeout(q->db, 10000);
    sqlite3_extended_result_codes(q->db, 1);
    doing = "reading its schema";
    if ((rc = check_ours(s, q, location, errbuf, errbuf_len)) != 0) {
        if (rc > 0) goto fail;
        sq_close(s);
        return HL_ERR_UNSUPPORTED;
    }
    /* A new file gets 16 KiB pages (an existing one keeps its own): SQLite writes each WAL
     * frame as two pwrite()s, its 24-byte header and the page, so 4 KiB pages cost the indexer
     * about 0.11 pwrite()s a line, 0.6-0.8 us of kernel time, against 0.27-0.46 us with 16
     * KiB (per-thread CPU under wrk -c32). Records are appended and read in id ranges; a
     * larger page costs them nothing. Must come before WAL mode, which fixes the size. */
    doing = "setting the page size";
    if ((rc = exec(q->db, "PRAGMA page_size = 16384"))) goto fail;
    /* journal_mode answers the mode it got: an in-memory database stays "memory". */
    sqlite3_stmt *wal = NULL;
    doing = "setting WAL mode";
    if ((rc = prep(q->db, "PRAGMA journal_mode = WAL", &wal))) goto fail;
    rc = sqlite3_step(wal);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(wal, 0) : NULL;
    bool ok = mode && (!strcmp(mode, "wal") || !strcmp(mode, "memory"));
    sqlite3_finalize(wal);
    if (rc != SQLITE_ROW) goto fail;
    if (!ok) {
        snprintf(errbuf, errbuf_len, "%s: the database refused WAL mode", location);
        sq_close(s);
        return HL_ERR_UNSUPPORTED;
    }
    doing = "setting pragmas";
    if ((rc = exec(q->db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192;"
                          "PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 0;"
                          "PRAGMA journal_size_limit = 67108864")))
        goto fail;
    /* The checkpoint every WAL_CHECKPOINT_BYTES, in pages of this file's size. */
    sqlite3_stmt *ps = NULL;
    if ((rc = prep(q->db, "PRAGMA page_size", &ps))) goto fail;
    rc = sqlite3_step(ps);
    long page = rc == SQLITE_ROW ? sqlite3_column_int(ps, 0) : 0;
    sqlite3_finalize(ps);
    if (rc != SQLITE_ROW) goto fail;
    sqlite3_wal_autocheckpoint(q->db, (int)(WAL_CHECKPOINT_BYTES / (page > 0 ? page : 4096)));
    doing = "registering functions";
    if ((rc = sqlite3_create_function(q->db, "hl_hist_add", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, hist_add_fn,
                                      NULL, NULL)))
        goto fail;
    hl_err e = migrate(s, q, errbuf, errbuf_len);
    if (e) {
        sq_close(s);
        return e;
    }
    doing = "preparing statements";
    if ((rc = prep(q->db, "BEGIN IMMEDIATE", &q->begin)) || (rc = prep(q->db, "COMMIT", &q->commit)) ||
        (rc = prep(q->db, "ROLLBACK", &q->rollback)) || (rc = prep_insert(q->db, 1, false, &q->insert[0])) ||
        (rc = prep_insert(q->db, 1, true, &q->insert[1])) ||
        (rc = prep_insert(q->db, INSERT_ROWS, false, &q->insert_many[0])) ||
        (rc = prep_insert(q->db, INSERT_ROWS, true, &q->insert_many[1])) ||
        (rc = prep(q->db, "SELECT ts, id FROM inferences WHERE request_id = ?1 AND attempt = ?2", &q->lookup)) ||
        (rc = prep(q->db, "SELECT dev, inode, byte_offset, size, head_len, head_hash"
                          " FROM journal_state WHERE journal = ?1", &q->load_state)) ||
        (rc = prep(q->db, "INSERT OR REPLACE INTO journal_state (journal, dev, inode, byte_offset,"
                          " size, head_len, head_hash, updated_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                   &q->save_state)) ||
        (rc = prep(q->db, "SELECT count(*) FROM inferences", &q->count)) ||
        (rc = prep(q->db, "SELECT min(id), max(id) FROM inferences WHERE ts >= ?1 AND ts < ?2", &q->bounds)) ||
        (rc = prep(q->db, "SELECT tenant, total(cost_usd) FILTER (WHERE day >= ?1), total(cost_usd)"
                          " FROM cloud_spend WHERE day >= ?2 GROUP BY tenant", &q->spend)) ||
        (rc = prep(q->db, "INSERT INTO cloud_spend (tenant, day, cost_usd) VALUES (?1, ?2, ?3)"
                          " ON CONFLICT (tenant, day) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd",
                   &q->spend_add)))
        goto fail;
    return HL_OK;
fail:
    snprintf(errbuf, errbuf_len, "%s: %s: %s", location, doing,
             q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    sq_close(s);
    return map_rc(rc ? rc : SQLITE_ERROR);
}

static int sq_schema_version(hl_store *s) {
    return ((sq *)s->impl)->version;
}

/* ---- indexing ---- */

static hl_err sq_begin(hl_store *s) {
    int rc = run(((sq *)s->impl)->begin);
    return rc ? fail(s, rc, "BEGIN") : HL_OK;
}

static hl_err sq_commit(hl_store *s) {
    int rc = run(((sq *)s->impl)->commit);
    return rc ? fail(s, rc, "COMMIT") : HL_OK;
}

static void sq_rollback(hl_store *s) {
    sq *q = s->impl;
    if (!sqlite3_get_autocommit(q->db)) run(q->rollback);
}

static void bind_opt_double(sqlite3_stmt *st, int i, double v, bool present) {
    if (present) sqlite3_bind_double(st, i, v);
    else sqlite3_bind_null(st, i);
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

/* A record whose columns past the plain ones all hold their defaults. */
static bool is_plain(const hl_store_record *r) {
    return r->key_id <= 0 && !r->key_name && !r->shadow && !r->scored && !r->signals && !r->eval_run && !r->replica;
}

/* Binds the columns of r at ?(base + 1).. (the order of INSERT_COLUMNS_PLAIN and, unless plain,
 * INSERT_COLUMNS_REST), NULL where r has no value: each step rebinds all, so no bindings need
 * clearing. Strings are bound SQLITE_STATIC: r's strings outlive the step; the statement is not
 * stepped again before the next bind_record. */
static void bind_record(sqlite3_stmt *st, int base, const hl_store_record *r, bool plain) {
    sqlite3_bind_int64(st, base + 1, r->ts_ms);
    sqlite3_bind_text(st, base + 2, r->cloud ? "cloud" : "local", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, base + 3, r->input_tokens);
    sqlite3_bind_int64(st, base + 4, r->output_tokens);
    sqlite3_bind_double(st, base + 5, r->latency_ms);
    bind_opt_double(st, base + 6, r->cost_usd, r->cost_known);
    bind_opt_text(st, base + 7, r->request_id);
    sqlite3_bind_int64(st, base + 8, r->attempt);
    bind_opt_text(st, base + 9, r->backend);
    bind_opt_text(st, base + 10, r->model);
    bind_opt_text(st, base + 11, r->route_reason);
    bind_opt_text(st, base + 12, r->status);
    sqlite3_bind_int(st, base + 13, r->stream);
    bind_opt_double(st, base + 14, r->ttft_ms, r->ttft_ms >= 0);
    sqlite3_bind_int64(st, base + 15, r->cached_input_tokens);
    sqlite3_bind_int64(st, base + 16, r->cache_write_tokens);
    sqlite3_bind_int(st, base + 17, r->usage_estimated);
    bind_opt_text(st, base + 18, r->tenant);
    bind_opt_text(st, base + 19, r->task_type);
    sqlite3_bind_int(st, base + 20, r->task_inferred);
    sqlite3_bind_int(st, base + 21, r->sensitive);
    bind_opt_double(st, base + 22, r->confidence, r->confidence >= 0);
    sqlite3_bind_int64(st, base + 23, r->http_status);
    bind_opt_text(st, base + 24, r->error);
    if (plain) return;
    if (r->key_id > 0) sqlite3_bind_int64(st, base + 25, r->key_id);
    else sqlite3_bind_null(st, base + 25);
    bind_opt_text(st, base + 26, r->key_name);
    sqlite3_bind_int(st, base + 27, r->shadow);
    if (r->scored) {
        sqlite3_bind_double(st, base + 28, r->score);
        bind_opt_text(st, base + 29, r->score_method);
        sqlite3_bind_int(st, base + 30, r->agree);
        bind_opt_text(st, base + 31, r->reference);
        sqlite3_bind_int64(st, base + 32, r->ref_output_tokens);
    } else {
        for (int c = 28; c <= 32; c++) sqlite3_bind_null(st, base + c);
    }
    bind_opt_double(st, base + 33, r->confidence_margin, r->signals);
    bind_opt_double(st, base + 34, r->confidence_min, r->signals);
    bind_opt_text(st, base + 35, r->eval_run);
    bind_opt_text(st, base + 36, r->replica);
}

/* The row already stored under r's key: its ts and id. None (the schema refused the record
 * rather than ignoring it): HL_ERR_INVAL. */
static hl_err lookup(hl_store *s, const hl_store_record *r, long long *ts, long long *id) {
    sq *q = s->impl;
    sqlite3_bind_text(q->lookup, 1, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q->lookup, 2, r->attempt);
    int rc = sqlite3_step(q->lookup);
    if (rc == SQLITE_ROW) {
        *ts = sqlite3_column_int64(q->lookup, 0);
        *id = sqlite3_column_int64(q->lookup, 1);
    }
    sqlite3_reset(q->lookup);
    sqlite3_clear_bindings(q->lookup);
    if (rc == SQLITE_DONE) {
        hl_store_set_error(s, "%s: record %s/%lld refused by the schema", s->location, r->request_id, r->attempt);
        return HL_ERR_INVAL;
    }
    return rc == SQLITE_ROW ? HL_OK : fail(s, rc, "looking up a record");
}

/* An ignored record: a replayed line (the stored row has its timestamp) or another line with
 * the same key. */
static hl_err classify_ignored(hl_store *s, const hl_store_record *r, hl_store_insert_result *res) {
    long long ts, id;
    HL_TRY(lookup(s, r, &ts, &id));
    *res = ts == r->ts_ms ? HL_STORE_DUPLICATE : HL_STORE_CONFLICT;
    return HL_OK;
}

static hl_err sq_insert_one(hl_store *s, const hl_store_record *r, hl_store_insert_result *res) {
    sq *q = s->impl;
    bool plain = is_plain(r);
    bind_record(q->insert[plain], 0, r, plain);
    int rc = run(q->insert[plain]);
    if (rc) return fail(s, rc, "inserting a record");
    if (sqlite3_changes(q->db) == 1) {
        *res = HL_STORE_INSERTED;
        return HL_OK;
    }
    return classify_ignored(s, r, res);
}

static bool same_key(const hl_store_record *a, const hl_store_record *b) {
    return a->attempt == b->attempt && !strcmp(a->request_id, b->request_id);
}

/* INSERT_ROWS records in one statement. When some were ignored, which ones: the statement gave
 * its new rows the ids after the table's largest (no AUTOINCREMENT: max(id) + 1 each), so the
 * inserted are the records whose key now holds an id past last_insert_rowid - changes, bar a
 * repeat of a key earlier in the same statement (ignored against that one). */
static hl_err insert_many(hl_store *s, const hl_store_record *r, hl_store_insert_result *res) {
    sq *q = s->impl;
    bool plain = true;
    for (int i = 0; i < INSERT_ROWS && plain; i++) plain = is_plain(&r[i]);
    int ncol = plain ? INSERT_NCOL_PLAIN : INSERT_NCOL;
    for (int i = 0; i < INSERT_ROWS; i++) bind_record(q->insert_many[plain], i * ncol, &r[i], plain);
    int rc = run(q->insert_many[plain]);
    if (rc) return fail(s, rc, "inserting records");
    int changes = sqlite3_changes(q->db);
    long long first_new = sqlite3_last_insert_rowid(q->db) - changes + 1;
    int inserted = 0;
    for (int i = 0; i < INSERT_ROWS; i++) {
        if (changes == INSERT_ROWS) {
            res[i] = HL_STORE_INSERTED;
            continue;
        }
        long long ts, id;
        HL_TRY(lookup(s, &r[i], &ts, &id));
        bool repeat = false;
        for (int k = 0; k < i && !repeat; k++) repeat = same_key(&r[k], &r[i]);
        if (changes > 0 && id >= first_new && !repeat) res[i] = HL_STORE_INSERTED, inserted++;
        else res[i] = ts == r[i].ts_ms ? HL_STORE_DUPLICATE : HL_STORE_CONFLICT;
    }
    if (changes != INSERT_ROWS && inserted != changes) {
        hl_store_set_error(s, "%s: %d of %d records inserted, but %d found new", s->location, changes,
                           INSERT_ROWS, inserted);
        return HL_ERR_INVAL;
    }
    return HL_OK;
}

/* The cloud spend of a batch's inserted records, per (tenant, UTC day): what migration 2's
 * trigger added row by row (migration 9). */
typedef struct spend_sum {
    const char *tenant; /* borrowed from the batch; "" for none */
    long long day;
    double usd;
} spend_sum;

enum { SPEND_SUMS = 16 };

static hl_err spend_apply(hl_store *s, spend_sum *v, size_t *n) {
    sq *q = s->impl;
    for (size_t i = 0; i < *n; i++) {
        sqlite3_bind_text(q->spend_add, 1, v[i].tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q->spend_add, 2, v[i].day);
        sqlite3_bind_double(q->spend_add, 3, v[i].usd);
        int rc = run(q->spend_add);
        sqlite3_clear_bindings(q->spend_add);
        if (rc) return fail(s, rc, "adding to cloud_spend");
    }
    *n = 0;
    return HL_OK;
}

/* The batch's full groups of INSERT_ROWS records one statement each, the rest one by one;
 * then the cloud spend of those inserted. */
static hl_err sq_insert(hl_store *s, const hl_store_record *r, size_t n, hl_store_insert_result *res) {
    size_t full = n - n % INSERT_ROWS;
    for (size_t i = 0; i < n; i += i < full ? INSERT_ROWS : 1) {
        hl_err e = i < full ? insert_many(s, &r[i], &res[i]) : sq_insert_one(s, &r[i], &res[i]);
        if (e) return e;
    }
    spend_sum v[SPEND_SUMS];
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        hl_err e;
        if (res[i] != HL_STORE_INSERTED || !r[i].cloud || !r[i].cost_known || !(r[i].cost_usd > 0)) continue;
        const char *tenant = r[i].tenant ? r[i].tenant : "";
        long long day = r[i].ts_ms / 86400000; /* as SQLite's integer division: toward zero */
        size_t k = 0;
        while (k < nv && (v[k].day != day || strcmp(v[k].tenant, tenant))) k++;
        if (k == nv) {
            if (nv == SPEND_SUMS && (e = spend_apply(s, v, &nv))) return e;
            k = nv++;
            v[k] = (spend_sum){.tenant = tenant, .day = day};
        }
        v[k].usd += r[i].cost_usd;
    }
    return spend_apply(s, v, &nv);
}

static hl_err sq_load_state(hl_store *s, const char *journal, hl_store_journal_state *js, bool *found) {
    sq *q = s->impl;
    sqlite3_stmt *st = q->load_state;
    memset(js, 0, sizeof *js);
    sqlite3_bind_text(st, 1, journal, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        js->dev = sqlite3_column_int64(st, 0);
        js->ino = sqlite3_column_int64(st, 1);
        js->offset = sqlite3_column_int64(st, 2);
        js->size = sqlite3_column_int64(st, 3);
        js->head_len = sqlite3_column_int64(st, 4);
        js->head_hash = (uint64_t)sqlite3_column_int64(st, 5);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? HL_OK : fail(s, rc, "reading journal_state");
}

static hl_err sq_save_state(hl_store *s, const char *journal, const hl_store_journal_state *js) {
    sqlite3_stmt *st = ((sq *)s->impl)->save_state;
    sqlite3_bind_text(st, 1, journal, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, js->dev);
    sqlite3_bind_int64(st, 3, js->ino);
    sqlite3_bind_int64(st, 4, js->offset);
    sqlite3_bind_int64(st, 5, js->size);
    sqlite3_bind_int64(st, 6, js->head_len);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)js->head_hash);
    int rc = run(st);
    sqlite3_clear_bindings(st);
    return rc ? fail(s, rc, "saving journal_state") : HL_OK;
}

/* ---- reading ---- */

static hl_err sq_count(hl_store *s, unsigned long long *out) {
    sq *q = s->impl;
    int rc = sqlite3_step(q->count);
    *out = rc == SQLITE_ROW ? (unsigned long long)sqlite3_column_int64(q->count, 0) : 0;
    sqlite3_reset(q->count);
    return rc == SQLITE_ROW ? HL_OK : fail(s, rc, "counting records");
}

/* The condition that an earlier attempt j agrees with row i on one varying dimension (bit k
 * of a `same` set). Constant text: with the filters below, the only SQL not written out in
 * full. The unary + keeps these terms from being used to pick an index: the probe must go
 * through (request_id, attempt). Left free, the planner took (source, ts) or (backend, ts)
 * while those indexes existed (before migration 9) and each probe scanned a whole source:
 * quadratic (minutes at 1M records). */
static const char *const same_sql[4] = {" AND +j.source IS i.source", " AND +j.backend IS i.backend",
                                        " AND +j.model IS i.model", " AND +j.route_reason IS i.route_reason"};

/* The scan reads the table in id order (the journal's order, so nearly time order) between
 * the first and last id in the range, which the ts index finds, and filters on ts again:
 * sequential reads instead of one table lookup per index entry.
 *
 * first_in_group / first_in_range let the caller count distinct requests in one pass
 * (hl_rollup.h, "Counting requests"). Most rows are first attempts, which the CASE settles
 * without the subquery; the others cost one probe of the (request_id, attempt) index. */
static const char scan_fmt[] =
    "SELECT NULL, i.ts, i.source = 'cloud', i.input_tokens, i.output_tokens, i.cached_input_tokens,"
    " i.cache_write_tokens, i.latency_ms, i.ttft_ms, i.cost_usd, i.status, i.stream,"
    " CASE WHEN i.attempt <= 1 THEN 1 ELSE NOT EXISTS (SELECT 1 FROM inferences j"
    "  WHERE j.request_id = i.request_id AND j.attempt < i.attempt%s) END,"
    " CASE WHEN i.attempt <= 1 THEN 1 ELSE NOT EXISTS (SELECT 1 FROM inferences j"
    "  WHERE j.request_id = i.request_id AND j.attempt < i.attempt%s) END,"
    " i.shadow, i.score, i.agree, i.eval_run IS NOT NULL,"
    " i.source, i.backend, i.model, i.route_reason, i.tenant, i.key_name, i.task_type, i.sensitive"
    " FROM inferences i NOT INDEXED WHERE i.id BETWEEN ?3 AND ?4 AND i.ts >= ?1 AND i.ts < ?2"
    " AND (?5 IS NULL OR i.tenant = ?5) AND (?6 IS NULL OR i.key_name = ?6) AND (?7 IS NULL OR i.backend = ?7)"
    " AND (?8 IS NULL OR i.model = ?8) AND (?9 IS NULL OR i.task_type = ?9) AND (?10 IS NULL OR i.source = ?10)";

static void bind_filter(sqlite3_stmt *st, int first, const hl_store_filter *f) {
    const char *v[6] = {f->tenant, f->key_name, f->backend, f->model, f->task_type, f->source};
    for (int k = 0; k < 6; k++) {
        if (v[k]) sqlite3_bind_text(st, first + k, v[k], -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, first + k);
    }
}

static const char *col_text(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

static hl_err sq_scan(hl_store *s, const hl_store_query *qu, hl_store_row_fn fn, void *ctx) {
    sq *q = s->impl;
    int rc;
    unsigned same = (qu->same & 15) | (qu->same_total & 15) << 4;
    if (!q->scan[same]) {
        char cond[2][256] = {"", ""}, sql[sizeof scan_fmt + 512];
        for (int k = 0; k < 4; k++) {
            if (qu->same & (1u << k)) strcat(cond[0], same_sql[k]);
            if (qu->same_total & (1u << k)) strcat(cond[1], same_sql[k]);
        }
        snprintf(sql, sizeof sql, scan_fmt, cond[0], cond[1]);
        if ((rc = prep(q->db, sql, &q->scan[same]))) return fail(s, rc, "preparing the scan");
    }
    long long lo = 0, hi = -1, from_ms = qu->from_ms, to_ms = qu->to_ms;
    if (from_ms <= HL_STORE_TIME_MIN && to_ms >= HL_STORE_TIME_MAX) {
        lo = -(1LL << 62);
        hi = 1LL << 62;
    } else {
        sqlite3_bind_int64(q->bounds, 1, from_ms);
        sqlite3_bind_int64(q->bounds, 2, to_ms);
        rc = sqlite3_step(q->bounds);
        if (rc == SQLITE_ROW && sqlite3_column_type(q->bounds, 0) != SQLITE_NULL) {
            lo = sqlite3_column_int64(q->bounds, 0);
            hi = sqlite3_column_int64(q->bounds, 1);
        }
        sqlite3_reset(q->bounds);
        if (rc != SQLITE_ROW) return fail(s, rc, "finding the range");
        if (hi < lo) return HL_OK; /* nothing in the range */
    }
    sqlite3_stmt *st = q->scan[same];
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    sqlite3_bind_int64(st, 3, lo);
    sqlite3_bind_int64(st, 4, hi);
    bind_filter(st, 5, &qu->filter);
    hl_err e = HL_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hl_store_row r;
        r.group = NULL;
        r.ts_ms = sqlite3_column_int64(st, 1);
        r.cloud = sqlite3_column_int(st, 2) != 0;
        r.input_tokens = sqlite3_column_int64(st, 3);
        r.output_tokens = sqlite3_column_int64(st, 4);
        r.cached_input_tokens = sqlite3_column_int64(st, 5);
        r.cache_write_tokens = sqlite3_column_int64(st, 6);
        r.latency_ms = sqlite3_column_double(st, 7);
        r.ttft_ms = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 8);
        r.cost_known = sqlite3_column_type(st, 9) != SQLITE_NULL;
        r.cost_usd = r.cost_known ? sqlite3_column_double(st, 9) : 0;
        r.status = hl_store_status_parse(col_text(st, 10));
        r.stream = sqlite3_column_int(st, 11) != 0;
        r.first_in_group = sqlite3_column_int(st, 12) != 0;
        r.first_in_range = sqlite3_column_int(st, 13) != 0;
        r.shadow = sqlite3_column_int(st, 14) != 0;
        r.scored = sqlite3_column_type(st, 15) != SQLITE_NULL;
        r.score = r.scored ? sqlite3_column_double(st, 15) : 0;
        r.agree = r.scored && sqlite3_column_int(st, 16) != 0;
        r.eval = sqlite3_column_int(st, 17) != 0;
        r.source = col_text(st, 18);
        r.backend = col_text(st, 19);
        r.model = col_text(st, 20);
        r.route_reason = col_text(st, 21);
        r.tenant = col_text(st, 22);
        r.key_name = col_text(st, 23);
        r.task_type = col_text(st, 24);
        r.sensitive = sqlite3_column_int(st, 25) != 0;
        if ((e = fn(ctx, &r))) break;
    }
    if (!e && rc != SQLITE_DONE) e = fail(s, rc, "scanning");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return e;
}

/* ---- rollups (hl_rollup.h) ---- */

static hl_err sq_prior(hl_store *s, const char *request_id, long long attempt, hl_store_prior_fn fn, void *ctx) {
    sq *q = s->impl;
    int rc;
    if (!q->prior && (rc = prep(q->db, "SELECT source, backend, model, route_reason FROM inferences"
                                       " WHERE request_id = ?1 AND attempt < ?2", &q->prior)))
        return fail(s, rc, "preparing the attempts lookup");
    sqlite3_bind_text(q->prior, 1, request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q->prior, 2, attempt);
    while ((rc = sqlite3_step(q->prior)) == SQLITE_ROW) {
        hl_rollup_dims d = {col_text(q->prior, 0), col_text(q->prior, 1), col_text(q->prior, 2), col_text(q->prior, 3)};
        fn(ctx, &d);
    }
    sqlite3_reset(q->prior);
    sqlite3_clear_bindings(q->prior);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "looking up earlier attempts");
}

static hl_err sq_each_record(hl_store *s, hl_store_record_fn fn, void *ctx) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = prep(q->db, "SELECT ts, source = 'cloud', input_tokens, output_tokens, latency_ms, cost_usd, request_id,"
                         " attempt, backend, model, route_reason, status, stream, ttft_ms, cached_input_tokens,"
                         " cache_write_tokens, tenant, task_type, key_name, sensitive, shadow, score, agree, eval_run"
                         " FROM inferences ORDER BY request_id, attempt", &st);
    if (rc) return fail(s, rc, "preparing the backfill");
    hl_err e = HL_OK;
    while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hl_store_record r = {0};
        r.ts_ms = sqlite3_column_int64(st, 0);
        r.cloud = sqlite3_column_int(st, 1) != 0;
        r.input_tokens = sqlite3_column_int64(st, 2);
        r.output_tokens = sqlite3_column_int64(st, 3);
        r.latency_ms = sqlite3_column_double(st, 4);
        r.cost_known = sqlite3_column_type(st, 5) != SQLITE_NULL;
        r.cost_usd = r.cost_known ? sqlite3_column_double(st, 5) : 0;
        r.request_id = col_text(st, 6);
        r.attempt = sqlite3_column_int64(st, 7);
        r.backend = col_text(st, 8);
        r.model = col_text(st, 9);
        r.route_reason = col_text(st, 10);
        r.status = col_text(st, 11);
        r.stream = sqlite3_column_int(st, 12) != 0;
        r.ttft_ms = sqlite3_column_type(st, 13) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 13);
        r.cached_input_tokens = sqlite3_column_int64(st, 14);
        r.cache_write_tokens = sqlite3_column_int64(st, 15);
        r.tenant = col_text(st, 16);
        r.task_type = col_text(st, 17);
        r.key_name = col_text(st, 18);
        r.sensitive = sqlite3_column_int(st, 19) != 0;
        r.shadow = sqlite3_column_int(st, 20) != 0;
        r.scored = sqlite3_column_type(st, 21) != SQLITE_NULL;
        r.score = r.scored ? sqlite3_column_double(st, 21) : 0;
        r.agree = r.scored && sqlite3_column_int(st, 22) != 0;
        r.eval_run = col_text(st, 23);
        e = fn(ctx, &r);
    }
    if (!e && rc != SQLITE_DONE) e = fail(s, rc, "reading the records");
    sqlite3_finalize(st);
    return e;
}

#define ROLLUP_KEY "hour, source, backend, model, route_reason, tenant, key_name, task_type, status, flags, firsts"
#define ROLLUP_SUMS                                                                                          \
    "attempts, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, plain_input_tokens,"  \
    " cost_usd, unpriced, scored, agreed, score_sum, latency_sum_ms"

static hl_err bind_hist(sqlite3_stmt *st, int i, const uint64_t *w, size_t n) {
    if (!n) {
        sqlite3_bind_null(st, i);
        return HL_OK;
    }
    unsigned char *b = malloc(n * 8);
    if (!b) return HL_ERR_NOMEM;
    put_words(b, w, n);
    sqlite3_bind_blob(st, i, b, (int)(n * 8), free);
    return HL_OK;
}

static hl_err sq_rollup_merge(hl_store *s, bool day, const hl_rollup_cell *c, size_t n) {
    sq *q = s->impl;
    int rc;
    char sql[2048];
    snprintf(sql, sizeof sql,
                   "INSERT INTO %s (" ROLLUP_KEY ", " ROLLUP_SUMS ", latency_hist, ttft_hist)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
                   " ?20, ?21, ?22, ?23, ?24, ?25)"
                   " ON CONFLICT (" ROLLUP_KEY ") DO UPDATE SET attempts = attempts + excluded.attempts,"
                   " input_tokens = input_tokens + excluded.input_tokens,"
                   " output_tokens = output_tokens + excluded.output_tokens,"
                   " cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,"
                   " cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,"
                   " plain_input_tokens = plain_input_tokens + excluded.plain_input_tokens,"
                   " cost_usd = cost_usd + excluded.cost_usd, unpriced = unpriced + excluded.unpriced,"
                   " scored = scored + excluded.scored, agreed = agreed + excluded.agreed,"
                   " score_sum = score_sum + excluded.score_sum,"
                   " latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms,"
                   " latency_hist = hl_hist_add(latency_hist, excluded.latency_hist),"
                   " ttft_hist = hl_hist_add(ttft_hist, excluded.ttft_hist)", day ? "rollups_day" : "rollups");
    if (!q->merge[day] && (rc = prep(q->db, sql, &q->merge[day]))) return fail(s, rc, "preparing the rollup upsert");
    sqlite3_stmt *st = q->merge[day];
    for (size_t i = 0; i < n; i++) {
        const hl_rollup_cell *x = &c[i];
        const char *txt[9] = {x->source, x->backend, x->model, x->route_reason, x->tenant,
                              x->key_name, x->task_type, x->status};
        sqlite3_bind_int64(st, 1, x->hour);
        for (int k = 0; k < 8; k++) sqlite3_bind_text(st, 2 + k, txt[k], -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 10, (int)x->flags);
        sqlite3_bind_int(st, 11, (int)x->firsts);
        long long ints[6] = {x->attempts, x->input_tokens, x->output_tokens, x->cached_input_tokens,
                             x->cache_write_tokens, x->plain_input_tokens};
        for (int k = 0; k < 6; k++) sqlite3_bind_int64(st, 12 + k, ints[k]);
        sqlite3_bind_double(st, 18, x->cost_usd);
        sqlite3_bind_int64(st, 19, x->unpriced);
        sqlite3_bind_int64(st, 20, x->scored);
        sqlite3_bind_int64(st, 21, x->agreed);
        sqlite3_bind_double(st, 22, x->score_sum);
        sqlite3_bind_double(st, 23, x->latency_sum_ms);
        hl_err e = bind_hist(st, 24, x->lat, x->lat_n);
        if (!e) e = bind_hist(st, 25, x->ttft, x->ttft_n);
        rc = e ? SQLITE_OK : run(st);
        sqlite3_clear_bindings(st);
        if (e) return e;
        if (rc) return fail(s, rc, "adding to the rollups");
    }
    return HL_OK;
}

static const char *none_null(const char *v) { return v && *v ? v : NULL; }

/* Decodes column i's histogram into q->words from offset at; sets *n. */
static hl_err column_hist(sq *q, sqlite3_stmt *st, int i, size_t at, size_t *n) {
    const unsigned char *b = sqlite3_column_blob(st, i);
    size_t len = (size_t)sqlite3_column_bytes(st, i) / 8;
    *n = b ? len : 0;
    if (at + *n > q->words_cap) {
        size_t cap = (at + *n) * 2;
        uint64_t *w = realloc(q->words, cap * sizeof *w);
        if (!w) return HL_ERR_NOMEM;
        q->words = w;
        q->words_cap = cap;
    }
    if (*n) get_words(b, *n, q->words + at);
    return HL_OK;
}

static hl_err sq_rollup_scan(hl_store *s, bool day, long long from_hour, long long to_hour, const hl_store_filter *f,
                             hl_rollup_row_fn fn, void *ctx) {
    sq *q = s->impl;
    int rc;
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT " ROLLUP_KEY ", " ROLLUP_SUMS ", latency_hist, ttft_hist FROM %s"
                          " WHERE hour >= ?1 AND hour < ?2"
                          " AND (?3 IS NULL OR tenant = ?3) AND (?4 IS NULL OR key_name = ?4)"
                          " AND (?5 IS NULL OR backend = ?5) AND (?6 IS NULL OR model = ?6)"
                          " AND (?7 IS NULL OR task_type = ?7) AND (?8 IS NULL OR source = ?8)",
             day ? "rollups_day" : "rollups");
    if (!q->rollup_scan[day] && (rc = prep(q->db, sql, &q->rollup_scan[day])))
        return fail(s, rc, "preparing the rollup scan");
    sqlite3_stmt *st = q->rollup_scan[day];
    sqlite3_bind_int64(st, 1, from_hour);
    sqlite3_bind_int64(st, 2, to_hour);
    bind_filter(st, 3, f);
    hl_err e = HL_OK;
    while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hl_rollup_row r;
        r.hour = sqlite3_column_int64(st, 0);
        r.source = none_null(col_text(st, 1));
        r.backend = none_null(col_text(st, 2));
        r.model = none_null(col_text(st, 3));
        r.route_reason = none_null(col_text(st, 4));
        r.tenant = none_null(col_text(st, 5));
        r.key_name = none_null(col_text(st, 6));
        r.task_type = none_null(col_text(st, 7));
        r.status = hl_store_status_parse(col_text(st, 8));
        r.flags = (unsigned)sqlite3_column_int(st, 9);
        r.firsts = (unsigned)sqlite3_column_int(st, 10);
        r.attempts = sqlite3_column_int64(st, 11);
        r.input_tokens = sqlite3_column_int64(st, 12);
        r.output_tokens = sqlite3_column_int64(st, 13);
        r.cached_input_tokens = sqlite3_column_int64(st, 14);
        r.cache_write_tokens = sqlite3_column_int64(st, 15);
        r.plain_input_tokens = sqlite3_column_int64(st, 16);
        r.cost_usd = sqlite3_column_double(st, 17);
        r.unpriced = sqlite3_column_int64(st, 18);
        r.scored = sqlite3_column_int64(st, 19);
        r.agreed = sqlite3_column_int64(st, 20);
        r.score_sum = sqlite3_column_double(st, 21);
        r.latency_sum_ms = sqlite3_column_double(st, 22);
        if ((e = column_hist(q, st, 23, 0, &r.latency_n)) || (e = column_hist(q, st, 24, r.latency_n, &r.ttft_n))) break;
        r.latency_hist = q->words;
        r.ttft_hist = q->words + r.latency_n;
        e = fn(ctx, &r);
    }
    if (!e && rc != SQLITE_DONE) e = fail(s, rc, "reading the rollups");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return e;
}

static hl_err sq_cloud_spend(hl_store *s, long long day, long long month_day, hl_store_spend_fn fn, void *ctx) {
    sqlite3_stmt *st = ((sq *)s->impl)->spend;
    sqlite3_bind_int64(st, 1, day);
    sqlite3_bind_int64(st, 2, month_day);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_double(st, 1), sqlite3_column_double(st, 2));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "reading cloud_spend");
}

/* ---- client keys ---- */

#define KEY_COLS "id, name, prefix, key_hash, tenant, backends, models, cloud_allowed, budget_day_usd," \
                 " budget_month_usd, rpm, tpm, expires_at, created_at, last_used_at, revoked"

static void bind_opt_ll(sqlite3_stmt *st, int i, long long v) {
    if (v) sqlite3_bind_int64(st, i, v);
    else sqlite3_bind_null(st, i);
}

/* Binds the fields both insert and update write, at ?1..?11. */
static void bind_key_fields(sqlite3_stmt *st, const hl_store_key *k) {
    sqlite3_bind_text(st, 1, k->name, -1, SQLITE_STATIC);
    bind_opt_text(st, 2, k->tenant);
    bind_opt_text(st, 3, k->backends);
    bind_opt_text(st, 4, k->models);
    sqlite3_bind_int(st, 5, k->cloud_allowed);
    bind_opt_double(st, 6, k->budget_day_usd, k->budget_day_usd >= 0);
    bind_opt_double(st, 7, k->budget_month_usd, k->budget_month_usd >= 0);
    sqlite3_bind_int64(st, 8, k->rpm);
    sqlite3_bind_int64(st, 9, k->tpm);
    bind_opt_ll(st, 10, k->expires_at_ms);
    sqlite3_bind_int(st, 11, k->revoked);
}

/* A failed insert or update: a UNIQUE violation is the caller's (a name taken). */
static hl_err key_write_fail(hl_store *s, sqlite3_stmt *st, int rc, const char *doing) {
    bool taken = (rc & 0xff) == SQLITE_CONSTRAINT;
    hl_store_set_error(s, "%s: %s: %s", s->location, doing,
                       taken ? "a key with this name already exists" : sqlite3_errmsg(((sq *)s->impl)->db));
    sqlite3_finalize(st);
    return taken ? HL_ERR_INVAL : map_rc(rc);
}

static hl_err sq_key_insert(hl_store *s, const hl_store_key *k, long long *id_out) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db,
                                "INSERT INTO client_keys (name, tenant, backends, models, cloud_allowed,"
                                " budget_day_usd, budget_month_usd, rpm, tpm, expires_at, revoked, prefix,"
                                " key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                                " ?12, ?13, ?14)", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the key insert");
    bind_key_fields(st, k);
    sqlite3_bind_text(st, 12, k->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, k->hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 14, k->created_at_ms);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) return key_write_fail(s, st, rc, "inserting a key");
    sqlite3_finalize(st);
    if (id_out) *id_out = sqlite3_last_insert_rowid(q->db);
    return HL_OK;
}

static hl_err sq_key_update(hl_store *s, const hl_store_key *k) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db,
                                "UPDATE client_keys SET name = ?1, tenant = ?2, backends = ?3, models = ?4,"
                                " cloud_allowed = ?5, budget_day_usd = ?6, budget_month_usd = ?7, rpm = ?8,"
                                " tpm = ?9, expires_at = ?10, revoked = ?11 WHERE id = ?12", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the key update");
    bind_key_fields(st, k);
    sqlite3_bind_int64(st, 12, k->id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) return key_write_fail(s, st, rc, "updating a key");
    sqlite3_finalize(st);
    if (sqlite3_changes(q->db) == 0) {
        hl_store_set_error(s, "%s: no key with id %lld", s->location, k->id);
        return HL_ERR_NOTFOUND;
    }
    return HL_OK;
}

static hl_err sq_keys_list(hl_store *s, hl_store_key_fn fn, void *ctx) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "SELECT " KEY_COLS " FROM client_keys ORDER BY id", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the key list");
    hl_err e = HL_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hl_store_key k = {
            .id = sqlite3_column_int64(st, 0),
            .name = (const char *)sqlite3_column_text(st, 1),
            .prefix = (const char *)sqlite3_column_text(st, 2),
            .hash = (const char *)sqlite3_column_text(st, 3),
            .tenant = (const char *)sqlite3_column_text(st, 4),
            .backends = (const char *)sqlite3_column_text(st, 5),
            .models = (const char *)sqlite3_column_text(st, 6),
            .cloud_allowed = sqlite3_column_int(st, 7) != 0,
            .budget_day_usd = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 8),
            .budget_month_usd = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 9),
            .rpm = sqlite3_column_int64(st, 10),
            .tpm = sqlite3_column_int64(st, 11),
            .expires_at_ms = sqlite3_column_int64(st, 12),
            .created_at_ms = sqlite3_column_int64(st, 13),
            .last_used_at_ms = sqlite3_column_int64(st, 14),
            .revoked = sqlite3_column_int(st, 15) != 0,
        };
        if ((e = fn(ctx, &k))) break;
    }
    if (!e && rc != SQLITE_DONE) e = fail(s, rc, "listing keys");
    sqlite3_finalize(st);
    return e;
}

static hl_err sq_key_touch(hl_store *s, long long id, long long ms) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "UPDATE client_keys SET last_used_at = ?2 WHERE id = ?1 AND"
                                       " coalesce(last_used_at, 0) < ?2", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the key touch");
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "recording a key's use");
}

/* Records the heartbeat; since_ms >= 0: counts the live instances too. */
static hl_err sq_heartbeat_only(hl_store *s, const char *id, long long now_ms, long long since_ms, int *live) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "INSERT INTO instances (id, last_seen) VALUES (?1, ?2) ON CONFLICT (id)"
                                       " DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the heartbeat");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fail(s, rc, "recording the heartbeat");
    if (since_ms < 0) return HL_OK;
    rc = sqlite3_prepare_v2(q->db, "SELECT count(*) FROM instances WHERE last_seen >= ?1", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the count of live instances");
    sqlite3_bind_int64(st, 1, since_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *live = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? HL_OK : fail(s, rc, "counting live instances");
}

static hl_err sq_heartbeat(hl_store *s, const char *id, long long now_ms, long long since_ms, int *live) {
    hl_err e = sq_heartbeat_only(s, id, now_ms, since_ms < 0 ? 0 : since_ms, live);
    if (e) return e;
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "DELETE FROM budget_leases WHERE instance <> ?1 AND instance"
                                       " NOT IN (SELECT id FROM instances WHERE last_seen >= ?2)", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the lease expiry");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, since_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "expiring the leases of dead instances");
}

static hl_err sq_lease_read(hl_store *s, const char *subject, const hl_store_lease_ask *a, long long day,
                           long long month_day, long long now_ms, long long live_since_ms,
                           hl_store_lease_result *out, double *mine) {
    sq *q = s->impl;
    int live = 0;
    hl_err e = sq_heartbeat_only(s, s->instance, now_ms, -1, &live);
    if (e) return e;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "DELETE FROM budget_leases WHERE subject = ?1 AND instance <> ?2 AND instance"
                                       " NOT IN (SELECT id FROM instances WHERE last_seen >= ?3)", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the lease expiry");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->instance, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, live_since_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return fail(s, rc, "expiring the leases of dead instances");
    rc = sqlite3_prepare_v2(q->db, a->key_id
        ? "SELECT (SELECT total(cost_usd) FROM inferences WHERE key_id = ?3 AND source = 'cloud' AND ts >= ?4),"
          " (SELECT total(cost_usd) FROM inferences WHERE key_id = ?3 AND source = 'cloud' AND ts >= ?5),"
          " (SELECT total(amount) FROM budget_leases WHERE subject = ?1 AND instance <> ?2),"
          " (SELECT total(amount) FROM budget_leases WHERE subject = ?1 AND instance = ?2)"
        : "SELECT (SELECT total(cost_usd) FROM cloud_spend WHERE tenant = ?6 AND day >= ?4 / 86400000),"
          " (SELECT total(cost_usd) FROM cloud_spend WHERE tenant = ?6 AND day >= ?5 / 86400000),"
          " (SELECT total(amount) FROM budget_leases WHERE subject = ?1 AND instance <> ?2),"
          " (SELECT total(amount) FROM budget_leases WHERE subject = ?1 AND instance = ?2)", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the lease read");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->instance, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, a->key_id);
    sqlite3_bind_int64(st, 4, day * 86400000);
    sqlite3_bind_int64(st, 5, month_day * 86400000);
    sqlite3_bind_text(st, 6, a->tenant ? a->tenant : "", -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->spend_day = sqlite3_column_double(st, 0);
        out->spend_month = sqlite3_column_double(st, 1);
        out->others = sqlite3_column_double(st, 2);
        *mine = sqlite3_column_double(st, 3);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? HL_OK : fail(s, rc, "reading the spend and leases");
}

static hl_err sq_lease_add(hl_store *s, const char *subject, double delta, long long now_ms) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, delta > 0
        ? "INSERT INTO budget_leases (subject, instance, amount, updated) VALUES (?1, ?2, ?3, ?4)"
          " ON CONFLICT (subject, instance) DO UPDATE SET amount = max(0, amount + excluded.amount),"
          " updated = excluded.updated"
        : "UPDATE budget_leases SET amount = max(0, amount + ?3), updated = ?4 WHERE subject = ?1 AND instance = ?2",
        -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the lease change");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->instance, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, delta);
    sqlite3_bind_int64(st, 4, now_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "changing a lease");
}

static hl_err sq_leases_list(hl_store *s, hl_store_lease_fn fn, void *ctx) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "SELECT subject, amount FROM budget_leases WHERE instance = ?1 ORDER BY subject",
                                -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the lease list");
    sqlite3_bind_text(st, 1, s->instance, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_double(st, 1));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "listing the leases");
}

static hl_err sq_key_spend(hl_store *s, long long day, long long month_day, hl_store_key_spend_fn fn, void *ctx) {
    sq *q = s->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db,
                                "SELECT key_id, total(cost_usd) FILTER (WHERE ts >= ?1 * 86400000), total(cost_usd)"
                                " FROM inferences WHERE key_id IS NOT NULL AND source = 'cloud'"
                                " AND ts >= ?2 * 86400000 GROUP BY key_id", -1, &st, NULL);
    if (rc) return fail(s, rc, "preparing the key spend");
    sqlite3_bind_int64(st, 1, day);
    sqlite3_bind_int64(st, 2, month_day);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1), sqlite3_column_double(st, 2));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HL_OK : fail(s, rc, "reading the key spend");
}

const hl_store_ops hl_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .load_state = sq_load_state,
    .begin = sq_begin,
    .insert = sq_insert,
    .batch = 256,
    .save_state = sq_save_state,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .scan = sq_scan,
    .prior = sq_prior,
    .each_record = sq_each_record,
    .rollup_merge = sq_rollup_merge,
    .rollup_scan = sq_rollup_scan,
    .count = sq_count,
    .cloud_spend = sq_cloud_spend,
    .key_insert = sq_key_insert,
    .key_update = sq_key_update,
    .keys_list = sq_keys_list,
    .key_touch = sq_key_touch,
    .heartbeat = sq_heartbeat,
    .key_spend = sq_key_spend,
    .lease_read = sq_lease_read,
    .lease_add = sq_lease_add,
    .leases_list = sq_leases_list,
};
