/* Tests for hl_calibrate and `hybridllm calibrate`: a generated ledger whose agreement is a
 * planted step function of one signal (P(agree) = 0.98 when the margin is >= 0.8, 0.5 below;
 * the geometric mean and the least token probability are noise). Calibration must pick the
 * margin by AUC and recover the planted threshold; lines that are not samples must be left
 * out; too few samples must say so; the written snippet must load as config; and the command
 * keeps the CLI's conventions (--help, usage errors exit 2, nothing calibrated exits 1). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_calibrate.h"
#include "hl_cli_calibrate.h"
#include "hl_ledger.h"
#include "hl_test.h"

/* The planted threshold, how far calibration may land from it (target 0.99: with 2% of the
 * 20% above the step disagreeing, agreement reaches 0.99 at 0.8 - 0.012 = 0.788 in
 * expectation; sampling noise on 4000 samples moves it by well under 0.01), and the sample
 * count. */
#define PLANTED 0.8
#define TOLERANCE 0.03
#define N_PLANTED 4000

static uint64_t rng = 0x9e3779b97f4a7c15u;
static double uniform(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static void put(FILE *f, const hl_ledger_record *r) {
    hl_buf b;
    hl_buf_init(&b, 0);
    if (hl_ledger_format(r, &b) != HL_OK) exit(1);
    fputs(b.data, f);
    hl_buf_release(&b);
}

/* One served cloud answer and its local shadow, compared. */
static void pair_lines(FILE *f, int i, const char *task, double geomean, double margin, double min, bool agree) {
    char id[40];
    snprintf(id, sizeof id, "req_%s_%d", task, i);
    hl_ledger_record served = {
        .timestamp = 1.7e9 + i, .request_id = id, .attempt = 1, .cloud = true, .backend = "anthropic",
        .model = "claude", .status = "ok", .task_type = task, .usage = {.input_tokens = 100, .output_tokens = 5},
        .latency_ms = 700, .ttft_ms = -1, .confidence = -1, .cost_usd = 0.002, .cost_known = true, .http_status = 200,
    };
    put(f, &served);
    hl_ledger_record shadow = served;
    shadow.attempt = 2, shadow.cloud = false, shadow.backend = "local", shadow.model = "mistral";
    shadow.cost_usd = 0.00001;
    shadow.confidence = geomean, shadow.signals = true, shadow.confidence_margin = margin, shadow.confidence_min = min;
    shadow.shadow = true, shadow.scored = true, shadow.score = agree ? 1 : 0, shadow.score_method = "exact";
    shadow.agree = agree, shadow.reference = "served", shadow.ref_output_tokens = 5;
    put(f, &shadow);
}

/* An eval line of the local backend, against a reference backend or the expected answer. */
static void eval_line(FILE *f, int i, const char *reference, bool agree) {
    char id[40];
    snprintf(id, sizeof id, "ev_%s_%d", reference, i);
    hl_ledger_record r = {
        .timestamp = 1.7e9 + i, .request_id = id, .attempt = 1, .backend = "local", .model = "mistral",
        .status = "ok", .task_type = "extraction", .usage = {.input_tokens = 80, .output_tokens = 9},
        .latency_ms = 900, .ttft_ms = -1, .confidence = 0.5 + 0.4 * uniform(), .signals = true,
        .confidence_margin = uniform(), .confidence_min = uniform(), .cost_known = true, .scored = true,
        .score = agree, .score_method = "json", .agree = agree, .reference = reference, .eval_run = "run1",
    };
    put(f, &r);
}

/* The planted ledger: classification (the step), summarization (too few), extraction (eval
 * lines: 60 against the cloud, all agreeing, and 100 against `expected`, none agreeing). */
static char *planted_ledger(void) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/hl_test_calibrate_%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    rng = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < N_PLANTED; i++) {
        double margin = uniform(), geomean = 0.3 + 0.7 * uniform(), min = uniform();
        bool agree = uniform() < (margin >= PLANTED ? 0.98 : 0.5);
        pair_lines(f, i, "classification", geomean, margin, min, agree);
    }
    for (int i = 0; i < 20; i++) pair_lines(f, i, "summarization", 0.9, 0.5, 0.4, i % 2);
    for (int i = 0; i < 60; i++) eval_line(f, i, "anthropic", true);
    for (int i = 0; i < 100; i++) eval_line(f, i, "expected", false);
    fclose(f);
    return path;
}

static const hl_cal_task *task_named(const hl_cal_data *d, const char *name) {
    for (size_t i = 0; i < d->n_tasks; i++)
        if (d->tasks[i].name && !strcmp(d->tasks[i].name, name)) return &d->tasks[i];
    return NULL;
}

HL_TEST(loads_only_the_samples) {
    char msg[256] = "";
    hl_cal_data d;
    const char *path = planted_ledger();
    HL_REQUIRE(hl_cal_load(path, NULL, &d, msg, sizeof msg) == HL_OK);
    HL_CHECK_INT_EQ(d.bad_lines, 0);
    const hl_cal_task *c = task_named(&d, "classification"), *s = task_named(&d, "summarization"),
                      *x = task_named(&d, "extraction");
    HL_REQUIRE(c && s && x);
    HL_CHECK_INT_EQ(c->n, N_PLANTED);
    HL_CHECK_INT_EQ(s->n, 20);
    HL_CHECK_INT_EQ(x->n, 60); /* the `expected` eval lines are no samples */
    HL_CHECK_INT_EQ(d.samples, N_PLANTED + 20 + 60);
    HL_CHECK_NEAR(d.cloud_cost_sum / (double)d.cloud_cost_n, 0.002, 1e-9);
    HL_CHECK_STR_EQ(d.local_backend, "local");
    HL_CHECK_STR_EQ(d.cloud_backend, "anthropic");
    hl_cal_data_release(&d);
    /* --task-type keeps one. */
    HL_REQUIRE(hl_cal_load(path, "summarization", &d, msg, sizeof msg) == HL_OK);
    HL_CHECK_INT_EQ(d.n_tasks, 1);
    HL_CHECK_INT_EQ(d.samples, 20);
    hl_cal_data_release(&d);
    unlink(path);
}

HL_TEST(recovers_the_planted_threshold_and_signal) {
    char msg[256] = "";
    hl_cal_data d;
    const char *path = planted_ledger();
    HL_REQUIRE(hl_cal_load(path, NULL, &d, msg, sizeof msg) == HL_OK);
    const hl_cal_task *c = task_named(&d, "classification");
    HL_REQUIRE(c);
    hl_cal_result r;
    HL_REQUIRE(hl_cal_compute(&d, c, 0.99, -1, -1, &r) == HL_OK);
    HL_CHECK_INT_EQ(r.signal, HL_SIGNAL_MARGIN);
    /* Expected AUC of the step: agreeing answers lie above it with odds 0.196/0.596, the others
     * 0.004/0.404, and are alike within a side: 0.66. */
    HL_CHECK_NEAR(r.auc[HL_SIGNAL_MARGIN], 0.66, 0.03);
    HL_CHECK_NEAR(r.auc[HL_SIGNAL_GEOMEAN], 0.5, 0.05);
    HL_CHECK_NEAR(r.auc[HL_SIGNAL_MIN], 0.5, 0.05);
    HL_REQUIRE(r.enough);
    const hl_cal_point *p = &r.curve[r.chosen];
    HL_CHECK_NEAR(p->threshold, PLANTED, TOLERANCE);
    HL_CHECK(p->agreement >= 0.99);
    HL_CHECK(r.ci_lo < p->agreement && p->agreement < r.ci_hi);
    HL_CHECK_NEAR(p->cloud_share, PLANTED, TOLERANCE); /* margin is uniform: share = threshold */
    HL_CHECK_NEAR(r.cloud_cost, 0.002, 1e-9);
    /* It is the smallest cloud share that reaches the target: the next threshold down misses. */
    HL_REQUIRE(r.chosen + 1 < r.n_curve);
    HL_CHECK(r.curve[r.chosen + 1].agreement < 0.99);
    hl_cal_result_release(&r);
    /* The noise signal reaches the target only by sending nearly everything to the cloud. */
    HL_REQUIRE(hl_cal_compute(&d, c, 0.99, HL_SIGNAL_GEOMEAN, 0.01, &r) == HL_OK);
    HL_CHECK_INT_EQ(r.signal, HL_SIGNAL_GEOMEAN);
    HL_CHECK(r.curve[r.chosen].cloud_share > 0.95);
    HL_CHECK_NEAR(r.cloud_cost, 0.01, 0);
    hl_cal_result_release(&r);
    /* Too few samples: no threshold. All agreeing: no AUC, every answer stays local. */
    HL_REQUIRE(hl_cal_compute(&d, task_named(&d, "summarization"), 0.95, -1, -1, &r) == HL_OK);
    HL_CHECK(!r.enough);
    HL_CHECK_INT_EQ(r.n_curve, 0);
    hl_cal_result_release(&r);
    HL_REQUIRE(hl_cal_compute(&d, task_named(&d, "extraction"), 0.95, -1, -1, &r) == HL_OK);
    HL_CHECK(r.enough);
    HL_CHECK(r.auc[0] < 0 && r.auc[1] < 0 && r.auc[2] < 0);
    HL_CHECK_INT_EQ(r.signal, HL_SIGNAL_GEOMEAN);
    HL_CHECK_INT_EQ(r.curve[r.chosen].escalated, 0);
    hl_cal_result_release(&r);
    hl_cal_data_release(&d);
    unlink(path);
}

/* ---- the command ---- */

typedef struct outcome {
    int rc;
    char out[65536], err[4096];
} outcome;

static void slurp(FILE *f, char *buf, size_t len) {
    rewind(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void cli(outcome *o, const char *const *args) {
    char *argv[32];
    int argc = 0;
    while (args[argc] && argc < 31) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    if (!out || !err) exit(1);
    o->rc = hl_cli_calibrate_io(argc, argv, out, err);
    slurp(out, o->out, sizeof o->out);
    slurp(err, o->err, sizeof o->err);
}

static const char base_config[] =
    "backends:\n"
    "  - {name: local, kind: openai, location: local, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
    "  - {name: anthropic, kind: anthropic, location: cloud, base_url: 'http://127.0.0.1:9', model: c,\n"
    "     api_key_env: NO_SUCH_KEY}\n";

HL_TEST(command_table_json_and_snippet) {
    static outcome o;
    const char *path = planted_ledger();
    cli(&o, (const char *const[]){"calibrate", "--target", "0.99", "--ledger", path, NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "margin") && strstr(o.out, "separates best"));
    HL_CHECK(strstr(o.out, "chosen: escalate.below 0.7") || strstr(o.out, "chosen: escalate.below 0.8"));
    HL_CHECK(strstr(o.out, "at least 50 are needed"));    /* summarization */
    HL_CHECK(strstr(o.out, "all cloud"));
    HL_CHECK(strstr(o.out, "<- chosen"));

    cli(&o, (const char *const[]){"calibrate", "--target=0.99", "--ledger", path, "--format", "json",
                                  "--task-type", "classification", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    json_t *j = json_loads(o.out, 0, NULL);
    HL_REQUIRE(j);
    json_t *t = json_array_get(json_object_get(j, "task_types"), 0);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(t, "signal")), "margin");
    double th = json_number_value(json_object_get(json_object_get(t, "chosen"), "threshold"));
    HL_CHECK_NEAR(th, PLANTED, TOLERANCE);
    HL_CHECK(json_array_size(json_object_get(t, "curve")) <= HL_CAL_CURVE_ROWS + 3);
    HL_CHECK_INT_EQ(json_array_size(json_object_get(j, "task_types")), 1);
    json_decref(j);

    char snippet[80];
    snprintf(snippet, sizeof snippet, "%s.routes.yaml", path);
    cli(&o, (const char *const[]){"calibrate", "--target", "0.99", "--ledger", path, "--write-config", snippet, NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    FILE *f = fopen(snippet, "r");
    HL_REQUIRE(f);
    static char text[8192];
    size_t n = strlen(base_config);
    memcpy(text, base_config, n);
    n += fread(text + n, 1, sizeof text - n - 1, f);
    text[n] = '\0';
    fclose(f);
    /* The snippet after the backends is a config the gateway loads. */
    char err[512];
    hl_config *cfg = NULL;
    HL_REQUIRE(hl_config_parse("merged.yaml", text, n, &cfg, err, sizeof err) == HL_OK);
    HL_REQUIRE(cfg->n_routes == 2); /* classification (escalates) and extraction (stays local) */
    HL_CHECK_STR_EQ(cfg->routes[0].name, "calibrated-classification");
    HL_CHECK_NEAR(cfg->routes[0].escalate_below, th, 1e-6);
    HL_CHECK_INT_EQ(cfg->routes[0].escalate_signal, HL_SIGNAL_MARGIN);
    HL_CHECK_STR_EQ(cfg->routes[0].escalate_to[0], "anthropic");
    HL_CHECK_STR_EQ(cfg->routes[0].to[0], "local");
    /* extraction: every answer agreed; the threshold is the least geomean seen (>= 0.5). */
    HL_CHECK(cfg->routes[1].escalate_below >= 0.5 && cfg->routes[1].escalate_below < 0.52);
    hl_config_free(cfg);
    if (!strstr(text, "summarization: fewer than 50 samples")) HL_FAIL_("snippet:\n%s", text);
    /* And `hybridllm config check` accepts it. */
    const char *bin = getenv("HL_BIN");
    if (bin && (f = fopen(snippet, "w"))) {
        fputs(text, f);
        fclose(f);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "'%s' config check '%s' >/dev/null", bin, snippet);
        HL_CHECK_INT_EQ(system(cmd), 0);
    }
    unlink(snippet);
    unlink(path);
}

HL_TEST(command_help_usage_errors_and_too_few) {
    static outcome o;
    cli(&o, (const char *const[]){"calibrate", "--help", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "usage: hybridllm calibrate") && !o.err[0]);
    static const char *const bad[][4] = {
        {"--target", "0"}, {"--target", "1.5"}, {"--signal", "best"}, {"--format", "xml"}, {"--bogus"},
        {"--cloud-price", "-1"}, {"--ledger"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli(&o, (const char *const[]){"calibrate", bad[i][0], bad[i][1], NULL});
        if (o.rc != 2 || !strstr(o.err, "hybridllm calibrate: ") || !strstr(o.err, "usage: hybridllm calibrate") ||
            o.out[0])
            HL_FAIL_("%s %s: exit %d, stderr '%.200s'", bad[i][0], bad[i][1] ? bad[i][1] : "", o.rc, o.err);
    }
    /* A ledger with too few samples: said, exit 1. A missing one: exit 1. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/hl_test_calibrate_few_%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    HL_REQUIRE(f);
    for (int i = 0; i < 10; i++) pair_lines(f, i, "classification", 0.9, 0.5, 0.4, true);
    fclose(f);
    cli(&o, (const char *const[]){"calibrate", "--ledger", path, NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    HL_CHECK(strstr(o.err, "has the 50 samples calibration needs"));
    HL_CHECK(strstr(o.out, "10 samples with"));
    unlink(path);
    cli(&o, (const char *const[]){"calibrate", "--ledger", path, NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    HL_CHECK(strstr(o.err, "No such file"));
}

HL_TEST_MAIN()
