/* Tests for the dashboard's API logic (hl_ui_api.c): the query's parameters (each bad one a
 * 400 naming it), the views' paths, the loopback rule, and each view's JSON over a small
 * hand-computed ledger: the figures are the report's, a tenant or backend filter narrows them
 * as a group would (a request counted at its first attempt that passes), the rates count
 * fallbacks, privacy counts PII types and cloud calls, budgets (the config's and its
 * tenants') forecast to the period's end. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hl_budget.h"
#include "hl_ledger.h"
#include "hl_report.h"
#include "hl_rollup.h"
#include "hl_store.h"
#include "hl_test.h"
#include "hl_ui.h"

/* ---- the query ---- */

static hl_err parse(const char *qs, hl_ui_query *q, char *param) {
    char msg[256];
    return hl_ui_query_parse(qs, strlen(qs), q, param, 64, msg, sizeof msg);
}

HL_TEST(query_defaults_and_values) {
    hl_ui_query q;
    char param[64];
    HL_REQUIRE(parse("", &q, param) == HL_OK);
    HL_CHECK(q.from_ms == HL_STORE_TIME_MIN && q.to_ms == HL_STORE_TIME_MAX);
    HL_CHECK_STR_EQ(q.tenant, "");
    HL_REQUIRE(parse("from=2024-05-01&to=2024-05-02T12%3A00%3A00Z&tenant=team+a&backend=local%2Dgpu&task_type=code_generation",
                     &q, param) == HL_OK);
    HL_CHECK_INT_EQ(q.from_ms, 1714521600000LL);
    HL_CHECK_INT_EQ(q.to_ms, 1714521600000LL + 36 * 3600000LL);
    HL_CHECK_STR_EQ(q.tenant, "team a");
    HL_CHECK_STR_EQ(q.backend, "local-gpu");
    HL_CHECK_STR_EQ(q.task_type, "code_generation");
    HL_CHECK(parse("tenant=a&&backend=b&", &q, param) == HL_OK); /* empty pieces are harmless */
    HL_CHECK_STR_EQ(q.backend, "b");
}

HL_TEST(query_errors_name_the_parameter) {
    static const struct {
        const char *qs, *param;
    } bad[] = {
        {"from=yesterday", "from"},           {"to=2024-13-01", "to"},
        {"colour=red", "colour"},             {"tenant=a&tenant=b", "tenant"},
        {"tenant=", "tenant"},                {"tenant", "tenant"},
        {"backend=%zz", "backend"},           {"backend=%4", "backend"},
        {"task_type=a%0Ab", "task_type"},     {"from=2024-05-02&to=2024-05-01", "from"},
        {"from=2024-05-01&to=2024-05-01", "from"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hl_ui_query q;
        char param[64] = "?";
        hl_err e = parse(bad[i].qs, &q, param);
        if (e != HL_ERR_INVAL) HL_FAIL_("%s: accepted", bad[i].qs);
        else if (strcmp(param, bad[i].param)) HL_FAIL_("%s: param '%s', want '%s'", bad[i].qs, param, bad[i].param);
    }
    char long_name[300];
    memset(long_name, 'x', sizeof long_name);
    memcpy(long_name, "tenant=", 7);
    long_name[sizeof long_name - 1] = '\0';
    hl_ui_query q;
    char param[64];
    HL_CHECK(parse(long_name, &q, param) == HL_ERR_INVAL); /* over the ceiling: refused, never cut */
    HL_CHECK(parse("task_type=" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &q, param) ==
             HL_ERR_INVAL);
}

HL_TEST(view_paths) {
    hl_ui_view v;
    HL_CHECK(hl_ui_view_of((hl_slice){"/api/spend", 10}, &v) && v == HL_UI_SPEND);
    HL_CHECK(hl_ui_view_of((hl_slice){"/api/agreement", 14}, &v) && v == HL_UI_AGREEMENT);
    HL_CHECK(!hl_ui_view_of((hl_slice){"/api/spend/", 11}, &v));
    HL_CHECK(!hl_ui_view_of((hl_slice){"/api/", 5}, &v));
    HL_CHECK(hl_ui_path((hl_slice){"/ui", 3}) && hl_ui_path((hl_slice){"/ui/app.js", 10}) &&
             hl_ui_path((hl_slice){"/api/x", 6}));
    HL_CHECK(!hl_ui_path((hl_slice){"/uix", 4}) && !hl_ui_path((hl_slice){"/v1/models", 10}));
}

static bool loopback(int family, const char *addr) {
    struct sockaddr_storage ss = {0};
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        if (inet_pton(AF_INET, addr, &in->sin_addr) != 1) abort();
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1) abort();
    }
    return hl_ui_peer_is_loopback((struct sockaddr *)&ss);
}

HL_TEST(only_loopback_peers_without_a_key) {
    HL_CHECK(loopback(AF_INET, "127.0.0.1"));
    HL_CHECK(loopback(AF_INET, "127.8.9.10"));
    HL_CHECK(!loopback(AF_INET, "10.0.0.1"));
    HL_CHECK(!loopback(AF_INET, "192.168.1.127"));
    HL_CHECK(loopback(AF_INET6, "::1"));
    HL_CHECK(loopback(AF_INET6, "::ffff:127.0.0.1"));
    HL_CHECK(!loopback(AF_INET6, "::ffff:10.1.2.3"));
    HL_CHECK(!loopback(AF_INET6, "2001:db8::1"));
    HL_CHECK(!loopback(AF_INET6, "::"));
}

/* ---- the views over a ledger ---- */

typedef struct env {
    char dir[64], journal[128], db[128], cfg_path[128];
    hl_store *s;
    hl_config *cfg;
    hl_budgets *budgets;
} env;

typedef struct rec {
    const char *ts, *id;
    int attempt;
    bool cloud;
    const char *backend, *status, *tenant, *task;
    double latency, cost;
    bool sensitive, shadow;
    const char *pii;
    double score; /* < 0: not scored */
} rec;

/* Four requests: r1 local ok (acme, classification); r2 a cloud error on anthropic, then
 * openai answers (acme); r3 local escalated, then the cloud (beta), with a cloud shadow of r1
 * scored; r4 a sensitive local answer with two PII types (beta). */
static const rec fixture[] = {
    {"2024-05-01T10:00:00Z", "r1", 1, false, "local", "ok", "acme", "classification", 100, 0.001, false, false, NULL, -1},
    {"2024-05-01T10:00:01Z", "r2", 1, true, "anthropic", "error", "acme", "code", 50, 0, false, false, NULL, -1},
    {"2024-05-01T10:00:02Z", "r2", 2, true, "openai", "ok", "acme", "code", 800, 0.02, false, false, NULL, -1},
    {"2024-05-02T10:00:00Z", "r3", 1, false, "local", "escalated", "beta", "classification", 200, 0.002, false, false, NULL, -1},
    {"2024-05-02T10:00:01Z", "r3", 2, true, "openai", "ok", "beta", "classification", 900, 0.03, false, false, NULL, -1},
    {"2024-05-02T10:00:02Z", "r1", 9, true, "openai", "ok", "acme", "classification", 700, 0.01, false, true, NULL, 0.9},
    {"2024-05-02T11:00:00Z", "r4", 1, false, "local", "ok", "beta", "classification", 300, 0.003, true, false,
     "email:1,phone:2", -1},
};

static void write_fixture(const char *journal) {
    int fd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0640);
    if (fd < 0) abort();
    hl_buf b;
    hl_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof fixture / sizeof fixture[0]; i++) {
        const rec *x = &fixture[i];
        long long ms;
        if (hl_store_parse_time(x->ts, strlen(x->ts), &ms) != HL_OK) abort();
        hl_ledger_record r = {0};
        r.timestamp = (double)ms / 1000.0;
        r.request_id = x->id;
        r.attempt = x->attempt;
        r.cloud = x->cloud;
        r.backend = x->backend;
        r.model = x->cloud ? "claude-3-5-sonnet-20241022" : "mistral-7b";
        r.route_reason = x->cloud ? "rule:cloud" : "rule:local";
        r.status = x->status;
        r.tenant = x->tenant;
        r.task_type = x->task;
        r.sensitive = x->sensitive;
        r.pii = x->pii;
        r.shadow = x->shadow;
        r.scored = x->score >= 0;
        r.score = x->score >= 0 ? x->score : 0;
        r.agree = x->score >= 0.5;
        r.score_method = r.scored ? "token_f1" : NULL;
        r.reference = r.scored ? "served" : NULL;
        r.usage = (hl_usage){.input_tokens = 100, .output_tokens = 50, .known = true};
        r.latency_ms = x->latency;
        r.ttft_ms = -1;
        r.confidence = r.confidence_margin = r.confidence_min = -1;
        r.cost_known = true;
        r.cost_usd = x->cost;
        hl_buf_reset(&b);
        if (hl_ledger_format(&r, &b) != HL_OK || write(fd, b.data, b.len) != (ssize_t)b.len) abort();
    }
    hl_buf_release(&b);
    close(fd);
}

static bool env_init(env *v) {
    memset(v, 0, sizeof *v);
    snprintf(v->dir, sizeof v->dir, "/tmp/hl_ui_test_XXXXXX");
    if (!mkdtemp(v->dir)) abort();
    snprintf(v->journal, sizeof v->journal, "%s/ledger.jsonl", v->dir);
    snprintf(v->db, sizeof v->db, "%s/ledger.db", v->dir);
    snprintf(v->cfg_path, sizeof v->cfg_path, "%s/hybridllm.yaml", v->dir);
    write_fixture(v->journal);
    FILE *f = fopen(v->cfg_path, "w");
    if (!f) abort();
    fprintf(f,
            "server:\n  listen: \"127.0.0.1:18741\"\nledger:\n  path: \"%s\"\n"
            "backends:\n  - name: local\n    kind: openai\n    location: local\n    base_url: \"http://127.0.0.1:9/v1\"\n"
            "    model: mistral-7b\n"
            "prices:\n  - model: claude-3-5-sonnet-20241022\n    input_per_mtok: 3\n    output_per_mtok: 15\n"
            "budgets:\n  - name: cloud-month\n    period: month\n    limit_usd: 10\n    action: local\n"
            "tenants:\n  - name: beta\n    budget_month_usd: 1\n"
            "routes:\n  - name: default\n    to: [local]\n",
            v->journal);
    fclose(f);
    char err[512];
    if (hl_config_load(v->cfg_path, &v->cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "  config: %s\n", err);
        return false;
    }
    if (hl_budgets_new(&v->budgets, v->cfg) != HL_OK) return false;
    return hl_store_open(&v->s, v->db, err, sizeof err) == HL_OK && hl_store_index(v->s, v->journal, NULL) == HL_OK;
}

static void env_cleanup(env *v) {
    hl_store_close(v->s);
    hl_budgets_free(v->budgets);
    hl_config_free(v->cfg);
    const char *f[] = {"ledger.jsonl", "ledger.db", "ledger.db-wal", "ledger.db-shm", "hybridllm.yaml"};
    char p[192];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", v->dir, f[i]);
        unlink(p);
    }
    rmdir(v->dir);
}

/* The view's JSON for the query string qs, parsed; NULL (reported) on any failure. */
static json_t *view(env *v, hl_ui_view which, const char *qs, long long now_ms) {
    hl_ui_query q;
    char param[64], msg[256], err[512];
    if (hl_ui_query_parse(qs, strlen(qs), &q, param, sizeof param, msg, sizeof msg) != HL_OK) return NULL;
    hl_ui_sources src = {.cfg = v->cfg, .budgets = v->budgets, .now_ms = now_ms};
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_err e = hl_ui_build(which, &q, v->s, &src, &b, err, sizeof err);
    json_error_t je;
    json_t *j = e ? NULL : json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
    if (e) fprintf(stderr, "  build: %s\n", err);
    else if (!j) fprintf(stderr, "  not JSON (%s): %.*s\n", je.text, (int)b.len, b.data);
    hl_buf_release(&b);
    return j;
}

static double num(json_t *root, const char *path) {
    /* "a.b.c": objects only */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = root;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) cur = json_object_get(cur, tok);
    return json_is_number(cur) ? json_number_value(cur) : NAN;
}

/* The group named g in a report's JSON. */
static json_t *group(json_t *report, const char *g) {
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(report, "groups"), i, row) {
        json_t *name = json_object_get(row, "group");
        if (json_is_string(name) && !strcmp(json_string_value(name), g)) return row;
    }
    return NULL;
}

HL_TEST(spend_is_the_reports) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_SPEND, "", 0);
    HL_REQUIRE(j);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(j, "object")), "dashboard.spend");
    /* every line's cost, the shadow's included */
    HL_CHECK_NEAR(num(j, "all.total.cost_usd"), 0.001 + 0.02 + 0.002 + 0.03 + 0.01 + 0.003, 1e-12);
    HL_CHECK_NEAR(num(j, "cloud.total.cost_usd"), 0.02 + 0.03 + 0.01, 1e-12);
    HL_CHECK_NEAR(num(j, "local.total.cost_usd"), 0.001 + 0.002 + 0.003, 1e-12);
    HL_CHECK_INT_EQ(json_array_size(json_object_get(json_object_get(j, "all"), "groups")), 2); /* two days */
    /* the same figures as hl_report_build with the same options */
    hl_report_opts o;
    hl_report_opts_init(&o);
    o.group_by = HL_STORE_GROUP_DAY;
    o.cloud_price = hl_ui_cloud_price(v.cfg);
    hl_report *r = NULL;
    char err[256];
    HL_REQUIRE(hl_report_build(v.s, &o, &r, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(num(j, "all.total.cloud_equiv_usd"), r->total.cloud_equiv_usd, 1e-12);
    HL_CHECK_NEAR(num(j, "all.total.savings_usd"), r->total.savings_usd, 1e-12);
    HL_CHECK(r->total.cloud_equiv_usd > 0);
    hl_report_free(r);
    json_decref(j);
    /* a time range */
    j = view(&v, HL_UI_SPEND, "from=2024-05-02", 0);
    HL_REQUIRE(j);
    HL_CHECK_NEAR(num(j, "all.total.cost_usd"), 0.002 + 0.03 + 0.01 + 0.003, 1e-12);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "query"), "from")), "2024-05-02T00:00:00.000Z");
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(filters_narrow_like_a_group) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_REQUESTS, "tenant=acme", 0);
    HL_REQUIRE(j);
    HL_CHECK_INT_EQ(num(j, "by_backend.total.requests"), 2); /* r1, r2 (r1's shadow answers no one) */
    HL_CHECK_INT_EQ(num(j, "by_backend.total.attempts"), 3);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "query"), "tenant")), "acme");
    json_decref(j);
    /* backend=openai: r2's and r3's second attempts are each their request's first there */
    j = view(&v, HL_UI_REQUESTS, "backend=openai", 0);
    HL_REQUIRE(j);
    HL_CHECK_INT_EQ(num(j, "by_backend.total.requests"), 2);
    HL_CHECK_INT_EQ(json_array_size(json_object_get(json_object_get(j, "by_backend"), "groups")), 1);
    json_decref(j);
    j = view(&v, HL_UI_SPEND, "tenant=beta&task_type=classification", 0);
    HL_REQUIRE(j);
    HL_CHECK_NEAR(num(j, "all.total.cost_usd"), 0.002 + 0.03 + 0.003, 1e-12);
    json_decref(j);
    j = view(&v, HL_UI_SPEND, "tenant=nobody", 0);
    HL_REQUIRE(j);
    HL_CHECK_NEAR(num(j, "all.total.cost_usd"), 0, 0);
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(rates_count_fallbacks_and_escalations) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_REQUESTS, "", 0);
    HL_REQUIRE(j);
    HL_CHECK_INT_EQ(num(j, "rates.requests"), 4);
    HL_CHECK_INT_EQ(num(j, "rates.attempts"), 6);
    HL_CHECK_INT_EQ(num(j, "rates.errors"), 1);
    HL_CHECK_INT_EQ(num(j, "rates.escalations"), 1);
    HL_CHECK_INT_EQ(num(j, "rates.fallbacks"), 1); /* r2's second attempt */
    HL_CHECK_NEAR(num(j, "rates.fallback_rate"), 0.25, 1e-12);
    HL_CHECK_NEAR(num(j, "rates.error_rate"), 1.0 / 6, 1e-12);
    HL_CHECK(group(json_object_get(j, "by_route_reason"), "rule:local") != NULL);
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(latency_per_backend_by_day) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_LATENCY, "", 0);
    HL_REQUIRE(j);
    json_t *bs = json_object_get(j, "backends");
    HL_CHECK_INT_EQ(json_array_size(bs), 3); /* anthropic, local, openai */
    json_t *local = json_array_get(bs, 1);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(local, "backend")), "local");
    json_t *day1 = group(json_object_get(local, "by_day"), "2024-05-01");
    HL_REQUIRE(day1);
    HL_CHECK_NEAR(json_number_value(json_object_get(day1, "latency_p50_ms")), 100, 100 * HL_HIST_REL_ERROR); /* rollups */
    json_t *all = group(json_object_get(j, "by_backend"), "local");
    HL_REQUIRE(all);
    HL_CHECK_NEAR(json_number_value(json_object_get(all, "latency_p99_ms")), 300, 300 * HL_HIST_REL_ERROR);
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(privacy_counts_types_and_cloud_calls) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_PRIVACY, "", 0);
    HL_REQUIRE(j);
    HL_CHECK_INT_EQ(num(j, "attempts_sensitive"), 1);
    HL_CHECK_INT_EQ(num(j, "cloud_calls_sensitive"), 0);
    HL_CHECK_INT_EQ(num(j, "by_type.email"), 1);
    HL_CHECK_INT_EQ(num(j, "by_type.phone"), 1);
    json_decref(j);
    j = view(&v, HL_UI_PRIVACY, "tenant=acme", 0);
    HL_REQUIRE(j);
    HL_CHECK_INT_EQ(num(j, "attempts_sensitive"), 0);
    HL_CHECK_INT_EQ(json_object_size(json_object_get(j, "by_type")), 0);
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(budgets_forecast_to_the_period_end) {
    env v;
    HL_REQUIRE(env_init(&v));
    /* 2024-05-11T00:00Z: 10 of May's 31 days gone */
    long long now = 1715385600000LL;
    hl_budgets_add(v.budgets, NULL, 2.0, (time_t)(now / 1000));
    json_t *j = view(&v, HL_UI_BUDGETS, "", now);
    HL_REQUIRE(j);
    json_t *b = json_array_get(json_object_get(j, "budgets"), 0);
    HL_REQUIRE(b);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(b, "name")), "cloud-month");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(b, "period_start")), "2024-05-01T00:00:00.000Z");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(b, "period_end")), "2024-06-01T00:00:00.000Z");
    HL_CHECK_NEAR(json_number_value(json_object_get(b, "limit_usd")), 10, 0);
    HL_CHECK_NEAR(json_number_value(json_object_get(b, "spent_usd")), 2, 1e-12);
    HL_CHECK_NEAR(json_number_value(json_object_get(b, "forecast_usd")), 2.0 * 31 / 10, 1e-9);
    /* the tenant's budget, against its cloud spend in the store (r3's cloud answer) */
    json_t *t = json_array_get(json_object_get(j, "budgets"), 1);
    HL_REQUIRE(t);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(t, "kind")), "tenant");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(t, "name")), "beta");
    HL_CHECK_NEAR(json_number_value(json_object_get(t, "spent_usd")), 0.03, 1e-12);
    HL_CHECK_INT_EQ(json_array_size(json_object_get(j, "budgets")), 2);
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(agreement_by_task_type_with_intervals) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_AGREEMENT, "", 0);
    HL_REQUIRE(j);
    json_t *c = group(json_object_get(j, "by_task_type"), "classification");
    HL_REQUIRE(c);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(c, "scored")), 1);
    HL_CHECK_NEAR(json_number_value(json_object_get(c, "agreement")), 1, 0);
    double lo, hi;
    hl_report_wilson(1, 1, &lo, &hi);
    HL_CHECK_NEAR(json_number_value(json_object_get(c, "agreement_lo")), lo, 1e-12);
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(advise_reads_the_journal) {
    env v;
    HL_REQUIRE(env_init(&v));
    json_t *j = view(&v, HL_UI_ADVISE, "", 0);
    HL_REQUIRE(j);
    json_t *a = json_object_get(j, "advise");
    HL_REQUIRE(json_is_object(a));
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(a, "workload"), "source")), "ledger");
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(a, "cloud"), "model")),
                    "claude-3-5-sonnet-20241022");
    json_decref(j);
    env_cleanup(&v);
}

HL_TEST(views_over_the_store_need_one) {
    hl_ui_query q;
    char param[64], msg[128], err[128];
    HL_REQUIRE(hl_ui_query_parse("", 0, &q, param, sizeof param, msg, sizeof msg) == HL_OK);
    hl_ui_sources src = {0};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_CHECK(hl_ui_build(HL_UI_SPEND, &q, NULL, &src, &b, err, sizeof err) == HL_ERR_IO);
    HL_CHECK_STR_EQ(err, "no ledger store");
    hl_buf_release(&b);
}

HL_TEST_MAIN()
