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
        hl_route_input in = {c->model, c->task_type, c->sensitive};
        hl_route r;
        hl_api_error e = {0};
        hl_err rc = hl_router_route(cfg, &bs, &in, &r, &e);
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
    hl_route_input in = {"auto", NULL, false};
    HL_REQUIRE(hl_router_route(cfg, &bs, &in, &r, &e) == HL_OK);
    HL_CHECK_INT_EQ(r.n, 1);
    HL_CHECK_STR_EQ(r.candidates[0]->cfg->name, "claude");
    /* A sensitive request never falls through to the cloud: 503 that says why. */
    hl_route_input sens = {"auto", NULL, true};
    HL_CHECK(hl_router_route(cfg, &bs, &sens, &r, &e) != HL_OK);
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

HL_TEST_MAIN()
