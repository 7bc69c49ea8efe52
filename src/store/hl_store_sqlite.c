/* hl_store_sqlite: the embedded store backend (hl_store_int.h), one SQLite file.
 *
 * The schema is created and upgraded by numbered migrations applied when the store opens,
 * each in the transaction that records it in schema_version, so a store is always exactly
 * at one version and two processes opening a new file at once cannot both migrate it.
 * Migrations are append-only: a released one is never edited; a change is a new one.
 *
 * WAL mode lets reports read while the indexer writes; synchronous=NORMAL is enough
 * because the journal, not this file, is the durable record: a commit lost to a power cut
 * is re-indexed from the journal (its offset was lost with it).
 *
 * Every statement that carries data is prepared once and bound. The only SQL assembled at
 * run time is the scan, from the constant fragments in group_sql[] (never from input). */
#include "hl_store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- migrations ---- */

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
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- the connection ---- */

typedef struct sq {
    sqlite3 *db;
    int version;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *insert, *lookup;
    sqlite3_stmt *load_state, *save_state;
    sqlite3_stmt *count, *bounds, *spend;
    sqlite3_stmt *scan[HL_STORE_GROUP_PROMPT_LENGTH + 1]; /* prepared on first use */
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

static void sq_close(hl_store *s) {
    sq *q = s->impl;
    if (!q) return;
    sqlite3_stmt *all[] = {q->begin, q->commit, q->rollback, q->insert, q->lookup,
                           q->load_state, q->save_state, q->count, q->bounds, q->spend};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
    for (size_t i = 0; i < sizeof q->scan / sizeof q->scan[0]; i++) sqlite3_finalize(q->scan[i]);
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

static hl_err sq_open(hl_store *s, const char *location, char *errbuf, size_t errbuf_len) {
    sq *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(errbuf, errbuf_len, "%s: out of memory", location);
        return HL_ERR_NOMEM;
    }
    s->impl = q;
    /* NOMUTEX: a connection is used by one thread at a time (hl_store.h says so). */
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
                          "PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 0")))
        goto fail;
    hl_err e = migrate(s, q, errbuf, errbuf_len);
    if (e) {
        sq_close(s);
        return e;
    }
    doing = "preparing statements";
    if ((rc = prep(q->db, "BEGIN IMMEDIATE", &q->begin)) || (rc = prep(q->db, "COMMIT", &q->commit)) ||
        (rc = prep(q->db, "ROLLBACK", &q->rollback)) ||
        (rc = prep(q->db,
                   "INSERT OR IGNORE INTO inferences (ts, source, input_tokens, output_tokens,"
                   " latency_ms, cost_usd, request_id, attempt, backend, model, route_reason, status,"
                   " stream, ttft_ms, cached_input_tokens, cache_write_tokens, usage_estimated, tenant,"
                   " task_type, task_inferred, sensitive, confidence, http_status, error, key_id, key_name,"
                   " shadow, score, score_method, agree, reference, ref_output_tokens, confidence_margin,"
                   " confidence_min, eval_run)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
                   " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32,"
                   " ?33, ?34, ?35)", &q->insert)) ||
        (rc = prep(q->db, "SELECT ts FROM inferences WHERE request_id = ?1 AND attempt = ?2", &q->lookup)) ||
        (rc = prep(q->db, "SELECT dev, inode, byte_offset, size, head_len, head_hash"
                          " FROM journal_state WHERE journal = ?1", &q->load_state)) ||
        (rc = prep(q->db, "INSERT OR REPLACE INTO journal_state (journal, dev, inode, byte_offset,"
                          " size, head_len, head_hash, updated_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                   &q->save_state)) ||
        (rc = prep(q->db, "SELECT count(*) FROM inferences", &q->count)) ||
        (rc = prep(q->db, "SELECT min(id), max(id) FROM inferences WHERE ts >= ?1 AND ts < ?2", &q->bounds)) ||
        (rc = prep(q->db, "SELECT tenant, total(cost_usd) FILTER (WHERE day >= ?1), total(cost_usd)"
                          " FROM cloud_spend WHERE day >= ?2 GROUP BY tenant", &q->spend)))
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

static hl_err sq_insert_one(hl_store *s, const hl_store_record *r, hl_store_insert_result *res) {
    sq *q = s->impl;
    sqlite3_stmt *st = q->insert;
    /* Strings are bound SQLITE_STATIC: r's strings outlive the step, and the bindings are
     * cleared before returning. */
    sqlite3_bind_int64(st, 1, r->ts_ms);
    sqlite3_bind_text(st, 2, r->cloud ? "cloud" : "local", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->input_tokens);
    sqlite3_bind_int64(st, 4, r->output_tokens);
    sqlite3_bind_double(st, 5, r->latency_ms);
    bind_opt_double(st, 6, r->cost_usd, r->cost_known);
    sqlite3_bind_text(st, 7, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, r->attempt);
    sqlite3_bind_text(st, 9, r->backend, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, r->route_reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 13, r->stream);
    bind_opt_double(st, 14, r->ttft_ms, r->ttft_ms >= 0);
    sqlite3_bind_int64(st, 15, r->cached_input_tokens);
    sqlite3_bind_int64(st, 16, r->cache_write_tokens);
    sqlite3_bind_int(st, 17, r->usage_estimated);
    sqlite3_bind_text(st, 18, r->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 19, r->task_type, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 20, r->task_inferred);
    sqlite3_bind_int(st, 21, r->sensitive);
    bind_opt_double(st, 22, r->confidence, r->confidence >= 0);
    sqlite3_bind_int64(st, 23, r->http_status);
    sqlite3_bind_text(st, 24, r->error, -1, SQLITE_STATIC);
    if (r->key_id > 0) sqlite3_bind_int64(st, 25, r->key_id);
    sqlite3_bind_text(st, 26, r->key_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 27, r->shadow);
    if (r->scored) {
        sqlite3_bind_double(st, 28, r->score);
        sqlite3_bind_text(st, 29, r->score_method, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 30, r->agree);
        sqlite3_bind_text(st, 31, r->reference, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 32, r->ref_output_tokens);
    }
    bind_opt_double(st, 33, r->confidence_margin, r->signals);
    bind_opt_double(st, 34, r->confidence_min, r->signals);
    sqlite3_bind_text(st, 35, r->eval_run, -1, SQLITE_STATIC);
    int rc = run(st);
    sqlite3_clear_bindings(st);
    if (rc) return fail(s, rc, "inserting a record");
    if (sqlite3_changes(q->db) == 1) {
        *res = HL_STORE_INSERTED;
        return HL_OK;
    }
    /* Ignored: tell a replayed line (same timestamp) from another line with the same key. */
    sqlite3_bind_text(q->lookup, 1, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q->lookup, 2, r->attempt);
    rc = sqlite3_step(q->lookup);
    long long ts = rc == SQLITE_ROW ? sqlite3_column_int64(q->lookup, 0) : 0;
    sqlite3_reset(q->lookup);
    sqlite3_clear_bindings(q->lookup);
    if (rc == SQLITE_DONE) {
        hl_store_set_error(s, "%s: record %s/%lld refused by the schema", s->location, r->request_id, r->attempt);
        return HL_ERR_INVAL;
    }
    if (rc != SQLITE_ROW) return fail(s, rc, "looking up a record");
    *res = ts == r->ts_ms ? HL_STORE_DUPLICATE : HL_STORE_CONFLICT;
    return HL_OK;
}

/* One statement per record: SQLite runs in-process, so a batch costs nothing to send. */
static hl_err sq_insert(hl_store *s, const hl_store_record *r, size_t n, hl_store_insert_result *res) {
    for (size_t i = 0; i < n; i++) {
        hl_err e = sq_insert_one(s, &r[i], &res[i]);
        if (e) return e;
    }
    return HL_OK;
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

/* Per group: the value selected, and the condition that an earlier attempt j is in the same
 * group as row i. Constant text: the only SQL not written out in full above. The unary +
 * keeps these terms (and j's ts range below) from being used to pick an index: the probe
 * must go through (request_id, attempt). Left free, the planner takes (source, ts) or
 * (backend, ts) and each probe scans a whole source: quadratic (minutes at 1M records). */
#define PROMPT_BUCKET(t)                                                                           \
    "(CASE WHEN " t ".input_tokens <= 1000 THEN '0-1k' WHEN " t ".input_tokens <= 4000 THEN '1k-4k'" \
    " WHEN " t ".input_tokens <= 8000 THEN '4k-8k' ELSE '8k+' END)"
static const struct {
    const char *col, *same;
} group_sql[] = {
    [HL_STORE_GROUP_NONE] = {"NULL", "1"},
    [HL_STORE_GROUP_SOURCE] = {"i.source", "+j.source IS i.source"},
    [HL_STORE_GROUP_BACKEND] = {"i.backend", "+j.backend IS i.backend"},
    [HL_STORE_GROUP_MODEL] = {"i.model", "+j.model IS i.model"},
    [HL_STORE_GROUP_TASK_TYPE] = {"i.task_type", "+j.task_type IS i.task_type"},
    [HL_STORE_GROUP_ROUTE_REASON] = {"i.route_reason", "+j.route_reason IS i.route_reason"},
    [HL_STORE_GROUP_TENANT] = {"i.tenant", "+j.tenant IS i.tenant"},
    [HL_STORE_GROUP_KEY] = {"i.key_name", "+j.key_name IS i.key_name"},
    [HL_STORE_GROUP_DAY] = {"i.ts / 86400000", "+j.ts / 86400000 = i.ts / 86400000"},
    [HL_STORE_GROUP_PROMPT_LENGTH] = {PROMPT_BUCKET("i"), PROMPT_BUCKET("+j") " = " PROMPT_BUCKET("i")},
};

/* The scan reads the table in id order (the journal's order, so nearly time order) between
 * the first and last id in the range, which the ts index finds, and filters on ts again:
 * sequential reads instead of one table lookup per index entry.
 *
 * first_in_group / first_in_range let the caller count distinct requests in one pass: a
 * request is counted at its earliest attempt within the range (and group). Most rows are
 * first attempts, which the CASE settles without the subquery; the others cost one probe of
 * the (request_id, attempt) index. */
static const char scan_fmt[] =
    "SELECT %s, i.ts, i.source = 'cloud', i.input_tokens, i.output_tokens, i.cached_input_tokens,"
    " i.cache_write_tokens, i.latency_ms, i.ttft_ms, i.cost_usd, i.status, i.stream,"
    " CASE WHEN i.attempt <= 1 THEN 1 ELSE NOT EXISTS (SELECT 1 FROM inferences j"
    "  WHERE j.request_id = i.request_id AND j.attempt < i.attempt AND +j.ts >= ?1 AND +j.ts < ?2"
    "  AND %s) END,"
    " CASE WHEN i.attempt <= 1 THEN 1 ELSE NOT EXISTS (SELECT 1 FROM inferences j"
    "  WHERE j.request_id = i.request_id AND j.attempt < i.attempt AND +j.ts >= ?1 AND +j.ts < ?2) END,"
    " i.shadow, i.score, i.agree, i.eval_run IS NOT NULL"
    " FROM inferences i NOT INDEXED WHERE i.id BETWEEN ?3 AND ?4 AND i.ts >= ?1 AND i.ts < ?2";

static hl_err sq_scan(hl_store *s, hl_store_group g, long long from_ms, long long to_ms,
                      hl_store_row_fn fn, void *ctx) {
    sq *q = s->impl;
    int rc;
    if (!q->scan[g]) {
        char sql[sizeof scan_fmt + 640];
        snprintf(sql, sizeof sql, scan_fmt, group_sql[g].col, group_sql[g].same);
        if ((rc = prep(q->db, sql, &q->scan[g]))) return fail(s, rc, "preparing the scan");
    }
    long long lo = 0, hi = -1;
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
    sqlite3_stmt *st = q->scan[g];
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    sqlite3_bind_int64(st, 3, lo);
    sqlite3_bind_int64(st, 4, hi);
    hl_err e = HL_OK;
    char day[32];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hl_store_row r;
        if (g == HL_STORE_GROUP_DAY) {
            hl_store_format_time(sqlite3_column_int64(st, 0) * 86400000LL, day, sizeof day);
            day[10] = '\0';
            r.group = day;
        } else {
            r.group = (const char *)sqlite3_column_text(st, 0);
        }
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
        r.status = hl_store_status_parse((const char *)sqlite3_column_text(st, 10));
        r.stream = sqlite3_column_int(st, 11) != 0;
        r.first_in_group = sqlite3_column_int(st, 12) != 0;
        r.first_in_range = sqlite3_column_int(st, 13) != 0;
        r.shadow = sqlite3_column_int(st, 14) != 0;
        r.scored = sqlite3_column_type(st, 15) != SQLITE_NULL;
        r.score = r.scored ? sqlite3_column_double(st, 15) : 0;
        r.agree = r.scored && sqlite3_column_int(st, 16) != 0;
        r.eval = sqlite3_column_int(st, 17) != 0;
        if ((e = fn(ctx, &r))) break;
    }
    if (!e && rc != SQLITE_DONE) e = fail(s, rc, "scanning");
    sqlite3_reset(st);
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

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

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
