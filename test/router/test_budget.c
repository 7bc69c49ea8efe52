/* Tests for hl_budget: caps per month and day, per tenant, period roll-over, rebuilding the
 * running totals from the ledger (read backwards, older periods ignored), and syncing with a
 * shared store (the fleet's figure plus this process's spend since, never counted twice). */
#include <stdlib.h>
#include <unistd.h>
#include "hl_budget.h"
#include "hl_test.h"

static const char cfg_text[] =
    "backends:\n  - {name: a, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: m}\n"
    "budgets:\n"
    "  - {name: monthly, period: month, limit_usd: 10}\n"
    "  - {name: per-team-daily, period: day, limit_usd: 1, scope: tenant}\n"
    "  - {name: acme-only, period: month, limit_usd: 0.5, tenant: acme, action: reject}\n"
    "routes:\n  - {name: d, to: a}\n";

static hl_config *load(void) {
    hl_config *cfg;
    char err[256];
    if (hl_config_parse("b.yaml", cfg_text, sizeof cfg_text - 1, &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return cfg;
}

/* 2026-11-25 12:00:00 UTC */
#define NOW ((time_t)1795608000)
#define DAY 86400

HL_TEST(caps_scopes_and_rollover) {
    hl_config *cfg = load();
    hl_budgets *b;
    HL_REQUIRE(hl_budgets_new(&b, cfg) == HL_OK && b);
    double spent, limit;
    HL_CHECK(hl_budgets_exceeded(b, "team-a", NOW, &spent, &limit) == NULL);
    hl_budgets_add(b, "team-a", 0.6, NOW);
    hl_budgets_add(b, "team-a", 0.4, NOW);
    const hl_budget_cfg *hit = hl_budgets_exceeded(b, "team-a", NOW, &spent, &limit);
    HL_REQUIRE(hit);
    HL_CHECK_STR_EQ(hit->name, "per-team-daily");
    HL_CHECK_NEAR(spent, 1.0, 1e-9);
    /* another tenant has its own daily cap */
    HL_CHECK(hl_budgets_exceeded(b, "team-b", NOW, &spent, &limit) == NULL);
    /* the next day the daily cap resets, the monthly total does not */
    HL_CHECK(hl_budgets_exceeded(b, "team-a", NOW + DAY, &spent, &limit) == NULL);
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW + DAY), 1.0, 1e-9);
    /* a tenant-specific budget applies to that tenant only */
    hl_budgets_add(b, "acme", 0.5, NOW + DAY);
    hit = hl_budgets_exceeded(b, "acme", NOW + DAY, &spent, &limit);
    HL_REQUIRE(hit);
    HL_CHECK_STR_EQ(hit->name, "acme-only");
    HL_CHECK_INT_EQ(hit->action, HL_BUDGET_REJECT);
    /* the global cap */
    for (int i = 0; i < 9; i++) hl_budgets_add(b, NULL, 1.0, NOW + DAY);
    hit = hl_budgets_exceeded(b, NULL, NOW + DAY, &spent, &limit);
    HL_REQUIRE(hit);
    HL_CHECK_STR_EQ(hit->name, "monthly");
    /* next month: clean slate */
    HL_CHECK(hl_budgets_exceeded(b, NULL, NOW + 10 * DAY, &spent, &limit) == NULL);
    hl_budgets_free(b);
    hl_config_free(cfg);
}

HL_TEST(rebuilt_from_the_ledger) {
    char path[] = "/tmp/hl_budget_ledger_XXXXXX";
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    /* last month (ignored), this month, a local line (free), today; big enough to span blocks.
     * Every line is a whole record: the replay reads what every reader reads. */
#define REC "\"input_tokens\":1,\"output_tokens\":1,\"latency_ms\":5"
    fprintf(f, "{\"timestamp\":\"2026-10-31T23:00:00.000Z\",\"source\":\"cloud\"," REC ",\"cost_usd\":100.0,\"tenant\":null}\n");
    for (int i = 0; i < 30000; i++)
        fprintf(f, "{\"timestamp\":\"2026-11-02T10:00:00.000Z\",\"source\":\"cloud\"," REC ",\"cost_usd\":0.0001,"
                   "\"tenant\":\"team-a\",\"request_id\":\"r%d\",\"attempt\":1,\"pad\":\"%040d\"}\n", i, i);
    /* not a record (no tokens): skipped, as the store's indexer skips it */
    fprintf(f, "{\"timestamp\":\"2026-11-20T09:00:00.000Z\",\"source\":\"cloud\",\"cost_usd\":50.0}\n");
    fprintf(f, "{\"timestamp\":\"2026-11-25T08:00:00.000Z\",\"source\":\"local\"," REC ",\"cost_usd\":5.0,\"tenant\":\"team-a\"}\n");
    /* today's, written twice (a journal concatenated with its tail): counted once; the brief's
     * key order and spacing */
    for (int i = 0; i < 2; i++)
        fprintf(f, "{\"source\": \"cloud\", \"timestamp\": \"2026-11-25T09:00:00.000000\", \"input_tokens\": 1, "
                   "\"output_tokens\": 1, \"latency_ms\": 5, \"cost_usd\": 0.7, \"tenant\": \"team-a\"}\n");
#undef REC
    fclose(f);
    hl_config *cfg = load();
    hl_budgets *b;
    HL_REQUIRE(hl_budgets_new(&b, cfg) == HL_OK);
    size_t lines = 0;
    HL_REQUIRE(hl_budgets_load_ledger(b, path, NOW, &lines) == HL_OK);
    HL_CHECK_INT_EQ(lines, 30002); /* this month's lines; October's stopped the scan */
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW), 3.0 + 0.7, 1e-6);
    HL_CHECK_NEAR(hl_budgets_spent(b, 1, "team-a", NOW), 0.7, 1e-9); /* today only */
    hl_budgets_free(b);
    hl_config_free(cfg);
    unlink(path);
    /* a missing ledger is an empty one */
    HL_REQUIRE(hl_budgets_new(&b, cfg = load()) == HL_OK);
    HL_CHECK_INT_EQ(hl_budgets_load_ledger(b, "/nonexistent/ledger.jsonl", NOW, &lines), HL_OK);
    HL_CHECK_INT_EQ(lines, 0);
    hl_budgets_free(b);
    hl_config_free(cfg);
}

HL_TEST(sync_with_a_shared_store) {
    hl_config *cfg = load();
    hl_budgets *b;
    HL_REQUIRE(hl_budgets_new(&b, cfg) == HL_OK && b);
    /* This process spent 2 before the pass began: the pass indexes it. */
    hl_budgets_add(b, "team-a", 2, NOW);
    hl_budgets_sync_begin(b, NOW);
    /* 0.25 more while the pass runs: not in what the pass reads. */
    hl_budgets_add(b, "team-a", 0.25, NOW);
    /* Still counted while the sync is under way (transit + local). */
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW), 2.25, 1e-9);
    /* The database: this process's 2 plus another instance's 5 (team-a 0.5 today, team-b the
     * rest) this month, of which 0.5 + 0.1 today. */
    hl_budgets_sync_add(b, "team-a", 0.5, 2.5);
    hl_budgets_sync_add(b, "team-b", 0.1, 4.5);
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW), 2.25, 1e-9); /* staged, not yet in force */
    hl_budgets_sync_end(b, NOW);
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW), 7.25, 1e-9);  /* 7 fleet + 0.25 local */
    HL_CHECK_NEAR(hl_budgets_spent(b, 1, "team-a", NOW), 0.75, 1e-9); /* daily, per tenant */
    HL_CHECK_NEAR(hl_budgets_spent(b, 1, "team-b", NOW), 0.1, 1e-9);
    /* Another instance alone pushes the fleet over the monthly cap. */
    hl_budgets_sync_begin(b, NOW);
    hl_budgets_sync_add(b, "team-a", 0.75, 2.75);
    hl_budgets_sync_add(b, "", 0, 7.5); /* requests without a tenant */
    hl_budgets_sync_end(b, NOW);
    double spent, limit;
    const hl_budget_cfg *hit = hl_budgets_exceeded(b, "team-c", NOW, &spent, &limit);
    HL_REQUIRE(hit);
    HL_CHECK_STR_EQ(hit->name, "monthly");
    HL_CHECK_NEAR(spent, 10.25, 1e-9);
    /* A sync that failed after begin (sync_end never came) loses nothing. */
    hl_budgets_add(b, NULL, 1, NOW);
    hl_budgets_sync_begin(b, NOW);
    hl_budgets_sync_add(b, "", 0, 99); /* staged by a read that then failed */
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW), 11.25, 1e-9);
    hl_budgets_sync_begin(b, NOW);
    hl_budgets_sync_end(b, NOW); /* the database said nothing at all: its figure is 0 */
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW), 0, 1e-9);
    /* A new month: the fleet's figure of the old one is dropped. */
    hl_budgets_sync_begin(b, NOW);
    hl_budgets_sync_add(b, "team-a", 3, 3);
    hl_budgets_sync_end(b, NOW + 40 * DAY);
    HL_CHECK_NEAR(hl_budgets_spent(b, 0, NULL, NOW + 40 * DAY), 0, 1e-9);
    hl_budgets_free(b);
    hl_config_free(cfg);
}

HL_TEST_MAIN()
