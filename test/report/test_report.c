/* Tests for hl_report: every figure of a small hand-computed ledger grouped by source,
 * backend, day and tenant (requests counted once per group, exact nearest-rank percentiles,
 * savings against all-cloud); time ranges that cut a request in two; percentiles and
 * request counts checked against SQL over random data; the shapes of CSV, JSON and table;
 * and, when the binary has the command, `hybridllm report` itself. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_report.h"
#include "hl_rollup.h"
#include "hl_store.h"
#include "hl_test.h"

/* ---- fixtures ---- */

typedef struct env {
    char dir[64], journal[128], db[128];
    hl_store *s;
} env;

static void env_init(env *v) {
    snprintf(v->dir, sizeof v->dir, "/tmp/hl_report_test_XXXXXX");
    if (!mkdtemp(v->dir)) abort();
    snprintf(v->journal, sizeof v->journal, "%s/ledger.jsonl", v->dir);
    snprintf(v->db, sizeof v->db, "%s/ledger.db", v->dir);
    v->s = NULL;
}

static void env_cleanup(env *v) {
    hl_store_close(v->s);
    const char *f[] = {"ledger.jsonl", "ledger.db", "ledger.db-wal", "ledger.db-shm", "out.txt"};
    char p[192];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", v->dir, f[i]);
        unlink(p);
    }
    rmdir(v->dir);
}

typedef struct rec {
    const char *ts;      /* whole seconds: the ledger writes milliseconds */
    const char *id;
    int attempt;
    bool cloud;
    const char *backend, *status;
    long in, out;
    double latency, ttft; /* ttft < 0: not streamed */
    double cost;          /* < 0: null */
    const char *tenant;
} rec;

static void write_recs(const char *journal, const rec *rs, size_t n) {
    int fd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (fd < 0) abort();
    hl_buf b;
    hl_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        const rec *x = &rs[i];
        long long ms;
        if (hl_store_parse_time(x->ts, strlen(x->ts), &ms) != HL_OK) abort();
        hl_ledger_record r = {0};
        r.timestamp = (double)ms / 1000.0;
        r.request_id = x->id;
        r.attempt = x->attempt;
        r.cloud = x->cloud;
        r.backend = x->backend;
        r.model = x->cloud ? "cloud-model" : "local-model";
        r.route_reason = "rule:default";
        r.status = x->status;
        r.tenant = x->tenant;
        r.stream = x->ttft >= 0;
        r.usage = (hl_usage){.input_tokens = x->in, .output_tokens = x->out, .known = true};
        r.latency_ms = x->latency;
        r.ttft_ms = x->ttft;
        r.confidence = -1;
        r.cost_known = x->cost >= 0;
        r.cost_usd = x->cost >= 0 ? x->cost : 0;
        r.http_status = strcmp(x->status, "error") ? 200 : 529;
        hl_buf_reset(&b);
        if (hl_ledger_format(&r, &b) != HL_OK || write(fd, b.data, b.len) != (ssize_t)b.len) abort();
    }
    hl_buf_release(&b);
    close(fd);
}

static bool open_and_index(env *v) {
    char err[512];
    return hl_store_open(&v->s, v->db, err, sizeof err) == HL_OK &&
           hl_store_index(v->s, v->journal, NULL) == HL_OK;
}

/* Whether build() reads the rows (exact percentiles) or the rollups (within 2%): tests of
 * figures run in both. */
static bool exact_mode = true;

/* A percentile: exact from the rows, within the histograms' bound from the rollups. */
#define CHECK_PCT(got, want) HL_CHECK_NEAR(got, want, exact_mode ? 0 : (want) * HL_HIST_REL_ERROR)

static hl_report *build(env *v, hl_store_group g, const char *from, const char *to, const hl_price *price) {
    hl_report_opts o = {.group_by = g, .from_ms = HL_STORE_TIME_MIN, .to_ms = HL_STORE_TIME_MAX,
                        .cloud_price = price, .exact = exact_mode};
    if (from && hl_store_parse_time(from, strlen(from), &o.from_ms) != HL_OK) return NULL;
    if (to && hl_store_parse_time(to, strlen(to), &o.to_ms) != HL_OK) return NULL;
    hl_report *r = NULL;
    char err[512];
    if (hl_report_build(v->s, &o, &r, err, sizeof err) != HL_OK) fprintf(stderr, "  report: %s\n", err);
    return r;
}

static const hl_report_row *row(const hl_report *r, const char *group) {
    for (size_t i = 0; i < r->n_rows; i++)
        if (group ? r->rows[i].group && !strcmp(r->rows[i].group, group) : !r->rows[i].group)
            return &r->rows[i];
    return NULL;
}

/* The hand-computed ledger. Seven requests over two days:
 *   r1, r2  answered locally
 *   r3      answered locally below the confidence threshold (escalated), then by the cloud
 *   r4      a cloud error (529) on anthropic, then answered by openai
 *   r5      answered locally (day 2)
 *   r6      answered by the cloud, model without a price (cost null)
 *   r7      a local error, then answered by the cloud */
static const rec fixture[] = {
    {"2024-05-01T10:00:00Z", "r1", 1, false, "vllm", "ok", 1000, 200, 100, 10, 0.0001, "acme"},
    {"2024-05-01T10:00:01Z", "r2", 1, false, "vllm", "ok", 2000, 400, 300, 30, 0.0003, "acme"},
    {"2024-05-01T10:00:02Z", "r3", 1, false, "vllm", "escalated", 500, 100, 200, -1, 0.0002, "acme"},
    {"2024-05-01T10:00:03Z", "r3", 2, true, "anthropic", "ok", 500, 100, 1000, -1, 0.003, "acme"},
    {"2024-05-01T10:00:04Z", "r4", 1, true, "anthropic", "error", 0, 0, 50, -1, 0, NULL},
    {"2024-05-01T10:00:05Z", "r4", 2, true, "openai", "ok", 1000, 100, 800, 200, 0.0045, NULL},
    {"2024-05-02T10:00:00Z", "r5", 1, false, "vllm", "ok", 4000, 1000, 400, 40, 0.0004, NULL},
    {"2024-05-02T10:00:01Z", "r6", 1, true, "openai", "ok", 100, 10, 600, 100, -1, NULL},
    {"2024-05-02T10:00:02Z", "r7", 1, false, "vllm", "error", 0, 0, 20, -1, 0.00002, NULL},
    {"2024-05-02T10:00:03Z", "r7", 2, true, "anthropic", "ok", 200, 50, 700, 150, 0.00135, NULL},
};

/* $3 in / $15 out per 1M tokens, cached reads at the input price. */
static const hl_price price = {"cloud-3-15", 3.0, 15.0, 3.0, 3.0};

static bool setup_fixture(env *v) {
    env_init(v);
    write_recs(v->journal, fixture, sizeof fixture / sizeof fixture[0]);
    return open_and_index(v);
}

/* ---- figures ---- */

static void by_source_hand_computed_in(void) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_SOURCE, NULL, NULL, &price);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->n_rows, 2);
    HL_CHECK_STR_EQ(r->rows[0].group, "cloud"); /* sorted */

    const hl_report_row *l = row(r, "local");
    HL_REQUIRE(l);
    /* r1 r2 r3/1 r5 r7/1 */
    HL_CHECK_INT_EQ(l->attempts, 5);
    HL_CHECK_INT_EQ(l->requests, 5);
    HL_CHECK_INT_EQ(l->input_tokens, 7500);
    HL_CHECK_INT_EQ(l->output_tokens, 1700);
    HL_CHECK_NEAR(l->cost_usd, 0.00102, 1e-12);
    HL_CHECK_NEAR(l->cost_per_inference, 0.00102 / 5, 1e-12);
    /* Answered latencies 100 300 200 400 -> sorted 100 200 300 400; ranks ceil(.5*4)=2,
     * ceil(.95*4)=4, ceil(.99*4)=4. */
    CHECK_PCT(l->latency_p50_ms, 200);
    CHECK_PCT(l->latency_p95_ms, 400);
    CHECK_PCT(l->latency_p99_ms, 400);
    CHECK_PCT(l->ttft_p50_ms, 30); /* 10 30 40: rank 2 */
    HL_CHECK_NEAR(l->error_rate, 1.0 / 5, 1e-12);
    HL_CHECK_NEAR(l->escalation_rate, 1.0 / 5, 1e-12);
    HL_CHECK_INT_EQ(l->unpriced, 0);
    /* All-cloud price of the answered local attempts (r1 r2 r5; r3 escalated and r7 failed
     * saved nothing): (1000x3 + 200x15) + (2000x3 + 400x15) + (4000x3 + 1000x15) = 45000
     * USD per 1M = 0.045; minus every local attempt's cost 0.00102. */
    HL_CHECK_NEAR(l->cloud_equiv_usd, 0.045, 1e-12);
    HL_CHECK_NEAR(l->savings_usd, 0.045 - 0.00102, 1e-12);

    const hl_report_row *c = row(r, "cloud");
    HL_REQUIRE(c);
    /* r3/2 r4/1 r4/2 r6 r7/2: r4 is one request */
    HL_CHECK_INT_EQ(c->attempts, 5);
    HL_CHECK_INT_EQ(c->requests, 4);
    HL_CHECK_INT_EQ(c->input_tokens, 1800);
    HL_CHECK_INT_EQ(c->output_tokens, 260);
    HL_CHECK_NEAR(c->cost_usd, 0.00885, 1e-12);
    HL_CHECK_NEAR(c->cost_per_inference, 0.00885 / 4, 1e-12);
    HL_CHECK_INT_EQ(c->unpriced, 1);
    /* 1000 800 600 700 -> 600 700 800 1000 */
    CHECK_PCT(c->latency_p50_ms, 700);
    CHECK_PCT(c->latency_p95_ms, 1000);
    CHECK_PCT(c->latency_p99_ms, 1000);
    CHECK_PCT(c->ttft_p50_ms, 150); /* 100 150 200 */
    HL_CHECK_NEAR(c->error_rate, 1.0 / 5, 1e-12);
    HL_CHECK_NEAR(c->escalation_rate, 0, 0);
    /* The whole workload at the cloud price: the cloud's answers too (r3/2 500+100, r4/2
     * 1000+100, r6 100+10, r7/2 200+50: 0.003 + 0.0045 + 0.00045 + 0.00135 = 0.0093), against
     * what they cost (0.00885; r6 is unpriced). */
    HL_CHECK_NEAR(c->cloud_equiv_usd, 0.0093, 1e-12);
    HL_CHECK_NEAR(c->compared_usd, 0.00885, 1e-12);
    HL_CHECK_NEAR(c->savings_usd, 0.0093 - 0.00885, 1e-12);

    const hl_report_row *t = &r->total;
    HL_CHECK(t->group == NULL);
    HL_CHECK_INT_EQ(t->attempts, 10);
    HL_CHECK_INT_EQ(t->requests, 7);
    HL_CHECK_INT_EQ(t->input_tokens, 9300);
    HL_CHECK_INT_EQ(t->output_tokens, 1960);
    HL_CHECK_NEAR(t->cost_usd, 0.00987, 1e-12);
    HL_CHECK_NEAR(t->cost_per_inference, 0.00141, 1e-12);
    /* 100 200 300 400 600 700 800 1000: ranks 4, ceil(7.6)=8, ceil(7.92)=8 */
    CHECK_PCT(t->latency_p50_ms, 400);
    CHECK_PCT(t->latency_p95_ms, 1000);
    CHECK_PCT(t->latency_p99_ms, 1000);
    CHECK_PCT(t->ttft_p50_ms, 40); /* 10 30 40 100 150 200: rank 3 */
    HL_CHECK_NEAR(t->error_rate, 0.2, 1e-12);
    HL_CHECK_NEAR(t->escalation_rate, 1.0 / 7, 1e-12);
    HL_CHECK_INT_EQ(t->unpriced, 1);
    /* All-cloud 0.045 + 0.0093 = 0.0543 against the spend 0.00987: never below the cost. */
    HL_CHECK_NEAR(t->cloud_equiv_usd, 0.0543, 1e-12);
    HL_CHECK(t->cloud_equiv_usd > t->cost_usd);
    HL_CHECK_NEAR(t->savings_usd, 0.0543 - 0.00987, 1e-12);
    HL_CHECK_NEAR(t->hardware_usd, 0, 0); /* none given */
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(by_source_hand_computed) {
    exact_mode = true;
    by_source_hand_computed_in();
    exact_mode = false;
    by_source_hand_computed_in();
    exact_mode = true;
}

static void by_backend_counts_a_request_in_each_backend_it_touched_in(void) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_BACKEND, NULL, NULL, NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->n_rows, 3);
    const hl_report_row *a = row(r, "anthropic"), *o = row(r, "openai"), *l = row(r, "vllm");
    HL_REQUIRE(a && o && l);
    /* anthropic: r3/2 r4/1 r7/2 */
    HL_CHECK_INT_EQ(a->attempts, 3);
    HL_CHECK_INT_EQ(a->requests, 3);
    HL_CHECK_NEAR(a->cost_usd, 0.00435, 1e-12);
    CHECK_PCT(a->latency_p50_ms, 700); /* 700 1000: rank 1 */
    CHECK_PCT(a->latency_p95_ms, 1000);
    HL_CHECK_NEAR(a->error_rate, 1.0 / 3, 1e-12);
    CHECK_PCT(a->ttft_p50_ms, 150); /* only r7/2 streamed */
    /* openai: r4/2 (its attempt 1 was anthropic's, so it is openai's first) and r6 */
    HL_CHECK_INT_EQ(o->attempts, 2);
    HL_CHECK_INT_EQ(o->requests, 2);
    HL_CHECK_NEAR(o->cost_usd, 0.0045, 1e-12);
    HL_CHECK_INT_EQ(o->unpriced, 1);
    CHECK_PCT(o->latency_p50_ms, 600);
    HL_CHECK_INT_EQ(l->requests, 5);
    HL_CHECK_INT_EQ(r->total.requests, 7);
    /* No price: no savings figures. */
    HL_CHECK(isnan(l->savings_usd) && isnan(r->total.cloud_equiv_usd));
    HL_CHECK(!r->has_cloud_price);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(by_backend_counts_a_request_in_each_backend_it_touched) {
    exact_mode = true;
    by_backend_counts_a_request_in_each_backend_it_touched_in();
    exact_mode = false;
    by_backend_counts_a_request_in_each_backend_it_touched_in();
    exact_mode = true;
}

static void by_day_and_time_range_in(void) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_DAY, NULL, NULL, &price);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->n_rows, 2);
    const hl_report_row *d1 = row(r, "2024-05-01"), *d2 = row(r, "2024-05-02");
    HL_REQUIRE(d1 && d2);
    HL_CHECK_INT_EQ(d1->attempts, 6);
    HL_CHECK_INT_EQ(d1->requests, 4);
    HL_CHECK_NEAR(d1->cost_usd, 0.0081, 1e-12);
    /* r1 r2 r3/2 r4/2 at cloud prices: 0.006 + 0.012 + 0.003 + 0.0045 */
    HL_CHECK_NEAR(d1->savings_usd, 0.0255 - 0.0081, 1e-12);
    HL_CHECK_INT_EQ(d2->attempts, 4);
    HL_CHECK_INT_EQ(d2->requests, 3);
    HL_CHECK_NEAR(d2->cost_usd, 0.00177, 1e-12);
    HL_CHECK_NEAR(d2->savings_usd, 0.027 + 0.00045 + 0.00135 - 0.00177, 1e-12); /* r5 r6 r7/2 */
    hl_report_free(r);

    /* Day 2 only, by source. --from inclusive, --to exclusive. */
    r = build(&v, HL_STORE_GROUP_SOURCE, "2024-05-02", "2024-05-02T10:00:03Z", NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->total.attempts, 3); /* r5 r6 r7/1; r7/2 is at the exclusive end */
    HL_CHECK_INT_EQ(r->total.requests, 3);
    HL_CHECK_INT_EQ(r->n_rows, 2);
    hl_report_free(r);
    /* An empty range: a total of zeros and no groups. */
    r = build(&v, HL_STORE_GROUP_SOURCE, "2023-01-01", "2023-02-01", NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->n_rows, 0);
    HL_CHECK_INT_EQ(r->total.attempts, 0);
    HL_CHECK(isnan(r->total.latency_p50_ms) && isnan(r->total.cost_per_inference));
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(by_day_and_time_range) {
    exact_mode = true;
    by_day_and_time_range_in();
    exact_mode = false;
    by_day_and_time_range_in();
    exact_mode = true;
}

/* A request counts where its first attempt is (hl_rollup.h): in the day it began, and not in
 * a range that holds only its later attempts, so days add up to their total. */
static void a_request_cut_by_the_range_counts_where_it_began_in(void) {
    env v;
    env_init(&v);
    const rec rs[] = {
        {"2024-05-02T23:59:59Z", "r8", 1, false, "vllm", "escalated", 10, 10, 100, -1, 0.0001, NULL},
        {"2024-05-03T00:00:01Z", "r8", 2, true, "anthropic", "ok", 10, 10, 900, -1, 0.001, NULL},
    };
    write_recs(v.journal, rs, 2);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_DAY, NULL, NULL, NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(row(r, "2024-05-02")->requests, 1);
    HL_CHECK_INT_EQ(row(r, "2024-05-03")->requests, 0);
    HL_CHECK_INT_EQ(row(r, "2024-05-03")->attempts, 1);
    HL_CHECK_INT_EQ(r->total.requests, 1);
    hl_report_free(r);
    /* From May 3rd: attempt 2 only, a request that began before the range. */
    r = build(&v, HL_STORE_GROUP_NONE, "2024-05-03", NULL, NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->n_rows, 0);
    HL_CHECK_INT_EQ(r->total.requests, 0);
    HL_CHECK_INT_EQ(r->total.attempts, 1);
    HL_CHECK(isnan(r->total.cost_per_inference));
    hl_report_free(r);
    /* By source, the escalation counts under cloud too (its first cloud attempt). */
    r = build(&v, HL_STORE_GROUP_SOURCE, "2024-05-03", NULL, NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(row(r, "cloud")->requests, 1);
    HL_CHECK_INT_EQ(r->total.requests, 0);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(a_request_cut_by_the_range_counts_where_it_began) {
    exact_mode = true;
    a_request_cut_by_the_range_counts_where_it_began_in();
    exact_mode = false;
    a_request_cut_by_the_range_counts_where_it_began_in();
    exact_mode = true;
}

HL_TEST(by_tenant_puts_records_without_one_last) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_TENANT, NULL, NULL, NULL);
    HL_REQUIRE(r);
    HL_CHECK_INT_EQ(r->n_rows, 2);
    HL_CHECK_STR_EQ(r->rows[0].group, "acme");
    HL_CHECK(r->rows[1].group == NULL);
    HL_CHECK_INT_EQ(r->rows[0].requests, 3);
    HL_CHECK_INT_EQ(r->rows[0].attempts, 4);
    HL_CHECK_INT_EQ(r->rows[1].requests, 4);
    HL_CHECK_INT_EQ(r->rows[1].attempts, 6);
    hl_report_free(r);
    env_cleanup(&v);
}

/* Appends an answered local request of its own on backend. */
static void add_ok(rec *rs, char (*ids)[16], size_t *n, const char *backend, double latency, double ttft) {
    snprintf(ids[*n], sizeof ids[*n], "id%zu", *n);
    rs[*n] = (rec){"2024-05-01T00:00:00Z", ids[*n], 1, false, backend, "ok", 1, 1, latency, ttft, 0, NULL};
    (*n)++;
}

static void percentiles_nearest_rank_in(void) {
    env v;
    env_init(&v);
    /* p20: 1..20 shuffled; p7: 7 values; p1: one value; p2: two. */
    static const int order20[] = {13, 2, 20, 7, 1, 18, 5, 11, 16, 9, 3, 19, 14, 6, 10, 17, 4, 8, 15, 12};
    static const int v7[] = {5, 1, 4, 2, 3, 7, 6};
    rec rs[40];
    char ids[40][16];
    size_t n = 0;
    for (int i = 0; i < 20; i++) add_ok(rs, ids, &n, "p20", order20[i], order20[i]);
    for (int i = 0; i < 7; i++) add_ok(rs, ids, &n, "p7", v7[i], -1);
    add_ok(rs, ids, &n, "p1", 42, -1);
    add_ok(rs, ids, &n, "p2", 9, -1);
    add_ok(rs, ids, &n, "p2", 3, -1);
    write_recs(v.journal, rs, n);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_BACKEND, NULL, NULL, NULL);
    HL_REQUIRE(r);
    const hl_report_row *p20 = row(r, "p20"), *p7 = row(r, "p7"), *p1 = row(r, "p1"), *p2 = row(r, "p2");
    HL_REQUIRE(p20 && p7 && p1 && p2);
    CHECK_PCT(p20->latency_p50_ms, 10); /* rank 10 */
    CHECK_PCT(p20->latency_p95_ms, 19); /* rank 19 */
    CHECK_PCT(p20->latency_p99_ms, 20); /* rank ceil(19.8) = 20 */
    CHECK_PCT(p20->ttft_p50_ms, 10);
    CHECK_PCT(p7->latency_p50_ms, 4); /* rank ceil(3.5) = 4 */
    CHECK_PCT(p7->latency_p95_ms, 7); /* rank ceil(6.65) = 7 */
    CHECK_PCT(p7->latency_p99_ms, 7);
    HL_CHECK(isnan(p7->ttft_p50_ms));
    CHECK_PCT(p1->latency_p50_ms, 42);
    CHECK_PCT(p1->latency_p99_ms, 42);
    CHECK_PCT(p2->latency_p50_ms, 3);
    CHECK_PCT(p2->latency_p95_ms, 9);
    /* Total: 30 values, 1..20, 1..7, 42, 3, 9 -> sorted ranks 15, ceil(28.5)=29, ceil(29.7)=30:
     * 1 1 2 2 3 3 3 4 4 5 5 6 6 7 7 8 9 9 10 11 12 13 14 15 16 17 18 19 20 42 */
    CHECK_PCT(r->total.latency_p50_ms, 7);
    CHECK_PCT(r->total.latency_p95_ms, 20);
    CHECK_PCT(r->total.latency_p99_ms, 42);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(percentiles_nearest_rank) {
    exact_mode = true;
    percentiles_nearest_rank_in();
    exact_mode = false;
    percentiles_nearest_rank_in();
    exact_mode = true;
}

/* The one-pass figures against SQL written the obvious way, over random data with retries
 * that move between backends, ties among latencies, and every status. */
static void figures_match_sql_reference_on_random_data_in(void) {
    env v;
    env_init(&v);
    enum { N = 4000 };
    static rec rs[N];
    static char ids[N][16];
    static const char *const backends[] = {"b0", "b1", "b2", "b3"};
    static const char *const statuses[] = {"ok", "ok", "ok", "ok", "error", "escalated", "cancelled"};
    static char stamps[N][32];
    unsigned seed = 12345;
    size_t n = 0;
    for (int req = 0; n < N; req++) {
        int attempts = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 3;
        for (int a = 1; a <= attempts && n < N; a++, n++) {
            seed = seed * 1103515245 + 12345;
            unsigned x = seed >> 8;
            snprintf(ids[n], sizeof ids[n], "q%d", req);
            snprintf(stamps[n], sizeof stamps[n], "2024-05-%02dT%02d:00:%02dZ", 1 + req % 5, req % 24, a);
            bool cloud = x & 1;
            rs[n] = (rec){stamps[n], ids[n], a, cloud, backends[(x >> 1) % 4], statuses[(x >> 3) % 7],
                          (long)(x % 1000), (long)(x % 97), (double)((x >> 5) % 300), (x >> 9) % 2 ? (double)(x % 50) : -1,
                          (double)(x % 1000) / 1e6, NULL};
        }
    }
    write_recs(v.journal, rs, n);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_BACKEND, "2024-05-02", "2024-05-05", NULL);
    HL_REQUIRE(r);
    sqlite3 *db;
    HL_REQUIRE(sqlite3_open_v2(v.db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    sqlite3_stmt *agg, *pct;
    const char *range = " ts >= 1714608000000 AND ts < 1714867200000 ";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT request_id), count(*), sum(cost_usd), sum(status = 'error'),"
             " sum(status = 'escalated'), sum(status IN ('ok', 'escalated'))"
             " FROM inferences WHERE backend = ?1 AND %s", range);
    HL_REQUIRE(sqlite3_prepare_v2(db, sql, -1, &agg, NULL) == SQLITE_OK);
    snprintf(sql, sizeof sql,
             "SELECT latency_ms FROM inferences WHERE backend = ?1 AND status IN ('ok', 'escalated')"
             " AND %s ORDER BY latency_ms LIMIT 1 OFFSET ?2", range);
    HL_REQUIRE(sqlite3_prepare_v2(db, sql, -1, &pct, NULL) == SQLITE_OK);
    HL_CHECK_INT_EQ(r->n_rows, 4);
    for (size_t i = 0; i < r->n_rows; i++) {
        const hl_report_row *w = &r->rows[i];
        sqlite3_bind_text(agg, 1, w->group, -1, SQLITE_STATIC);
        HL_REQUIRE(sqlite3_step(agg) == SQLITE_ROW);
        HL_CHECK_INT_EQ(w->requests, sqlite3_column_int64(agg, 0));
        HL_CHECK_INT_EQ(w->attempts, sqlite3_column_int64(agg, 1));
        HL_CHECK_NEAR(w->cost_usd, sqlite3_column_double(agg, 2), 1e-9);
        HL_CHECK_INT_EQ(w->errors, sqlite3_column_int64(agg, 3));
        HL_CHECK_INT_EQ(w->escalations, sqlite3_column_int64(agg, 4));
        long long answered = sqlite3_column_int64(agg, 5);
        sqlite3_reset(agg);
        const int ps[] = {50, 95, 99};
        const double got[] = {w->latency_p50_ms, w->latency_p95_ms, w->latency_p99_ms};
        for (int k = 0; k < 3; k++) {
            /* Nearest rank: the smallest value with at least p% of values at or below it. */
            long long rank = 1;
            while (rank * 100 < ps[k] * answered) rank++;
            sqlite3_bind_text(pct, 1, w->group, -1, SQLITE_STATIC);
            sqlite3_bind_int64(pct, 2, rank - 1);
            HL_REQUIRE(sqlite3_step(pct) == SQLITE_ROW);
            double want = sqlite3_column_double(pct, 0);
            HL_CHECK_NEAR(got[k], want, exact_mode ? 0 : want * HL_HIST_REL_ERROR);
            sqlite3_reset(pct);
        }
    }
    sqlite3_finalize(pct);
    sqlite3_finalize(agg);
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT request_id) FROM inferences WHERE %s", range);
    HL_REQUIRE(sqlite3_prepare_v2(db, sql, -1, &agg, NULL) == SQLITE_OK);
    HL_REQUIRE(sqlite3_step(agg) == SQLITE_ROW);
    HL_CHECK_INT_EQ(r->total.requests, sqlite3_column_int64(agg, 0));
    sqlite3_finalize(agg);
    sqlite3_close(db);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(figures_match_sql_reference_on_random_data) {
    exact_mode = true;
    figures_match_sql_reference_on_random_data_in();
    exact_mode = false;
    figures_match_sql_reference_on_random_data_in();
    exact_mode = true;
}

/* ---- formats ---- */

/* Splits one CSV record (RFC 4180 quoting) into fields; returns how many. */
static int csv_split(const char *line, char fields[][64], int max) {
    int n = 0;
    const char *p = line;
    for (;;) {
        char *f = n < max ? fields[n] : NULL;
        size_t k = 0;
        if (*p == '"') {
            for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
                if (*p == '"') p++;
                if (f && k < 63) f[k++] = *p;
            }
            if (*p == '"') p++;
        } else {
            for (; *p && *p != ',' && *p != '\n'; p++)
                if (f && k < 63) f[k++] = *p;
        }
        if (f) f[k] = '\0';
        n++;
        if (*p != ',') break;
        p++;
    }
    return n;
}

HL_TEST(csv_shape) {
    env v;
    env_init(&v);
    const rec rs[] = {
        {"2024-05-01T00:00:00Z", "x1", 1, false, "vllm", "ok", 1, 2, 10, -1, 0.5, "acme, \"inc\""},
        {"2024-05-01T00:00:01Z", "x2", 1, true, "openai", "ok", 3, 4, 20, -1, -1, NULL},
    };
    write_recs(v.journal, rs, 2);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_TENANT, NULL, NULL, NULL);
    HL_REQUIRE(r);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_CSV, &b) == HL_OK);
    const char *header =
        "group_by,group,requests,attempts,input_tokens,output_tokens,cost_usd,cost_per_inference,"
        "latency_p50_ms,latency_p95_ms,latency_p99_ms,ttft_p50_ms,error_rate,escalation_rate,"
        "shadow,shadow_usd,scored,agreement,agreement_lo,agreement_hi,mean_score,"
        "unpriced,sensitive,cloud_equiv_usd,compared_usd,hardware_usd,savings_usd\n";
    HL_REQUIRE(strncmp(b.data, header, strlen(header)) == 0);
    /* Header, two groups, the total; every record 27 fields. */
    char *lines[8];
    int nl = 0;
    for (char *p = b.data; *p && nl < 8; p = strchr(p, '\n') + 1) lines[nl++] = p;
    HL_CHECK_INT_EQ(nl, 4);
    char f[30][64];
    for (int i = 0; i < nl; i++) HL_CHECK_INT_EQ(csv_split(lines[i], f, 30), 27);
    HL_CHECK(strncmp(lines[1], "tenant,\"acme, \"\"inc\"\"\",1,1,1,2,0.5,0.5,10,10,10,,0,0,0,0,0,,,,,0,0,,,,\n",
                     strlen("tenant,\"acme, \"\"inc\"\"\",1,1,1,2,0.5,0.5,10,10,10,,0,0,0,0,0,,,,,0,0,,,,\n")) == 0);
    csv_split(lines[1], f, 30);
    HL_CHECK_STR_EQ(f[1], "acme, \"inc\"");
    csv_split(lines[2], f, 30);
    HL_CHECK_STR_EQ(f[1], ""); /* no tenant */
    HL_CHECK_STR_EQ(f[21], "1"); /* unpriced */
    csv_split(lines[3], f, 30);
    HL_CHECK_STR_EQ(f[0], "total");
    HL_CHECK_STR_EQ(f[2], "2");
    HL_CHECK_STR_EQ(f[23], ""); /* no price given */
    hl_buf_release(&b);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(json_shape) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_TENANT, "2024-05-01", NULL, &price);
    HL_REQUIRE(r);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_JSON, &b) == HL_OK);
    json_error_t je;
    json_t *root = json_loadb(b.data, b.len, 0, &je);
    HL_REQUIRE(root);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(root, "group_by")), "tenant");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(root, "from")), "2024-05-01T00:00:00.000Z");
    HL_CHECK(json_is_null(json_object_get(root, "to")));
    json_t *cp = json_object_get(root, "cloud_price");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(cp, "model")), "cloud-3-15");
    HL_CHECK_NEAR(json_number_value(json_object_get(cp, "output_per_mtok")), 15, 0);
    json_t *groups = json_object_get(root, "groups");
    HL_REQUIRE(json_array_size(groups) == 2);
    json_t *acme = json_array_get(groups, 0), *none = json_array_get(groups, 1);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(acme, "group")), "acme");
    HL_CHECK(json_is_null(json_object_get(none, "group")));
    static const char *const keys[] = {
        "requests", "attempts", "input_tokens", "output_tokens", "cost_usd", "cost_per_inference",
        "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "error_rate",
        "escalation_rate", "shadow", "shadow_usd", "scored", "unpriced", "cloud_equiv_usd", "savings_usd"};
    HL_CHECK_INT_EQ(json_object_size(acme), 27);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *x = json_object_get(acme, keys[i]);
        HL_CHECK(json_is_number(x));
        if (!x) fprintf(stderr, "  missing %s\n", keys[i]);
    }
    HL_CHECK(json_is_integer(json_object_get(acme, "requests")));
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(acme, "requests")), 3);
    /* r1 r2 r3/2 at cloud prices (0.006 + 0.012 + 0.003) against acme's spend 0.0036 */
    HL_CHECK_NEAR(json_number_value(json_object_get(acme, "savings_usd")), 0.021 - 0.0036, 1e-12);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(acme, "keys"), "tenant")), "acme");
    json_t *total = json_object_get(root, "total");
    HL_CHECK_INT_EQ(json_object_size(total), 25); /* no "group" nor "keys" */
    /* Nothing scored: agreement and its interval are null, not 0. */
    HL_CHECK(json_is_null(json_object_get(total, "agreement")));
    HL_CHECK(json_is_null(json_object_get(total, "agreement_lo")));
    HL_CHECK(json_is_null(json_object_get(total, "mean_score")));
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(total, "requests")), 7);
    json_decref(root);
    hl_buf_release(&b);
    hl_report_free(r);

    /* No streams in range: ttft is null, not 0 or NaN; no price: cloud_price null. */
    r = build(&v, HL_STORE_GROUP_NONE, "2024-05-01T10:00:02Z", "2024-05-01T10:00:05Z", NULL);
    HL_REQUIRE(r);
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_JSON, &b) == HL_OK);
    root = json_loadb(b.data, b.len, 0, &je);
    HL_REQUIRE(root);
    HL_CHECK(json_is_null(json_object_get(root, "cloud_price")));
    HL_CHECK_INT_EQ(json_array_size(json_object_get(root, "groups")), 0);
    HL_CHECK(json_is_null(json_object_get(json_object_get(root, "total"), "ttft_p50_ms")));
    HL_CHECK(json_is_null(json_object_get(json_object_get(root, "total"), "savings_usd")));
    json_decref(root);
    hl_buf_release(&b);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(table_shape) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_SOURCE, NULL, NULL, &price);
    HL_REQUIRE(r);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_TABLE, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "ledger report, start .. end (UTC), by source; savings against cloud-3-15") != NULL);
    HL_CHECK(strstr(b.data, "\nsource  requests  attempts") != NULL);
    HL_CHECK(strstr(b.data, "saved $") != NULL);
    HL_CHECK(strstr(b.data, "\nTOTAL ") != NULL);
    HL_CHECK(strstr(b.data, "unpriced") != NULL);
    HL_CHECK(strstr(b.data, "note: 1 cloud attempts have no price") != NULL);
    /* Every table line as wide as the header. */
    char *hdr = strstr(b.data, "\nsource") + 1;
    size_t w = (size_t)(strchr(hdr, '\n') - hdr);
    for (char *p = hdr; *p && *p != '\n'; p = strchr(p, '\n') + 1) HL_CHECK_INT_EQ(strchr(p, '\n') - p, w);
    hl_buf_release(&b);
    hl_report_free(r);

    r = build(&v, HL_STORE_GROUP_SOURCE, "2024-05-01T10:00:02Z", "2024-05-01T10:00:05Z", NULL);
    HL_REQUIRE(r);
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_TABLE, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "saved $") == NULL);
    HL_CHECK(strstr(b.data, "savings against all-cloud: give --cloud-model") != NULL);
    HL_CHECK(strstr(b.data, "2024-05-01T10:00:02.000Z .. 2024-05-01T10:00:05.000Z") != NULL);
    hl_buf_release(&b);
    hl_report_free(r);
    env_cleanup(&v);
}

/* ---- quality: shadows, agreement, eval lines ---- */

HL_TEST(wilson_interval_pinned) {
    double lo, hi;
    hl_report_wilson(96, 100, &lo, &hi);
    HL_CHECK_NEAR(lo, 0.9016292856, 1e-9);
    HL_CHECK_NEAR(hi, 0.9843366960, 1e-9);
    hl_report_wilson(1152, 1200, &lo, &hi);
    HL_CHECK_NEAR(lo, 0.9473657152, 1e-9);
    HL_CHECK_NEAR(hi, 0.9696985643, 1e-9);
    hl_report_wilson(0, 10, &lo, &hi); /* stays inside [0, 1] where p(1-p) = 0 */
    HL_CHECK_NEAR(lo, 0, 0);
    HL_CHECK_NEAR(hi, 0.2775327999, 1e-9);
    hl_report_wilson(10, 10, &lo, &hi);
    HL_CHECK_NEAR(lo, 0.7224672001, 1e-9);
    HL_CHECK_NEAR(hi, 1, 0);
    hl_report_wilson(0, 0, &lo, &hi);
    HL_CHECK(isnan(lo) && isnan(hi));
    hl_report_wilson(95, 100, &lo, &hi); /* the textbook figures: 0.8882 .. 0.9785 */
    HL_CHECK_NEAR(lo, 0.8882, 1e-4);
    HL_CHECK_NEAR(hi, 0.9785, 1e-4);
    /* symmetric: k of n mirrors n-k of n */
    double lo2, hi2;
    hl_report_wilson(3, 17, &lo, &hi);
    hl_report_wilson(14, 17, &lo2, &hi2);
    HL_CHECK_NEAR(lo, 1 - hi2, 1e-12);
    HL_CHECK_NEAR(hi, 1 - lo2, 1e-12);
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double unit(uint64_t seed, uint64_t i) { return (double)(mix64(seed ^ mix64(i)) >> 11) * 0x1p-53; }

/* A served line, then for `shadowed` requests a local shadow line scored against it, agreeing
 * with probability p_agree (drawn from a fixed seed). */
typedef struct qline {
    const char *task;
    long in;
    bool shadow, scored, agree, eval;
    const char *status;
    double cost, latency;
} qline;

static void write_q(int fd, hl_buf *b, const char *id, int attempt, double ts, const qline *q) {
    hl_ledger_record r = {0};
    r.timestamp = ts;
    r.request_id = id;
    r.attempt = attempt;
    r.cloud = !q->shadow;
    r.backend = q->shadow ? "vllm" : "anthropic";
    r.model = q->shadow ? "local-model" : "cloud-model";
    r.route_reason = "rule:default";
    r.status = q->status;
    r.task_type = q->task;
    r.usage = (hl_usage){.input_tokens = q->in, .output_tokens = 20, .known = true};
    r.latency_ms = q->latency;
    r.ttft_ms = -1;
    r.confidence = -1;
    r.cost_known = true;
    r.cost_usd = q->cost;
    r.http_status = 200;
    r.shadow = q->shadow;
    r.scored = q->scored;
    r.score = q->agree ? 1 : 0;
    r.score_method = "exact";
    r.agree = q->agree;
    r.reference = q->eval ? "expected" : "served";
    r.eval_run = q->eval ? "ev-1" : NULL;
    hl_buf_reset(b);
    if (hl_ledger_format(&r, b) != HL_OK || write(fd, b->data, b->len) != (ssize_t)b->len) abort();
}

/* The planted ledger: classification 1,200 requests shadowed at 96% agreement (prompts under
 * 1k tokens); free text 600 at 75% on 2,000-token prompts and 45% on 9,000-token ones (60%
 * overall); 40 shadows that failed (not scored); 50 eval lines. */
static void write_planted(const char *journal) {
    int fd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (fd < 0) abort();
    hl_buf b;
    hl_buf_init(&b, 0);
    double ts = 1714521600.0;
    char id[32];
    for (int i = 0; i < 1800; i++) {
        bool cls = i < 1200;
        long in = cls ? 300 + i % 600 : i % 2 ? 2000 : 9000;
        double p = cls ? 0.96 : in == 2000 ? 0.75 : 0.45;
        snprintf(id, sizeof id, "q%d", i);
        qline served = {cls ? "classification" : "free_text", in, false, false, false, false, "ok", 0.002, 500};
        write_q(fd, &b, id, 1, ts + i, &served);
        qline sh = {served.task, in, true, true, unit(42, (uint64_t)i) < p, false, "ok", 0.0005, 5000};
        write_q(fd, &b, id, 2, ts + i + 0.5, &sh);
    }
    for (int i = 0; i < 40; i++) { /* shadows that failed: a cost, no score, no error rate */
        snprintf(id, sizeof id, "q%d", i);
        qline sh = {"classification", 300, true, false, false, false, "error", 0.0001, 50};
        write_q(fd, &b, id, 3, ts + i + 0.75, &sh);
    }
    for (int i = 0; i < 50; i++) { /* an eval run: never agrees, not gateway traffic */
        snprintf(id, sizeof id, "ev%d", i);
        qline ev = {"classification", 300, false, true, false, true, "ok", 0.001, 100};
        write_q(fd, &b, id, 1, ts + 2000 + i, &ev);
    }
    hl_buf_release(&b);
    close(fd);
}

/* ---- savings, several keys, filters, widths ---- */

typedef struct srec {
    const char *ts, *id;
    int attempt;
    bool cloud, sensitive;
    const char *backend, *status, *tenant;
    long in, out;
    double latency, cost;
} srec;

static void write_srecs(const char *journal, const srec *rs, size_t n) {
    int fd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (fd < 0) abort();
    hl_buf b;
    hl_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        const srec *x = &rs[i];
        long long ms;
        if (hl_store_parse_time(x->ts, strlen(x->ts), &ms) != HL_OK) abort();
        hl_ledger_record r = {.timestamp = (double)ms / 1000.0, .request_id = x->id, .attempt = x->attempt,
                              .cloud = x->cloud, .backend = x->backend, .model = x->cloud ? "cloud-model" : "local-model",
                              .route_reason = "rule:default", .status = x->status, .tenant = x->tenant,
                              .sensitive = x->sensitive, .latency_ms = x->latency, .ttft_ms = -1, .confidence = -1,
                              .cost_usd = x->cost, .cost_known = true, .http_status = 200,
                              .usage = {.input_tokens = x->in, .output_tokens = x->out, .known = true}};
        hl_buf_reset(&b);
        if (hl_ledger_format(&r, &b) != HL_OK || write(fd, b.data, b.len) != (ssize_t)b.len) abort();
    }
    hl_buf_release(&b);
    close(fd);
}

static const srec savings_fixture[] = {
    {"2024-05-01T00:10:00Z", "s1", 1, false, false, "vllm-a", "ok", "café", 1000, 100, 1000, 0.001},
    {"2024-05-01T00:11:00Z", "s2", 1, false, true, "vllm-b", "ok", "日本語チーム", 2000, 200, 3000, 0.002},
    {"2024-05-01T00:12:00Z", "s3", 1, true, false, "openai", "ok", "plain", 1000, 100, 500, 0.0045},
    {"2024-05-01T00:13:00Z", "s4", 1, false, false, "vllm-a", "escalated", "café", 500, 50, 1000, 0.0005},
    {"2024-05-01T00:14:00Z", "s4", 2, true, false, "openai", "ok", "café", 500, 50, 700, 0.003},
};

static hl_report *build_savings(env *v, const char *group, const char *backend, bool bounded) {
    hl_report_opts o;
    hl_report_opts_init(&o);
    if (hl_report_parse_group_by(group, &o) != HL_OK) return NULL;
    o.exact = exact_mode;
    o.cloud_price = &price;
    o.hardware_usd = 0.72; /* over 1 month of 720 hours: $0.001 an hour */
    o.amortize_months = 1;
    o.filter.backend = backend;
    if (bounded) {
        o.from_ms = 1714521600000LL; /* 2024-05-01, 24 hours */
        o.to_ms = o.from_ms + 86400000LL;
    }
    hl_report *r = NULL;
    char err[512];
    if (hl_report_build(v->s, &o, &r, err, sizeof err) != HL_OK) fprintf(stderr, "  report: %s\n", err);
    return r;
}

/* All-cloud is the whole workload at the cloud price, the sensitive request is on neither
 * side, and the hardware (amortized over the range, shared by local busy time) is subtracted. */
static void savings_read_right_in(void) {
    env v;
    env_init(&v);
    write_srecs(v.journal, savings_fixture, sizeof savings_fixture / sizeof savings_fixture[0]);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build_savings(&v, "source", NULL, true);
    HL_REQUIRE(r);
    const hl_report_row *t = &r->total, *l = row(r, "local"), *c = row(r, "cloud");
    HL_REQUIRE(l && c);
    /* s1 (1000x3 + 100x15 = 0.0045), s3 (0.0045), s4/2 (500x3 + 50x15 = 0.00225); not s2 */
    HL_CHECK_NEAR(t->cloud_equiv_usd, 0.01125, 1e-12);
    HL_CHECK_NEAR(t->compared_usd, 0.009, 1e-12);     /* every cost but s2's 0.002 */
    HL_CHECK_NEAR(t->cost_usd, 0.011, 1e-12);
    HL_CHECK_INT_EQ(t->sensitive, 1);
    HL_CHECK_NEAR(r->period_hours, 24, 0);
    HL_CHECK_NEAR(t->hardware_usd, 0.024, 1e-12);     /* 24 hours at $0.001 */
    HL_CHECK_NEAR(t->savings_usd, 0.01125 - 0.009 - 0.024, 1e-12);
    HL_CHECK_NEAR(l->cloud_equiv_usd, 0.0045, 1e-12); /* s1 only: s4/1 escalated, s2 sensitive */
    HL_CHECK_NEAR(l->compared_usd, 0.0015, 1e-12);
    HL_CHECK_NEAR(l->hardware_usd, 0.024, 1e-12);     /* all the local busy time */
    HL_CHECK_INT_EQ(l->sensitive, 1);
    HL_CHECK_NEAR(c->cloud_equiv_usd, 0.00675, 1e-12);
    HL_CHECK_NEAR(c->compared_usd, 0.0075, 1e-12);
    HL_CHECK_NEAR(c->hardware_usd, 0, 0);
    HL_CHECK_NEAR(c->savings_usd, 0.00675 - 0.0075, 1e-12);
    hl_report_free(r);
    /* Filtered to vllm-b (s2, sensitive): its share of the hardware is its busy time in the
     * whole range, 3000 of 5000 ms, and nothing is compared. */
    r = build_savings(&v, "none", "vllm-b", true);
    HL_REQUIRE(r);
    HL_CHECK_NEAR(r->total.hardware_usd, 0.024 * 3000 / 5000, 1e-12);
    HL_CHECK_NEAR(r->total.cloud_equiv_usd, 0, 0);
    HL_CHECK_NEAR(r->total.savings_usd, -0.024 * 3000 / 5000, 1e-12);
    hl_report_free(r);
    /* Unbounded: the period is the whole UTC days with records, one here. */
    r = build_savings(&v, "none", NULL, false);
    HL_REQUIRE(r);
    HL_CHECK_NEAR(r->period_hours, 24, 0);
    HL_CHECK_NEAR(r->total.hardware_usd, 0.024, 1e-12);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(savings_read_right) {
    exact_mode = true;
    savings_read_right_in();
    exact_mode = false;
    savings_read_right_in();
    exact_mode = true;
}

/* Table columns count characters, not bytes: names in UTF-8 line up. */
HL_TEST(table_widths_count_characters) {
    env v;
    env_init(&v);
    write_srecs(v.journal, savings_fixture, sizeof savings_fixture / sizeof savings_fixture[0]);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build_savings(&v, "tenant", NULL, true);
    HL_REQUIRE(r);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_TABLE, &b) == HL_OK);
    char *p = strstr(b.data, "\n\n");
    HL_REQUIRE(p);
    p += 2;
    char *end = strstr(p, "\n\n");
    HL_REQUIRE(end);
    size_t width = 0, lines = 0;
    bool cafe = false;
    while (p < end) {
        char *nl = strchr(p, '\n');
        size_t chars = 0;
        for (char *q = p; q < nl; q++) chars += ((unsigned char)*q & 0xC0) != 0x80;
        if (!lines) width = chars;
        HL_CHECK_INT_EQ(chars, width);
        if (!strncmp(p, "café ", 6)) cafe = true;
        lines++;
        p = nl + 1;
    }
    HL_CHECK_INT_EQ(lines, 6); /* header, three tenants, dashes, total */
    HL_CHECK(cafe);
    HL_CHECK(strstr(b.data, "日本語チーム") != NULL);
    hl_buf_release(&b);
    hl_report_free(r);
    env_cleanup(&v);
}

/* Several keys at once, and filters, on the hand-computed ledger. */
static void several_keys_and_filters_in(void) {
    env v;
    HL_REQUIRE(setup_fixture(&v));
    hl_report_opts o;
    hl_report_opts_init(&o);
    o.exact = exact_mode;
    HL_REQUIRE(hl_report_parse_group_by("day,source", &o) == HL_OK);
    hl_report *r = NULL;
    char err[512];
    HL_REQUIRE(hl_report_build(v.s, &o, &r, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(r->n_keys, 2);
    HL_REQUIRE(r->n_rows == 4);
    const char *groups[] = {"2024-05-01, cloud", "2024-05-01, local", "2024-05-02, cloud", "2024-05-02, local"};
    const unsigned long long requests[] = {2, 3, 2, 2}, attempts[] = {3, 3, 2, 2};
    for (int i = 0; i < 4; i++) {
        HL_CHECK_STR_EQ(r->rows[i].group, groups[i]);
        HL_CHECK_INT_EQ(r->rows[i].requests, requests[i]);
        HL_CHECK_INT_EQ(r->rows[i].attempts, attempts[i]);
    }
    HL_CHECK_STR_EQ(r->rows[1].values[0], "2024-05-01");
    HL_CHECK_STR_EQ(r->rows[1].values[1], "local");
    HL_CHECK_INT_EQ(r->total.requests, 7);
    hl_report_free(r);
    /* Filters: vllm only; then the tenant acme (r1 r2 r3) by backend. */
    o.filter.backend = "vllm";
    HL_REQUIRE(hl_report_parse_group_by("source", &o) == HL_OK);
    HL_REQUIRE(hl_report_build(v.s, &o, &r, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(r->n_rows, 1);
    HL_CHECK_INT_EQ(r->total.attempts, 5);
    hl_report_free(r);
    o.filter.backend = NULL;
    o.filter.tenant = "acme";
    HL_REQUIRE(hl_report_parse_group_by("backend", &o) == HL_OK);
    HL_REQUIRE(hl_report_build(v.s, &o, &r, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(r->total.attempts, 4);
    HL_CHECK_INT_EQ(r->total.requests, 3);
    HL_CHECK_INT_EQ(row(r, "anthropic")->requests, 1);
    hl_report_free(r);
    env_cleanup(&v);
}

HL_TEST(several_keys_and_filters) {
    exact_mode = true;
    several_keys_and_filters_in();
    exact_mode = false;
    several_keys_and_filters_in();
    exact_mode = true;
}

HL_TEST(group_by_lists) {
    hl_report_opts o;
    hl_report_opts_init(&o);
    HL_CHECK(hl_report_parse_group_by("day,source,tenant,key", &o) == HL_OK);
    HL_CHECK(o.group_by == HL_STORE_GROUP_DAY && o.then_by[0] == HL_STORE_GROUP_SOURCE &&
             o.then_by[2] == HL_STORE_GROUP_KEY);
    HL_CHECK(hl_report_parse_group_by("none", &o) == HL_OK && o.group_by == HL_STORE_GROUP_NONE &&
             o.then_by[0] == HL_STORE_GROUP_NONE);
    HL_CHECK(hl_report_parse_group_by("week", &o) == HL_OK && o.group_by == HL_STORE_GROUP_WEEK);
    const char *bad[] = {"", "day,", ",day", "day,day", "day,none", "a,b", "day,source,tenant,key,model", "weekday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) HL_CHECK(hl_report_parse_group_by(bad[i], &o) == HL_ERR_INVAL);
}

HL_TEST(planted_agreement_is_recovered_and_shadows_are_not_traffic) {
    env v;
    env_init(&v);
    write_planted(v.journal);
    HL_REQUIRE(open_and_index(&v));
    hl_report *r = build(&v, HL_STORE_GROUP_TASK_TYPE, NULL, NULL, NULL);
    HL_REQUIRE(r);
    const hl_report_row *c = row(r, "classification"), *f = row(r, "free_text");
    HL_REQUIRE(c && f && r->n_rows == 2);
    HL_CHECK_INT_EQ(c->requests, 1200);
    HL_CHECK_INT_EQ(c->attempts, 1200);   /* the served ones only */
    HL_CHECK_INT_EQ(c->shadow, 1240);
    HL_CHECK_INT_EQ(c->scored, 1200);
    HL_CHECK_INT_EQ(c->input_tokens, 1200 * 300 + 2 * (599 * 600 / 2)); /* served tokens only */
    HL_CHECK_NEAR(c->error_rate, 0, 0);   /* the failed shadows are not errors of the traffic */
    CHECK_PCT(c->latency_p99_ms, 500); /* nor are the shadows' 5 s in the latency */
    HL_CHECK_NEAR(c->shadow_usd, 1200 * 0.0005 + 40 * 0.0001, 1e-9);
    HL_CHECK_NEAR(c->cost_usd, 1200 * 0.002 + c->shadow_usd, 1e-9); /* the spend, shadows in */
    HL_CHECK_NEAR(c->cost_per_inference, 0.002, 1e-12);             /* serving only */
    HL_CHECK(c->agreement_lo <= 0.96 && 0.96 <= c->agreement_hi);
    HL_CHECK(c->agreement_hi - c->agreement_lo < 0.03);
    HL_CHECK_NEAR(c->mean_score, c->agreement, 1e-12); /* exact: score 1 iff agree */
    HL_CHECK(f->agreement_lo <= 0.60 && 0.60 <= f->agreement_hi);
    HL_CHECK_INT_EQ(f->scored, 600);
    HL_CHECK(c->agreement_lo > f->agreement_hi);
    HL_CHECK_INT_EQ(r->eval_skipped, 50);
    HL_CHECK_INT_EQ(r->total.requests, 1800);
    HL_CHECK_INT_EQ(r->total.scored, 1800);

    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_TABLE, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "n scored") && strstr(b.data, "agree") && strstr(b.data, "95% CI") &&
             strstr(b.data, "shadow $"));
    HL_CHECK(strstr(b.data, "note: 50 eval lines"));
    char want[64];
    snprintf(want, sizeof want, "%.1f-%.1f%%", c->agreement_lo * 100, c->agreement_hi * 100);
    HL_CHECK(strstr(b.data, want));
    hl_buf_reset(&b);
    HL_REQUIRE(hl_report_render(r, HL_REPORT_JSON, &b) == HL_OK);
    json_error_t je;
    json_t *root = json_loadb(b.data, b.len, 0, &je);
    HL_REQUIRE(root);
    json_t *g0 = json_array_get(json_object_get(root, "groups"), 0);
    HL_CHECK_NEAR(json_number_value(json_object_get(g0, "agreement_lo")), c->agreement_lo, 1e-12);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(g0, "scored")), 1200);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(root, "eval_lines_skipped")), 50);
    json_decref(root);
    hl_buf_release(&b);
    hl_report_free(r);

    /* By prompt length: the planted drop on long prompts. */
    r = build(&v, HL_STORE_GROUP_PROMPT_LENGTH, NULL, NULL, NULL);
    HL_REQUIRE(r);
    const hl_report_row *k1 = row(r, "0-1k"), *k4 = row(r, "1k-4k"), *k8 = row(r, "8k+");
    HL_REQUIRE(k1 && k4 && k8 && !row(r, "4k-8k"));
    HL_CHECK_STR_EQ(r->rows[0].group, "0-1k");
    HL_CHECK_STR_EQ(r->rows[2].group, "8k+");
    HL_CHECK_INT_EQ(k4->scored, 300);
    HL_CHECK(k4->agreement_lo <= 0.75 && 0.75 <= k4->agreement_hi);
    HL_CHECK(k8->agreement_lo <= 0.45 && 0.45 <= k8->agreement_hi);
    HL_CHECK(k4->agreement_lo > k8->agreement_hi);
    hl_report_free(r);

    /* --include-eval: the eval lines count, as traffic and as scored lines. */
    hl_report_opts o = {.group_by = HL_STORE_GROUP_TASK_TYPE, .from_ms = HL_STORE_TIME_MIN,
                        .to_ms = HL_STORE_TIME_MAX, .include_eval = true};
    char err[256];
    HL_REQUIRE(hl_report_build(v.s, &o, &r, err, sizeof err) == HL_OK);
    c = row(r, "classification");
    HL_REQUIRE(c);
    HL_CHECK_INT_EQ(r->eval_skipped, 0);
    HL_CHECK_INT_EQ(c->requests, 1250);
    HL_CHECK_INT_EQ(c->scored, 1250);
    hl_report_free(r);
    env_cleanup(&v);
}

/* ---- the command ---- */

/* Runs cmd, returns its stdout (at most out_len - 1 bytes) and exit status. */
static int run_cmd(const char *cmd, char *out, size_t out_len) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, out_len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

HL_TEST(cli_report_and_index) {
    const char *bin = getenv("HL_BIN");
    static char out[65536];
    char cmd[1024];
    if (bin) snprintf(cmd, sizeof cmd, "'%s' help 2>&1", bin);
    if (!bin || run_cmd(cmd, out, sizeof out) != 0 || !strstr(out, "report --db")) {
        HL_SKIP_MARK("HL_BIN is not a hybridllm with `report`");
        return;
    }
    env v;
    env_init(&v);
    write_recs(v.journal, fixture, sizeof fixture / sizeof fixture[0]);
    snprintf(cmd, sizeof cmd, "'%s' ledger index --journal '%s' --db '%s'", bin, v.journal, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "10 lines, 10 new") != NULL);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --journal '%s' --format csv --group-by day "
                              "--cloud-price 3/15 2>/dev/null", bin, v.db, v.journal);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strncmp(out, "group_by,group,requests,", 24) == 0);
    HL_CHECK(strstr(out, "\nday,2024-05-01,4,6,") != NULL);
    HL_CHECK(strstr(out, "\ntotal,,7,10,") != NULL);
    /* Several keys, filters, JSON from the rollups; --exact from the rows. */
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --group-by day,source --tenant acme --format json", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "\"group_by\":\"day,source\",\"computed_from\":\"rollups\"") != NULL);
    HL_CHECK(strstr(out, "\"keys\":{\"day\":\"2024-05-01\",\"source\":\"local\"}") != NULL);
    HL_CHECK(strstr(out, "\"total\":{\"requests\":3,\"attempts\":4,") != NULL);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --exact --group-by none --format json", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "\"computed_from\":\"rows\"") != NULL);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --cloud-model gpt-4o --hardware-usd 0 --group-by none", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "savings against gpt-4o at $2.5 in / $10 out") != NULL); /* the built-in table */
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --group-by day,day 2>&1", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --source nowhere 2>&1", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --group-by weekday 2>&1", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 2);
    HL_CHECK(strstr(out, "--group-by 'weekday'") != NULL);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --from 2024-05-02 --to 2024-05-01 2>&1", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 2);
    env_cleanup(&v);

    /* The planted ledger: agreement by prompt length, eval lines in with --include-eval. */
    env_init(&v);
    write_planted(v.journal);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --journal '%s' --format csv --group-by prompt_length 2>/dev/null",
             bin, v.db, v.journal);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "\nprompt_length,0-1k,1200,1200,") != NULL);
    HL_CHECK(strstr(out, "\nprompt_length,8k+,300,300,") != NULL);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --format json --group-by none --include-eval", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "\"include_eval\":true,\"eval_lines_skipped\":0") != NULL);
    HL_CHECK(strstr(out, "\"requests\":1850,") != NULL);
    snprintf(cmd, sizeof cmd, "'%s' report --db '%s' --group-by task_type", bin, v.db);
    HL_CHECK_INT_EQ(run_cmd(cmd, out, sizeof out), 0);
    HL_CHECK(strstr(out, "95% CI") && strstr(out, "note: 50 eval lines"));
    env_cleanup(&v);
}

HL_TEST_MAIN()
