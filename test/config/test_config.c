/* Tests for hl_config: the shipped config, defaults, size suffixes, price lookup, and the
 * exact message (file, line, key path, problem) for each kind of mistake in a config. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl_config.h"
#include "hl_http.h"
#include "hl_pii.h"
#include "hl_test.h"

/* The config bounds what other modules size arrays by; it does not include their headers. */
_Static_assert(HL_CONFIG_MAX_HEADERS == HL_HTTP_MAX_HEADERS, "server.max_headers bound");
_Static_assert(HL_CONFIG_MAX_PII_PATTERNS == HL_PII_MAX_CUSTOM, "custom_patterns bound");
_Static_assert(HL_CONFIG_MAX_PII_NAME == HL_PII_MAX_NAME, "custom pattern name bound");

/* The smallest valid config; bad cases below are built around it so line numbers are easy
 * to count. */
#define MIN_BACKENDS                                                                       \
    "backends:\n"                                                                          \
    "  - name: a\n"                                                                        \
    "    kind: openai\n"                                                                   \
    "    location: local\n"                                                                \
    "    base_url: http://127.0.0.1:8000/v1\n"                                             \
    "    model: auto\n"
#define MIN_ROUTES                                                                         \
    "routes:\n"                                                                            \
    "  - name: r\n"                                                                        \
    "    to: a\n"
#define MIN MIN_BACKENDS MIN_ROUTES

static hl_config *parse_ok(const char *text) {
    hl_config *cfg = NULL;
    char err[512];
    hl_err e = hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err);
    if (e != HL_OK) fprintf(stderr, "  unexpected error: %s\n", err);
    return cfg;
}

HL_TEST(shipped_config) {
    const char *dir = getenv("HL_SRC_DIR");
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/config/hybridllm.yaml", dir ? dir : ".");
    hl_config *cfg = NULL;
    hl_err e = hl_config_load(path, &cfg, err, sizeof err);
    if (e != HL_OK) fprintf(stderr, "  %s\n", err);
    HL_REQUIRE(e == HL_OK && cfg);

    HL_CHECK_STR_EQ(cfg->path, path);
    HL_CHECK_STR_EQ(cfg->listen_host, "127.0.0.1");
    HL_CHECK_INT_EQ(cfg->listen_port, 8741);
    HL_CHECK_INT_EQ(cfg->threads, 0);
    HL_CHECK_INT_EQ(cfg->max_body_bytes, 4 * 1024 * 1024);
    HL_CHECK_INT_EQ(cfg->max_header_bytes, 16 * 1024);
    HL_CHECK_INT_EQ(cfg->max_headers, 64);
    HL_CHECK_INT_EQ(cfg->read_timeout_ms, 30000);
    HL_CHECK_INT_EQ(cfg->idle_timeout_ms, 60000);
    HL_CHECK_INT_EQ(cfg->shutdown_timeout_ms, 30000);
    HL_CHECK(cfg->api_keys_env == NULL);
    HL_CHECK_STR_EQ(cfg->ledger_path, "hybridllm-ledger.jsonl");

    HL_REQUIRE(cfg->n_backends == 4);
    const hl_backend_cfg *an = hl_config_backend(cfg, "anthropic");
    HL_REQUIRE(an == &cfg->backends[0]);
    HL_CHECK_INT_EQ(an->kind, HL_PROVIDER_ANTHROPIC);
    HL_CHECK_INT_EQ(an->location, HL_LOCATION_CLOUD);
    HL_REQUIRE(an->n_base_urls == 1);
    HL_CHECK_STR_EQ(an->base_urls[0], "https://api.anthropic.com");
    HL_CHECK_STR_EQ(an->api_key_env, "ANTHROPIC_API_KEY");
    HL_CHECK_STR_EQ(an->model, "claude-3-5-sonnet-20241022");
    HL_CHECK_INT_EQ(an->timeout_ms, 600000);
    HL_CHECK_INT_EQ(an->connect_timeout_ms, 5000);

    const hl_backend_cfg *oa = hl_config_backend(cfg, "openai");
    HL_REQUIRE(oa == &cfg->backends[1]);
    HL_CHECK_INT_EQ(oa->kind, HL_PROVIDER_OPENAI);
    HL_CHECK_INT_EQ(oa->location, HL_LOCATION_CLOUD);
    HL_REQUIRE(oa->n_base_urls == 1);
    HL_CHECK_STR_EQ(oa->base_urls[0], "https://api.openai.com/v1");
    HL_CHECK_STR_EQ(oa->api_key_env, "OPENAI_API_KEY");
    HL_CHECK_STR_EQ(oa->model, "gpt-4o");
    HL_REQUIRE(oa->n_models == 1);
    HL_CHECK_STR_EQ(oa->models[0], "gpt-4o-mini");

    const hl_backend_cfg *lo = hl_config_backend(cfg, "local");
    HL_REQUIRE(lo == &cfg->backends[2]);
    HL_CHECK_INT_EQ(lo->kind, HL_PROVIDER_OPENAI);
    HL_CHECK_INT_EQ(lo->location, HL_LOCATION_LOCAL);
    HL_REQUIRE(lo->n_base_urls == 3);
    HL_CHECK_STR_EQ(lo->base_urls[0], "http://127.0.0.1:8000/v1");
    HL_CHECK_STR_EQ(lo->base_urls[1], "http://127.0.0.1:8080/v1");
    HL_CHECK_STR_EQ(lo->base_urls[2], "http://127.0.0.1:11434/v1");
    HL_CHECK(lo->api_key_env == NULL);
    HL_CHECK_STR_EQ(lo->model, "auto");
    HL_CHECK_NEAR(lo->hourly_cost_usd, 0.05, 1e-12);
    HL_CHECK(!lo->replicas); /* discovery: the first server that answers */

    /* The model `hybridllm pull` downloaded, when no local server answers. */
    const hl_backend_cfg *pu = hl_config_backend(cfg, "pulled");
    HL_REQUIRE(pu == &cfg->backends[3]);
    HL_CHECK_INT_EQ(pu->kind, HL_PROVIDER_BUILTIN);
    HL_CHECK_INT_EQ(pu->location, HL_LOCATION_LOCAL);
    HL_CHECK_STR_EQ(pu->model_path, "pulled:");
    HL_CHECK_STR_EQ(pu->model, "auto");

    HL_REQUIRE(cfg->n_prices == 5);
    const hl_price *p = hl_config_price(cfg, "gpt-4o-2024-08-06");
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 2.5, 1e-12);
    HL_CHECK_NEAR(p->output_per_mtok, 10.0, 1e-12);
    HL_CHECK_NEAR(p->cached_input_per_mtok, 1.25, 1e-12);
    HL_CHECK_NEAR(p->cache_write_per_mtok, 2.5, 1e-12);
    p = hl_config_price(cfg, "gpt-4o-2024-05-13"); /* the brief's $5 / $15 */
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 5.0, 1e-12);
    HL_CHECK_NEAR(p->output_per_mtok, 15.0, 1e-12);
    p = hl_config_price(cfg, "gpt-4o-mini");
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 0.15, 1e-12);
    HL_CHECK_NEAR(p->output_per_mtok, 0.60, 1e-12);
    HL_CHECK_NEAR(p->cached_input_per_mtok, 0.075, 1e-12);
    p = hl_config_price(cfg, "claude-3-5-sonnet-20241022");
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 3.0, 1e-12);
    HL_CHECK_NEAR(p->output_per_mtok, 15.0, 1e-12);
    HL_CHECK_NEAR(p->cached_input_per_mtok, 0.30, 1e-12);
    HL_CHECK_NEAR(p->cache_write_per_mtok, 3.75, 1e-12);
    p = hl_config_price(cfg, "claude-3-5-haiku-20241022");
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 0.80, 1e-12);
    HL_CHECK_NEAR(p->output_per_mtok, 4.0, 1e-12);
    HL_CHECK_NEAR(p->cached_input_per_mtok, 0.08, 1e-12);
    HL_CHECK_NEAR(p->cache_write_per_mtok, 1.0, 1e-12);

    /* Privacy first, then the brief's router in its order. */
    HL_REQUIRE(cfg->n_routes == 4);
    const hl_route_rule *r = &cfg->routes[0];
    HL_CHECK_STR_EQ(r->name, "privacy");
    HL_CHECK_INT_EQ(r->sensitive, HL_YES);
    HL_CHECK_INT_EQ(r->n_task_types, 0);
    HL_REQUIRE(r->n_to == 2);
    HL_CHECK_STR_EQ(r->to[0], "local");
    HL_CHECK_STR_EQ(r->to[1], "pulled");

    r = &cfg->routes[1];
    HL_CHECK_STR_EQ(r->name, "complex-task");
    HL_CHECK_INT_EQ(r->sensitive, HL_ANY);
    HL_REQUIRE(r->n_task_types == 3);
    HL_CHECK_STR_EQ(r->task_types[0], "code_generation");
    HL_CHECK_STR_EQ(r->task_types[1], "analysis");
    HL_CHECK_STR_EQ(r->task_types[2], "reasoning");
    HL_REQUIRE(r->n_to == 2);
    HL_CHECK_STR_EQ(r->to[0], "anthropic");
    HL_CHECK_STR_EQ(r->to[1], "openai");

    r = &cfg->routes[2];
    HL_CHECK_STR_EQ(r->name, "simple-task");
    HL_REQUIRE(r->n_task_types == 2);
    HL_CHECK_STR_EQ(r->task_types[0], "classification");
    HL_CHECK_STR_EQ(r->task_types[1], "extraction");
    HL_REQUIRE(r->n_to == 2);
    HL_CHECK_STR_EQ(r->to[0], "local");
    HL_CHECK_STR_EQ(r->to[1], "pulled");

    r = &cfg->routes[3];
    HL_CHECK_STR_EQ(r->name, "default");
    HL_CHECK_INT_EQ(r->sensitive, HL_ANY);
    HL_CHECK_INT_EQ(r->n_task_types, 0);
    HL_REQUIRE(r->n_to == 4);
    HL_CHECK_STR_EQ(r->to[0], "local");
    HL_CHECK_STR_EQ(r->to[1], "pulled");
    HL_CHECK_STR_EQ(r->to[2], "anthropic");
    HL_CHECK_STR_EQ(r->to[3], "openai");
    hl_config_free(cfg);
}

HL_TEST(defaults) {
    hl_config *cfg = parse_ok(MIN);
    HL_REQUIRE(cfg);
    HL_CHECK_STR_EQ(cfg->path, "t.yaml");
    HL_CHECK_STR_EQ(cfg->listen_host, "127.0.0.1");
    HL_CHECK_INT_EQ(cfg->listen_port, 8741);
    HL_CHECK_INT_EQ(cfg->threads, 0);
    HL_CHECK_INT_EQ(cfg->max_body_bytes, 4194304);
    HL_CHECK_INT_EQ(cfg->max_header_bytes, 16384);
    HL_CHECK_INT_EQ(cfg->max_headers, 64);
    HL_CHECK_INT_EQ(cfg->read_timeout_ms, 30000);
    HL_CHECK_INT_EQ(cfg->idle_timeout_ms, 60000);
    HL_CHECK_INT_EQ(cfg->shutdown_timeout_ms, 30000);
    HL_CHECK(cfg->api_keys_env == NULL);
    HL_CHECK_STR_EQ(cfg->ledger_path, "hybridllm-ledger.jsonl");
    HL_REQUIRE(cfg->n_backends == 1);
    const hl_backend_cfg *b = &cfg->backends[0];
    HL_CHECK(b->api_key_env == NULL);
    HL_CHECK_INT_EQ(b->n_models, 0);
    HL_CHECK_NEAR(b->hourly_cost_usd, 0.05, 1e-12);
    HL_CHECK_INT_EQ(b->timeout_ms, 600000);
    HL_CHECK_INT_EQ(b->connect_timeout_ms, 5000);
    HL_CHECK_INT_EQ(b->line, 2);
    HL_CHECK_INT_EQ(cfg->n_prices, 0);
    HL_REQUIRE(cfg->n_routes == 1);
    HL_CHECK_INT_EQ(cfg->routes[0].sensitive, HL_ANY);
    HL_CHECK_INT_EQ(cfg->routes[0].n_task_types, 0);
    HL_CHECK_INT_EQ(cfg->routes[0].line, 8);
    HL_REQUIRE(cfg->routes[0].n_to == 1);
    HL_CHECK_STR_EQ(cfg->routes[0].to[0], "a");
    HL_CHECK(hl_config_price(cfg, "gpt-4o") == NULL);
    HL_CHECK(hl_config_backend(cfg, "b") == NULL);
    hl_config_free(cfg);
}

HL_TEST(every_setting) {
    hl_config *cfg = parse_ok(
        "routes:\n" /* before backends: the names are still checked */
        "  - name: r.1\n"
        "    when: {sensitive: false, task_type: chat}\n"
        "    to: [b_2]\n"
        "server:\n"
        "  listen: \"[::1]:9000\"\n"
        "  threads: 8\n"
        "  max_body_bytes: 1GiB\n"
        "  max_header_bytes: 1024\n"
        "  max_headers: 128\n"
        "  read_timeout_ms: 1\n"
        "  idle_timeout_ms: 86400000\n"
        "  shutdown_timeout_ms: 5\n"
        "  api_keys_env: _MY_KEYS2\n"
        "ledger:\n"
        "  path: /var/log/x.jsonl\n"
        "backends:\n"
        "  - name: b_2\n"
        "    kind: anthropic\n"
        "    location: cloud\n"
        "    base_url: [\"https://h.example/v1///\", http://h2]\n"
        "    allow_insecure_http: true\n"
        "    api_key_env: K\n"
        "    model: m\n"
        "    models: [x, y]\n"
        "    hourly_cost_usd: 0\n"
        "    timeout_ms: 7\n"
        "    connect_timeout_ms: 8\n"
        "    max_tokens: 300\n"
        "tenants:\n"
        "  - {name: t1, rpm: 3, budget_day_usd: 2.5}\n"
        "  - {name: t2, budget_month_usd: 0}\n"
        "prices:\n"
        "  - {model: m, input_per_mtok: 1, output_per_mtok: 2.5e0, cache_write_per_mtok: 1.25}\n");
    HL_REQUIRE(cfg);
    HL_CHECK_STR_EQ(cfg->listen_host, "::1");
    HL_CHECK_INT_EQ(cfg->listen_port, 9000);
    HL_CHECK_INT_EQ(cfg->threads, 8);
    HL_CHECK_INT_EQ(cfg->max_body_bytes, 1073741824);
    HL_CHECK_INT_EQ(cfg->max_header_bytes, 1024);
    HL_CHECK_INT_EQ(cfg->max_headers, 128);
    HL_CHECK_INT_EQ(cfg->read_timeout_ms, 1);
    HL_CHECK_INT_EQ(cfg->idle_timeout_ms, 86400000);
    HL_CHECK_INT_EQ(cfg->shutdown_timeout_ms, 5);
    HL_CHECK_STR_EQ(cfg->api_keys_env, "_MY_KEYS2");
    HL_CHECK_STR_EQ(cfg->ledger_path, "/var/log/x.jsonl");
    const hl_backend_cfg *b = hl_config_backend(cfg, "b_2");
    HL_REQUIRE(b);
    HL_CHECK_INT_EQ(b->kind, HL_PROVIDER_ANTHROPIC);
    HL_CHECK_INT_EQ(b->location, HL_LOCATION_CLOUD);
    HL_REQUIRE(b->n_base_urls == 2);
    HL_CHECK_STR_EQ(b->base_urls[0], "https://h.example/v1");
    HL_CHECK_STR_EQ(b->base_urls[1], "http://h2");
    HL_CHECK_STR_EQ(b->api_key_env, "K");
    HL_REQUIRE(b->n_models == 2);
    HL_CHECK_STR_EQ(b->models[1], "y");
    HL_CHECK_NEAR(b->hourly_cost_usd, 0.0, 0);
    HL_CHECK_INT_EQ(b->timeout_ms, 7);
    HL_CHECK_INT_EQ(b->connect_timeout_ms, 8);
    HL_CHECK_INT_EQ(b->max_tokens, 300);
    HL_CHECK_INT_EQ(b->line, 18);
    HL_REQUIRE(cfg->n_tenants == 2);
    HL_CHECK_INT_EQ(cfg->tenants[0].rpm, 3);
    HL_CHECK_NEAR(cfg->tenants[0].budget_day_usd, 2.5, 0);
    HL_CHECK(isnan(cfg->tenants[0].budget_month_usd)); /* unset: none */
    HL_CHECK_NEAR(cfg->tenants[1].budget_month_usd, 0, 0);
    HL_REQUIRE(cfg->n_prices == 1);
    HL_CHECK_NEAR(cfg->prices[0].input_per_mtok, 1.0, 0);
    HL_CHECK_NEAR(cfg->prices[0].output_per_mtok, 2.5, 0);
    HL_CHECK_NEAR(cfg->prices[0].cached_input_per_mtok, 1.0, 0);
    HL_CHECK_NEAR(cfg->prices[0].cache_write_per_mtok, 1.25, 0);
    HL_REQUIRE(cfg->n_routes == 1);
    const hl_route_rule *r = &cfg->routes[0];
    HL_CHECK_STR_EQ(r->name, "r.1");
    HL_CHECK_INT_EQ(r->sensitive, HL_NO);
    HL_REQUIRE(r->n_task_types == 1);
    HL_CHECK_STR_EQ(r->task_types[0], "chat");
    HL_CHECK_INT_EQ(r->line, 2);
    hl_config_free(cfg);
}

HL_TEST(empty_sections) {
    /* Every line under server: commented out leaves an empty value: defaults, not an error. */
    hl_config *cfg = parse_ok("server:\n#  threads: 4\nledger:\nprices:\n" MIN);
    HL_REQUIRE(cfg);
    HL_CHECK_INT_EQ(cfg->listen_port, 8741);
    HL_CHECK_INT_EQ(cfg->n_prices, 0);
    hl_config_free(cfg);
}

HL_TEST(size_suffixes) {
    static const struct { const char *text; size_t bytes; } cases[] = {
        {"1", 1},
        {"4194304", 4194304},
        {"16KiB", 16384},
        {"4MiB", 4194304},
        {"4 MiB", 4194304},
        {"1GiB", 1073741824},
        {"1024MiB", 1073741824},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "server:\n  max_body_bytes: %s\n" MIN, cases[i].text);
        hl_config *cfg = parse_ok(text);
        HL_CHECK(cfg != NULL);
        if (!cfg) continue;
        if (cfg->max_body_bytes != cases[i].bytes)
            HL_FAIL_("%s: got %zu, expected %zu", cases[i].text, cfg->max_body_bytes,
                     cases[i].bytes);
        hl_config_free(cfg);
    }
}

HL_TEST(price_prefix) {
    hl_config *cfg = parse_ok(
        MIN
        "prices:\n"
        "  - {model: gpt-4o, input_per_mtok: 5, output_per_mtok: 15}\n"
        "  - {model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.6}\n"
        "  - {model: claude-3-5-sonnet, input_per_mtok: 3, output_per_mtok: 15}\n");
    HL_REQUIRE(cfg);
    const hl_price *p4o = &cfg->prices[0], *mini = &cfg->prices[1], *son = &cfg->prices[2];
    HL_CHECK(hl_config_price(cfg, "gpt-4o") == p4o);
    HL_CHECK(hl_config_price(cfg, "gpt-4o-2024-08-06") == p4o);
    HL_CHECK(hl_config_price(cfg, "gpt-4o-mini") == mini);               /* exact beats prefix */
    HL_CHECK(hl_config_price(cfg, "gpt-4o-mini-2024-07-18") == mini);    /* longest prefix */
    HL_CHECK(hl_config_price(cfg, "claude-3-5-sonnet-20241022") == son);
    HL_CHECK(hl_config_price(cfg, "gpt-4omni") == NULL);                 /* needs the '-' */
    HL_CHECK(hl_config_price(cfg, "gpt-4") == NULL);
    HL_CHECK(hl_config_price(cfg, "gpt-4o-") == p4o);
    HL_CHECK(hl_config_price(cfg, "") == NULL);
    HL_CHECK(hl_config_price(cfg, NULL) == NULL);
    HL_CHECK(hl_config_price(NULL, "gpt-4o") == NULL);
    hl_config_free(cfg);
}

/* Each bad config and the one line it must produce. */
static const struct bad_case {
    const char *text;
    const char *msg;
} bad_cases[] = {
    /* structure */
    {"", "t.yaml:1: backends: required key is missing"},
    {"- a\n", "t.yaml:1: expected a mapping (key: value lines); got a list"},
    {MIN_BACKENDS, "t.yaml:1: routes: required key is missing"},
    {"serverr: {}\n" MIN,
     "t.yaml:1: serverr: unknown key 'serverr' (expected one of: server, ledger, upstream, backends, "
     "prices, budgets, tenants, privacy, shadow, routes)"},
    {"server:\n  threds: 4\n" MIN,
     "t.yaml:2: server.threds: unknown key 'threds' (expected one of: listen, threads, "
     "max_body_bytes, max_header_bytes, max_headers, read_timeout_ms, idle_timeout_ms, "
     "shutdown_timeout_ms, write_timeout_ms, max_connections, request_timeout_ms, "
     "health_interval_ms, api_keys_env, admin_key_env, key_reserve_max_tokens, status_requires_key)"},
    {"server:\n  threads: 1\n  threads: 2\n" MIN,
     "t.yaml:3: server.threads: duplicate key (first set on line 2)"},
    {"server: [1]\n" MIN, "t.yaml:1: server: expected a mapping (key: value lines); got a list"},
    {"server:\n  [a]: 1\n" MIN, "t.yaml:2: server: expected a key name; got a list"},
    {"ledger: {path: \"\"}\n" MIN, "t.yaml:1: ledger.path: must not be empty"},
    {"ledger: {path: \"a\\0b\"}\n" MIN, "t.yaml:1: ledger.path: must not contain a NUL character"},
    /* YAML itself */
    {"server:\n  listen: [\n",
     "t.yaml:3: YAML syntax error: did not find expected node content (while parsing a flow "
     "node at line 3)"},
    {"a: b\n c: d\n",
     "t.yaml:2: YAML syntax error: mapping values are not allowed in this context"},
    {"\xff\n", "t.yaml:1: YAML syntax error: invalid leading UTF-8 octet"},
    {"x: 1\n\xc3\n", "t.yaml:2: YAML syntax error: invalid trailing UTF-8 octet"},
    {"x: 1\n\n\xc3", "t.yaml:3: YAML syntax error: incomplete UTF-8 octet sequence"},
    {"routes: *r\n", "t.yaml:1: YAML syntax error: found undefined alias"},
    {MIN "---\nx: 1\n", "t.yaml:10: only one YAML document is allowed (found a second '---')"},
    {"backends:\n  - &b\n    name: a\n    kind: openai\n    location: local\n"
     "    base_url: http://x\n    model: m\n  - *b\n" MIN_ROUTES,
     "t.yaml:2: backends[1]: YAML aliases (*name) are not supported; write the value out"},
    {MIN_BACKENDS "privacy:\n  custom_patterns:\n    - name: emp\n      pattern: \"EMP-([\"\n" MIN_ROUTES,
     "t.yaml:10: privacy.custom_patterns[0].pattern: custom PII pattern 'emp': missing terminating ] "
     "for character class at offset 6"},
    {MIN_BACKENDS "privacy:\n  detect_pii: maybe\n" MIN_ROUTES,
     "t.yaml:8: privacy.detect_pii: expected true or false; got 'maybe'"},
    {"x: &a [*a]\n", "t.yaml:1: x: unknown key 'x' (expected one of: server, ledger, upstream, backends, "
     "prices, budgets, tenants, privacy, shadow, routes)"},
    {"backends: &a [*a]\n" MIN_ROUTES,
     "t.yaml:1: backends[0]: YAML aliases (*name) are not supported; write the value out"},
    /* server */
    /* The first mistake in the file is the one reported. */
    {"server:\n  read_timeout_ms: 0\n  max_body_bytes: 0\n" MIN,
     "t.yaml:2: server.read_timeout_ms: must be between 1 and 86400000; got '0'"},
    {"routes: [{name: r, to: [a, b]}]\nserver: {threads: x}\n" MIN_BACKENDS,
     "t.yaml:2: server.threads: expected an integer; got 'x'"},
    {"server:\n  threads: four\n" MIN, "t.yaml:2: server.threads: expected an integer; got 'four'"},
    {"server:\n  threads: \"4\"\n" MIN,
     "t.yaml:2: server.threads: expected an integer; got a quoted string (remove the quotes)"},
    {"server:\n  threads: 1.5\n" MIN, "t.yaml:2: server.threads: expected an integer; got '1.5'"},
    {"server:\n  threads:\n" MIN,
     "t.yaml:2: server.threads: expected an integer; got an empty value"},
    {"server:\n  threads: 257\n" MIN,
     "t.yaml:2: server.threads: must be between 0 and 256; got '257'"},
    {"server:\n  threads: -1\n" MIN, "t.yaml:2: server.threads: must be between 0 and 256; got '-1'"},
    {"server:\n  read_timeout_ms: 99999999999999999999999\n" MIN,
     "t.yaml:2: server.read_timeout_ms: must be between 1 and 86400000; got "
     "'99999999999999999999999'"},
    {"server:\n  idle_timeout_ms: 0\n" MIN,
     "t.yaml:2: server.idle_timeout_ms: must be between 1 and 86400000; got '0'"},
    {"server:\n  max_headers: 129\n" MIN,
     "t.yaml:2: server.max_headers: must be between 1 and 128; got '129'"},
    {"server:\n  max_body_bytes: 4MB\n" MIN,
     "t.yaml:2: server.max_body_bytes: unknown size suffix 'MB' (use KiB, MiB, GiB or plain "
     "bytes)"},
    {"server:\n  max_body_bytes: 2GiB\n" MIN,
     "t.yaml:2: server.max_body_bytes: must be between 1 and 1073741824 bytes; got '2GiB'"},
    {"server:\n  max_body_bytes: 99999999999999GiB\n" MIN,
     "t.yaml:2: server.max_body_bytes: must be between 1 and 1073741824 bytes; got "
     "'99999999999999GiB'"},
    {"server:\n  max_body_bytes: 0\n" MIN,
     "t.yaml:2: server.max_body_bytes: must be between 1 and 1073741824 bytes; got '0'"},
    {"server:\n  max_header_bytes: MiB\n" MIN,
     "t.yaml:2: server.max_header_bytes: expected a size in bytes (e.g. 4194304 or 4MiB); got "
     "'MiB'"},
    {"server:\n  listen: 8741\n" MIN,
     "t.yaml:2: server.listen: expected host:port (e.g. 127.0.0.1:8741 or [::1]:8741); got "
     "'8741'"},
    {"server:\n  listen: \":8741\"\n" MIN,
     "t.yaml:2: server.listen: expected host:port (e.g. 127.0.0.1:8741 or [::1]:8741); got "
     "':8741'"},
    {"server:\n  listen: \"::1:8741\"\n" MIN,
     "t.yaml:2: server.listen: an IPv6 address needs brackets, e.g. [::1]:8741; got '::1:8741'"},
    {"server:\n  listen: \"[::1]8741\"\n" MIN,
     "t.yaml:2: server.listen: expected host:port (e.g. 127.0.0.1:8741 or [::1]:8741); got "
     "'[::1]8741'"},
    {"server:\n  listen: localhost:0\n" MIN,
     "t.yaml:2: server.listen: port must be between 1 and 65535; got 'localhost:0'"},
    {"server:\n  listen: localhost:65536\n" MIN,
     "t.yaml:2: server.listen: port must be between 1 and 65535; got 'localhost:65536'"},
    {"server:\n  listen: \"localhost:http\"\n" MIN,
     "t.yaml:2: server.listen: port must be between 1 and 65535; got 'localhost:http'"},
    {"server:\n  api_keys_env: sk-abc123\n" MIN,
     "t.yaml:2: server.api_keys_env: expected the name of an environment variable (letters, "
     "digits and _, not starting with a digit), not its value"},
    {"server:\n  api_keys: [k1]\n" MIN,
     "t.yaml:2: server.api_keys: secrets are not read from the config file; put the keys in an "
     "environment variable and name it with api_keys_env"},
    /* backends */
    {"backends:\n" MIN_ROUTES, "t.yaml:1: backends: at least one backend is required"},
    {"backends: []\n" MIN_ROUTES, "t.yaml:1: backends: at least one backend is required"},
    {"backends: a\n" MIN_ROUTES, "t.yaml:1: backends: expected a list of backends; got 'a'"},
    {"backends:\n  - foo\n" MIN_ROUTES,
     "t.yaml:2: backends[0]: expected a mapping (key: value lines); got 'foo'"},
    {"backends:\n  - name: a\n    kind: openai\n    base_url: http://x\n    model: m\n" MIN_ROUTES,
     "t.yaml:2: backends[0].location: required key is missing"},
    {MIN_BACKENDS "  - name: b\n    kind: ollama\n    location: local\n"
                  "    base_url: http://x\n    model: m\n" MIN_ROUTES,
     "t.yaml:8: backends[1].kind: expected one of openai, anthropic, builtin; got 'ollama'"},
    {MIN_BACKENDS "  - name: b\n    kind: openai\n    location: edge\n"
                  "    base_url: http://x\n    model: m\n" MIN_ROUTES,
     "t.yaml:9: backends[1].location: expected one of local, cloud; got 'edge'"},
    {MIN_BACKENDS "  - name: a\n    kind: openai\n    location: local\n"
                  "    base_url: http://x\n    model: m\n" MIN_ROUTES,
     "t.yaml:7: backends[1].name: duplicate backend name 'a' (backends[0], line 2)"},
    {"backends:\n  - name: my backend\n    kind: openai\n    location: local\n"
     "    base_url: http://x\n    model: m\n" MIN_ROUTES,
     "t.yaml:2: backends[0].name: expected a name of letters, digits, '.', '_' and '-'; got 'my "
     "backend'"},
    {MIN_BACKENDS "    api_key: sk-secret\n" MIN_ROUTES,
     "t.yaml:7: backends[0].api_key: secrets are not read from the config file; put the key in "
     "an environment variable and name it with api_key_env"},
    {MIN_BACKENDS "    apiKey: sk-secret\n" MIN_ROUTES,
     "t.yaml:7: backends[0].apiKey: secrets are not read from the config file; put the key in "
     "an environment variable and name it with api_key_env"},
    {MIN_BACKENDS "    key: sk-secret\n" MIN_ROUTES,
     "t.yaml:7: backends[0].key: secrets are not read from the config file; put the key in an "
     "environment variable and name it with api_key_env"},
    {MIN_BACKENDS "    api_key_env: 9KEY\n" MIN_ROUTES,
     "t.yaml:7: backends[0].api_key_env: expected the name of an environment variable (letters, "
     "digits and _, not starting with a digit), not its value"},
    {MIN_BACKENDS "    max_sequences: 8\n" MIN_ROUTES,
     "t.yaml:2: backends[0].max_sequences: only a builtin backend takes this key"},
    {MIN_BACKENDS "    repack_weights: false\n" MIN_ROUTES,
     "t.yaml:2: backends[0].repack_weights: only a builtin backend takes this key"},
    {MIN_BACKENDS "    pooling: last\n" MIN_ROUTES,
     "t.yaml:2: backends[0].pooling: only a builtin backend takes this key"},
    {MIN_BACKENDS "    modle: x\n" MIN_ROUTES,
     "t.yaml:7: backends[0].modle: unknown key 'modle' (expected one of: name, kind, location, "
     "base_url, replicas, api_key_env, model, models, hourly_cost_usd, timeout_ms, connect_timeout_ms, "
     "max_retries, retry_base_ms, retry_max_ms, breaker_failures, breaker_window_ms, "
     "breaker_open_ms, max_tokens, context_window, stream_idle_timeout_ms, first_token_timeout_ms, warmup, keep_warm_ms, ca_file, allow_insecure_http, model_path, threads, context_size, "
     "chat_template, max_queue, max_sequences, repack_weights, pooling)"},
    {"backends:\n  - name: a\n    kind: openai\n    location: local\n    base_url: ftp://x\n"
     "    model: m\n" MIN_ROUTES,
     "t.yaml:5: backends[0].base_url: expected an http:// or https:// URL; got 'ftp://x'"},
    {"backends:\n  - name: a\n    kind: openai\n    location: local\n"
     "    base_url: [http://x, \"https:///\"]\n    model: m\n" MIN_ROUTES,
     "t.yaml:5: backends[0].base_url[1]: expected an http:// or https:// URL; got 'https:///'"},
    {"backends:\n  - name: a\n    kind: openai\n    location: local\n    base_url: []\n"
     "    model: m\n" MIN_ROUTES,
     "t.yaml:5: backends[0].base_url: expected at least one URL"},
    {"backends:\n  - name: a\n    kind: openai\n    location: local\n    base_url: {u: 1}\n"
     "    model: m\n" MIN_ROUTES,
     "t.yaml:5: backends[0].base_url: expected a string or a list of strings; got a mapping"},
    {"backends:\n  - name: a\n    kind: openai\n    location: local\n    base_url: http://x\n"
     "    model: \"my model\"\n" MIN_ROUTES,
     "t.yaml:6: backends[0].model: expected a name without spaces; got 'my model'"},
    {MIN_BACKENDS "    models: gpt-4o\n" MIN_ROUTES,
     "t.yaml:7: backends[0].models: expected a list of strings; got 'gpt-4o'"},
    {MIN_BACKENDS "    models:\n      - x\n      - [y]\n" MIN_ROUTES,
     "t.yaml:9: backends[0].models[1]: expected a string; got a list"},
    {MIN_BACKENDS "    hourly_cost_usd: -1\n" MIN_ROUTES,
     "t.yaml:7: backends[0].hourly_cost_usd: must be >= 0; got '-1'"},
    {MIN_BACKENDS "    hourly_cost_usd: .inf\n" MIN_ROUTES,
     "t.yaml:7: backends[0].hourly_cost_usd: expected a number; got '.inf'"},
    {MIN_BACKENDS "    hourly_cost_usd: nan\n" MIN_ROUTES,
     "t.yaml:7: backends[0].hourly_cost_usd: expected a number; got 'nan'"},
    {MIN_BACKENDS "    hourly_cost_usd: 0x10\n" MIN_ROUTES,
     "t.yaml:7: backends[0].hourly_cost_usd: expected a number; got '0x10'"},
    {MIN_BACKENDS "    hourly_cost_usd: 1e999\n" MIN_ROUTES,
     "t.yaml:7: backends[0].hourly_cost_usd: must be a finite number; got '1e999'"},
    {MIN_BACKENDS "    timeout_ms: 0\n" MIN_ROUTES,
     "t.yaml:7: backends[0].timeout_ms: must be between 1 and 86400000; got '0'"},
    {MIN_BACKENDS "    connect_timeout_ms: [1]\n" MIN_ROUTES,
     "t.yaml:7: backends[0].connect_timeout_ms: expected an integer; got a list"},
    /* prices */
    {MIN "prices:\n  - model: m\n    output_per_mtok: 1\n",
     "t.yaml:11: prices[0].input_per_mtok: required key is missing"},
    {MIN "prices:\n  - {model: m, input_per_mtok: 1, output_per_mtok: 1}\n"
         "  - {model: m, input_per_mtok: 2, output_per_mtok: 2}\n",
     "t.yaml:12: prices[1].model: duplicate price for 'm' (also prices[0])"},
    {MIN "prices:\n  - {model: m, input_per_mtok: \"1\", output_per_mtok: 1}\n",
     "t.yaml:11: prices[0].input_per_mtok: expected a number; got a quoted string (remove the "
     "quotes)"},
    {MIN "prices:\n  - {model: m, input_per_mtok: 1, output_per_mtok: 1, cached_per_mtok: 1}\n",
     "t.yaml:11: prices[0].cached_per_mtok: unknown key 'cached_per_mtok' (expected one of: "
     "model, input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_per_mtok)"},
    {MIN "prices: {gpt-4o: 5}\n", "t.yaml:10: prices: expected a list of prices; got a mapping"},
    /* routes */
    {MIN_BACKENDS "routes: []\n", "t.yaml:7: routes: at least one route is required"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to: [a, b]\n",
     "t.yaml:9: routes[0].to[1]: unknown backend 'b' (declared: a)"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to: b\n",
     "t.yaml:9: routes[0].to: unknown backend 'b' (declared: a)"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to: []\n",
     "t.yaml:9: routes[0].to: expected at least one backend name"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to:\n",
     "t.yaml:9: routes[0].to: expected a string or a list of strings; got an empty value"},
    {MIN_BACKENDS "routes:\n  - name: r\n",
     "t.yaml:8: routes[0]: a route needs exactly one of `to` (a preference list) and `split` "
     "(weighted backends)"},
    {MIN "  - name: r\n    to: a\n",
     "t.yaml:10: routes[1].name: duplicate route name 'r' (routes[0], line 8)"},
    {MIN_BACKENDS "routes:\n  - name: r\n    when:\n      sensitive: yes\n    to: a\n",
     "t.yaml:10: routes[0].when.sensitive: expected true or false; got 'yes'"},
    {MIN_BACKENDS "routes:\n  - name: r\n    when:\n      sensitive: \"true\"\n    to: a\n",
     "t.yaml:10: routes[0].when.sensitive: expected true or false; got a quoted string (remove "
     "the quotes)"},
    {MIN_BACKENDS "routes:\n  - name: r\n    when:\n      task_type: {a: 1}\n    to: a\n",
     "t.yaml:10: routes[0].when.task_type: expected a string or a list of strings; got a "
     "mapping"},
    {MIN_BACKENDS "routes:\n  - name: r\n    when:\n      task_type: [code, [x]]\n    to: a\n",
     "t.yaml:10: routes[0].when.task_type[1]: expected a string; got a list"},
    {MIN_BACKENDS "routes:\n  - name: r\n    when:\n      task_types: code\n    to: a\n",
     "t.yaml:10: routes[0].when.task_types: unknown key 'task_types' (expected one of: "
     "sensitive, task_type, model, tenant, min_prompt_tokens, max_prompt_tokens, "
     "latency_budget_below_ms)"},
    {MIN_BACKENDS "routes:\n  - name: r\n    when: sensitive\n    to: a\n",
     "t.yaml:9: routes[0].when: expected a mapping (key: value lines); got 'sensitive'"},
    /* lists of mappings, all read by the one walker */
    {MIN_BACKENDS "routes:\n  - name: r\n    split:\n      - {to: a, weight: 1}\n"
                  "      - {to: a, weight: x}\n",
     "t.yaml:11: routes[0].split[1].weight: expected an integer; got 'x'"},
    {MIN_BACKENDS "routes:\n  - name: r\n    split:\n      - {to: a, weight: 1}\n"
                  "      - {to: a, weight: 1000001}\n",
     "t.yaml:11: routes[0].split[1].weight: must be between 1 and 1000000; got '1000001'"},
    {MIN_BACKENDS "routes:\n  - name: r\n    split:\n      - {to: a, weight: 1}\n",
     "t.yaml:10: routes[0].split: a split needs at least two entries ({to, weight})"},
    {MIN_BACKENDS "routes:\n  - name: r\n    split:\n      - {to: a, weight: 1}\n"
                  "      - [a, 1]\n",
     "t.yaml:11: routes[0].split[1]: expected a mapping (key: value lines); got a list"},
    {MIN "budgets:\n  - {name: b, period: week, limit_usd: 1}\n",
     "t.yaml:11: budgets[0].period: expected one of month, day; got 'week'"},
    {MIN "budgets:\n  - {name: b, period: day, limit_usd: 1, limit: 2}\n",
     "t.yaml:11: budgets[0].limit: unknown key 'limit' (expected one of: name, period, "
     "limit_usd, scope, tenant, action)"},
    {MIN "budgets:\n  - {name: b, period: day, limit_usd: 1}\n"
         "  - {name: b, period: day, limit_usd: 2}\n",
     "t.yaml:12: budgets[1].name: duplicate budget name 'b'"},
    {MIN "tenants:\n  - {name: acme, rpm: 10}\n  - {name: acme, tpm: 5}\n",
     "t.yaml:12: tenants[1].name: duplicate tenant name 'acme'"},
    {MIN "tenants:\n  - {name: acme, rpm: -1}\n",
     "t.yaml:11: tenants[0].rpm: must be between 0 and 1000000000; got '-1'"},
    {MIN "tenants:\n  - {rpm: 1}\n",
     "t.yaml:11: tenants[0].name: required key is missing"},
    {MIN "tenants:\n  - {name: acme, budget_day_usd: -1}\n",
     "t.yaml:11: tenants[0].budget_day_usd: must be >= 0; got '-1'"},
    {MIN "tenants:\n  - {name: acme, budget_month_usd: lots}\n",
     "t.yaml:11: tenants[0].budget_month_usd: expected a number; got 'lots'"},
    {MIN "tenants:\n  - {name: acme, budget_usd: 5}\n",
     "t.yaml:11: tenants[0].budget_usd: unknown key 'budget_usd' (expected one of: name, rpm, tpm, "
     "budget_day_usd, budget_month_usd)"},
    {MIN_ROUTES "backends:\n  - {name: a, kind: openai, location: local, base_url: 'http://h/v1', model: m, max_tokens: 0}\n",
     "t.yaml:5: backends[0].max_tokens: must be between 1 and 100000000; got '0'"},
    {MIN "budgets:\n  - {name: b, period: day, limit_usd: [1]}\n",
     "t.yaml:11: budgets[0].limit_usd: expected a number; got a list"},
    {MIN "prices:\n  - gpt-4o\n",
     "t.yaml:11: prices[0]: expected a mapping (key: value lines); got 'gpt-4o'"},
    {MIN_BACKENDS "privacy:\n  custom_patterns:\n    - {name: x, pattern: a}\n"
                  "    - {name: x, pattern: b}\n" MIN_ROUTES,
     "t.yaml:10: privacy.custom_patterns[1]: duplicate pattern name 'x'"},
    {MIN_BACKENDS "privacy:\n  custom_patterns:\n    - {name: \"a b\", pattern: a}\n" MIN_ROUTES,
     "t.yaml:9: privacy.custom_patterns[0].name: expected 1-32 letters, digits or _"},
    {MIN_BACKENDS "privacy:\n  custom_patterns:\n    - {name: secret, pattern: \"(?i)secret\\\\w*\"}\n"
                  MIN_ROUTES,
     "t.yaml:9: privacy.custom_patterns[0].pattern: custom PII pattern 'secret' matches the "
     "placeholder [AWS_SECRET_1], so redacted text could never come out clean"},
    {MIN_BACKENDS "    kind: openai\n" MIN_ROUTES,
     "t.yaml:7: backends[0].kind: duplicate key (first set on line 3)"},
    {"backends:\n  - name: a\n    kind: builtin\n    location: local\n    model: m\n" MIN_ROUTES,
     "t.yaml:2: backends[0].model_path: required key is missing (the GGUF file of a builtin "
     "backend)"},
    {"backends:\n  - name: a\n    kind: builtin\n    location: cloud\n    model: m\n"
     "    model_path: /m.gguf\n" MIN_ROUTES,
     "t.yaml:2: backends[0].location: a builtin backend runs on this machine: expected local"},
    {"backends:\n  - name: a\n    kind: builtin\n    location: local\n    model: m\n"
     "    model_path: /m.gguf\n    pooling: first\n" MIN_ROUTES,
     "t.yaml:7: backends[0].pooling: expected one of model, mean, cls, last; got 'first'"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to: a\n    escalate: {below: 0, to: a}\n",
     "t.yaml:10: routes[0].escalate.below: must be in (0, 1]"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to: a\n    escalate: {below: 0.5, to: a, stream: on}\n",
     "t.yaml:10: routes[0].escalate.stream: expected one of off, buffer; got 'on'"},
    {MIN_BACKENDS "routes:\n  - name: r\n    to: a\n    sticky: user\n",
     "t.yaml:10: routes[0].sticky: expected one of request, tenant; got 'user'"},
    {"ledger: {index_interval_ms: 9}\n" MIN,
     "t.yaml:1: ledger.index_interval_ms: must be between 10 and 86400000; got '9'"},
    {"server: {health_interval_ms: 99}\n" MIN,
     "t.yaml:1: server.health_interval_ms: must be between 100 and 86400000; got '99'"},
    /* A cloud backend over plain http:// outside loopback (its key would cross the network in
     * clear text), unless the config says so. */
    {MIN_BACKENDS "  - {name: c, kind: openai, location: cloud, base_url: http://api.example.com/v1, "
                  "model: m}\n" MIN_ROUTES,
     "t.yaml:7: backends[1].base_url: a cloud backend's http:// URL outside loopback sends its key "
     "and prompts unencrypted (base_url[0]): use https://, or set allow_insecure_http: true"},
    {MIN_BACKENDS "  - {name: c, kind: anthropic, location: cloud, base_url: [https://a.example, "
                  "\"http://user:pw@127.0.0.1.evil.example:80\"], model: m}\n" MIN_ROUTES,
     "t.yaml:7: backends[1].base_url: a cloud backend's http:// URL outside loopback sends its key "
     "and prompts unencrypted (base_url[1]): use https://, or set allow_insecure_http: true"},
    {MIN_BACKENDS "  - {name: c, kind: openai, location: cloud, base_url: http://10.0.0.5:8000/v1, "
                  "model: m, allow_insecure_http: yes}\n" MIN_ROUTES,
     "t.yaml:7: backends[1].allow_insecure_http: expected true or false; got 'yes'"},
    {MIN_BACKENDS "    ca_file: /nonexistent/ca.pem\n" MIN_ROUTES,
     "t.yaml:7: backends[0].ca_file: cannot read the CA file '/nonexistent/ca.pem': No such file "
     "or directory"},
    {"upstream: {ca_file: \"\"}\n" MIN, "t.yaml:1: upstream.ca_file: must not be empty"},
    /* shadow comparisons */
#define SH_BACKENDS MIN_BACKENDS "  - {name: c, kind: openai, location: cloud, base_url: https://c.example/v1, model: m}\n"
    {SH_BACKENDS "routes:\n  - name: r\n    to: a\n    shadow: {rate: 0.1, to: nope}\n",
     "t.yaml:11: routes[0].shadow.to: unknown backend 'nope' (declared: a, c)"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: a\n    shadow: {rate: 1.5, to: a}\n",
     "t.yaml:11: routes[0].shadow.rate: must be in [0, 1]"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: a\n    shadow: {to: a}\n",
     "t.yaml:11: routes[0].shadow.rate: required key is missing"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: a\n    shadow: {rate: 0.1, to: c}\n",
     "t.yaml:9: routes[0].shadow.to: backend 'c' is a cloud backend: set shadow.cloud: true to allow "
     "it (sensitive requests are never shadowed to the cloud)"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: c\n    shadow: {rate: 0.1, to: a, compare: judge, judge: c}\n",
     "t.yaml:9: routes[0].shadow.judge: backend 'c' is a cloud backend: set shadow.cloud: true to "
     "allow it (sensitive requests are never shadowed to the cloud)"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: c\n    shadow: {rate: 0.1, to: a, compare: embedding}\n",
     "t.yaml:9: routes[0].shadow.embeddings: compare: embedding needs embeddings: BACKEND"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: c\n    shadow: {rate: 0.1, to: a, compare: bleu}\n",
     "t.yaml:11: routes[0].shadow.compare: expected one of auto, exact, json, tools, token_f1, "
     "rouge_l, embedding, judge; got 'bleu'"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: c\n    shadow: {rate: 0.1, to: a, threshold: 0}\n",
     "t.yaml:11: routes[0].shadow.threshold: must be in (0, 1]"},
    {SH_BACKENDS "routes:\n  - name: r\n    to: c\n    shadow: {rate: 0.1, to: a, judge: a}\n",
     "t.yaml:9: routes[0].shadow.judge: is used only with compare: judge"},
    {SH_BACKENDS "  - {name: an, kind: anthropic, location: local, base_url: http://127.0.0.1:9, model: m}\n"
                 "routes:\n  - name: r\n    to: c\n    shadow: {rate: 0.1, to: a, compare: embedding, embeddings: an}\n",
     "t.yaml:10: routes[0].shadow.embeddings: an anthropic backend serves no embeddings: name an openai-kind "
     "or builtin one"},
    {"shadow: {max_concurrent: 0}\n" MIN, "t.yaml:1: shadow.max_concurrent: must be between 1 and 1024; got '0'"},
    {"shadow: {samples: \"\"}\n" MIN, "t.yaml:1: shadow.samples: must not be empty"},
    {"upstream: {ca_file: /nonexistent/ca.pem}\n" MIN,
     "t.yaml:1: upstream.ca_file: cannot read the CA file '/nonexistent/ca.pem': No such file or "
     "directory"},
};

/* https:// and loopback http:// need nothing; a cloud backend elsewhere over http:// needs
 * allow_insecure_http. The global upstream.ca_file reaches every backend without its own, wherever
 * the section is in the file. */
HL_TEST(cloud_tls_settings) {
    char dir[] = "/tmp/hl_cfg_caXXXXXX";
    HL_REQUIRE(mkdtemp(dir));
    char ca1[64], ca2[64];
    snprintf(ca1, sizeof ca1, "%s/one.pem", dir);
    snprintf(ca2, sizeof ca2, "%s/two.pem", dir);
    FILE *f = fopen(ca1, "w");
    HL_REQUIRE(f);
    fclose(f);
    HL_REQUIRE((f = fopen(ca2, "w")));
    fclose(f);
    char text[2048];
    snprintf(text, sizeof text,
             MIN_BACKENDS
             "  - {name: c1, kind: openai, location: cloud, base_url: https://api.example.com/v1, "
             "model: m}\n"
             "  - {name: c2, kind: openai, location: cloud, base_url: http://127.0.0.9:9/v1, model: m,"
             " ca_file: %s}\n"
             "  - {name: c3, kind: openai, location: cloud, base_url: \"http://[::1]:9\", model: m}\n"
             "  - {name: c4, kind: openai, location: cloud, base_url: http://LocalHost:9, model: m}\n"
             "  - {name: c5, kind: openai, location: cloud, base_url: http://10.0.0.5:8000/v1, "
             "model: m, allow_insecure_http: true}\n"
             "upstream:\n  ca_file: %s\n" MIN_ROUTES,
             ca2, ca1);
    hl_config *cfg = parse_ok(text);
    HL_REQUIRE(cfg);
    HL_CHECK_STR_EQ(cfg->upstream_ca_file, ca1);
    HL_CHECK_STR_EQ(cfg->backends[0].ca_file, ca1);
    HL_CHECK_STR_EQ(cfg->backends[1].ca_file, ca1);
    HL_CHECK_STR_EQ(cfg->backends[2].ca_file, ca2);
    HL_CHECK(!cfg->backends[1].allow_insecure_http);
    HL_CHECK(cfg->backends[5].allow_insecure_http);
    hl_config_free(cfg);
    /* Without upstream.ca_file: the system's CAs (NULL). */
    cfg = parse_ok(MIN);
    HL_REQUIRE(cfg);
    HL_CHECK(cfg->upstream_ca_file == NULL && cfg->backends[0].ca_file == NULL);
    hl_config_free(cfg);
    remove(ca1);
    remove(ca2);
    rmdir(dir);
}

/* A route's shadow, its defaults, and the top-level limits. */
HL_TEST(shadow_settings) {
    hl_config *cfg = parse_ok(SH_BACKENDS "routes:\n  - name: r\n    to: a\n"
                              "    shadow: {rate: 0.25, to: [a, c], cloud: true, compare: judge, judge: c}\n"
                              "  - name: s\n    to: c\n    shadow: {rate: 0, to: a}\n"
                              "  - name: t\n    to: c\n"
                              "shadow: {max_concurrent: 3, max_queue: 0, timeout_ms: 500, samples: /tmp/s.jsonl}\n");
    HL_REQUIRE(cfg);
    const hl_route_rule *r = &cfg->routes[0];
    HL_CHECK(r->shadow_rate == 0.25 && r->n_shadow_to == 2 && r->shadow_cloud);
    HL_CHECK_STR_EQ(r->shadow_to[1], "c");
    HL_CHECK_INT_EQ(r->shadow_compare, HL_SHADOW_JUDGE);
    HL_CHECK_STR_EQ(r->shadow_judge, "c");
    HL_CHECK(r->shadow_threshold == 0.5);
    r = &cfg->routes[1];
    HL_CHECK(r->shadow_rate == 0 && r->n_shadow_to == 1 && !r->shadow_cloud);
    HL_CHECK_INT_EQ(r->shadow_compare, HL_SHADOW_AUTO);
    HL_CHECK(cfg->routes[2].n_shadow_to == 0 && cfg->routes[2].shadow_to == NULL);
    HL_CHECK_INT_EQ(cfg->shadow_max_concurrent, 3);
    HL_CHECK_INT_EQ(cfg->shadow_max_queue, 0);
    HL_CHECK_INT_EQ(cfg->shadow_timeout_ms, 500);
    HL_CHECK_STR_EQ(cfg->shadow_samples_path, "/tmp/s.jsonl");
    hl_config_free(cfg);
    cfg = parse_ok(MIN);
    HL_REQUIRE(cfg);
    HL_CHECK_INT_EQ(cfg->shadow_max_concurrent, 2);
    HL_CHECK_INT_EQ(cfg->shadow_max_queue, 16);
    HL_CHECK(cfg->shadow_samples_path == NULL); /* texts are kept only when asked */
    hl_config_free(cfg);
}

HL_TEST(bad_configs) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *bc = &bad_cases[i];
        hl_config *cfg = (hl_config *)1;
        char err[512];
        memset(err, 'x', sizeof err);
        hl_err e = hl_config_parse("t.yaml", bc->text, strlen(bc->text), &cfg, err, sizeof err);
        if (e == HL_OK) {
            HL_FAIL_("case %zu: loaded, expected: %s", i, bc->msg);
            hl_config_free(cfg);
            continue;
        }
        HL_CHECK(cfg == NULL);
        if (strcmp(err, bc->msg) != 0)
            HL_FAIL_("case %zu:\n    got:      %s\n    expected: %s", i, err, bc->msg);
    }
}

HL_TEST(error_codes) {
    hl_config *cfg;
    char err[512];
    HL_CHECK_INT_EQ(hl_config_parse("t.yaml", "a: [", 4, &cfg, err, sizeof err), HL_ERR_PARSE);
    HL_CHECK_INT_EQ(hl_config_parse("t.yaml", "a: 1", 4, &cfg, err, sizeof err), HL_ERR_INVAL);
    size_t big = (1u << 20) + 1;
    char *text = malloc(big);
    HL_REQUIRE(text);
    memset(text, '#', big);
    HL_CHECK_INT_EQ(hl_config_parse("t.yaml", text, big, &cfg, err, sizeof err), HL_ERR_LIMIT);
    HL_CHECK_STR_EQ(err, "t.yaml:1: config is too large (1048577 bytes; the limit is 1048576)");
    free(text);
}

HL_TEST(load_missing_file) {
    hl_config *cfg = (hl_config *)1;
    char err[512];
    HL_CHECK_INT_EQ(hl_config_load("/nonexistent/hybridllm.yaml", &cfg, err, sizeof err),
                    HL_ERR_IO);
    HL_CHECK(cfg == NULL);
    HL_CHECK_STR_EQ(err, "/nonexistent/hybridllm.yaml: cannot open: No such file or directory");
}

HL_TEST(load_reports_file_name) {
    char path[] = "/tmp/hl_config_test_XXXXXX";
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    HL_REQUIRE(f);
    fputs(MIN "  - name: s\n    to: [a, nope]\n", f);
    fclose(f);
    hl_config *cfg = NULL;
    char err[512], want[600];
    HL_CHECK_INT_EQ(hl_config_load(path, &cfg, err, sizeof err), HL_ERR_INVAL);
    snprintf(want, sizeof want, "%s:11: routes[1].to[1]: unknown backend 'nope' (declared: a)",
             path);
    HL_CHECK_STR_EQ(err, want);
    remove(path);
}

HL_TEST(small_errbuf_cuts_at_a_word) {
    const char *text = "server:\n  threds: 4\n" MIN;
    hl_config *cfg;
    char err[48];
    HL_CHECK(hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err) != HL_OK);
    HL_CHECK_STR_EQ(err, "t.yaml:2: server.threds: unknown key...");
    char tiny[5];
    HL_CHECK(hl_config_parse("t.yaml", text, strlen(text), &cfg, tiny, sizeof tiny) != HL_OK);
    HL_CHECK_STR_EQ(tiny, "t.ya");
    /* No buffer at all is allowed too. */
    HL_CHECK(hl_config_parse("t.yaml", text, strlen(text), &cfg, NULL, 0) != HL_OK);
}

HL_TEST(messages_stay_on_one_line) {
    const char *text = "server:\n  \"th\\nre\\u00e9ds\": 4\n" MIN;
    hl_config *cfg;
    char err[512];
    HL_CHECK(hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err) != HL_OK);
    HL_CHECK(strchr(err, '\n') == NULL);
    const char want[] = "t.yaml:2: server.th?re??ds: unknown key 'th?re??ds' (expected";
    HL_CHECK(strncmp(err, want, sizeof want - 1) == 0);
}

/* Every default, as the schema's rows give them (a key left out keeps its row's default). */
HL_TEST(defaults_every_key) {
    hl_config *cfg = parse_ok(
        "backends:\n"
        "  - {name: a, kind: openai, location: local, base_url: http://x, model: m}\n"
        "  - {name: c, kind: openai, location: cloud, base_url: https://y, model: m}\n"
        "  - {name: e, kind: builtin, location: local, model: m, model_path: /m.gguf, pooling: last}\n"
        "prices:\n"
        "  - {model: m, input_per_mtok: 2, output_per_mtok: 3}\n"
        "budgets:\n"
        "  - {name: b, period: day, limit_usd: 1}\n"
        "routes:\n"
        "  - name: r\n"
        "    to: a\n"
        "    escalate: {below: 0.5, to: c}\n");
    HL_REQUIRE(cfg);
    HL_CHECK_INT_EQ(cfg->request_timeout_ms, 600000);
    HL_CHECK_INT_EQ(cfg->health_interval_ms, 10000);
    HL_CHECK_INT_EQ(cfg->ledger_index_interval_ms, 1000);
    HL_CHECK(cfg->ledger_store_path == NULL);
    HL_CHECK(cfg->privacy.detect_pii);
    HL_CHECK(!cfg->privacy.redact);
    HL_CHECK_INT_EQ(cfg->privacy.n_custom, 0);
    const hl_backend_cfg *a = &cfg->backends[0], *c = &cfg->backends[1], *e = &cfg->backends[2];
    HL_CHECK_INT_EQ(a->max_retries, 2);
    HL_CHECK_INT_EQ(a->retry_base_ms, 500);
    HL_CHECK_INT_EQ(a->retry_max_ms, 8000);
    HL_CHECK_INT_EQ(a->breaker_failures, 5);
    HL_CHECK_INT_EQ(a->breaker_window_ms, 30000);
    HL_CHECK_INT_EQ(a->breaker_open_ms, 15000);
    HL_CHECK_INT_EQ(a->context_window, 0);
    HL_CHECK_INT_EQ(a->keep_warm_ms, 0);
    HL_CHECK_INT_EQ(a->max_queue, 16);
    HL_CHECK_INT_EQ(a->threads, 0);
    HL_CHECK_INT_EQ(a->context_size, 0);
    HL_CHECK(a->chat_template == NULL);
    HL_CHECK_INT_EQ(a->warmup, HL_YES); /* local */
    HL_CHECK_INT_EQ(c->warmup, HL_NO);  /* cloud */
    HL_CHECK_INT_EQ(a->max_sequences, 0);
    HL_CHECK_INT_EQ(a->repack_weights, HL_ANY);
    HL_CHECK_INT_EQ(e->max_sequences, 4); /* builtin */
    HL_CHECK_INT_EQ(e->repack_weights, HL_ANY);
    HL_CHECK_INT_EQ(e->pooling, 3); /* last: hl_engine_pooling's HL_ENGINE_POOL_LAST */
    HL_CHECK_INT_EQ(e->n_base_urls, 0);
    HL_CHECK_NEAR(cfg->prices[0].cached_input_per_mtok, 2.0, 0);
    HL_CHECK_NEAR(cfg->prices[0].cache_write_per_mtok, 2.0, 0);
    HL_CHECK_INT_EQ(cfg->budgets[0].per_tenant, false);
    HL_CHECK_INT_EQ(cfg->budgets[0].action, HL_BUDGET_LOCAL);
    HL_CHECK(cfg->budgets[0].tenant == NULL);
    HL_CHECK_INT_EQ(cfg->budgets[0].line, 8);
    const hl_route_rule *r = &cfg->routes[0];
    HL_CHECK_INT_EQ(r->sticky, HL_STICKY_REQUEST);
    HL_CHECK(r->escalate_streams); /* escalate.stream: buffer */
    HL_CHECK_NEAR(r->escalate_below, 0.5, 0);
    HL_CHECK_INT_EQ(r->min_prompt_tokens, 0);
    HL_CHECK_INT_EQ(r->max_prompt_tokens, 0);
    HL_CHECK_INT_EQ(r->latency_budget_below_ms, 0);
    hl_config_free(cfg);
}

/* A custom pattern that matches a built-in type's placeholder ([EMAIL_1], ...) is refused at
 * load, with its line: the config keeps its own list of those tags, checked here against the
 * detector's type names. */
HL_TEST(custom_pattern_vs_every_builtin_placeholder) {
    for (int t = 0; t < HL_PII_CUSTOM; t++) {
        char tag[64], text[1024], want[256], err[512];
        const char *name = hl_pii_type_name((hl_pii_type)t);
        size_t i = 0;
        for (; name[i] && i < sizeof tag - 1; i++)
            tag[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
        tag[i] = '\0';
        snprintf(text, sizeof text,
                 MIN_BACKENDS "privacy:\n  custom_patterns:\n    - name: x\n"
                              "      pattern: \"\\\\[%s_\"\n" MIN_ROUTES, tag);
        snprintf(want, sizeof want,
                 "t.yaml:10: privacy.custom_patterns[0].pattern: custom PII pattern 'x' matches "
                 "the placeholder [%s_1], so redacted text could never come out clean", tag);
        hl_config *cfg = NULL;
        HL_CHECK_INT_EQ(hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err),
                        HL_ERR_INVAL);
        HL_CHECK_STR_EQ(err, want);
        hl_config_free(cfg);
    }
    /* A pattern clear of every placeholder loads, and is kept. */
    hl_config *cfg = parse_ok(MIN_BACKENDS "privacy:\n  custom_patterns:\n"
                              "    - {name: emp, pattern: \"EMP-[0-9]{6}\"}\n" MIN_ROUTES);
    HL_REQUIRE(cfg && cfg->privacy.n_custom == 1);
    HL_CHECK_STR_EQ(cfg->privacy.custom_names[0], "emp");
    HL_CHECK_STR_EQ(cfg->privacy.custom_patterns[0], "EMP-[0-9]{6}");
    hl_config_free(cfg);
}

HL_TEST(too_many_custom_patterns) {
    char text[8192];
    size_t o = (size_t)snprintf(text, sizeof text, MIN_BACKENDS "privacy:\n  custom_patterns:\n");
    for (int i = 0; i <= HL_CONFIG_MAX_PII_PATTERNS; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "    - {name: p%d, pattern: x%d}\n", i, i);
    snprintf(text + o, sizeof text - o, MIN_ROUTES);
    hl_config *cfg = NULL;
    char err[512];
    HL_CHECK_INT_EQ(hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err),
                    HL_ERR_INVAL);
    HL_CHECK_STR_EQ(err, "t.yaml:9: privacy.custom_patterns: at most 32 custom patterns");
}

/* From a file on disk: each kind of mistake names the file, the line and the key path. */
HL_TEST(file_errors_name_file_line_key) {
    static const struct { const char *text, *where, *msg; } cases[] = {
        {"server:\n  threads: many\n" MIN, ":2: server.threads: ",
         "expected an integer; got 'many'"},                                   /* bad value */
        {"server:\n  max_headers: 0\n" MIN, ":2: server.max_headers: ",
         "must be between 1 and 128; got '0'"},                                /* out of bounds */
        {MIN_BACKENDS "    retries: 3\n" MIN_ROUTES, ":7: backends[0].retries: ",
         "unknown key 'retries' (expected one of: name, "},                     /* unknown key */
        {MIN "prices:\n  - {model: m, input_per_mtok: 1, output_per_mtok: {x: 1}}\n",
         ":11: prices[0].output_per_mtok: ", "expected a number; got a mapping"}, /* wrong type */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[] = "/tmp/hl_config_test_XXXXXX";
        int fd = mkstemp(path);
        HL_REQUIRE(fd >= 0);
        FILE *f = fdopen(fd, "w");
        HL_REQUIRE(f);
        fputs(cases[i].text, f);
        fclose(f);
        hl_config *cfg = NULL;
        char err[1024], want[600];
        HL_CHECK_INT_EQ(hl_config_load(path, &cfg, err, sizeof err), HL_ERR_INVAL);
        snprintf(want, sizeof want, "%s%s%s", path, cases[i].where, cases[i].msg);
        if (strncmp(err, want, strlen(want)) != 0)
            HL_FAIL_("case %zu:\n    got:      %s\n    expected: %s...", i, err, want);
        remove(path);
    }
}

/* The reference is printed from the same rows that set the defaults and check the bounds. */
HL_TEST(reference_from_the_table) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    HL_REQUIRE(f);
    hl_config_print_reference(f);
    fclose(f);
    HL_REQUIRE(text);
    HL_CHECK(strstr(text, "server.max_headers (integer 1..128, default 64): ") != NULL);
    HL_CHECK(strstr(text, "server.max_body_bytes (bytes 1..1073741824, default 4194304): ") != NULL);
    HL_CHECK(strstr(text, "server.listen (host:port, default 127.0.0.1:8741): ") != NULL);
    HL_CHECK(strstr(text, "backends[].timeout_ms (integer 1..86400000, default 600000): ") != NULL);
    HL_CHECK(strstr(text, "backends[].hourly_cost_usd (number >= 0, default 0.05): ") != NULL);
    HL_CHECK(strstr(text, "backends[].kind (openai|anthropic|builtin, required): ") != NULL);
    HL_CHECK(strstr(text, "routes[].split[].weight (integer 1..1000000, required): ") != NULL);
    HL_CHECK(strstr(text, "routes[].escalate.stream (off|buffer, default buffer): ") != NULL);
    HL_CHECK(strstr(text, "privacy.custom_patterns[].pattern ") != NULL);
    HL_CHECK(strstr(text, "privacy.detect_pii (true|false, default true): ") != NULL);
    HL_CHECK(strstr(text, "api_key ") == NULL); /* refused keys are not offered */
    HL_CHECK(strstr(text, "\n\n") == NULL);
    free(text);
}

HL_TEST_MAIN()
