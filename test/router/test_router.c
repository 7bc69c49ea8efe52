/* Tests for hl_router: the brief's router with privacy first, table-driven; forced models;
 * privacy refusals; readiness. */
#include <stdlib.h>
#include "hl_router.h"
#include "hl_test.h"

static const char config_text[] =
    "backends:\n"
    "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, api_key_env: HL_RT_KEY, model: claude-3-5-sonnet-20241022}\n"
    "  - {name: gpt, kind: openai, location: cloud, base_url: http://127.0.0.1:1/v1, api_key_env: HL_RT_KEY, model: gpt-4o, models: [gpt-4o-mini]}\n"
    "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b}\n"
    "  - {name: local2, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: gpt-4o-mini}\n"
    "routes:\n"
    "  - {name: privacy, when: {sensitive: true}, to: [local]}\n"
    "  - {name: complex-task, when: {task_type: [code_generation, analysis, reasoning]}, to: [claude, gpt]}\n"
    "  - {name: simple-task, when: {task_type: [classification, extraction]}, to: [local]}\n"
    "  - {name: default, to: [local, claude]}\n";

static hl_config *cfg;
static hl_backends bs;

static void setup(void) {
    char err[256];
    setenv("HL_RT_KEY", "k", 1);
    if (hl_config_parse("router.yaml", config_text, sizeof config_text - 1, &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    if (hl_backends_init(&bs, cfg, false) != HL_OK) exit(1);
}

static void teardown(void) {
    hl_backends_release(&bs);
    hl_config_free(cfg);
}

typedef struct {
    const char *model, *task_type;
    bool sensitive;
    int status;              /* 0: routed */
    const char *reason;      /* when routed */
    const char *first, *second; /* candidates */
    const char *upstream_model;
} route_case;

HL_TEST(routing_table) {
    setup();
    static const route_case cases[] = {
        /* the brief's rules, privacy first */
        {"auto", "code_generation", false, 0, "rule:complex-task", "claude", "gpt", "claude-3-5-sonnet-20241022"},
        {"auto", "code_generation", true, 0, "rule:privacy", "local", NULL, "mistral-7b"},
        {"auto", "classification", false, 0, "rule:simple-task", "local", NULL, "mistral-7b"},
        {"auto", NULL, false, 0, "rule:default", "local", "claude", "mistral-7b"},
        {"auto", "summarization", true, 0, "rule:privacy", "local", NULL, "mistral-7b"},
        /* forcing */
        {"claude", NULL, false, 0, "forced:backend", "claude", NULL, "claude-3-5-sonnet-20241022"},
        {"gpt-4o", NULL, false, 0, "forced:model", "gpt", NULL, "gpt-4o"},
        {"gpt-4o-mini", NULL, false, 0, "forced:model", "gpt", "local2", "gpt-4o-mini"},
        /* privacy beats forcing: cloud-only names are refused, mixed ones keep the local part */
        {"claude", NULL, true, 403, NULL, NULL, NULL, NULL},
        {"gpt-4o", "classification", true, 403, NULL, NULL, NULL, NULL},
        {"gpt-4o-mini", NULL, true, 0, "forced:model", "local2", NULL, "gpt-4o-mini"},
        /* unknown */
        {"gpt-5-ultra", NULL, false, 404, NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const route_case *c = &cases[i];
        hl_route_input in = {.model = c->model, .task_type = c->task_type, .sensitive = c->sensitive};
        hl_route r;
        hl_api_error e = {0};
        hl_err rc = hl_router_route(cfg, &bs, &in, &r, &e, NULL);
        if (c->status) {
            if (rc == HL_OK) HL_FAIL_("case %zu routed, expected %d", i, c->status);
            else HL_CHECK_INT_EQ(e.status, c->status);
            continue;
        }
        if (rc != HL_OK) {
            HL_FAIL_("case %zu: %d %s", i, e.status, e.message);
            continue;
        }
        HL_CHECK_STR_EQ(r.reason, c->reason);
        HL_CHECK_STR_EQ(r.candidates[0]->cfg->name, c->first);
        HL_CHECK_STR_EQ(r.models[0], c->upstream_model);
        HL_CHECK_INT_EQ(r.n, c->second ? 2 : 1);
        if (c->second && r.n > 1) HL_CHECK_STR_EQ(r.candidates[1]->cfg->name, c->second);
        for (int j = 0; j < r.n; j++)
            if (c->sensitive && hl_backend_is_cloud(r.candidates[j])) HL_FAIL_("case %zu: cloud candidate for a sensitive request", i);
    }
    teardown();
}

HL_TEST(not_ready_backends_are_skipped_and_explained) {
    setup();
    atomic_store(&hl_backends_find(&bs, "local")->ready, false);
    snprintf(hl_backends_find(&bs, "local")->status, 64, "no server answered");
    hl_route r;
    hl_api_error e = {0};
    hl_route_input in = {.model = "auto"};
    HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e, NULL) == HL_OK);
    HL_CHECK_INT_EQ(r.n, 1);
    HL_CHECK_STR_EQ(r.candidates[0]->cfg->name, "claude");
    /* A sensitive request never falls through to the cloud: 503 that says why. */
    hl_route_input sens = {.model = "auto", .sensitive = true};
    HL_CHECK(hl_router_route(cfg, &bs, &sens, &r, &e, NULL) != HL_OK);
    HL_CHECK_INT_EQ(e.status, 503);
    HL_CHECK_STR_EQ(e.code, "no_local_backend");
    HL_CHECK(strstr(e.message, "no server answered") != NULL);
    teardown();
}

HL_TEST(missing_cloud_key_means_not_ready) {
    unsetenv("HL_RT_KEY");
    char err[256];
    hl_config *c;
    HL_REQUIRE(hl_config_parse("router.yaml", config_text, sizeof config_text - 1, &c, err, sizeof err) == HL_OK);
    hl_backends b;
    HL_REQUIRE(hl_backends_init(&b, c, false) == HL_OK);
    HL_CHECK(!atomic_load(&hl_backends_find(&b, "claude")->ready));
    HL_CHECK(strstr(hl_backends_find(&b, "claude")->status, "HL_RT_KEY") != NULL);
    HL_CHECK(atomic_load(&hl_backends_find(&b, "local")->ready));
    hl_backends_release(&b);
    hl_config_free(c);
}

static const char v2_text[] =
    "backends:\n"
    "  - {name: claude, kind: anthropic, location: cloud, base_url: http://127.0.0.1:1, api_key_env: HL_RT_KEY, model: claude-3-5-sonnet-20241022, context_window: 200000}\n"
    "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b, context_window: 8000}\n"
    "  - {name: local2, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: llama-8b, context_window: 8000}\n"
    "routes:\n"
    "  - {name: privacy, when: {sensitive: true}, to: [local], escalate: {below: 0.7, to: [claude, local2]}}\n"
    "  - {name: fast, when: {model: fast}, to: [local2]}\n"
    "  - {name: acme, when: {tenant: acme}, to: [claude]}\n"
    "  - {name: long, when: {min_prompt_tokens: 6000}, to: [claude]}\n"
    "  - {name: urgent, when: {latency_budget_below_ms: 1000}, to: [claude, local]}\n"
    "  - {name: code, when: {task_type: [code_generation]}, to: [claude]}\n"
    "  - {name: trial, when: {task_type: summarization}, split: [{to: local, weight: 10}, {to: claude, weight: 90}], sticky: tenant}\n"
    "  - {name: default, to: [local, claude], escalate: {below: 0.7, to: claude}}\n";

static void v2_setup(void) {
    char err[256];
    setenv("HL_RT_KEY", "k", 1);
    if (hl_config_parse("v2.yaml", v2_text, sizeof v2_text - 1, &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    if (hl_backends_init(&bs, cfg, false) != HL_OK) exit(1);
}

typedef struct {
    hl_route_input in;
    int status;
    const char *reason, *first;
} v2_case;

HL_TEST(rule_kinds_table) {
    v2_setup();
    static const v2_case cases[] = {
        {{.model = "fast"}, 0, "rule:fast", "local2"},                       /* model alias */
        {{.model = "fast", .sensitive = true}, 0, "rule:privacy", "local"},  /* privacy first */
        {{.model = "auto", .tenant = "acme"}, 0, "rule:acme", "claude"},
        {{.model = "auto", .tenant = "other"}, 0, "rule:default", "local"},
        {{.model = "auto", .prompt_tokens = 7000}, 0, "rule:long", "claude"},
        {{.model = "auto", .prompt_tokens = 5000}, 0, "rule:default", "local"},
        {{.model = "auto", .latency_budget_ms = 800}, 0, "rule:urgent", "claude"},
        {{.model = "auto", .latency_budget_ms = 3000}, 0, "rule:default", "local"},
        {{.model = "auto", .inferred_task = "code_generation"}, 0, "rule:code", "claude"},
        /* declared beats inferred */
        {{.model = "auto", .task_type = "chat", .inferred_task = "code_generation"}, 0, "rule:default", "local"},
        /* context window: the default route's local cannot hold 9000 tokens, claude can */
        {{.model = "auto", .prompt_tokens = 5000, .max_tokens = 4000}, 0, "rule:default", "claude"},
        /* sensitive and too long for every local backend: 503 no_local_backend is not the
         * right answer; the prompt cannot fit: 400 */
        {{.model = "auto", .sensitive = true, .prompt_tokens = 9000}, 400, NULL, NULL},
        {{.model = "no-such-model"}, 404, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_route r;
        hl_api_error e = {0};
        hl_err rc = hl_router_route(cfg, &bs, &cases[i].in, &r, &e, NULL);
        if (cases[i].status) {
            if (rc == HL_OK) HL_FAIL_("case %zu routed to %s, expected %d", i, r.candidates[0]->cfg->name, cases[i].status);
            else HL_CHECK_INT_EQ(e.status, cases[i].status);
            continue;
        }
        if (rc != HL_OK) {
            HL_FAIL_("case %zu: %d %s", i, e.status, e.message);
            continue;
        }
        HL_CHECK_STR_EQ(r.reason, cases[i].reason);
        HL_CHECK_STR_EQ(r.candidates[0]->cfg->name, cases[i].first);
    }
    teardown();
}

HL_TEST(split_weights_and_stickiness) {
    v2_setup();
    int local = 0, n = 2000;
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "req_%d", i);
        hl_route_input in = {.model = "auto", .task_type = "summarization", .sticky_key = id};
        hl_route r;
        hl_api_error e;
        HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e, NULL) == HL_OK);
        HL_REQUIRE(r.n == 2); /* the other side of the split is the fallback */
        if (!strcmp(r.candidates[0]->cfg->name, "local")) local++;
    }
    /* 10% of 2000 = 200; a hash split stays within a few standard deviations (~13). */
    if (local < 150 || local > 250) HL_FAIL_("local share %d of %d, expected ~200", local, n);
    /* sticky: tenant: the same tenant always lands on the same side, whatever the request id */
    const char *first = NULL;
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "req_%d", i);
        hl_route_input in = {.model = "auto", .task_type = "summarization", .tenant = "team-blue", .sticky_key = id};
        hl_route r;
        hl_api_error e;
        HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e, NULL) == HL_OK);
        if (!first) first = r.candidates[0]->cfg->name;
        HL_CHECK_STR_EQ(r.candidates[0]->cfg->name, first);
    }
    teardown();
}

HL_TEST(escalation_respects_privacy) {
    v2_setup();
    hl_route r;
    hl_api_error e;
    hl_route_input in = {.model = "auto"};
    HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e, NULL) == HL_OK);
    HL_CHECK_NEAR(r.escalate_below, 0.7, 1e-12);
    HL_REQUIRE(r.n_escalate == 1);
    HL_CHECK_STR_EQ(r.escalate[0]->cfg->name, "claude");
    hl_route_input sens = {.model = "auto", .sensitive = true};
    HL_REQUIRE(hl_router_route(cfg, &bs, &sens, &r, &e, NULL) == HL_OK);
    HL_REQUIRE(r.n_escalate == 1); /* claude ruled out, local2 kept */
    HL_CHECK_STR_EQ(r.escalate[0]->cfg->name, "local2");
    teardown();
}

HL_TEST(latency_budget_reorders_by_observed_p95) {
    v2_setup();
    hl_backend *claude = hl_backends_find(&bs, "claude");
    for (int i = 0; i < 32; i++) hl_backend_record_latency(claude, 1500 + i); /* slow today */
    HL_CHECK(hl_backend_p95(claude) >= 1500);
    hl_route r;
    hl_api_error e;
    hl_route_input in = {.model = "auto", .latency_budget_ms = 800};
    HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e, NULL) == HL_OK);
    HL_CHECK_STR_EQ(r.reason, "rule:urgent");
    HL_CHECK_STR_EQ(r.candidates[0]->cfg->name, "local"); /* no samples: assumed within budget */
    HL_CHECK_STR_EQ(r.candidates[1]->cfg->name, "claude");
    teardown();
}

HL_TEST(trace_explains_every_rule) {
    v2_setup();
    hl_route r;
    hl_api_error e;
    hl_route_trace t = {0};
    hl_route_input in = {.model = "auto", .task_type = "classification"};
    HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e, &t) == HL_OK);
    bool saw_privacy = false, saw_decision = false;
    for (int i = 0; i < t.n; i++) {
        if (strstr(t.lines[i], "rule privacy: no (the request is not sensitive)")) saw_privacy = true;
        if (strstr(t.lines[i], "decision: local via rule:default")) saw_decision = true;
    }
    HL_CHECK(saw_privacy);
    HL_CHECK(saw_decision);
    teardown();
}

HL_TEST_MAIN()
