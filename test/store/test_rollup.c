/* Tests for the rollups (hl_rollup.h): histogram buckets within the stated bound, the firsts
 * mask, and report from rollups against report from the rows on a generated ledger with
 * retries, fallbacks, escalations, shadows, eval lines, sensitive requests, several tenants
 * and keys (counts, tokens and costs equal, percentiles within 2%), for every grouping, several
 * keys at once, filters and ranges; a replayed or rotated journal adds nothing; migration 7
 * builds the rollups of the rows already there. On SQLite, and on PostgreSQL with HL_TEST_PG. */
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "hl_ledger.h"
#include "hl_report.h"
#include "hl_rollup.h"
#include "hl_store_int.h"
#include "hl_test.h"

/* ---- histograms and the mask ---- */

HL_TEST(buckets_read_back_within_the_stated_bound) {
    double worst = 0;
    for (double v = 0.01; v < 1e8; v *= 1.0037) {
        int b = hl_hist_bucket(v);
        HL_REQUIRE(b >= 1 && b < HL_HIST_BUCKETS);
        double err = fabs(hl_hist_value(b) - v) / v;
        if (err > worst) worst = err;
        HL_CHECK(hl_hist_bucket(v * 1.0001) >= b); /* monotone */
    }
    HL_CHECK(worst <= HL_HIST_REL_ERROR);
    HL_CHECK(worst > HL_HIST_REL_ERROR * 0.9); /* the bound is tight, not loose */
    HL_CHECK_INT_EQ(hl_hist_bucket(0), 0);
    HL_CHECK_INT_EQ(hl_hist_bucket(-5), 0);
    HL_CHECK_INT_EQ(hl_hist_bucket(NAN), 0);
    HL_CHECK_NEAR(hl_hist_value(0), 0, 0);
    HL_CHECK_INT_EQ(hl_hist_bucket(1e300), HL_HIST_BUCKETS - 1);
}

HL_TEST(histograms_merge_by_bucket) {
    const uint64_t a[] = {(3ULL << 40) | 2, (7ULL << 40) | 1}, b[] = {(1ULL << 40) | 5, (7ULL << 40) | 4, (9ULL << 40) | 1};
    uint64_t out[5];
    size_t n = hl_hist_merge(a, 2, b, 3, out);
    HL_REQUIRE(n == 4);
    HL_CHECK(out[0] == ((1ULL << 40) | 5) && out[1] == ((3ULL << 40) | 2) && out[2] == ((7ULL << 40) | 5) &&
             out[3] == ((9ULL << 40) | 1));
    HL_CHECK_INT_EQ(hl_hist_merge(NULL, 0, b, 3, out), 3);
}

HL_TEST(firsts_mask) {
    hl_rollup_dims self = {"cloud", "anthropic", "claude", "escalate"};
    HL_CHECK_INT_EQ(hl_rollup_firsts(&self, NULL, 0), 0xFFFF);
    /* An escalation: the local attempt shares nothing but the route reason. */
    hl_rollup_dims local = {"local", "vllm", "mistral", "escalate"};
    unsigned m = hl_rollup_firsts(&self, &local, 1);
    HL_CHECK(!(m & 1));                                   /* not the request's first */
    HL_CHECK(m & (1u << HL_ROLLUP_SAME_SOURCE));          /* first cloud attempt */
    HL_CHECK(!(m & (1u << HL_ROLLUP_SAME_ROUTE)));        /* same route reason */
    HL_CHECK(m & (1u << (HL_ROLLUP_SAME_ROUTE | HL_ROLLUP_SAME_BACKEND)));
    /* A retry on the same backend is first for nothing. */
    HL_CHECK_INT_EQ(hl_rollup_firsts(&self, &self, 1), 0);
    /* NULL equals NULL, as SQL's IS. */
    hl_rollup_dims n1 = {"local", NULL, NULL, NULL}, n2 = {"local", NULL, "x", NULL};
    m = hl_rollup_firsts(&n2, &n1, 1);
    HL_CHECK(!(m & (1u << HL_ROLLUP_SAME_BACKEND)) && (m & (1u << HL_ROLLUP_SAME_MODEL)));
}

/* ---- a generated ledger ---- */

#define DAY0 1714521600.0 /* 2024-05-01T00:00:00Z */

static unsigned long long seed;
static unsigned rnd(unsigned n) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((seed >> 33) % n);
}

typedef struct gen {
    hl_buf out;
    char id[32];
} gen;

static void line(gen *g, hl_ledger_record *r) {
    if (hl_ledger_format(r, &g->out) != HL_OK) abort();
}

/* One request: a first attempt, maybe a retry, fallback or escalation, maybe a shadow. */
static void request(gen *g, int i, double t) {
    static const char *const tenants[] = {"acme", "globex", "initech", NULL};
    static const char *const keys[] = {"k-acme-1", "k-acme-2", "k-globex", "k-init", NULL};
    static const char *const tasks[] = {"classification", "extraction", "code_generation", "free_text", NULL};
    static const char *const locals[] = {"vllm-a", "vllm-b"};
    static const char *const clouds[] = {"openai", "anthropic"};
    snprintf(g->id, sizeof g->id, "req-%06d", i);
    int k = (int)rnd(5);
    hl_ledger_record r = {0};
    r.request_id = g->id;
    r.tenant = tenants[k < 4 ? k % 4 : 3];
    r.key_name = keys[k];
    r.key_id = keys[k] ? k + 1 : 0;
    r.task_type = tasks[rnd(5)];
    r.sensitive = rnd(10) == 0;
    r.confidence = -1;
    bool cloud = !r.sensitive && rnd(3) == 0;
    const char *backend = cloud ? clouds[rnd(2)] : locals[rnd(2)];
    unsigned shape = rnd(10); /* 0: retry, 1: fallback, 2: escalation (local only), else one attempt */
    int attempt = 1;
    for (;;) {
        r.timestamp = t + attempt * 0.5;
        r.attempt = attempt;
        r.cloud = cloud;
        r.backend = backend;
        r.model = cloud ? (strcmp(backend, "openai") ? "claude-3-5-sonnet" : "gpt-4o") : "mistral-7b";
        r.route_reason = attempt == 1 ? "rule:default" : shape == 2 ? "escalate" : "fallback";
        r.stream = rnd(2);
        r.usage = (hl_usage){.input_tokens = 50 + rnd(3000), .output_tokens = 1 + rnd(600), .known = true};
        r.usage.cached_input_tokens = rnd(4) == 0 ? r.usage.input_tokens / 2 : 0;
        r.latency_ms = 20 + rnd(5000) + rnd(100) / 7.0;
        r.ttft_ms = r.stream && rnd(8) ? 5.0 + rnd(400) : -1.0;
        r.cost_known = !(cloud && rnd(20) == 0);
        r.cost_usd = r.cost_known ? (cloud ? 1e-6 * (r.usage.input_tokens * 3 + r.usage.output_tokens * 15)
                                           : r.latency_ms / 3.6e6 * 0.05)
                                  : 0;
        bool last = !((shape <= 1 && attempt == 1) || (shape == 2 && !cloud && attempt == 1));
        r.status = last ? (rnd(25) == 0 ? "error" : rnd(40) == 0 ? "cancelled" : "ok")
                        : shape == 2 ? "escalated" : "error";
        r.http_status = strcmp(r.status, "error") ? 200 : 529;
        line(g, &r);
        if (last) break;
        attempt++;
        if (shape == 1) backend = cloud ? clouds[!strcmp(backend, clouds[0])] : locals[!strcmp(backend, locals[0])];
        if (shape == 2) {
            cloud = true;
            backend = clouds[rnd(2)];
        }
    }
    if (!r.sensitive && rnd(6) == 0) { /* a shadow comparison after the served answer */
        hl_ledger_record sh = r;
        sh.attempt = attempt + 1;
        sh.timestamp = t + 30;
        sh.shadow = true;
        sh.cloud = !r.cloud;
        sh.backend = sh.cloud ? "openai" : "vllm-a";
        sh.model = sh.cloud ? "gpt-4o" : "mistral-7b";
        sh.status = "ok";
        sh.scored = true;
        sh.score = rnd(1000) / 1000.0;
        sh.agree = sh.score >= 0.5;
        sh.score_method = "token_f1";
        sh.reference = "served";
        sh.ref_output_tokens = r.usage.output_tokens;
        sh.cost_known = true;
        sh.cost_usd = 0.001;
        line(g, &sh);
    }
}

/* n requests over nine days (two weeks), plus eval lines. */
static void write_ledger(const char *path, int n, unsigned long long s0) {
    gen g;
    hl_buf_init(&g.out, 0);
    seed = s0;
    for (int i = 0; i < n; i++) request(&g, i, DAY0 + (double)i * (9 * 86400.0 / n) + rnd(60));
    for (int i = 0; i < n / 20; i++) {
        char id[32];
        snprintf(id, sizeof id, "eval-%04d", i);
        hl_ledger_record r = {.timestamp = DAY0 + 3600 * 30 + i, .request_id = id, .attempt = 1, .cloud = false,
                              .backend = "vllm-a", .model = "mistral-7b", .status = "ok", .task_type = "classification",
                              .usage = {.input_tokens = 100, .output_tokens = 10, .known = true}, .latency_ms = 250,
                              .ttft_ms = -1, .confidence = -1, .cost_usd = 0.0001, .cost_known = true, .scored = true,
                              .score = 1, .agree = true, .score_method = "exact", .reference = "expected",
                              .eval_run = "run-1"};
        if (hl_ledger_format(&r, &g.out) != HL_OK) abort();
    }
    FILE *f = fopen(path, "w");
    if (!f || fwrite(g.out.data, 1, g.out.len, f) != g.out.len) abort();
    fclose(f);
    hl_buf_release(&g.out);
}

/* ---- comparing reports ---- */

static bool near_rel(double a, double b, double rel) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-12;
}

static int mismatches;

#define SAME_INT(f) \
    do { if (x->f != y->f) { mismatches++; fprintf(stderr, "  %s %s: " #f " %lld vs %lld\n", what, label, (long long)x->f, (long long)y->f); } } while (0)
#define SAME_USD(f) \
    do { if (!near_rel(x->f, y->f, 1e-9)) { mismatches++; fprintf(stderr, "  %s %s: " #f " %.12g vs %.12g\n", what, label, x->f, y->f); } } while (0)
#define SAME_PCT(f) \
    do { if (!near_rel(x->f, y->f, HL_HIST_REL_ERROR)) { mismatches++; fprintf(stderr, "  %s %s: " #f " %g vs %g\n", what, label, x->f, y->f); } } while (0)

/* x from the rollups, y from the rows. */
static void compare_row(const char *what, const hl_report_row *x, const hl_report_row *y) {
    const char *label = y->group ? y->group : "(total/none)";
    if (!x->group != !y->group || (x->group && strcmp(x->group, y->group))) {
        mismatches++;
        fprintf(stderr, "  %s: group %s vs %s\n", what, x->group ? x->group : "-", label);
        return;
    }
    SAME_INT(requests); SAME_INT(attempts); SAME_INT(answered); SAME_INT(errors); SAME_INT(escalations);
    SAME_INT(unpriced); SAME_INT(input_tokens); SAME_INT(output_tokens); SAME_INT(cached_input_tokens);
    SAME_INT(shadow); SAME_INT(scored); SAME_INT(agreed); SAME_INT(sensitive);
    SAME_USD(cost_usd); SAME_USD(cost_per_inference); SAME_USD(shadow_usd); SAME_USD(local_cost_usd);
    SAME_USD(cloud_equiv_usd); SAME_USD(compared_usd); SAME_USD(hardware_usd); SAME_USD(savings_usd);
    SAME_USD(error_rate); SAME_USD(escalation_rate); SAME_USD(mean_score);
    SAME_PCT(latency_p50_ms); SAME_PCT(latency_p95_ms); SAME_PCT(latency_p99_ms); SAME_PCT(ttft_p50_ms);
}

static const hl_price price = {"cloud", 3.0, 15.0, 0.3, 3.75};

/* Builds o both ways and compares every figure. Returns the rows' report's group count. */
static size_t compare(hl_store *s, hl_report_opts o, const char *what) {
    char err[512];
    hl_report *a = NULL, *b = NULL;
    o.exact = false;
    if (hl_report_build(s, &o, &a, err, sizeof err) != HL_OK) fprintf(stderr, "  %s: %s\n", what, err);
    o.exact = true;
    if (hl_report_build(s, &o, &b, err, sizeof err) != HL_OK) fprintf(stderr, "  %s: %s\n", what, err);
    size_t n = 0;
    if (!a || !b) {
        mismatches++;
    } else {
        if (!a->from_rollups || b->from_rollups) {
            mismatches++;
            fprintf(stderr, "  %s: not computed both ways (%s)\n", what, a->why_rows ? a->why_rows : "");
        }
        if (a->n_rows != b->n_rows || a->eval_skipped != b->eval_skipped || a->period_hours != b->period_hours) {
            mismatches++;
            fprintf(stderr, "  %s: %zu vs %zu groups\n", what, a->n_rows, b->n_rows);
        } else {
            for (size_t i = 0; i < a->n_rows; i++) compare_row(what, &a->rows[i], &b->rows[i]);
        }
        compare_row(what, &a->total, &b->total);
        n = b->n_rows;
    }
    hl_report_free(a);
    hl_report_free(b);
    return n;
}

/* Every grouping, several keys, filters and ranges, with and without eval lines. */
static void compare_all(hl_store *s) {
    hl_report_opts o;
    hl_report_opts_init(&o);
    o.cloud_price = &price;
    static const char *const groupings[] = {
        "none", "source", "backend", "model", "task_type", "route_reason", "tenant", "key", "status", "hour",
        "day", "week", "month", "day,source", "tenant,backend", "source,backend,model,route_reason",
        "key,route_reason", "model,status,day"};
    for (size_t i = 0; i < sizeof groupings / sizeof groupings[0]; i++) {
        HL_REQUIRE(hl_report_parse_group_by(groupings[i], &o) == HL_OK);
        size_t n = compare(s, o, groupings[i]);
        /* nine days of May: one month, the rest several groups */
        if (strcmp(groupings[i], "none")) HL_CHECK(n >= (strcmp(groupings[i], "month") ? 2u : 1u));
    }
    HL_REQUIRE(hl_report_parse_group_by("source,tenant", &o) == HL_OK);
    o.include_eval = true;
    compare(s, o, "with eval");
    o.include_eval = false;
    o.from_ms = (long long)(DAY0 + 86400 + 5 * 3600) * 1000; /* whole hours */
    o.to_ms = (long long)(DAY0 + 3 * 86400) * 1000;
    compare(s, o, "a range");
    o.to_ms = (long long)(DAY0 + 5 * 86400 + 7 * 3600) * 1000; /* whole days between ragged ends */
    compare(s, o, "a range with whole days inside");
    HL_REQUIRE(hl_report_parse_group_by("hour", &o) == HL_OK);
    compare(s, o, "hours of a range");
    HL_REQUIRE(hl_report_parse_group_by("source,tenant", &o) == HL_OK);
    o.filter.tenant = "acme";
    compare(s, o, "tenant acme");
    o.filter.tenant = NULL;
    o.from_ms = HL_STORE_TIME_MIN;
    o.to_ms = HL_STORE_TIME_MAX;
    const hl_store_filter filters[] = {{.key_name = "k-acme-2"}, {.backend = "vllm-b"}, {.model = "gpt-4o"},
                                       {.task_type = "code_generation"}, {.source = "cloud"},
                                       {.tenant = "globex", .source = "local"}};
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        o.filter = filters[i];
        compare(s, o, "a filter");
    }
    o.filter = (hl_store_filter){0};
    o.hardware_usd = 0;
    o.cloud_price = NULL;
    compare(s, o, "no price");
}

typedef struct paths {
    char dir[64], journal[128], db[128];
} paths;

static void paths_init(paths *p) {
    snprintf(p->dir, sizeof p->dir, "/tmp/hl_rollup_test_XXXXXX");
    if (!mkdtemp(p->dir)) abort();
    snprintf(p->journal, sizeof p->journal, "%s/ledger.jsonl", p->dir);
    snprintf(p->db, sizeof p->db, "%s/ledger.db", p->dir);
}

static void paths_cleanup(paths *p) {
    const char *f[] = {"ledger.jsonl", "ledger.db", "ledger.db-wal", "ledger.db-shm"};
    char x[192];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        snprintf(x, sizeof x, "%s/%s", p->dir, f[i]);
        unlink(x);
    }
    rmdir(p->dir);
}

static int sql_exec(const char *db, const char *sql) {
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK) return -1;
    int rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
    sqlite3_close(h);
    return rc;
}

HL_TEST(rollups_give_the_rows_figures_on_sqlite) {
    paths p;
    paths_init(&p);
    write_ledger(p.journal, 3000, 42);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(st.inserted > 3500);
    mismatches = 0;
    compare_all(s);
    HL_CHECK_INT_EQ(mismatches, 0);
    hl_store_close(s);
    paths_cleanup(&p);
}

/* Lines that differ from the line before in one dimension only keep their own cells (the
 * indexer tries the previous line's cell first): four lines per dimension, alternating. */
HL_TEST(alternating_lines_keep_their_cells) {
    paths p;
    paths_init(&p);
    gen g;
    hl_buf_init(&g.out, 0);
    const hl_ledger_record base = {
        .timestamp = DAY0 + 3600, .attempt = 1, .backend = "vllm-a", .model = "mistral-7b",
        .route_reason = "rule:default", .status = "ok", .tenant = "acme", .key_name = "k-acme-1", .key_id = 1,
        .task_type = "classification", .usage = {.input_tokens = 100, .output_tokens = 10, .known = true},
        .latency_ms = 100, .ttft_ms = -1, .confidence = -1, .cost_usd = 0.001, .cost_known = true,
        .http_status = 200};
    enum { DIMS = 10 };
    for (int d = 0; d < DIMS; d++)
        for (int i = 0; i < 4; i++) {
            hl_ledger_record r = base;
            snprintf(g.id, sizeof g.id, "alt-%d-%d", d, i);
            r.request_id = g.id;
            r.timestamp += d * 60 + i;
            r.usage.input_tokens += 10 * d + i;
            if (i % 2) {
                switch (d) {
                case 0: r.backend = "vllm-b"; break;
                case 1: r.model = "llama-3.1-8b"; break;
                case 2: r.route_reason = "rule:code"; break;
                case 3: r.tenant = "globex"; break;
                case 4: r.key_name = "k-acme-2"; break;
                case 5: r.task_type = "extraction"; break;
                case 6: r.cloud = true; break;
                case 7: r.status = "error"; break;
                case 8: r.sensitive = true; break;
                default: r.tenant = NULL; break;
                }
            }
            line(&g, &r);
        }
    FILE *f = fopen(p.journal, "w");
    HL_REQUIRE(f && fwrite(g.out.data, 1, g.out.len, f) == g.out.len);
    fclose(f);
    hl_buf_release(&g.out);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK_INT_EQ(st.inserted, 4 * DIMS);
    hl_report_opts o;
    hl_report_opts_init(&o);
    o.cloud_price = &price;
    static const char *const groupings[] = {"none", "backend", "model", "route_reason", "tenant",
                                            "key", "task_type", "source", "status"};
    mismatches = 0;
    for (size_t i = 0; i < sizeof groupings / sizeof groupings[0]; i++) {
        HL_REQUIRE(hl_report_parse_group_by(groupings[i], &o) == HL_OK);
        size_t n = compare(s, o, groupings[i]);
        if (strcmp(groupings[i], "none")) HL_CHECK(n >= 2);
    }
    HL_CHECK_INT_EQ(mismatches, 0);
    hl_store_close(s);
    paths_cleanup(&p);
}

/* The same lines again (the offset lost, as after a crash before the commit; then a rotated
 * journal with the same content) insert nothing and add nothing to the rollups. */
HL_TEST(a_replayed_journal_adds_nothing_twice) {
    paths p;
    paths_init(&p);
    write_ledger(p.journal, 500, 7);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    hl_report_opts o;
    hl_report_opts_init(&o);
    HL_REQUIRE(hl_report_parse_group_by("day,source", &o) == HL_OK);
    hl_report *before = NULL, *after = NULL;
    HL_REQUIRE(hl_report_build(s, &o, &before, err, sizeof err) == HL_OK);
    HL_REQUIRE(before->from_rollups);
    hl_store_close(s);
    HL_REQUIRE(sql_exec(p.db, "DELETE FROM journal_state") == 0);
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    hl_store_index_stats st;
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(st.lines > 500 && st.duplicates == st.lines && st.inserted == 0);
    HL_REQUIRE(hl_report_build(s, &o, &after, err, sizeof err) == HL_OK);
    mismatches = 0;
    HL_REQUIRE(before->n_rows == after->n_rows);
    for (size_t i = 0; i < before->n_rows; i++) {
        const hl_report_row *x = &after->rows[i], *y = &before->rows[i];
        const char *what = "replay", *label = y->group;
        SAME_INT(requests); SAME_INT(attempts); SAME_INT(input_tokens);
        HL_CHECK(x->cost_usd == y->cost_usd && x->latency_p99_ms == y->latency_p99_ms);
    }
    HL_CHECK_INT_EQ(mismatches, 0);
    HL_CHECK_INT_EQ(after->total.attempts, before->total.attempts);
    hl_report_free(after);
    /* Rotated: the file replaced by a copy of itself is read again from byte 0. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.new", p.journal);
    FILE *in = fopen(p.journal, "r"), *outf = fopen(tmp, "w");
    HL_REQUIRE(in && outf);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, outf);
    fclose(in);
    fclose(outf);
    HL_REQUIRE(rename(tmp, p.journal) == 0);
    HL_REQUIRE(hl_store_index(s, p.journal, &st) == HL_OK);
    HL_CHECK(st.restarted && st.inserted == 0);
    HL_REQUIRE(hl_report_build(s, &o, &after, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(after->total.attempts, before->total.attempts);
    HL_CHECK_INT_EQ(after->total.requests, before->total.requests);
    HL_CHECK(after->total.cost_usd == before->total.cost_usd);
    hl_report_free(after);
    hl_report_free(before);
    hl_store_close(s);
    paths_cleanup(&p);
}

/* A store indexed before rollups existed (schema 6) gets them from its rows when it opens. */
HL_TEST(migration_7_builds_the_rollups_of_existing_rows) {
    paths p;
    paths_init(&p);
    write_ledger(p.journal, 800, 99);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    hl_store_close(s);
    /* Back to schema 6: without the rollups (7) and the replica column (8), with the indexes
     * and the trigger 9 drops. */
    HL_REQUIRE(sql_exec(p.db, "DROP TABLE rollups; DROP TABLE rollups_day; ALTER TABLE inferences DROP COLUMN replica;"
                              " CREATE INDEX inferences_source_ts ON inferences (source, ts);"
                              " CREATE INDEX inferences_backend_ts ON inferences (backend, ts);"
                              " CREATE INDEX inferences_tenant_ts ON inferences (tenant, ts);"
                              " CREATE TRIGGER inferences_cloud_spend AFTER INSERT ON inferences"
                              "  WHEN NEW.source = 'cloud' AND NEW.cost_usd > 0 BEGIN SELECT 1; END;"
                              " DELETE FROM schema_version WHERE version >= 7") == 0);
    HL_REQUIRE(hl_store_open(&s, p.db, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_store_schema_version(s), 9);
    mismatches = 0;
    compare_all(s);
    HL_CHECK_INT_EQ(mismatches, 0);
    hl_store_close(s);
    paths_cleanup(&p);
}

/* ---- PostgreSQL ---- */

/* A database of this test's own on the HL_TEST_PG server (tests run side by side), its URI
 * into uri. */
static bool pg_fresh(const char *base, const char *name, char *uri, size_t len) {
    PGconn *c = PQconnectdb(base);
    bool ok = PQstatus(c) == CONNECTION_OK;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = ok ? PQexec(c, sql) : NULL;
    ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    snprintf(uri, len, "%s%sdbname=%s", base, strchr(base, '?') ? "&" : "?", name);
    return ok;
}

static void pg_drop(const char *base, const char *name) {
    PGconn *c = PQconnectdb(base);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(c, sql));
    PQfinish(c);
}

static bool pg_exec(const char *uri, const char *sql) {
    PGconn *c = PQconnectdb(uri);
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(c);
    return ok;
}

HL_TEST(rollups_give_the_rows_figures_on_postgresql) {
    const char *base = getenv("HL_TEST_PG");
    if (!base || !*base) HL_SKIP("HL_TEST_PG is not set (eval \"$(scripts/pg.sh start)\" gives one)");
    char uri[1200], name[64];
    snprintf(name, sizeof name, "hl_rollup_%d", (int)getpid());
    HL_REQUIRE(pg_fresh(base, name, uri, sizeof uri));
    paths p;
    paths_init(&p);
    write_ledger(p.journal, 1500, 5);
    char err[512];
    hl_store *s = NULL;
    HL_REQUIRE(hl_store_open(&s, uri, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    mismatches = 0;
    compare_all(s);
    HL_CHECK_INT_EQ(mismatches, 0);
    /* Replayed: nothing twice. */
    hl_report_opts o;
    hl_report_opts_init(&o);
    hl_report *a = NULL, *b = NULL;
    HL_REQUIRE(hl_report_build(s, &o, &a, err, sizeof err) == HL_OK);
    HL_REQUIRE(pg_exec(uri, "DELETE FROM journal_state"));
    HL_REQUIRE(hl_store_index(s, p.journal, NULL) == HL_OK);
    HL_REQUIRE(hl_report_build(s, &o, &b, err, sizeof err) == HL_OK);
    HL_CHECK(a->from_rollups && b->from_rollups);
    HL_CHECK_INT_EQ(a->total.attempts, b->total.attempts);
    HL_CHECK_INT_EQ(a->total.requests, b->total.requests);
    HL_CHECK_NEAR(a->total.cost_usd, b->total.cost_usd, 1e-12);
    hl_report_free(a);
    hl_report_free(b);
    hl_store_close(s);
    /* Migrations 7 to 9 on a store at 6: the rollups come from the rows. */
    HL_REQUIRE(pg_exec(uri, "DROP TABLE rollups, rollups_day; DROP FUNCTION hybridllm_hist_add(bigint[], bigint[]);"
                            " ALTER TABLE inferences DROP COLUMN replica;"
                            " CREATE INDEX inferences_source_ts ON inferences (source, ts);"
                            " CREATE INDEX inferences_backend_ts ON inferences (backend, ts);"
                            " CREATE INDEX inferences_tenant_ts ON inferences (tenant, ts);"
                            " DELETE FROM schema_version WHERE version >= 7"));
    HL_REQUIRE(hl_store_open(&s, uri, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_store_schema_version(s), 9);
    mismatches = 0;
    compare_all(s);
    HL_CHECK_INT_EQ(mismatches, 0);
    hl_store_close(s);
    pg_drop(base, name);
    paths_cleanup(&p);
}

HL_TEST_MAIN()
