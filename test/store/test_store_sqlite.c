/* Tests for hl_store over SQLite: migrations from an empty file and idempotent reopen; a
 * journal indexed in pieces, a partial last line included; replay after a lost offset with
 * no duplicates and no gaps; rotation, truncation and replacement; malformed and conflicting
 * lines; the background indexer (rotation drained, final pass on stop); and the crash test
 * of issue 5: a child appends and indexes concurrently, is SIGKILLed, and after a re-index
 * every line of the journal is present exactly once. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_store.h"
#include "hl_test.h"
#include "store_crash.h"
#include "store_keys.h"

/* ---- fixtures ---- */

typedef struct paths {
    char dir[64];
    char journal[128];
    char db[128];
} paths;

static void paths_init(paths *p) {
    snprintf(p->dir, sizeof p->dir, "/tmp/hl_store_test_XXXXXX");
    if (!mkdtemp(p->dir)) abort();
    snprintf(p->journal, sizeof p->journal, "%s/ledger.jsonl", p->dir);
    snprintf(p->db, sizeof p->db, "%s/ledger.db", p->dir);
}

static void paths_cleanup(paths *p) {
    const char *suffixes[] = {"ledger.jsonl", "ledger.jsonl.1", "ledger.db", "ledger.db-wal",
                              "ledger.db-shm", "other.db"};
    char f[192];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(f, sizeof f, "%s/%s", p->dir, suffixes[i]);
        unlink(f);
    }
    rmdir(p->dir);
}

/* Record i of a synthetic workload (request req_<i>, attempt 1, one second apart from
 * 2024-05-01T00:00:00Z); its request id is written into id[64]. */
static hl_ledger_record record_of(int i, const char *id_prefix, char *id) {
    snprintf(id, 64, "%s%06d", id_prefix, i);
    hl_ledger_record r = {0};
    r.timestamp = 1714521600.0 + i + 0.5;
    r.request_id = id;
    r.attempt = 1;
    r.cloud = i % 3 == 0;
    r.backend = r.cloud ? "anthropic" : "vllm";
    r.model = r.cloud ? "claude-3-5-sonnet-20241022" : "llama-3.1-8b";
    r.route_reason = "rule:default";
    r.status = "ok";
    r.stream = i % 2 == 0;
    r.usage = (hl_usage){.input_tokens = 100 + i, .output_tokens = 10 + i, .known = true};
    r.latency_ms = 100 + i;
    r.ttft_ms = r.stream ? 5 + i : -1;
    r.confidence = -1;
    r.cost_usd = 0.001 * i;
    r.cost_known = true;
    r.http_status = 200;
    return r;
}

/* Its ledger line, formatted by the ledger itself. */
static void format_record(int i, const char *id_prefix, hl_buf *out) {
    char id[64];
    hl_ledger_record r = record_of(i, id_prefix, id);
    hl_buf_reset(out);
    if (hl_ledger_format(&r, out) != HL_OK) abort();
}

static void append_bytes(const char *path, const char *p, size_t n) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n) abort();
    close(fd);
}

/* Appends r's ledger line, formatted by the ledger itself. */
static void append_record(const char *path, const hl_ledger_record *r) {
    hl_buf b;
    hl_buf_init(&b, 0);
    if (hl_ledger_format(r, &b) != HL_OK) abort();
    append_bytes(path, b.data, b.len);
    hl_buf_release(&b);
}

/* Appends records [from, to) and returns the journal's size afterwards. */
static long long append_records(const char *path, int from, int to, const char *prefix) {
    hl_buf b;
    hl_buf_init(&b, 0);
    for (int i = from; i < to; i++) {
        format_record(i, prefix, &b);
        append_bytes(path, b.data, b.len);
    }
    hl_buf_release(&b);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* One SQL query answering one integer, on a separate connection (what a user's sqlite3 sees). */
static long long sql_int(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_DONE) v = 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static unsigned long long count(hl_store *s) {
    unsigned long long n = 0;
    if (hl_store_count(s, &n) != HL_OK) return (unsigned long long)-1;
    return n;
}

/* ---- time ---- */

HL_TEST(parse_time_forms) {
    long long ms;
    HL_CHECK(hl_store_parse_time("2024-05-01T12:34:56.789Z", 24, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, 1714566896789LL);
    HL_CHECK(hl_store_parse_time("2024-05-01", 10, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, 1714521600000LL);
    HL_CHECK(hl_store_parse_time("2024-05-01T12:34", 16, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, 1714566840000LL);
    HL_CHECK(hl_store_parse_time("2024-05-01 12:34:56", 19, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, 1714566896000LL);
    HL_CHECK(hl_store_parse_time("2024-05-01T14:34:56.5+02:00", 27, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, 1714566896500LL);
    HL_CHECK(hl_store_parse_time("2024-02-29T00:00:00Z", 20, &ms) == HL_OK);
    HL_CHECK(hl_store_parse_time("2023-02-29", 10, &ms) == HL_ERR_PARSE);
    HL_CHECK(hl_store_parse_time("2024-13-01", 10, &ms) == HL_ERR_PARSE);
    HL_CHECK(hl_store_parse_time("2024-05-01T24:00", 16, &ms) == HL_ERR_PARSE);
    HL_CHECK(hl_store_parse_time("2024-05-01T12:34:56.Z", 21, &ms) == HL_ERR_PARSE);
    HL_CHECK(hl_store_parse_time("2024-05-01x", 11, &ms) == HL_ERR_PARSE);
    HL_CHECK(hl_store_parse_time("yesterday", 9, &ms) == HL_ERR_PARSE);
    HL_CHECK(hl_store_parse_time("2024-05", 7, &ms) == HL_ERR_PARSE);
    char out[32];
    hl_store_format_time(1714566896789LL, out, sizeof out);
    HL_CHECK_STR_EQ(out, "2024-05-01T12:34:56.789Z");
    hl_store_format_time(0, out, sizeof out);
    HL_CHECK_STR_EQ(out, "1970-01-01T00:00:00.000Z");
}

/* ---- migrations ---- */

HL_TEST(migrations_from_an_empty_file_and_reopen) {
    paths p;
    paths_init(&p);
    append_bytes(p.db, "", 0); /* an empty file is a valid, empty database */
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_store_schema_version(s), 9);
    HL_CHECK_INT_EQ(count(s), 0);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM schema_version"), 9);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                  "('inferences', 'journal_state', 'ledger', 'inferences_ts',"
                                  " 'cloud_spend', 'rollups')"), 6);
    /* Migration 9 dropped what the indexer paid for and nothing read. */
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                  "('inferences_source_ts', 'inferences_backend_ts',"
                                  " 'inferences_tenant_ts', 'inferences_cloud_spend')"), 0);
    /* Every ledger field is a column. */
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM pragma_table_info('inferences')"), 37);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);

    /* Reopening applies nothing again. */
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_store_schema_version(s), 9);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM schema_version"), 9);

    /* A store written by a newer hybridllm is refused, not downgraded. */
    HL_CHECK_INT_EQ(sql_int(p.db, "INSERT INTO schema_version VALUES (99, 'future')"), 0);
    HL_CHECK(hl_store_open(&s, p.db, err, sizeof err) == HL_ERR_UNSUPPORTED);
    HL_CHECK(s == NULL);
    HL_CHECK(strstr(err, "newer") && strstr(err, p.db));
    paths_cleanup(&p);
}

/* A new store gets 16 KiB pages (fewer WAL writes a record); one made before keeps its own
 * size, which SQLite fixes with the first page written, and is indexed as before. */
HL_TEST(new_stores_get_16k_pages_old_ones_keep_theirs) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "PRAGMA page_size"), 16384);
    paths_cleanup(&p);

    paths_init(&p);
    sqlite3 *h = NULL;
    HL_REQUIRE(sqlite3_open(p.db, &h) == SQLITE_OK);
    HL_REQUIRE(sqlite3_exec(h, "PRAGMA page_size = 4096; PRAGMA user_version = 0; VACUUM", NULL, NULL, NULL) ==
               SQLITE_OK);
    sqlite3_close(h);
    HL_CHECK_INT_EQ(sql_int(p.db, "PRAGMA page_size"), 4096);
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    long long size = append_records(p.journal, 0, 40, "old");
    hl_store_index_stats st;
    HL_CHECK(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 40);
    HL_CHECK_INT_EQ(st.offset, size);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "PRAGMA page_size"), 4096);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences"), 40);
    paths_cleanup(&p);
}

HL_TEST(open_errors_name_the_file) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    append_bytes(p.db, "this is not a database, it is a text file of some length.........\n", 66);
    HL_CHECK(hl_store_open(&s, p.db, err, sizeof err) != HL_OK);
    HL_CHECK(s == NULL);
    HL_CHECK(strstr(err, p.db) != NULL);
    HL_CHECK(hl_store_open(&s, "/nonexistent-dir/x/ledger.db", err, sizeof err) != HL_OK);
    HL_CHECK(strstr(err, "/nonexistent-dir/x/ledger.db") != NULL);
    paths_cleanup(&p);
}

/* ---- indexing ---- */

HL_TEST(index_in_pieces_with_a_partial_last_line) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    /* No journal yet: nothing to do, no error. */
    HL_CHECK(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 0);

    long long size10 = append_records(p.journal, 0, 10, "req_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 10);
    HL_CHECK_INT_EQ(st.offset, size10);

    /* Five lines and the first half of a sixth. */
    long long size15 = append_records(p.journal, 10, 15, "req_");
    hl_buf b;
    hl_buf_init(&b, 0);
    format_record(15, "req_", &b);
    size_t half = b.len / 2;
    append_bytes(p.journal, b.data, half);
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 5);
    HL_CHECK_INT_EQ(st.inserted, 5);
    HL_CHECK_INT_EQ(st.offset, size15); /* stops before the partial line */
    HL_CHECK_INT_EQ(count(s), 15);
    /* Nothing new: the partial line is still waiting. */
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 0);
    HL_CHECK_INT_EQ(st.offset, size15);

    /* Its second half, and four more. */
    append_bytes(p.journal, b.data + half, b.len - half);
    long long size20 = append_records(p.journal, 16, 20, "req_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 5);
    HL_CHECK_INT_EQ(st.malformed, 0);
    HL_CHECK_INT_EQ(st.offset, size20);
    HL_CHECK_INT_EQ(count(s), 20);
    hl_buf_release(&b);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(DISTINCT request_id) FROM inferences"), 20);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT byte_offset FROM journal_state"), size20);
    paths_cleanup(&p);
}

HL_TEST(every_field_round_trips) {
    paths p;
    paths_init(&p);
    hl_ledger_record r = {0};
    r.timestamp = 1714566896.5;
    r.request_id = "req_\"quoted\"";
    r.attempt = 2;
    r.cloud = true;
    r.backend = "openai";
    r.model = "gpt-4o";
    r.route_reason = "fallback:overloaded";
    r.status = "error";
    r.tenant = "acme";
    r.task_type = "code";
    r.task_inferred = true;
    r.sensitive = true;
    r.stream = true;
    r.usage = (hl_usage){.input_tokens = 1234, .output_tokens = 56, .cached_input_tokens = 1000,
                         .cache_write_tokens = 7, .estimated = true};
    r.latency_ms = 812.25;
    r.ttft_ms = 99.5;
    r.confidence = 0.75;
    r.cost_usd = 0;
    r.cost_known = false; /* null cost */
    r.http_status = 529;
    r.error = "overloaded \xc3\xa9\n";
    r.shadow = true;
    r.scored = true;
    r.score = 0.625;
    r.score_method = "rouge_l";
    r.agree = true;
    r.reference = "served";
    r.ref_output_tokens = 41;
    r.signals = true;
    r.confidence_margin = 0.5;
    r.confidence_min = 0.125;
    r.eval_run = "ev_7";
    r.replica = "http://127.0.0.1:8001/v1";
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    append_bytes(p.journal, b.data, b.len);
    hl_buf_release(&b);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db,
        "SELECT count(*) FROM inferences WHERE ts = 1714566896500 AND source = 'cloud'"
        " AND input_tokens = 1234 AND output_tokens = 56 AND latency_ms = 812.25"
        " AND cost_usd IS NULL AND request_id = 'req_\"quoted\"' AND attempt = 2"
        " AND backend = 'openai' AND model = 'gpt-4o' AND route_reason = 'fallback:overloaded'"
        " AND status = 'error' AND stream = 1 AND ttft_ms = 99.5 AND cached_input_tokens = 1000"
        " AND cache_write_tokens = 7 AND usage_estimated = 1 AND tenant = 'acme'"
        " AND task_type = 'code' AND task_inferred = 1 AND sensitive = 1 AND confidence = 0.75"
        " AND http_status = 529 AND error = 'overloaded ' || char(233) || char(10)"
        " AND shadow = 1 AND score = 0.625 AND score_method = 'rouge_l' AND agree = 1"
        " AND reference = 'served' AND ref_output_tokens = 41 AND confidence_margin = 0.5"
        " AND confidence_min = 0.125 AND eval_run = 'ev_7'"
        " AND replica = 'http://127.0.0.1:8001/v1'"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM ledger WHERE timestamp = '2024-05-01T12:34:56.500Z'"), 1);
    paths_cleanup(&p);
}

/* The scan hands out the quality fields (shadow, score, agree, eval) and groups by prompt
 * length in the brief's buckets: 1000, 4000 and 8000 input tokens are the bounds, inclusive. */
typedef struct qscan {
    int rows, shadow, scored, agree, eval;
    double score;
    char groups[8][16];
    int n_groups;
} qscan;

static hl_err on_quality_row(void *ctx, const hl_store_row *r) {
    qscan *q = ctx;
    q->rows++;
    q->shadow += r->shadow;
    q->scored += r->scored;
    q->agree += r->agree;
    q->eval += r->eval;
    q->score += r->score;
    if (q->n_groups < 8) snprintf(q->groups[q->n_groups++], sizeof q->groups[0], "%s", r->group ? r->group : "(null)");
    return HL_OK;
}

HL_TEST(scan_carries_quality_fields_and_prompt_length_buckets) {
    paths p;
    paths_init(&p);
    static const long inputs[] = {1000, 1001, 4000, 4001, 8000, 8001};
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%d", i);
        hl_ledger_record r = {0};
        r.timestamp = 1714566896.0 + i;
        r.request_id = id;
        r.attempt = 1;
        r.backend = "vllm";
        r.model = "m";
        r.route_reason = "rule:default";
        r.status = "ok";
        r.usage = (hl_usage){.input_tokens = inputs[i], .output_tokens = 5, .known = true};
        r.latency_ms = 10;
        r.ttft_ms = -1;
        r.confidence = -1;
        r.cost_known = true;
        r.http_status = 200;
        r.shadow = i % 2 == 1;
        r.scored = i >= 2;
        r.score = r.scored ? 0.25 * (i - 1) : 0;
        r.score_method = "token_f1";
        r.agree = i >= 4;
        r.reference = "served";
        r.eval_run = i == 5 ? "ev" : NULL;
        append_record(p.journal, &r);
    }
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    qscan q = {0};
    HL_REQUIRE(hl_store_scan(s, HL_STORE_GROUP_PROMPT_LENGTH, HL_STORE_TIME_MIN, HL_STORE_TIME_MAX, on_quality_row,
                             &q) == HL_OK);
    HL_CHECK_INT_EQ(q.rows, 6);
    HL_CHECK_INT_EQ(q.shadow, 3);
    HL_CHECK_INT_EQ(q.scored, 4);
    HL_CHECK_INT_EQ(q.agree, 2);
    HL_CHECK_INT_EQ(q.eval, 1);
    HL_CHECK_NEAR(q.score, 0.25 + 0.5 + 0.75 + 1.0, 1e-12);
    static const char *const want[] = {"0-1k", "1k-4k", "1k-4k", "4k-8k", "4k-8k", "8k+"};
    for (int i = 0; i < 6; i++) HL_CHECK_STR_EQ(q.groups[i], want[i]);
    hl_store_group g;
    HL_CHECK(hl_store_group_parse("prompt_length", &g) == HL_OK && g == HL_STORE_GROUP_PROMPT_LENGTH);
    hl_store_close(s);
    paths_cleanup(&p);
}

/* A pass whose commit never happened (the process died, or the database was restored from an
 * older copy): the offset is behind the records. Re-indexing replays the tail. */
HL_TEST(replay_after_a_lost_offset_no_duplicates_no_gaps) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    long long size50 = append_records(p.journal, 0, 50, "req_");
    append_records(p.journal, 50, 100, "req_");
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    HL_CHECK_INT_EQ(count(s), 100);

    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE journal_state SET byte_offset = %lld", size50);
    HL_CHECK_INT_EQ(sql_int(p.db, sql), 0);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 50);
    HL_CHECK_INT_EQ(st.duplicates, 50);
    HL_CHECK_INT_EQ(st.inserted, 0);
    HL_CHECK_INT_EQ(st.conflicts, 0);

    /* Rows committed, offset lost entirely; and new lines written meanwhile. */
    HL_CHECK_INT_EQ(sql_int(p.db, "DELETE FROM journal_state"), 0);
    HL_CHECK_INT_EQ(sql_int(p.db, "DELETE FROM inferences WHERE request_id IN ('req_000007', 'req_000077')"), 0);
    long long size150 = append_records(p.journal, 100, 150, "req_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 150);
    HL_CHECK_INT_EQ(st.inserted, 52); /* the 50 new ones and the 2 gaps */
    HL_CHECK_INT_EQ(st.duplicates, 98);
    HL_CHECK_INT_EQ(st.offset, size150);
    HL_CHECK_INT_EQ(count(s), 150);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(DISTINCT request_id) FROM inferences"), 150);
    paths_cleanup(&p);
}

HL_TEST(truncation_rotation_and_replacement_are_read_from_the_start) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    append_records(p.journal, 0, 20, "a_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(!st.restarted);

    /* Truncated (logrotate copytruncate) and written again, shorter than before. */
    HL_REQUIRE(truncate(p.journal, 0) == 0);
    long long size = append_records(p.journal, 0, 5, "b_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(st.restarted);
    HL_CHECK_INT_EQ(st.inserted, 5);
    HL_CHECK_INT_EQ(st.offset, size);
    HL_CHECK_INT_EQ(count(s), 25);

    /* Rotated: renamed away and a new file created in its place. */
    char rotated[192];
    snprintf(rotated, sizeof rotated, "%s.1", p.journal);
    HL_REQUIRE(rename(p.journal, rotated) == 0);
    append_records(p.journal, 0, 3, "c_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(st.restarted);
    HL_CHECK_INT_EQ(st.inserted, 3);
    HL_CHECK_INT_EQ(count(s), 28);

    /* Truncated and written past the old offset before we looked: same inode, bigger file;
     * its first bytes tell it apart. */
    HL_REQUIRE(truncate(p.journal, 0) == 0);
    append_records(p.journal, 0, 10, "d_");
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(st.restarted);
    HL_CHECK_INT_EQ(st.inserted, 10);
    HL_CHECK_INT_EQ(count(s), 38);

    /* And an unchanged file is not read again. */
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(!st.restarted);
    HL_CHECK_INT_EQ(st.lines, 0);
    hl_store_close(s);
    paths_cleanup(&p);
}

HL_TEST(malformed_and_conflicting_lines) {
    paths p;
    paths_init(&p);
    append_records(p.journal, 0, 2, "req_");
    const char *bad[] = {
        "not json at all\n",
        "\n",
        "[1, 2, 3]\n",
        "{\"timestamp\":\"2024-05-01T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":1,"
        "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"\",\"attempt\":1}\n", /* empty id */
        "{\"timestamp\":\"2024-05-01T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":1,"
        "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"y\"}\n", /* id without attempt */
        "{\"timestamp\":\"2024-05-01T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":1,"
        "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"x\",\"attempt\":0}\n",
        "{\"timestamp\":\"May 1st\",\"source\":\"local\",\"input_tokens\":1,"
        "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"x\",\"attempt\":1}\n",
        "{\"timestamp\":\"2024-05-01T00:00:00.000Z\",\"source\":\"mars\",\"input_tokens\":1,"
        "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"x\",\"attempt\":1}\n",
        "{\"timestamp\":\"2024-05-01T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":1,"
        "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":\"free\",\"request_id\":\"x\",\"attempt\":1}\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) append_bytes(p.journal, bad[i], strlen(bad[i]));
    /* A line longer than any ledger line. */
    size_t big = HL_STORE_MAX_LINE + 100;
    char *junk = malloc(big + 1);
    HL_REQUIRE(junk);
    memset(junk, 'x', big);
    junk[big] = '\n';
    append_bytes(p.journal, junk, big + 1);
    free(junk);
    /* The brief's CostTracker lines have no request id: a record, keyed by a derived id; the
     * same line again is a duplicate. */
    const char *ct = "{\"timestamp\": \"2024-05-01T00:00:02.123456\", \"source\": \"cloud\", \"input_tokens\": 450, "
                     "\"output_tokens\": 200, \"latency_ms\": 850, \"cost_usd\": 0.00435}\n";
    append_bytes(p.journal, ct, strlen(ct));
    append_bytes(p.journal, ct, strlen(ct));
    /* The oldest journals lack the newer fields: still records. */
    const char *old = "{\"timestamp\":\"2024-05-01T00:00:01.000Z\",\"source\":\"local\",\"input_tokens\":3,"
                      "\"output_tokens\":4,\"latency_ms\":5.5,\"cost_usd\":null,\"request_id\":\"old\",\"attempt\":1}\n";
    append_bytes(p.journal, old, strlen(old));
    /* The same request id and attempt again, from another request (another timestamp). */
    hl_buf b;
    hl_buf_init(&b, 0);
    format_record(0, "req_", &b);
    char *ts = strstr(b.data, "00:00:00.500Z");
    HL_REQUIRE(ts);
    ts[7] = '9'; /* 00:00:09.500Z */
    append_bytes(p.journal, b.data, b.len);
    long long size = append_records(p.journal, 2, 4, "req_");
    hl_buf_release(&b);

    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 6); /* req_0..3, the CostTracker line and "old" */
    HL_CHECK_INT_EQ(st.malformed, 9);
    HL_CHECK_INT_EQ(st.duplicates, 1);
    HL_CHECK_INT_EQ(st.conflicts, 1);
    HL_CHECK_INT_EQ(st.offset, size);
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 0);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'old'"
                                  " AND cost_usd IS NULL AND status IS NULL AND stream = 0"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id LIKE 'ct-%'"
                                  " AND attempt = 1 AND input_tokens = 450 AND ts = 1714521602123"), 1);
    /* The first of the two conflicting lines is the one kept. */
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT ts FROM inferences WHERE request_id = 'req_000000'"),
                    1714521600500LL);
    paths_cleanup(&p);
}

/* Record i's line with another timestamp (.700 instead of .500 of its second): the same key
 * from another request. */
static void append_conflict(const char *path, int i) {
    hl_buf b;
    hl_buf_init(&b, 0);
    format_record(i, "req_", &b);
    char *ms = strstr(b.data, ".500Z");
    if (!ms) abort();
    ms[1] = '7';
    append_bytes(path, b.data, b.len);
    hl_buf_release(&b);
}

/* Full groups of records go in one statement each (hl_store_sqlite.c insert_many): which
 * records it ignored is found again per record, also for a repeat inside the same group. */
HL_TEST(grouped_inserts_tell_each_record_apart) {
    paths p;
    paths_init(&p);
    append_records(p.journal, 0, 20, "req_");   /* lines 0..19 */
    append_records(p.journal, 5, 6, "req_");    /* 20: a replay of 5 */
    append_conflict(p.journal, 6);              /* 21: 6's key from another request */
    append_records(p.journal, 20, 26, "req_");  /* 22..27 */
    append_records(p.journal, 25, 26, "req_");  /* 28: 25 again, in the same group of 16 */
    append_records(p.journal, 26, 28, "req_");  /* 29, 30 */
    append_conflict(p.journal, 27);             /* 31: 27's key again, same group */
    append_records(p.journal, 20, 21, "req_");  /* 32: 20 again, the next group */
    append_records(p.journal, 28, 61, "req_");  /* 33..65 */
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 66);
    HL_CHECK_INT_EQ(st.inserted, 61);
    HL_CHECK_INT_EQ(st.duplicates, 3);
    HL_CHECK_INT_EQ(st.conflicts, 2);
    HL_CHECK_INT_EQ(count(s), 61);
    /* A pass over rows that are all there: every record a duplicate. */
    HL_CHECK_INT_EQ(sql_int(p.db, "DELETE FROM journal_state"), 0);
    HL_CHECK_INT_EQ(sql_int(p.db, "DELETE FROM inferences WHERE request_id = 'req_000040'"), 0);
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 1);
    HL_CHECK_INT_EQ(st.duplicates, 63);
    HL_CHECK_INT_EQ(st.conflicts, 2);
    hl_store_close(s);
    /* The first line of a key is the one kept. */
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT ts FROM inferences WHERE request_id = 'req_000027'"), 1714521627500LL);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT ts FROM inferences WHERE request_id = 'req_000006'"), 1714521606500LL);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences"), 61);
    paths_cleanup(&p);
}

/* Records with nothing past the common columns go in with a statement that names only those
 * (the rest take the schema's defaults); a group holding any other record, and a record on its
 * own, with every column. Each kind of field that makes a record "not plain" alone in a group
 * of its own, and in the tail; the plain records around them read back the same. */
enum { PF_KEY = 1, PF_KEY_ID, PF_KEY_NAME, PF_SHADOW, PF_SCORE, PF_SIGNALS, PF_EVAL, PF_REPLICA };

static int pf_kind(int i) { /* groups of 16 from record 0; 112..115 the tail, one by one */
    switch (i) {
    case 20: return PF_KEY;
    case 35: return PF_SHADOW;
    case 50: return PF_SCORE;
    case 66: return PF_SIGNALS;
    case 90: return PF_EVAL;
    case 100: return PF_REPLICA;
    case 112: return PF_KEY_ID;   /* a line may carry either without the other */
    case 113: return PF_SHADOW;
    case 114: return PF_KEY_NAME;
    default: return 0;
    }
}

HL_TEST(plain_and_full_records_in_groups_and_alone) {
    paths p;
    paths_init(&p);
    int n = 116, extra = 0;
    for (int i = 0; i < n; i++) {
        char id[64];
        hl_ledger_record r = record_of(i, "req_", id);
        switch (pf_kind(i)) {
        case PF_KEY: r.key_id = i, r.key_name = "team-a"; break;
        case PF_KEY_ID: r.key_id = i; break;
        case PF_KEY_NAME: r.key_name = "team-b"; break;
        case PF_SHADOW: r.shadow = true; break;
        case PF_SCORE:
            r.scored = true, r.score = 0.5, r.score_method = "exact", r.agree = true, r.reference = "ref";
            r.ref_output_tokens = 3;
            break;
        case PF_SIGNALS: r.confidence = 0.75, r.signals = true, r.confidence_margin = 0.25, r.confidence_min = 0.125; break;
        case PF_EVAL: r.eval_run = "ev_1"; break;
        case PF_REPLICA: r.replica = "http://127.0.0.1:8001/v1"; break;
        }
        extra += pf_kind(i) != 0;
        append_record(p.journal, &r);
    }
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    hl_store_close(s);
    HL_CHECK_INT_EQ(st.inserted, n);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE key_id IS NULL AND key_name IS NULL"
                                  " AND shadow = 0 AND score IS NULL AND score_method IS NULL AND agree IS NULL"
                                  " AND reference IS NULL AND ref_output_tokens IS NULL"
                                  " AND confidence_margin IS NULL AND confidence_min IS NULL AND eval_run IS NULL"
                                  " AND replica IS NULL"), n - extra);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000020' AND key_id = 20"
                                  " AND key_name = 'team-a' AND shadow = 0"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000112' AND key_id = 112"
                                  " AND key_name IS NULL"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000114' AND key_id IS NULL"
                                  " AND key_name = 'team-b'"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE shadow = 1"
                                  " AND request_id IN ('req_000035', 'req_000113')"), 2);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000050' AND score = 0.5"
                                  " AND score_method = 'exact' AND agree = 1 AND reference = 'ref'"
                                  " AND ref_output_tokens = 3"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000066'"
                                  " AND confidence = 0.75 AND confidence_margin = 0.25 AND confidence_min = 0.125"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000090' AND eval_run = 'ev_1'"), 1);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE request_id = 'req_000100'"
                                  " AND replica = 'http://127.0.0.1:8001/v1'"), 1);
    /* the common columns of every row, plain or not, as the workload wrote them */
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM inferences WHERE status = 'ok' AND http_status = 200"
                                  " AND input_tokens = 100 + CAST(substr(request_id, 5) AS INTEGER)"
                                  " AND latency_ms = 100 + CAST(substr(request_id, 5) AS INTEGER)"), n);
    paths_cleanup(&p);
}

HL_TEST(batches_commit_with_their_offset) {
    /* More lines than one batch: the offset committed with each batch is just after its last
     * line, and the whole journal ends up indexed. */
    paths p;
    paths_init(&p);
    long long size = append_records(p.journal, 0, 20000, "req_");
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 20000);
    HL_CHECK_INT_EQ(st.offset, size);
    HL_CHECK_INT_EQ(st.bytes, size);
    hl_store_close(s);
    paths_cleanup(&p);
}

static void sum_spend(void *ctx, const char *tenant, double day_usd, double month_usd) {
    double *t = ctx;
    HL_CHECK_STR_EQ(tenant, "");
    t[0] += day_usd;
    t[1] += month_usd;
}

HL_TEST(cloud_spend_counts_inserted_cloud_rows_once) {
    /* Records i % 3 == 0 are cloud with cost 0.001 * i, one a second from May 1: the spend
     * the budgets read is their sum, and a replay of the whole journal adds nothing. */
    paths p;
    paths_init(&p);
    append_records(p.journal, 0, 3000, "req_");
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    double want = 0;
    for (int i = 0; i < 3000; i += 3) want += 0.001 * i;
    double got[2] = {0, 0};
    HL_REQUIRE(hl_store_cloud_spend(s, 1714521600000LL + 7200000, sum_spend, got) == HL_OK);
    HL_CHECK(fabs(got[0] - want) < 1e-9 && fabs(got[1] - want) < 1e-9);
    hl_store_close(s);
    HL_CHECK_INT_EQ(sql_int(p.db, "DELETE FROM journal_state"), 0);
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.duplicates, 3000);
    got[0] = got[1] = 0;
    HL_REQUIRE(hl_store_cloud_spend(s, 1714521600000LL + 7200000, sum_spend, got) == HL_OK);
    HL_CHECK(fabs(got[1] - want) < 1e-9);
    /* The next day: a new day's total, the same month's. */
    got[0] = got[1] = 0;
    HL_REQUIRE(hl_store_cloud_spend(s, 1714521600000LL + 86400000, sum_spend, got) == HL_OK);
    HL_CHECK(got[0] == 0 && fabs(got[1] - want) < 1e-9);
    hl_store_close(s);
    paths_cleanup(&p);
}

/* ---- the background indexer ---- */

HL_TEST(background_indexer_follows_rotation_and_finishes_on_stop) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    /* An hour between passes: only sync and stop make them happen. */
    HL_REQUIRE(hl_store_indexer_start(s, p.journal, 3600 * 1000, NULL) == HL_OK);
    HL_CHECK(hl_store_indexer_start(s, p.journal, 10, NULL) == HL_ERR_INVAL);
    HL_CHECK(hl_store_indexer_sync(s) == HL_OK); /* no journal yet */
    append_records(p.journal, 0, 10, "req_");
    HL_CHECK(hl_store_indexer_sync(s) == HL_OK);
    hl_store_indexer_stats ist;
    hl_store_indexer_stats_get(s, &ist);
    HL_CHECK_INT_EQ(ist.inserted, 10);
    HL_CHECK_INT_EQ(ist.lag_bytes, 0);
    HL_CHECK_INT_EQ(ist.errors, 0);
    /* Lines written since the last pass are the lag, read when asked (not at the pass's end). */
    struct stat before, after;
    HL_REQUIRE(stat(p.journal, &before) == 0);
    append_records(p.journal, 10, 12, "req_");
    HL_REQUIRE(stat(p.journal, &after) == 0);
    hl_store_indexer_stats_get(s, &ist);
    HL_CHECK(after.st_size > before.st_size);
    HL_CHECK_INT_EQ(ist.lag_bytes, after.st_size - before.st_size);

    /* Lines reach the old file after the last pass, then it is rotated: they are indexed
     * before the new file. */
    append_records(p.journal, 12, 15, "req_");
    char rotated[192];
    snprintf(rotated, sizeof rotated, "%s.1", p.journal);
    HL_REQUIRE(rename(p.journal, rotated) == 0);
    append_records(p.journal, 15, 18, "req_");
    HL_CHECK(hl_store_indexer_sync(s) == HL_OK);
    hl_store_indexer_stats_get(s, &ist);
    HL_CHECK_INT_EQ(ist.inserted, 18);

    /* Lines written just before stop() are indexed by its last pass. */
    append_records(p.journal, 18, 25, "req_");
    hl_store_indexer_stop(s);
    HL_CHECK_INT_EQ(count(s), 25);
    hl_store_indexer_stats_get(s, &ist);
    HL_CHECK_INT_EQ(ist.passes, 0); /* no indexer any more */
    hl_store_close(s);
    paths_cleanup(&p);
}

HL_TEST(background_indexer_reports_failures) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    append_records(p.journal, 0, 3, "req_");
    HL_REQUIRE(chmod(p.journal, 0) == 0);
    bool root = access(p.journal, R_OK) == 0; /* root reads it anyway */
    HL_REQUIRE(hl_store_indexer_start(s, p.journal, 3600 * 1000, NULL) == HL_OK);
    hl_err e = hl_store_indexer_sync(s);
    hl_store_indexer_stats ist;
    hl_store_indexer_stats_get(s, &ist);
    if (!root) {
        HL_CHECK(e == HL_ERR_IO);
        HL_CHECK_INT_EQ(ist.errors, 1);
        HL_CHECK(strstr(ist.last_error, "ledger.jsonl") != NULL);
    }
    HL_REQUIRE(chmod(p.journal, 0640) == 0);
    HL_CHECK(hl_store_indexer_sync(s) == HL_OK);
    hl_store_indexer_stats_get(s, &ist);
    HL_CHECK_STR_EQ(ist.last_error, "");
    HL_CHECK_INT_EQ(ist.inserted, 3);
    hl_store_close(s); /* stops the indexer */
    paths_cleanup(&p);
}

/* ---- crash replay (issue 5) ---- */

HL_TEST(crash_replay_sigkill_during_load) {
    paths p;
    paths_init(&p);
    long long lines = crash_and_count(p.journal, p.db);
    HL_CHECK(lines >= 10000);

    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    unsigned long long before = count(s);
    HL_CHECK(before > 0 && before <= (unsigned long long)lines);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    /* What was committed before the kill had its offset committed with it: the re-index
     * inserts exactly the rest, duplicates none. */
    HL_CHECK_INT_EQ(st.inserted, (unsigned long long)lines - before);
    HL_CHECK_INT_EQ(st.duplicates, 0);
    HL_CHECK_INT_EQ(st.malformed, 0);
    HL_CHECK_INT_EQ(count(s), lines);
    hl_store_close(s);
    /* Exactly once: as many distinct keys as rows and lines, ids 0..lines-1 without a hole,
     * and an intact database. */
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM (SELECT DISTINCT request_id, attempt FROM inferences)"), lines);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT max(CAST(substr(request_id, 7) AS INTEGER)) + 1 FROM inferences"), lines);
    HL_CHECK_INT_EQ(sql_int(p.db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
    paths_cleanup(&p);
}

/* ---- client keys ---- */

HL_TEST(client_key_lifecycle) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    check_key_lifecycle(s);
    check_key_spend(s, p.journal);
    hl_store_close(s);
    paths_cleanup(&p);
}

HL_TEST(heartbeats_count_live_instances) {
    paths p;
    paths_init(&p);
    char err[512];
    hl_store *a = NULL, *b = NULL;
    HL_REQUIRE(hl_store_open(&a, p.db, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_open(&b, p.db, err, sizeof err) == HL_OK);
    check_heartbeat(a, b);
    hl_store_close(a);
    hl_store_close(b);
    paths_cleanup(&p);
}

HL_TEST_MAIN()
