/* Tests for hl_simulate: the brief's scenario generated deterministically from a seed, pinned
 * outputs for seed 1, costs that add up to the prices, escalation at the threshold, ledger
 * replay (the records `report` counts; escalations matched by request id however lines
 * interleave; the brief's CostTracker lines), and no privacy violation for any policy that goes
 * through the router. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>
#include "hl_advise.h"
#include "hl_simulate.h"
#include "hl_test.h"

static hl_config *parse(const char *text) {
    char err[256];
    hl_config *cfg = NULL;
    if (hl_config_parse("policy.yaml", text, strlen(text), &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return cfg;
}

static hl_config *brief(void) {
    char err[256];
    hl_config *cfg = NULL;
    if (hl_sim_brief_config(NULL, NULL, 0.05, &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "brief config: %s\n", err);
        exit(1);
    }
    return cfg;
}

static hl_sim_options default_options(void) {
    hl_sim_options o = {.seed = 1, .local_fixed_usd_month = 550.0 / 36.0 + 10.0};
    return o;
}

static void run(const hl_sim_workload *w, const char *name, hl_sim_policy_kind kind, const hl_config *cfg,
                const hl_sim_options *o, hl_sim_result *r) {
    hl_sim_policy p = {.kind = kind, .cfg = cfg};
    snprintf(p.name, sizeof p.name, "%s", name);
    char err[256];
    if (hl_sim_run(w, &p, o, r, err, sizeof err) != HL_OK) {
        fprintf(stderr, "run %s: %s\n", name, err);
        exit(1);
    }
}

static hl_sim_workload generate(uint64_t seed) {
    hl_sim_gen g;
    hl_sim_gen_defaults(&g);
    g.seed = seed;
    hl_sim_workload w;
    if (hl_sim_generate(&g, &w) != HL_OK) exit(1);
    return w;
}

HL_TEST(default_workload_is_the_brief_scenario) {
    hl_sim_workload w = generate(1);
    long long tokens = w.input_tokens + w.output_tokens;
    HL_CHECK(tokens >= 10000000 && tokens < 10000000 + 3000);
    HL_CHECK_NEAR(w.month_factor, 1.0, 0);
    HL_CHECK_NEAR((double)w.input_tokens / (double)tokens, 0.70, 0.01);
    HL_CHECK_NEAR((double)w.sensitive / (double)w.n, 0.10, 0.01);
    /* the mix as declared, within sampling noise */
    for (size_t k = 0; k < hl_sim_default_mix_n; k++) {
        size_t count = 0;
        for (size_t i = 0; i < w.n; i++) {
            const char *t = w.v[i].task >= 0 ? w.tasks[w.v[i].task] : NULL;
            const char *want = hl_sim_default_mix[k].task;
            count += (t == NULL && want == NULL) || (t && want && !strcmp(t, want));
        }
        HL_CHECK_NEAR((double)count / (double)w.n, hl_sim_default_mix[k].share, 0.015);
    }
    /* pinned for seed 1 */
    HL_CHECK_INT_EQ(w.n, 12726);
    HL_CHECK_INT_EQ(tokens, 10000350);
    HL_CHECK_INT_EQ(w.sensitive, 1247);
    HL_CHECK(strstr(w.source, "the brief's scenario") != NULL);
    hl_sim_workload_release(&w);
}

HL_TEST(a_seed_gives_the_same_results) {
    hl_config *cfg = brief();
    hl_sim_options o = default_options();
    hl_sim_workload a = generate(7), b = generate(7), c = generate(8);
    HL_REQUIRE(a.n == b.n);
    for (size_t i = 0; i < a.n; i++)
        if (a.v[i].task != b.v[i].task || a.v[i].sensitive != b.v[i].sensitive ||
            a.v[i].input_tokens != b.v[i].input_tokens || a.v[i].output_tokens != b.v[i].output_tokens ||
            a.v[i].confidence != b.v[i].confidence) {
            HL_FAIL_("request %zu differs", i);
            break;
        }
    HL_CHECK(a.n != c.n || a.input_tokens != c.input_tokens || a.sensitive != c.sensitive);
    hl_sim_result ra, rb;
    o.seed = 7;
    run(&a, "hybrid", HL_SIM_ROUTER, cfg, &o, &ra);
    run(&b, "hybrid", HL_SIM_ROUTER, cfg, &o, &rb);
    HL_CHECK(!memcmp(&ra, &rb, sizeof ra));
    hl_sim_workload_release(&a);
    hl_sim_workload_release(&b);
    hl_sim_workload_release(&c);
    hl_config_free(cfg);
}

/* The default run (`hybridllm simulate`), pinned. */
HL_TEST(pinned_outputs_seed_1) {
    hl_config *cfg = brief();
    hl_sim_options o = default_options();
    hl_sim_workload w = generate(1);
    hl_sim_result cloud, local, hybrid;
    run(&w, "all-cloud", HL_SIM_ALL_CLOUD, cfg, &o, &cloud);
    run(&w, "all-local", HL_SIM_ALL_LOCAL, cfg, &o, &local);
    run(&w, "hybrid", HL_SIM_ROUTER, cfg, &o, &hybrid);

    /* all-cloud: every token at Claude's $3/$15 */
    HL_CHECK_INT_EQ(cloud.served_cloud, w.n);
    HL_CHECK_NEAR(cloud.cloud_usd, (double)w.input_tokens * 3e-6 + (double)w.output_tokens * 15e-6, 1e-9);
    HL_CHECK_NEAR(cloud.usd_month, 66.0, 0.5);
    HL_CHECK_INT_EQ(cloud.violations, w.sensitive); /* the point of the column */
    HL_CHECK_NEAR(cloud.fixed_usd_month, 0, 0);
    HL_CHECK(cloud.p50_ms >= 600 && cloud.p95_ms <= 900);

    /* all-local: busy time at $0.05/h, no cloud */
    HL_CHECK_INT_EQ(local.served_local, w.n);
    HL_CHECK_NEAR(local.cloud_usd, 0, 0);
    HL_CHECK(local.local_usd > (double)w.n * 1.5 / 3600 * 0.05 && local.local_usd < (double)w.n * 2.5 / 3600 * 0.05);
    HL_CHECK_INT_EQ(local.violations, 0);
    HL_CHECK_NEAR(local.fixed_usd_month, 550.0 / 36.0 + 10.0, 1e-9);

    /* the brief's router */
    HL_CHECK_INT_EQ(hybrid.violations, 0);
    HL_CHECK_INT_EQ(hybrid.refused, 0);
    HL_CHECK_INT_EQ(hybrid.served_local + hybrid.served_cloud, w.n);
    HL_CHECK(hybrid.usd_month < cloud.usd_month);

    /* pinned values for seed 1: 6,996,505 input x $3 + 3,003,845 output x $15 per 1M */
    HL_CHECK_INT_EQ(w.input_tokens, 6996505);
    HL_CHECK_INT_EQ(w.output_tokens, 3003845);
    HL_CHECK_NEAR(cloud.usd_month, 66.04719, 1e-9);
    HL_CHECK_NEAR(cloud.per_1k_requests, 5.189941066, 1e-8);
    HL_CHECK_NEAR(cloud.p50_ms, 749.305251, 1e-5);
    HL_CHECK_NEAR(cloud.p95_ms, 886.291086, 1e-5);
    HL_CHECK_NEAR(local.usd_month, 0.354240306, 1e-8);
    HL_CHECK_NEAR(local.p50_ms, 2007.144255, 1e-5);
    HL_CHECK_NEAR(local.p95_ms, 2449.031195, 1e-5);
    HL_CHECK_INT_EQ(hybrid.served_local, 9977);
    HL_CHECK_INT_EQ(hybrid.served_cloud, 2749);
    HL_CHECK_INT_EQ(hybrid.escalated, 393);
    HL_CHECK_INT_EQ(hybrid.cloud_tokens, 2855062);
    HL_CHECK_NEAR(hybrid.cloud_usd, 24.484158, 1e-9);
    HL_CHECK_NEAR(hybrid.local_usd, 0.288740107, 1e-8);
    HL_CHECK_NEAR(hybrid.per_1k_requests, 1.946636658, 1e-8);
    HL_CHECK_NEAR(hybrid.p50_ms, 1907.642733, 1e-5);
    HL_CHECK_NEAR(hybrid.p95_ms, 2466.022565, 1e-5);

    hl_sim_result rs[3] = {cloud, local, hybrid};
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_sim_render_text(&w, rs, 3, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "privacy violations                    1,247                0                0") != NULL);
    HL_CHECK(strstr(b.data, "cloud $/month                        $66.05            $0.00           $24.48") != NULL);
    hl_buf_reset(&b);
    HL_REQUIRE(hl_sim_render_json(&w, rs, 3, &b) == HL_OK);
    json_t *j = json_loads(b.data, 0, NULL);
    HL_REQUIRE(j);
    json_t *pol = json_object_get(j, "policies");
    HL_CHECK_INT_EQ(json_array_size(pol), 3);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(pol, 0), "privacy_violations")), 1247);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(pol, 2), "escalated")), 393);
    json_decref(j);
    hl_buf_release(&b);
    hl_sim_workload_release(&w);
    hl_config_free(cfg);
}

/* Policies that would leak if the router let them: the brief's own rule order (task type
 * before privacy), a cloud-first list, a cloud-only route, a split, escalation to the cloud.
 * Through the router none sends a sensitive request to the cloud. */
HL_TEST(privacy_violations_are_zero_for_router_policies) {
    static const char *const policies[] = {
        /* the brief's InferenceRouter order: task type first */
        "backends:\n"
        "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, model: claude-3-5-sonnet-20241022}\n"
        "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b}\n"
        "routes:\n"
        "  - {name: complex, when: {task_type: [code_generation, analysis, reasoning]}, to: [claude]}\n"
        "  - {name: privacy, when: {sensitive: true}, to: [local]}\n"
        "  - {name: simple, when: {task_type: [classification, extraction]}, to: [local]}\n"
        "  - {name: default, to: [local], escalate: {below: 0.7, to: [claude]}}\n",
        /* cloud first for everything */
        "backends:\n"
        "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, model: claude-3-5-sonnet-20241022}\n"
        "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b}\n"
        "routes:\n"
        "  - {name: all, to: [claude, local]}\n",
        /* a split and escalation everywhere */
        "backends:\n"
        "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, model: claude-3-5-sonnet-20241022}\n"
        "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b}\n"
        "routes:\n"
        "  - {name: trial, split: [{to: local, weight: 1}, {to: claude, weight: 1}], escalate: {below: 0.9, to: [claude]}}\n",
        /* cloud only: sensitive requests are refused, not leaked */
        "backends:\n"
        "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, model: claude-3-5-sonnet-20241022}\n"
        "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b}\n"
        "routes:\n"
        "  - {name: all, to: [claude]}\n",
    };
    hl_sim_options o = default_options();
    hl_sim_workload w = generate(3);
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        hl_config *cfg = parse(policies[i]);
        hl_sim_result r;
        run(&w, "policy", HL_SIM_ROUTER, cfg, &o, &r);
        if (r.violations) HL_FAIL_("policy %zu: %zu privacy violations", i, r.violations);
        HL_CHECK_INT_EQ(r.served_local + r.served_cloud + r.refused, w.n);
        if (i == 0) {
            /* sensitive code/analysis/reasoning: its rule offers only the cloud: refused */
            size_t sensitive_complex = 0;
            for (size_t k = 0; k < w.n; k++) {
                const char *t = w.v[k].task >= 0 ? w.tasks[w.v[k].task] : "";
                sensitive_complex += w.v[k].sensitive && (!strcmp(t, "code_generation") ||
                                                          !strcmp(t, "analysis") || !strcmp(t, "reasoning"));
            }
            HL_CHECK(sensitive_complex > 0);
            HL_CHECK_INT_EQ(r.refused, sensitive_complex);
        }
        if (i == 1) HL_CHECK_INT_EQ(r.refused, 0);
        if (i == 2) HL_CHECK(r.escalated > 0);
        if (i == 3) {
            HL_CHECK_INT_EQ(r.refused, w.sensitive);
            HL_CHECK(strstr(r.refusal, "no_local_backend") != NULL);
        }
        hl_config_free(cfg);
    }
    hl_sim_workload_release(&w);
}

/* A hand-built workload: untyped requests take the brief's default rule (local, escalated
 * below 0.7). Sensitive ones are never escalated to the cloud. */
HL_TEST(escalation_follows_the_threshold) {
    static const struct {
        double confidence;
        bool sensitive;
    } reqs[] = {{0.50, false}, {0.69, false}, {0.70, false}, {0.95, false}, {0.10, true}};
    hl_sim_workload w = {0};
    w.v = calloc(8, sizeof *w.v);
    HL_REQUIRE(w.v);
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        w.v[w.n++] = (hl_sim_request){.task = -1, .sensitive = reqs[i].sensitive, .input_tokens = 1000,
                                      .output_tokens = 1000, .confidence = reqs[i].confidence};
    w.month_factor = 1;
    hl_config *cfg = brief();
    hl_sim_options o = default_options();
    hl_sim_latency lat[] = {{"cloud", 800, 800}, {"local", 2000, 2000}};
    o.latency = lat;
    o.n_latency = 2;
    hl_sim_result r;
    run(&w, "hybrid", HL_SIM_ROUTER, cfg, &o, &r);
    HL_CHECK_INT_EQ(r.escalated, 2);
    HL_CHECK_INT_EQ(r.served_cloud, 2);
    HL_CHECK_INT_EQ(r.served_local, 3);
    HL_CHECK_INT_EQ(r.violations, 0);
    HL_CHECK_INT_EQ(r.cloud_tokens, 4000);
    /* escalated: local 2,000 ms + cloud 800 ms; each local attempt costs 2 s at $0.05/h */
    HL_CHECK_NEAR(r.p95_ms, 2800, 1e-9);
    HL_CHECK_NEAR(r.p50_ms, 2000, 1e-9);
    HL_CHECK_NEAR(r.local_usd, 5 * 2.0 / 3600.0 * 0.05, 1e-12);
    HL_CHECK_NEAR(r.cloud_usd, 2 * (1000 * 3e-6 + 1000 * 15e-6), 1e-12);
    hl_sim_workload_release(&w);
    hl_config_free(cfg);
}

/* A rule that escalates on the first-token margin (or the least token probability) reads
 * that signal, as the gateway does; a request without the signals reads its geometric mean. */
HL_TEST(escalation_reads_the_rules_signal) {
    static const char *const signals[] = {"geomean", "margin", "min"};
    /* geomean 0.95 everywhere; margin and min low on the first two, known on all but the last */
    static const struct {
        bool signals;
        double margin, min;
    } reqs[] = {{true, 0.10, 0.90}, {true, 0.90, 0.05}, {true, 0.90, 0.90}, {false, 0, 0}};
    static const int want[] = {0, 1, 1}; /* escalations per signal */
    for (int k = 0; k < 3; k++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "backends:\n"
                 "  - {name: c, kind: openai, location: cloud, base_url: http://127.0.0.1:1/v1, model: gpt-4o}\n"
                 "  - {name: l, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: llama-3.1-8b}\n"
                 "routes:\n"
                 "  - {name: all, to: [l], escalate: {below: 0.5, signal: %s, to: [c]}}\n",
                 signals[k]);
        hl_config *cfg = parse(yaml);
        hl_sim_workload w = {0};
        w.v = calloc(8, sizeof *w.v);
        HL_REQUIRE(w.v);
        for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
            w.v[w.n++] = (hl_sim_request){.task = -1, .input_tokens = 100, .output_tokens = 100, .confidence = 0.95,
                                          .signals = reqs[i].signals, .margin = reqs[i].margin, .min = reqs[i].min};
        w.month_factor = 1;
        hl_sim_options o = default_options();
        hl_sim_result r;
        run(&w, signals[k], HL_SIM_ROUTER, cfg, &o, &r);
        if (r.escalated != (size_t)want[k]) HL_FAIL_("signal %s: %zu escalated, want %d", signals[k], (size_t)r.escalated, want[k]);
        hl_sim_workload_release(&w);
        hl_config_free(cfg);
    }
}

HL_TEST(unpriced_cloud_models_are_counted) {
    hl_config *cfg = parse("backends:\n"
                           "  - {name: c, kind: openai, location: cloud, base_url: http://127.0.0.1:1/v1, model: mystery-1}\n"
                           "  - {name: l, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: llama-3.1-70b}\n"
                           "routes:\n"
                           "  - {name: all, to: [c, l]}\n");
    hl_sim_workload w = generate(1);
    hl_sim_options o = default_options();
    hl_sim_result r;
    run(&w, "mystery", HL_SIM_ROUTER, cfg, &o, &r);
    HL_CHECK_INT_EQ(r.unpriced, w.n - w.sensitive);
    HL_CHECK_NEAR(r.cloud_usd, 0, 0);
    HL_CHECK(strstr(r.backends, "NO PRICE") != NULL);
    /* the 70B local model gets the brief's 2,000-4,000 ms */
    HL_CHECK(strstr(r.backends, "l (llama-3.1-70b): local, $0.05/h busy, 2000-4000 ms") != NULL);
    run(&w, "all-local", HL_SIM_ALL_LOCAL, cfg, &o, &r);
    HL_CHECK(r.p50_ms >= 2000 && r.p95_ms <= 4000);
    hl_sim_workload_release(&w);
    hl_config_free(cfg);
}

HL_TEST(a_policy_without_the_needed_backend_is_an_error) {
    hl_config *cfg = parse("backends:\n"
                           "  - {name: l, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: m}\n"
                           "routes:\n"
                           "  - {name: all, to: [l]}\n");
    hl_sim_workload w = generate(1);
    hl_sim_options o = default_options();
    hl_sim_policy p = {"all-cloud", HL_SIM_ALL_CLOUD, cfg};
    hl_sim_result r;
    char err[256];
    HL_CHECK_INT_EQ(hl_sim_run(&w, &p, &o, &r, err, sizeof err), HL_ERR_INVAL);
    HL_CHECK(strstr(err, "no cloud backend") != NULL);
    hl_sim_workload_release(&w);
    hl_config_free(cfg);
}

HL_TEST(brief_config_refuses_odd_model_names) {
    hl_config *cfg = NULL;
    char err[256];
    HL_CHECK_INT_EQ(hl_sim_brief_config("x\"}\nroutes: []", NULL, 0.05, &cfg, err, sizeof err), HL_ERR_INVAL);
    HL_CHECK(cfg == NULL);
    HL_REQUIRE(hl_sim_brief_config("gpt-4o", "llama-3.1-8b", 0.1, &cfg, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(cfg->n_backends, 2);
    HL_CHECK_INT_EQ(cfg->backends[0].kind, HL_PROVIDER_OPENAI);
    HL_CHECK_NEAR(cfg->backends[1].hourly_cost_usd, 0.1, 0);
    hl_config_free(cfg);
}

/* The advisor's fixture (test_advise.c): 5 served requests over 2 days. r3 was escalated with
 * confidence 0.55, carried from its "escalated" line to the served one. */
static const char fixture[] =
    "{\"timestamp\":\"2025-03-01T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":400,\"output_tokens\":100,"
    "\"latency_ms\":1800,\"cost_usd\":0.000025,\"request_id\":\"r1\",\"attempt\":1,\"status\":\"ok\",\"task_type\":\"classification\"}\n"
    "{\"timestamp\":\"2025-03-01T12:00:00.000Z\",\"source\":\"cloud\",\"input_tokens\":700,\"output_tokens\":300,"
    "\"latency_ms\":850,\"cost_usd\":0.0066,\"request_id\":\"r2\",\"attempt\":1,\"status\":\"ok\",\"task_type\":\"code_generation\"}\n"
    "{\"timestamp\":\"2025-03-02T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":600,\"output_tokens\":200,"
    "\"latency_ms\":3600,\"cost_usd\":0.00005,\"request_id\":\"r3\",\"attempt\":1,\"status\":\"escalated\","
    "\"task_type\":\"summarization\",\"confidence\":0.55,\"confidence_margin\":0.2,\"confidence_min\":0.05}\n"
    "{\"timestamp\":\"2025-03-02T00:00:04.000Z\",\"source\":\"cloud\",\"input_tokens\":600,\"output_tokens\":200,"
    "\"latency_ms\":900,\"cost_usd\":0.0048,\"request_id\":\"r3\",\"attempt\":2,\"status\":\"ok\",\"task_type\":\"summarization\"}\n"
    "{\"timestamp\":\"2025-03-02T06:00:00.000Z\",\"source\":\"cloud\",\"input_tokens\":0,\"output_tokens\":0,"
    "\"latency_ms\":100,\"cost_usd\":0,\"request_id\":\"r4\",\"attempt\":1,\"status\":\"error\"}\n"
    "{\"timestamp\":\"2025-03-02T06:00:01.000Z\",\"source\":\"local\",\"input_tokens\":300,\"output_tokens\":50,"
    "\"latency_ms\":720,\"cost_usd\":0.00001,\"request_id\":\"r4\",\"attempt\":2,\"status\":\"ok\",\"task_type\":\"extraction\","
    "\"sensitive\":true}\n"
    "{\"timestamp\":\"2025-03-03T00:00:00\",\"source\":\"local\",\"input_tokens\":300,\"output_tokens\":150,"
    "\"latency_ms\":1080,\"cost_usd\":null,\"confidence\":0.9}\n";

HL_TEST(ledger_replay) {
    char path[] = "/tmp/hl_test_sim_XXXXXX", err[256];
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    HL_REQUIRE(write(fd, fixture, sizeof fixture - 1) == (ssize_t)(sizeof fixture - 1));
    close(fd);
    hl_sim_workload w;
    HL_REQUIRE(hl_sim_load_ledger(path, 0, 1, &w, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(w.n, 5);
    HL_CHECK_NEAR(w.month_factor, 15.0, 1e-12);
    HL_CHECK_INT_EQ(w.input_tokens, 2300);
    HL_CHECK_INT_EQ(w.output_tokens, 800);
    HL_CHECK_INT_EQ(w.sensitive, 1);
    HL_CHECK_NEAR(w.v[2].confidence, 0.55, 0); /* r3, from its escalated line */
    HL_CHECK(w.v[2].signals); /* and its other two signals */
    HL_CHECK_NEAR(w.v[2].margin, 0.2, 0);
    HL_CHECK_NEAR(w.v[2].min, 0.05, 0);
    HL_CHECK(!w.v[4].signals);
    HL_CHECK_NEAR(w.v[4].confidence, 0.9, 0);
    hl_config *cfg = brief();
    hl_sim_options o = default_options();
    hl_sim_result cloud, hybrid;
    run(&w, "all-cloud", HL_SIM_ALL_CLOUD, cfg, &o, &cloud);
    run(&w, "hybrid", HL_SIM_ROUTER, cfg, &o, &hybrid);
    /* all-cloud: 2,300 x $3 + 800 x $15 per 1M = $0.0189 for 2 days, x15 */
    HL_CHECK_NEAR(cloud.cloud_usd, 0.0189, 1e-12);
    HL_CHECK_NEAR(cloud.usd_month, 0.2835, 1e-12);
    HL_CHECK_INT_EQ(cloud.violations, 1);
    /* hybrid: r1 local, r2 cloud, r3 local escalated to the cloud, r4 local (sensitive), r5
     * local (0.9 is sure enough) */
    HL_CHECK_INT_EQ(hybrid.served_local, 3);
    HL_CHECK_INT_EQ(hybrid.served_cloud, 2);
    HL_CHECK_INT_EQ(hybrid.escalated, 1);
    HL_CHECK_INT_EQ(hybrid.violations, 0);
    HL_CHECK_NEAR(hybrid.cloud_usd, 0.0066 + 0.0048, 1e-12);
    hl_sim_workload_release(&w);
    hl_config_free(cfg);
    unlink(path);
    HL_CHECK_INT_EQ(hl_sim_load_ledger("/nonexistent.jsonl", 0, 1, &w, err, sizeof err), HL_ERR_IO);
}

static void write_file(char *path, const char *text, size_t n) {
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, n) != (ssize_t)n) exit(1);
    close(fd);
}

/* Under load the lines of concurrent requests interleave: here 200 requests are each escalated
 * (a local answer at confidence 0.3, then the cloud's), and every escalated line is written
 * before any served one, with 100 plain requests in between. Each escalation is replayed. */
HL_TEST(escalations_are_matched_by_request_id_not_adjacency) {
    hl_buf b;
    hl_buf_init(&b, 0);
    const char *fmt = "{\"timestamp\":\"2025-03-0%dT%02d:%02d:%02d.000Z\",\"source\":\"%s\",\"input_tokens\":300,"
                      "\"output_tokens\":100,\"latency_ms\":900,\"cost_usd\":0.0001,\"request_id\":\"%s%d\","
                      "\"attempt\":%d,\"status\":\"%s\"%s}\n";
    for (int i = 0; i < 200; i++)
        hl_buf_printf(&b, fmt, 1, i / 60, i % 60, 0, "local", "esc", i, 1, "escalated", ",\"confidence\":0.3");
    for (int i = 0; i < 100; i++)
        hl_buf_printf(&b, fmt, 1, 4, i / 60, i % 60, "local", "plain", i, 1, "ok", ",\"confidence\":0.95");
    for (int i = 199; i >= 0; i--) /* the served lines in another order */
        hl_buf_printf(&b, fmt, 2, i / 60, i % 60, 1, "cloud", "esc", i, 2, "ok", "");
    char path[] = "/tmp/hl_test_sim_XXXXXX", err[256];
    write_file(path, b.data, b.len);
    hl_buf_release(&b);
    hl_sim_workload w;
    HL_REQUIRE(hl_sim_load_ledger(path, 0, 1, &w, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(w.n, 300);
    size_t low = 0;
    for (size_t i = 0; i < w.n; i++) low += w.v[i].confidence == 0.3;
    HL_CHECK_INT_EQ(low, 200);
    hl_config *cfg = brief();
    hl_sim_options o = default_options();
    hl_sim_result hybrid;
    run(&w, "hybrid", HL_SIM_ROUTER, cfg, &o, &hybrid);
    HL_CHECK_INT_EQ(hybrid.escalated, 200);
    HL_CHECK_INT_EQ(hybrid.served_cloud, 200);
    HL_CHECK_INT_EQ(hybrid.served_local, 100);
    hl_sim_workload_release(&w);
    hl_config_free(cfg);
    unlink(path);
}

static void check_same_workload(const hl_sim_workload *a, const hl_sim_workload *b) {
    HL_REQUIRE(a->n == b->n);
    HL_CHECK_INT_EQ(a->input_tokens, b->input_tokens);
    HL_CHECK_INT_EQ(a->output_tokens, b->output_tokens);
    HL_CHECK_INT_EQ(a->sensitive, b->sensitive);
    HL_CHECK_NEAR(a->month_factor, b->month_factor, 0);
    for (size_t i = 0; i < a->n; i++) {
        HL_CHECK_INT_EQ(a->v[i].task, b->v[i].task);
        HL_CHECK_NEAR(a->v[i].confidence, b->v[i].confidence, 0);
    }
}

HL_TEST(a_journal_concatenated_twice_replays_once) {
    char one[] = "/tmp/hl_test_sim_XXXXXX", two[] = "/tmp/hl_test_sim_XXXXXX", err[256];
    size_t f = sizeof fixture - 1;
    char *text = malloc(2 * f);
    HL_REQUIRE(text);
    memcpy(text, fixture, f);
    memcpy(text + f, fixture, f);
    write_file(one, fixture, f);
    write_file(two, text, 2 * f);
    free(text);
    hl_sim_workload a, b;
    HL_REQUIRE(hl_sim_load_ledger(one, 0, 1, &a, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_sim_load_ledger(two, 0, 1, &b, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(b.n, 5);
    check_same_workload(&a, &b);
    hl_sim_workload_release(&a);
    hl_sim_workload_release(&b);
    unlink(one);
    unlink(two);
}

/* The brief's CostTracker lines (no request id, no status, no task type): each one a served
 * request, with the untyped profile's drawn confidence. */
HL_TEST(cost_tracker_journal) {
    static const char ct[] =
        "{\"timestamp\": \"2025-03-01T12:00:00.123456\", \"source\": \"cloud\", \"input_tokens\": 450, "
        "\"output_tokens\": 200, \"latency_ms\": 850, \"cost_usd\": 0.00435}\n"
        "{\"timestamp\": \"2025-03-01T12:00:01.654321\", \"source\": \"local\", \"input_tokens\": 450, "
        "\"output_tokens\": 200, \"latency_ms\": 1800, \"cost_usd\": 2.5e-05}\n"
        "{\"timestamp\": \"2025-03-01T12:00:01.654321\", \"source\": \"local\", \"input_tokens\": 450, "
        "\"output_tokens\": 200, \"latency_ms\": 1800, \"cost_usd\": 2.5e-05}\n"
        "{\"timestamp\": \"2025-03-03T12:00:00.123456\", \"source\": \"cloud\", \"input_tokens\": 300, "
        "\"output_tokens\": 100, \"latency_ms\": 850, \"cost_usd\": 0.0024}\n";
    char path[] = "/tmp/hl_test_sim_XXXXXX", err[256];
    write_file(path, ct, sizeof ct - 1);
    hl_sim_workload w;
    HL_REQUIRE(hl_sim_load_ledger(path, 0, 7, &w, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(err, "");
    HL_CHECK_INT_EQ(w.n, 3); /* the repeated line counts once */
    HL_CHECK_INT_EQ(w.input_tokens, 1200);
    HL_CHECK_INT_EQ(w.output_tokens, 500);
    HL_CHECK_NEAR(w.month_factor, 15.0, 1e-9);
    for (size_t i = 0; i < w.n; i++) {
        HL_CHECK_INT_EQ(w.v[i].task, -1);
        HL_CHECK(w.v[i].confidence >= 0 && w.v[i].confidence <= 1);
    }
    hl_sim_workload_release(&w);
    unlink(path);
}

HL_TEST(a_big_month_is_a_scaled_sample) {
    hl_sim_gen g;
    hl_sim_gen_defaults(&g);
    g.tokens_per_month = 1e9;
    hl_sim_workload w;
    HL_REQUIRE(hl_sim_generate(&g, &w) == HL_OK);
    long long tokens = w.input_tokens + w.output_tokens;
    HL_CHECK(tokens >= 50000000 && tokens < 50003000);
    HL_CHECK_NEAR(w.month_factor * (double)tokens, 1e9, 1e-3);
    hl_sim_workload_release(&w);
    g.tokens_per_month = 0;
    HL_CHECK_INT_EQ(hl_sim_generate(&g, &w), HL_ERR_INVAL);
}

/* A ledger with shadow comparisons at planted rates: classification 60 of 60 agree (lower
 * bound 94.0%), extraction 150 of 150 (97.5%), free text 90 of 150. Every request served by
 * the cloud; the shadows are not replayed as requests, their scores are the rates. At target
 * 0.95 and 100 samples only extraction goes local (classification is short of samples). */
HL_TEST(measured_agreement_policy_routes_the_planted_good_task_types) {
    hl_buf b;
    hl_buf_init(&b, 0);
    static const struct {
        const char *task;
        int n, agree;
    } plant[] = {{"classification", 60, 60}, {"extraction", 150, 150}, {"free_text", 150, 90}};
    int k = 0;
    for (size_t t = 0; t < 3; t++)
        for (int i = 0; i < plant[t].n; i++, k++) {
            const char *line = "{\"timestamp\":\"2025-03-%02dT00:00:%02d.000Z\",\"source\":\"%s\",\"input_tokens\":400,"
                               "\"output_tokens\":100,\"latency_ms\":900,\"cost_usd\":0.0027,\"request_id\":\"m%d\","
                               "\"attempt\":%d,\"status\":\"ok\",\"task_type\":\"%s\"%s}\n";
            hl_buf_printf(&b, line, 1 + k % 28, 0, "cloud", k, 1, plant[t].task, "");
            hl_buf_printf(&b, line, 1 + k % 28, 1, "local", k, 2, plant[t].task,
                          i < plant[t].agree ? ",\"shadow\":true,\"score\":1,\"score_method\":\"exact\",\"agree\":true,"
                                               "\"reference\":\"served\",\"ref_output_tokens\":100"
                                             : ",\"shadow\":true,\"score\":0,\"score_method\":\"exact\",\"agree\":false,"
                                               "\"reference\":\"served\",\"ref_output_tokens\":100");
        }
    char path[] = "/tmp/hl_test_sim_XXXXXX", err[256];
    write_file(path, b.data, b.len);
    hl_buf_release(&b);
    hl_sim_workload w;
    HL_REQUIRE(hl_sim_load_ledger(path, 0, 1, &w, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(w.n, 360); /* the 360 shadows are not requests */
    HL_CHECK_INT_EQ(w.scored, 360);
    HL_REQUIRE(w.n_tasks == 3);
    HL_CHECK_INT_EQ(w.agree_n[2], 150);
    HL_CHECK_INT_EQ(w.agree_k[2], 90);
    hl_config *cfg = NULL;
    size_t n_local;
    char names[128];
    HL_REQUIRE(hl_sim_measured_config(NULL, NULL, 0.05, &w, 0.95, 100, &cfg, &n_local, names, sizeof names, err,
                                      sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(n_local, 1);
    HL_CHECK_STR_EQ(names, "extraction");
    hl_sim_options o = default_options();
    hl_sim_result cloud, local, measured;
    run(&w, "all-cloud", HL_SIM_ALL_CLOUD, cfg, &o, &cloud);
    run(&w, "all-local", HL_SIM_ALL_LOCAL, cfg, &o, &local);
    run(&w, "measured", HL_SIM_ROUTER, cfg, &o, &measured);
    HL_CHECK_INT_EQ(measured.served_local, 150);
    HL_CHECK_INT_EQ(measured.served_cloud, 210);
    HL_CHECK_NEAR(cloud.expected_agreement, 1, 0);
    HL_CHECK_NEAR(local.expected_agreement, 300.0 / 360.0, 1e-12);
    HL_CHECK_NEAR(measured.expected_agreement, 1, 1e-12); /* extraction agreed every time */
    HL_CHECK_NEAR(measured.cloud_usd, 210 * (400 * 3e-6 + 100 * 15e-6), 1e-12);
    hl_config_free(cfg);
    /* Target 0.9 with 50 samples: classification joins; free text never does. */
    HL_REQUIRE(hl_sim_measured_config(NULL, NULL, 0.05, &w, 0.9, 50, &cfg, &n_local, names, sizeof names, err,
                                      sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(names, "classification, extraction");
    hl_config_free(cfg);
    hl_buf out;
    hl_buf_init(&out, 0);
    HL_REQUIRE(hl_sim_render_text(&w, &measured, 1, &out) == HL_OK);
    HL_CHECK(strstr(out.data, "expected agreement") && strstr(out.data, "free_text                 60.0%"));
    hl_buf_release(&out);
    hl_sim_workload_release(&w);
    unlink(path);
}

HL_TEST_MAIN()
