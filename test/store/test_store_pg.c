/* Tests for hl_store over PostgreSQL, against a real server: HL_TEST_PG is a libpq URI of a
 * database on a server where the user may create databases (scripts/pg.sh starts a throwaway
 * one; scripts/test.sh does so for the whole suite). Each test works in a database of its
 * own, created here and dropped after.
 *
 * Covered: migrations (fresh, reopen, several gateways migrating one database at once, a
 * newer schema refused), errors that name the server without its password, batched indexing
 * across batch boundaries with malformed lines, conflicts and repeated keys within one batch,
 * replay after a lost offset, two instances' journals in one database, the cloud spend the
 * budgets read (exact, and unchanged by replays), report scans equal to SQLite's on the same
 * journal, the background indexer's hooks, and the crash test of issue 5 (SIGKILL during
 * load, restart, every line exactly once), and budget leases (concurrent grants within a cap,
 * settled by the insert, expired with their instance).
 *
 * Without HL_TEST_PG the tests that need a server are skipped (ctest reports it), unless
 * HL_REQUIRE_PG=1 (the test script sets it: there, a missing server is a failure). */
#include <fcntl.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_rollup.h"
#include "hl_store.h"
#include "hl_test.h"
#include "store_crash.h"
#include "hl_report.h"
#include "hl_rollup.h"
#include "store_keys.h"

/* ---- fixtures ---- */

static const char *base_uri(void) { return getenv("HL_TEST_PG"); }

/* Runs sql on the database at uri; returns the first column of the first row as an integer
 * (0 when no row), or -1 on error (printed). */
static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

static long long pg_int(const char *uri, const char *sql) {
    PGconn *c = PQconnectdb(uri);
    PQsetNoticeProcessor(c, quiet, NULL);
    long long v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        else if (PQresultStatus(r) == PGRES_COMMAND_OK) v = 0;
        else fprintf(stderr, "  sql failed: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "  cannot connect: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return v;
}

static double pg_double(const char *uri, const char *sql) {
    PGconn *c = PQconnectdb(uri);
    double v = NAN;
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) && !PQgetisnull(r, 0, 0)) v = strtod(PQgetvalue(r, 0, 0), NULL);
    PQclear(r);
    PQfinish(c);
    return v;
}

typedef struct fixture {
    char name[64];
    char uri[1024];
    char dir[64];
    char journal[128], journal2[128], sqlite[128];
} fixture;

static int fixtures_made;

/* A fresh database and a temporary directory for journals. False when no server is set. */
static bool fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    if (!base_uri()) return false;
    snprintf(f->name, sizeof f->name, "hl_test_%d_%d", (int)getpid(), fixtures_made++);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", f->name);
    pg_int(base_uri(), sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->name);
    if (pg_int(base_uri(), sql) != 0) abort();
    /* Query parameters override the URI's path: the same server, this database. */
    snprintf(f->uri, sizeof f->uri, "%s%sdbname=%s", base_uri(), strchr(base_uri(), '?') ? "&" : "?", f->name);
    snprintf(f->dir, sizeof f->dir, "/tmp/hl_pg_test_XXXXXX");
    if (!mkdtemp(f->dir)) abort();
    snprintf(f->journal, sizeof f->journal, "%s/a.jsonl", f->dir);
    snprintf(f->journal2, sizeof f->journal2, "%s/b.jsonl", f->dir);
    snprintf(f->sqlite, sizeof f->sqlite, "%s/ledger.db", f->dir);
    return true;
}

static void fixture_cleanup(fixture *f) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->name);
    pg_int(base_uri(), sql);
    const char *files[] = {"a.jsonl", "b.jsonl", "ledger.db", "ledger.db-wal", "ledger.db-shm"};
    char p[192];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
}

#define NEED_SERVER(f)                                                                                 \
    do {                                                                                               \
        if (!fixture_init(f)) {                                                                        \
            if (getenv("HL_REQUIRE_PG") && !strcmp(getenv("HL_REQUIRE_PG"), "1")) {                    \
                HL_CHECK(!"HL_TEST_PG is not set but HL_REQUIRE_PG=1");                               \
            } else {                                                                                   \
                HL_SKIP_MARK("HL_TEST_PG is not set (eval \"$(scripts/pg.sh start)\" gives one)");     \
            }                                                                                          \
            return;                                                                                    \
        }                                                                                              \
    } while (0)

static void append_bytes(const char *path, const char *p, size_t n) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n) abort();
    close(fd);
}

/* Record i of a synthetic workload: one second apart from base_ts; every 7th is a second
 * attempt of the request before it, on another backend; a third are cloud with a cost; four
 * tenants and none. */
static void format_record(int i, const char *prefix, double base_ts, hl_buf *out) {
    char id[64];
    bool retry = i > 0 && i % 7 == 0;
    snprintf(id, sizeof id, "%s%06d", prefix, retry ? i - 1 : i);
    static const char *const tenants[] = {"acme", "globex", "initech", "umbrella", NULL};
    hl_ledger_record r = {0};
    r.timestamp = base_ts + i + 0.25;
    r.request_id = id;
    r.attempt = retry ? 2 : 1;
    r.cloud = i % 3 == 0;
    r.backend = r.cloud ? "anthropic" : retry ? "ollama" : "vllm";
    r.model = r.cloud ? "claude-3-5-sonnet-20241022" : "llama-3.1-8b";
    r.route_reason = i % 5 == 0 ? "rule:code" : "rule:default";
    r.task_type = i % 4 == 0 ? "code" : "chat";
    r.tenant = tenants[i % 5];
    r.status = i % 11 == 0 ? "error" : "ok";
    r.stream = i % 2 == 0;
    r.usage = (hl_usage){.input_tokens = 100 + i, .output_tokens = 10 + i % 50, .known = true};
    r.latency_ms = 100 + i % 300;
    r.ttft_ms = r.stream ? 5 + i % 40 : -1;
    r.confidence = -1;
    r.cost_usd = r.cloud ? 0.001 * (1 + i % 13) : 0;
    r.cost_known = true;
    r.http_status = 200;
    if (i % 10 == 6) { /* a shadow comparison, with the local answer's confidence signals */
        r.shadow = r.scored = r.signals = true;
        r.score = 0.5;
        r.score_method = "token_f1";
        r.agree = i % 20 == 6;
        r.reference = "served";
        r.ref_output_tokens = i;
        r.confidence_margin = 0.25;
        r.confidence_min = 0.125;
    }
    if (i % 13 == 5) r.eval_run = "run-1"; /* an eval line: not gateway traffic */
    if (i % 7 == 2) r.replica = "http://127.0.0.1:8002/v1"; /* a replica of its backend */
    hl_buf_reset(out);
    if (hl_ledger_format(&r, out) != HL_OK) abort();
}

#define MAY_1 1714521600.0 /* 2024-05-01T00:00:00Z */

static long long append_records(const char *path, int from, int to, const char *prefix, double base_ts) {
    hl_buf b, all;
    hl_buf_init(&b, 0);
    hl_buf_init(&all, 0);
    for (int i = from; i < to; i++) {
        format_record(i, prefix, base_ts, &b);
        hl_buf_append(&all, b.data, b.len);
    }
    append_bytes(path, all.data, all.len);
    hl_buf_release(&b);
    hl_buf_release(&all);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static unsigned long long count(hl_store *s) {
    unsigned long long n = 0;
    if (hl_store_count(s, &n) != HL_OK) return (unsigned long long)-1;
    return n;
}

/* ---- migrations and errors ---- */

HL_TEST(migrations_fresh_reopen_concurrent_and_newer) {
    fixture f;
    NEED_SERVER(&f);
    /* Four gateways starting at once against the empty database: each opens and migrates;
     * the advisory lock makes one of them do it and the others find it done. */
    fflush(NULL);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        HL_REQUIRE(kids[k] >= 0);
        if (kids[k] == 0) {
            char err[512];
            hl_store *s = NULL;
            int ok = hl_store_open(&s, f.uri, err, sizeof err) == HL_OK && hl_store_schema_version(s) == 9;
            if (!ok) fprintf(stderr, "  child: %s\n", err);
            hl_store_close(s);
            _exit(ok ? 0 : 1);
        }
    }
    for (int k = 0; k < 4; k++) {
        int st = -1;
        waitpid(kids[k], &st, 0);
        HL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM schema_version"), 9);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM pg_class WHERE relname IN ('inferences', 'journal_state',"
                                  " 'ledger', 'cloud_spend', 'inferences_ts')"), 5);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM pg_class WHERE relname IN ('inferences_source_ts',"
                                  " 'inferences_backend_ts', 'inferences_tenant_ts')"), 0);
    /* Every ledger field is a column, as in SQLite. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'inferences'"), 37);

    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(hl_store_kind(s), "postgresql");
    HL_CHECK(hl_store_shared(s));
    HL_CHECK_INT_EQ(count(s), 0);
    hl_store_close(s);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM schema_version"), 9);

    /* A database migrated by a newer hybridllm is refused, not downgraded. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "INSERT INTO schema_version (version) VALUES (99)"), 0);
    HL_CHECK(hl_store_open(&s, f.uri, err, sizeof err) == HL_ERR_UNSUPPORTED);
    HL_CHECK(s == NULL);
    HL_CHECK(strstr(err, "newer") != NULL);
    fixture_cleanup(&f);
}

HL_TEST(open_errors_name_the_server_but_never_the_password) {
    char err[512];
    hl_store *s = NULL;
    /* Port 1 on loopback: nothing listens there. */
    HL_CHECK(hl_store_open(&s, "postgresql://alice:s3cret-pw@127.0.0.1:1/ledger?connect_timeout=2", err, sizeof err) != HL_OK);
    HL_CHECK(s == NULL);
    HL_CHECK(strstr(err, "postgresql://alice:***@127.0.0.1:1/ledger") != NULL);
    HL_CHECK(strstr(err, "s3cret") == NULL);
    HL_CHECK(strstr(err, "connecting") != NULL);
    char red[256];
    hl_store_redact("postgres://u@h/db?sslmode=require&password=hunter2&x=1", red, sizeof red);
    HL_CHECK_STR_EQ(red, "postgres://u@h/db?sslmode=require&password=***&x=1");
    hl_store_redact("postgresql://h:5432/db", red, sizeof red);
    HL_CHECK_STR_EQ(red, "postgresql://h:5432/db");
}

/* ---- indexing ---- */

HL_TEST(batched_index_conflicts_repeats_and_replay) {
    fixture f;
    NEED_SERVER(&f);
    /* 2500 records: batches of 1000 plus a partial one; then malformed lines, a line reusing
     * req_000001's key with another timestamp (conflict), and one repeating req_000002's line
     * exactly (a duplicate within the same batch). */
    append_records(f.journal, 0, 2500, "req_", MAY_1);
    const char *bad = "not json\n{\"timestamp\":\"2024-05-01T00:00:00.000Z\"}\n";
    append_bytes(f.journal, bad, strlen(bad));
    hl_buf b;
    hl_buf_init(&b, 0);
    format_record(1, "req_", MAY_1 + 3600, &b);
    append_bytes(f.journal, b.data, b.len);
    format_record(2, "req_", MAY_1, &b);
    append_bytes(f.journal, b.data, b.len);
    hl_buf_release(&b);
    struct stat sb;
    stat(f.journal, &sb);

    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, f.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 2500);
    HL_CHECK_INT_EQ(st.malformed, 2);
    HL_CHECK_INT_EQ(st.conflicts, 1);
    HL_CHECK_INT_EQ(st.duplicates, 1);
    HL_CHECK_INT_EQ(st.offset, (long long)sb.st_size);
    HL_CHECK_INT_EQ(count(s), 2500);
    /* Nothing new: nothing read. */
    HL_REQUIRE(hl_store_index(s, f.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.lines, 0);
    /* The first of two conflicting lines is kept. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT ts FROM inferences WHERE request_id = 'req_000001' AND attempt = 1"),
                    1714521601250LL);
    /* Every field as the journal has it, through the ledger view. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM ledger WHERE request_id = 'req_000016' AND attempt = 1"
                                  " AND timestamp = '2024-05-01T00:00:16.250Z' AND source = 'local'"
                                  " AND input_tokens = 116 AND output_tokens = 26 AND latency_ms = 116"
                                  " AND ttft_ms = 21 AND stream AND backend = 'vllm' AND tenant = 'globex'"
                                  " AND task_type = 'code' AND status = 'ok' AND http_status = 200"
                                  " AND cost_usd = 0 AND confidence IS NULL"), 1);
    /* The quality columns (every 10th record from the 6th; the others have none). */
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM inferences WHERE request_id = 'req_000026' AND shadow"
                                  " AND score = 0.5 AND score_method = 'token_f1' AND agree"
                                  " AND reference = 'served' AND ref_output_tokens = 26"
                                  " AND confidence_margin = 0.25 AND confidence_min = 0.125 AND eval_run IS NULL"
                                  " AND replica IS NULL"), 1);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM inferences WHERE request_id = 'req_000016'"
                                  " AND replica = 'http://127.0.0.1:8002/v1'"), 1);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM inferences WHERE request_id = 'req_000016' AND NOT agree"), 1);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM inferences WHERE request_id = 'req_000017'"
                                  " AND NOT shadow AND score IS NULL AND agree IS NULL AND confidence_margin IS NULL"), 1);
    /* A second attempt (every 7th record) and a cloud one with its cost. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM ledger WHERE request_id = 'req_000013' AND attempt = 2"
                                  " AND backend = 'ollama' AND timestamp = '2024-05-01T00:00:14.250Z'"), 1);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM ledger WHERE request_id = 'req_000009' AND source = 'cloud'"
                                  " AND abs(cost_usd - 0.010) < 1e-12 AND NOT stream AND ttft_ms IS NULL"), 1);

    /* The offset is lost (a restored backup, a dropped row): everything is read again and
     * lands as duplicates, nothing twice. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "DELETE FROM journal_state"), 0);
    HL_REQUIRE(hl_store_index(s, f.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 0);
    HL_CHECK_INT_EQ(st.duplicates, 2501);
    HL_CHECK_INT_EQ(st.conflicts, 1);
    HL_CHECK_INT_EQ(count(s), 2500);
    /* journal_state names the host, so two machines with the same path keep two offsets. */
    char host[256] = "";
    gethostname(host, sizeof host);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM journal_state WHERE journal LIKE '%s:%%/a.jsonl'", host);
    HL_CHECK_INT_EQ(pg_int(f.uri, sql), 1);
    hl_store_close(s);
    fixture_cleanup(&f);
}

/* ---- two instances and the budgets' spend ---- */

typedef struct instance {
    const char *uri, *journal, *prefix;
    int from, to;
    hl_err rc;
    unsigned long long inserted;
} instance;

/* One gateway: appends its records in slices and indexes after each, as the background
 * indexer does, concurrently with the other. */
static void *instance_main(void *arg) {
    instance *in = arg;
    char err[512];
    hl_store *s = NULL;
    in->rc = hl_store_open(&s, in->uri, err, sizeof err);
    for (int i = in->from; !in->rc && i < in->to; i += 250) {
        append_records(in->journal, i, i + 250 < in->to ? i + 250 : in->to, in->prefix, MAY_1 - 86400);
        hl_store_index_stats st;
        in->rc = hl_store_index(s, in->journal, &st);
        in->inserted += st.inserted;
        /* A deadlock between the two instances' transactions fails a pass; the next retries. */
        if (in->rc) {
            fprintf(stderr, "  instance %s: %s (retrying)\n", in->prefix, hl_store_errmsg(s));
            in->rc = hl_store_index(s, in->journal, &st);
            in->inserted += st.inserted;
        }
    }
    hl_store_close(s);
    return NULL;
}

typedef struct spend_sum {
    double day, month;
    int tenants;
    double acme_month;
} spend_sum;

static void on_spend(void *ctx, const char *tenant, double day_usd, double month_usd) {
    spend_sum *t = ctx;
    t->day += day_usd;
    t->month += month_usd;
    t->tenants++;
    if (!strcmp(tenant, "acme")) t->acme_month = month_usd;
}

HL_TEST(two_instances_share_one_ledger_and_exact_cloud_spend) {
    fixture f;
    NEED_SERVER(&f);
    /* Both instances write records from 2024-04-30T00:00Z, one a second, 3000 each. */
    instance a = {.uri = f.uri, .journal = f.journal, .prefix = "a_", .from = 0, .to = 3000};
    instance b = {.uri = f.uri, .journal = f.journal2, .prefix = "b_", .from = 0, .to = 3000};
    pthread_t ta, tb;
    HL_REQUIRE(pthread_create(&ta, NULL, instance_main, &a) == 0);
    HL_REQUIRE(pthread_create(&tb, NULL, instance_main, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    HL_CHECK_INT_EQ(a.rc, HL_OK);
    HL_CHECK_INT_EQ(b.rc, HL_OK);
    /* 3000 lines each, of which every 7th is a second attempt: all distinct keys. */
    HL_CHECK_INT_EQ(a.inserted, 3000);
    HL_CHECK_INT_EQ(b.inserted, 3000);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM inferences"), 6000);

    /* Expected spend, from the generator: cloud records are i % 3 == 0 with cost
     * 0.001 * (1 + i % 13); timestamps MAY_1 - 86400 + i. */
    double all = 0;
    for (int i = 0; i < 3000; i += 3) all += 2 * 0.001 * (1 + i % 13);
    HL_CHECK(fabs(pg_double(f.uri, "SELECT sum(cost_usd) FROM cloud_spend") - all) < 1e-9);
    HL_CHECK(fabs(pg_double(f.uri, "SELECT sum(cost_usd) FROM inferences WHERE source = 'cloud'") - all) < 1e-9);

    /* The budgets' view as of 2024-04-30T12:00Z: all of it is this day and this month. */
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    spend_sum t = {0};
    HL_REQUIRE(hl_store_cloud_spend(s, (long long)(MAY_1 - 43200) * 1000, on_spend, &t) == HL_OK);
    HL_CHECK(fabs(t.day - all) < 1e-9);
    HL_CHECK(fabs(t.month - all) < 1e-9);
    HL_CHECK_INT_EQ(t.tenants, 5); /* four tenants and "" */
    double acme = 0;
    for (int i = 0; i < 3000; i++)
        if (i % 3 == 0 && i % 5 == 0) acme += 2 * 0.001 * (1 + i % 13);
    HL_CHECK(fabs(t.acme_month - acme) < 1e-9);
    /* As of May 1: a new day and a new month, nothing spent yet. */
    t = (spend_sum){0};
    HL_REQUIRE(hl_store_cloud_spend(s, (long long)(MAY_1 + 60) * 1000, on_spend, &t) == HL_OK);
    HL_CHECK(t.month == 0 && t.day == 0 && t.tenants == 0);

    /* Replaying both journals from the start adds nothing to the spend. */
    HL_CHECK_INT_EQ(pg_int(f.uri, "DELETE FROM journal_state"), 0);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, f.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.duplicates, 3000);
    HL_REQUIRE(hl_store_index(s, f.journal2, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.duplicates, 3000);
    HL_CHECK(fabs(pg_double(f.uri, "SELECT sum(cost_usd) FROM cloud_spend") - all) < 1e-9);
    hl_store_close(s);
    fixture_cleanup(&f);
}

/* ---- reading: the same report as SQLite ---- */

typedef struct agg {
    double cost, latency, ttft;
    long long rows, in, out, first_group, first_range, cloud, errors, streams, known;
    long long shadow, scored, agree, eval;
    double score;
    unsigned long long group_hash;
} agg;

static hl_err on_row(void *ctx, const hl_store_row *r) {
    agg *a = ctx;
    a->rows++;
    a->cost += r->cost_usd;
    a->latency += r->latency_ms;
    a->ttft += r->ttft_ms;
    a->in += r->input_tokens;
    a->out += r->output_tokens;
    a->first_group += r->first_in_group;
    a->first_range += r->first_in_range;
    a->cloud += r->cloud;
    a->errors += r->status == HL_STORE_STATUS_ERROR;
    a->streams += r->stream;
    a->known += r->cost_known;
    a->shadow += r->shadow;
    a->scored += r->scored;
    a->agree += r->agree;
    a->eval += r->eval;
    a->score += r->score;
    /* Order-independent digest of the group values seen. */
    unsigned long long h = 1469598103934665603ULL;
    for (const char *p = r->group ? r->group : "(null)"; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    a->group_hash += h;
    return HL_OK;
}

HL_TEST(scans_match_sqlite_for_every_grouping) {
    fixture f;
    NEED_SERVER(&f);
    append_records(f.journal, 0, 4000, "req_", MAY_1 - 2000);
    char err[512];
    hl_store *pg = NULL, *sq = NULL;
    HL_REQUIRE(hl_store_open(&pg, f.uri, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_open(&sq, f.sqlite, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(pg, f.journal, NULL) == HL_OK);
    HL_REQUIRE(hl_store_index(sq, f.journal, NULL) == HL_OK);
    const struct {
        long long from, to;
    } ranges[] = {{HL_STORE_TIME_MIN, HL_STORE_TIME_MAX},
                  /* cuts between first and second attempts: first_in_range differs */
                  {(long long)(MAY_1 - 1000) * 1000 + 500, (long long)(MAY_1 + 1000) * 1000}};
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        for (int g = HL_STORE_GROUP_NONE; g <= HL_STORE_GROUP_PROMPT_LENGTH; g++) {
            agg a = {0}, b = {0};
            HL_REQUIRE(hl_store_scan(pg, (hl_store_group)g, ranges[k].from, ranges[k].to, on_row, &a) == HL_OK);
            HL_REQUIRE(hl_store_scan(sq, (hl_store_group)g, ranges[k].from, ranges[k].to, on_row, &b) == HL_OK);
            HL_CHECK(a.rows > 1000);
            HL_CHECK_INT_EQ(a.rows, b.rows);
            HL_CHECK_INT_EQ(a.in, b.in);
            HL_CHECK_INT_EQ(a.out, b.out);
            HL_CHECK_INT_EQ(a.first_group, b.first_group);
            HL_CHECK_INT_EQ(a.first_range, b.first_range);
            HL_CHECK_INT_EQ(a.cloud, b.cloud);
            HL_CHECK_INT_EQ(a.errors, b.errors);
            HL_CHECK_INT_EQ(a.streams, b.streams);
            HL_CHECK_INT_EQ(a.known, b.known);
            HL_CHECK_INT_EQ(a.shadow, b.shadow);
            HL_CHECK_INT_EQ(a.scored, b.scored);
            HL_CHECK_INT_EQ(a.agree, b.agree);
            HL_CHECK_INT_EQ(a.eval, b.eval);
            HL_CHECK(a.shadow > 0 && a.scored == a.shadow && a.agree > 0 && a.agree < a.scored && a.eval > 0);
            HL_CHECK(fabs(a.score - b.score) < 1e-9 && fabs(a.score - 0.5 * (double)a.scored) < 1e-9);
            HL_CHECK(a.group_hash == b.group_hash);
            HL_CHECK(fabs(a.cost - b.cost) < 1e-9 && fabs(a.latency - b.latency) < 1e-6 && fabs(a.ttft - b.ttft) < 1e-6);
        }
    }
    /* Filtered queries (report's and the dashboard's filters): the same rows and first-attempt
     * counts as SQLite, alone and with a `same` set. */
    const hl_store_filter filters[] = {{.tenant = "acme"}, {.backend = "ollama"}, {.task_type = "code", .source = "local"},
                                       {.tenant = "globex", .backend = "vllm", .task_type = "chat"}, {.tenant = "nobody"}};
    for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++) {
        for (unsigned same = 0; same <= HL_ROLLUP_SAME_BACKEND; same += HL_ROLLUP_SAME_BACKEND) {
            hl_store_query q = {.from_ms = ranges[1].from, .to_ms = ranges[1].to, .filter = filters[k], .same = same};
            agg a = {0}, b = {0};
            HL_REQUIRE(hl_store_scan_query(pg, &q, on_row, &a) == HL_OK);
            HL_REQUIRE(hl_store_scan_query(sq, &q, on_row, &b) == HL_OK);
            HL_CHECK(k == 4 ? a.rows == 0 : a.rows > 0);
            HL_CHECK_INT_EQ(a.rows, b.rows);
            HL_CHECK_INT_EQ(a.first_group, b.first_group);
            HL_CHECK_INT_EQ(a.first_range, b.first_range);
            HL_CHECK(fabs(a.cost - b.cost) < 1e-9);
        }
    }
    /* A range with a second attempt whose first is outside it: the request counts where it
     * began (hl_rollup.h), not here. */
    agg a = {0};
    HL_REQUIRE(hl_store_scan(pg, HL_STORE_GROUP_NONE, (long long)(MAY_1 - 2000 + 7) * 1000,
                             (long long)(MAY_1 - 2000 + 8) * 1000, on_row, &a) == HL_OK);
    HL_CHECK_INT_EQ(a.rows, 1);
    HL_CHECK_INT_EQ(a.first_range, 0);
    hl_store_close(pg);
    hl_store_close(sq);
    fixture_cleanup(&f);
}

/* `report` over PostgreSQL gives the figures it gives over SQLite with the quality fields:
 * shadows out of the traffic, agreement per task type and per prompt length, eval lines left
 * out. The journal: 300 classification requests (5,000-token prompts) shadowed at 90%, 100
 * free-text ones (9,000 tokens) at 50%, 10 eval lines. */
static void append_quality(const char *path) {
    hl_buf b, all;
    hl_buf_init(&b, 0);
    hl_buf_init(&all, 0);
    for (int i = 0; i < 410; i++) {
        char id[32];
        snprintf(id, sizeof id, "q%d", i);
        bool eval = i >= 400, cls = i < 300;
        hl_ledger_record r = {0};
        r.timestamp = MAY_1 + i;
        r.request_id = id;
        r.attempt = 1;
        r.cloud = true;
        r.backend = "anthropic";
        r.model = "claude-3-5-sonnet-20241022";
        r.route_reason = "rule:default";
        r.task_type = cls || eval ? "classification" : "free_text";
        r.status = "ok";
        r.usage = (hl_usage){.input_tokens = cls ? 5000 : 9000, .output_tokens = 50, .known = true};
        r.latency_ms = 700;
        r.ttft_ms = -1;
        r.confidence = -1;
        r.cost_usd = 0.01;
        r.cost_known = true;
        r.http_status = 200;
        if (eval) {
            r.scored = true;
            r.score_method = "exact";
            r.reference = "expected";
            r.eval_run = "ev";
        }
        hl_buf_reset(&b);
        if (hl_ledger_format(&r, &b) || hl_buf_append(&all, b.data, b.len)) abort();
        if (eval) continue;
        r.attempt = 2;
        r.cloud = false;
        r.backend = "vllm";
        r.shadow = r.scored = true;
        r.agree = cls ? i % 10 != 0 : i % 2 == 0;
        r.score = r.agree ? 1 : 0.25;
        r.score_method = "rouge_l";
        r.reference = "served";
        r.latency_ms = 4000;
        r.cost_usd = 0.001;
        hl_buf_reset(&b);
        if (hl_ledger_format(&r, &b) || hl_buf_append(&all, b.data, b.len)) abort();
    }
    append_bytes(path, all.data, all.len);
    hl_buf_release(&b);
    hl_buf_release(&all);
}

HL_TEST(report_quality_figures_match_sqlite) {
    fixture f;
    NEED_SERVER(&f);
    append_quality(f.journal);
    char err[512];
    hl_store *pg = NULL, *sq = NULL;
    HL_REQUIRE(hl_store_open(&pg, f.uri, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_open(&sq, f.sqlite, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(pg, f.journal, NULL) == HL_OK);
    HL_REQUIRE(hl_store_index(sq, f.journal, NULL) == HL_OK);
    static const hl_store_group groups[] = {HL_STORE_GROUP_TASK_TYPE, HL_STORE_GROUP_PROMPT_LENGTH};
    for (size_t g = 0; g < 2; g++) {
        hl_report_opts o = {.group_by = groups[g], .from_ms = HL_STORE_TIME_MIN, .to_ms = HL_STORE_TIME_MAX};
        hl_report *a = NULL, *b = NULL;
        HL_REQUIRE(hl_report_build(pg, &o, &a, err, sizeof err) == HL_OK);
        HL_REQUIRE(hl_report_build(sq, &o, &b, err, sizeof err) == HL_OK);
        HL_REQUIRE(a->n_rows == 2 && b->n_rows == 2);
        HL_CHECK_INT_EQ(a->eval_skipped, 10);
        HL_CHECK_INT_EQ(b->eval_skipped, 10);
        for (size_t i = 0; i < 2; i++) {
            const hl_report_row *x = &a->rows[i], *y = &b->rows[i];
            HL_CHECK_STR_EQ(x->group, y->group);
            HL_CHECK_INT_EQ(x->requests, y->requests);
            HL_CHECK_INT_EQ(x->attempts, y->attempts);
            HL_CHECK_INT_EQ(x->shadow, y->shadow);
            HL_CHECK_INT_EQ(x->scored, y->scored);
            HL_CHECK_INT_EQ(x->agreed, y->agreed);
            HL_CHECK_NEAR(x->shadow_usd, y->shadow_usd, 1e-9);
            HL_CHECK_NEAR(x->mean_score, y->mean_score, 1e-12);
            HL_CHECK_NEAR(x->latency_p99_ms, 700, 700 * HL_HIST_REL_ERROR); /* the shadows' 4 s are not latency */
            HL_CHECK_NEAR(x->latency_p99_ms, y->latency_p99_ms, 0);
        }
        const hl_report_row *c = &a->rows[0], *t = &a->rows[1]; /* sorted: the 5,000-token classification first */
        HL_CHECK_STR_EQ(c->group, g ? "4k-8k" : "classification");
        HL_CHECK_STR_EQ(t->group, g ? "8k+" : "free_text");
        HL_CHECK_INT_EQ(c->requests, 300);
        HL_CHECK_INT_EQ(c->shadow, 300);
        HL_CHECK_INT_EQ(c->agreed, 270);
        HL_CHECK(c->agreement_lo <= 0.9 && 0.9 <= c->agreement_hi);
        HL_CHECK_INT_EQ(t->agreed, 50);
        HL_CHECK_NEAR(c->cost_usd, 300 * 0.011, 1e-9);
        hl_report_free(a);
        hl_report_free(b);
    }
    hl_store_close(pg);
    hl_store_close(sq);
    fixture_cleanup(&f);
}

/* ---- the background indexer's hooks ---- */

typedef struct hook_log {
    int before, after;
    spend_sum spend;
} hook_log;

static void hook_before(void *ctx) { ((hook_log *)ctx)->before++; }

static void hook_after(void *ctx, hl_store *conn) {
    hook_log *h = ctx;
    h->after++;
    h->spend = (spend_sum){0};
    hl_store_cloud_spend(conn, (long long)(MAY_1 + 43200) * 1000, on_spend, &h->spend);
}

HL_TEST(indexer_hooks_run_around_each_pass_with_the_spend) {
    fixture f;
    NEED_SERVER(&f);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    hook_log h = {0};
    hl_store_indexer_hooks hooks = {.before_pass = hook_before, .after_pass = hook_after, .ctx = &h};
    HL_REQUIRE(hl_store_indexer_start(s, f.journal, 3600 * 1000, &hooks) == HL_OK);
    append_records(f.journal, 0, 30, "req_", MAY_1);
    HL_REQUIRE(hl_store_indexer_sync(s) == HL_OK);
    HL_CHECK(h.before >= 1 && h.after >= 1 && h.before >= h.after);
    double want = 0;
    for (int i = 0; i < 30; i += 3) want += 0.001 * (1 + i % 13);
    HL_CHECK(fabs(h.spend.day - want) < 1e-9);
    hl_store_indexer_stop(s);
    hl_store_close(s);
    fixture_cleanup(&f);
}

/* ---- crash replay (issue 5) ---- */

HL_TEST(crash_replay_sigkill_during_load) {
    fixture f;
    NEED_SERVER(&f);
    long long lines = crash_and_count(f.journal, f.uri);
    HL_CHECK(lines >= 10000);

    /* The server may still be finishing the killed connection's transaction: the restart
     * waits on nothing but its own commit. */
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, f.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.duplicates, 0);
    HL_CHECK_INT_EQ(st.malformed, 0);
    HL_CHECK_INT_EQ(count(s), lines);
    hl_store_close(s);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(DISTINCT (request_id, attempt)) FROM inferences"), lines);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT max(substr(request_id, 7)::int) + 1 FROM inferences"), lines);
    /* The spend counts each cloud line once: half the lines, $0.50 each. */
    HL_CHECK(fabs(pg_double(f.uri, "SELECT sum(cost_usd) FROM cloud_spend") - 0.5 * (double)(lines / 2)) < 1e-6);
    fixture_cleanup(&f);
}

HL_TEST(client_key_lifecycle) {
    fixture f;
    NEED_SERVER(&f);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    check_key_lifecycle(s);
    check_key_spend(s, f.journal);
    hl_store_close(s);
    fixture_cleanup(&f);
}

HL_TEST(heartbeats_count_live_instances) {
    fixture f;
    NEED_SERVER(&f);
    char err[512];
    hl_store *a = NULL, *b = NULL;
    HL_REQUIRE(hl_store_open(&a, f.uri, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_open(&b, f.uri, err, sizeof err) == HL_OK);
    check_heartbeat(a, b);
    hl_store_close(a);
    hl_store_close(b);
    fixture_cleanup(&f);
}

/* Budget leases (hl_store.h): four instances, each on its own connection and thread, take
 * small leases of one key at once as fast as they can; the advisory lock and the one-snapshot
 * read keep spend + leases within the cap, to the cent, whatever the interleaving. */
typedef struct leaser {
    const char *uri;
    char id[16];
    double got;
    int errors;
} leaser;

static const long long LEASE_NOW = 1765000000000LL;

static void *leaser_main(void *arg) {
    leaser *l = arg;
    char err[512];
    hl_store *s = NULL;
    if (hl_store_open(&s, l->uri, err, sizeof err) != HL_OK || hl_store_set_instance(s, l->id) != HL_OK) {
        l->errors++;
        hl_store_close(s);
        return NULL;
    }
    hl_store_lease_ask ask = {.key_id = 5, .cap_day = 1.0, .cap_month = -1, .delta = 0.03};
    for (int i = 0; i < 30; i++) {
        hl_store_lease_result r;
        if (hl_store_lease_adjust(s, &ask, LEASE_NOW, LEASE_NOW - 60000, &r) != HL_OK) l->errors++;
        else l->got += r.granted;
    }
    hl_store_close(s);
    return NULL;
}

HL_TEST(leases_hold_the_cap_under_concurrent_grants_and_settle_in_the_insert) {
    fixture f;
    NEED_SERVER(&f);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, f.uri, err, sizeof err) == HL_OK);
    leaser ls[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ls[i] = (leaser){.uri = f.uri};
        snprintf(ls[i].id, sizeof ls[i].id, "host:%d", 9000 + i);
        HL_REQUIRE(pthread_create(&th[i], NULL, leaser_main, &ls[i]) == 0);
    }
    double total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        HL_CHECK_INT_EQ(ls[i].errors, 0);
        total += ls[i].got;
    }
    /* 120 asks of 0.03 against 1.0: granted exactly the cap, no more. */
    HL_CHECK_NEAR(total, 1.0, 1e-9);
    HL_CHECK_NEAR(pg_double(f.uri, "SELECT sum(amount) FROM budget_leases WHERE subject = 'key:5'"), 1.0, 1e-9);
    /* host:9000's indexer inserts a line of key 5 costing 0.02: its lease pays for it, in the
     * insert's transaction; a replay settles nothing twice. */
    HL_REQUIRE(hl_store_set_instance(s, "host:9000") == HL_OK);
    FILE *fp = fopen(f.journal, "w");
    HL_REQUIRE(fp != NULL);
    fprintf(fp, "{\"timestamp\":\"2025-12-06T05:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,"
                "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0.02,\"request_id\":\"r1\",\"attempt\":1,"
                "\"key_id\":5,\"key_name\":\"k\",\"tenant\":\"k\"}\n");
    fclose(fp);
    double before = pg_double(f.uri, "SELECT amount FROM budget_leases WHERE subject = 'key:5' AND instance = 'host:9000'");
    HL_REQUIRE(hl_store_index(s, f.journal, NULL) == HL_OK);
    double after = pg_double(f.uri, "SELECT amount FROM budget_leases WHERE subject = 'key:5' AND instance = 'host:9000'");
    HL_CHECK_NEAR(before - after, before >= 0.02 ? 0.02 : before, 1e-12);
    HL_REQUIRE(hl_store_index(s, f.journal, NULL) == HL_OK); /* nothing new */
    HL_CHECK_NEAR(pg_double(f.uri, "SELECT amount FROM budget_leases WHERE subject = 'key:5' AND instance = 'host:9000'"),
                  after, 1e-12);
    /* Everyone's heartbeat is from LEASE_NOW: a minute later a new instance's heartbeat expires
     * their leases, and it can take the whole cap less the spend. */
    int live = 0;
    HL_REQUIRE(hl_store_heartbeat(s, "host:9999", LEASE_NOW + 120000, LEASE_NOW + 60000, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 1);
    HL_CHECK_INT_EQ(pg_int(f.uri, "SELECT count(*) FROM budget_leases"), 0);
    HL_REQUIRE(hl_store_set_instance(s, "host:9999") == HL_OK);
    hl_store_lease_ask ask = {.key_id = 5, .cap_day = 1.0, .cap_month = -1, .delta = 5};
    hl_store_lease_result r;
    HL_REQUIRE(hl_store_lease_adjust(s, &ask, LEASE_NOW + 120000, LEASE_NOW + 60000, &r) == HL_OK);
    HL_CHECK_NEAR(r.spend_day, 0.02, 1e-12);
    HL_CHECK_NEAR(r.granted, 0.98, 1e-12);
    hl_store_close(s);
    fixture_cleanup(&f);
}

HL_TEST_MAIN()
