/* test_keys: virtual keys in memory (hl_keys) and their budgets with reservations
 * (hl_keybudget), against a SQLite store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_keybudget.h"
#include "hl_keys.h"
#include "hl_sha256.h"
#include "hl_store.h"
#include "hl_test.h"

typedef struct tmpdb {
    char dir[64], db[128];
} tmpdb;

static hl_store *open_tmp(tmpdb *t) {
    snprintf(t->dir, sizeof t->dir, "/tmp/hl_keys_test_XXXXXX");
    if (!mkdtemp(t->dir)) abort();
    snprintf(t->db, sizeof t->db, "%s/k.db", t->dir);
    char err[512];
    hl_store *s = NULL;
    if (hl_store_open(&s, t->db, err, sizeof err) != HL_OK) return NULL;
    return s;
}

static void close_tmp(tmpdb *t, hl_store *s) {
    hl_store_close(s);
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", t->db, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

HL_TEST(generate_lookup_revoke_expire) {
    tmpdb t;
    hl_store *s = open_tmp(&t);
    HL_REQUIRE(s != NULL);
    char k1[HL_KEY_LEN + 1], p1[HL_KEY_PREFIX_LEN + 1], h1[65];
    char k2[HL_KEY_LEN + 1], p2[HL_KEY_PREFIX_LEN + 1], h2[65];
    HL_REQUIRE(hl_keys_generate(k1, p1, h1) == HL_OK);
    HL_REQUIRE(hl_keys_generate(k2, p2, h2) == HL_OK);
    HL_CHECK(strncmp(k1, "hl-", 3) == 0 && strlen(k1) == HL_KEY_LEN);
    HL_CHECK(strncmp(k1, p1, HL_KEY_PREFIX_LEN) == 0);
    HL_CHECK(strcmp(k1, k2) != 0);
    char want[65];
    hl_sha256_hex(k1, strlen(k1), want);
    HL_CHECK_STR_EQ(h1, want);

    hl_store_key a = {.name = "alice", .prefix = p1, .hash = h1, .tenant = "team-a", .cloud_allowed = false,
                      .models = "m1", .budget_day_usd = 2, .budget_month_usd = -1, .created_at_ms = 1};
    hl_store_key b = {.name = "bob", .prefix = p2, .hash = h2, .cloud_allowed = true, .budget_day_usd = -1,
                      .budget_month_usd = -1, .expires_at_ms = 5000, .created_at_ms = 1};
    HL_REQUIRE(hl_store_key_insert(s, &a, &a.id) == HL_OK);
    HL_REQUIRE(hl_store_key_insert(s, &b, &b.id) == HL_OK);
    hl_keys *ks = hl_keys_new();
    HL_REQUIRE(ks != NULL);
    HL_CHECK_INT_EQ(hl_keys_total(ks), 0);
    HL_REQUIRE(hl_keys_reload(ks, s) == HL_OK);
    HL_CHECK_INT_EQ(hl_keys_total(ks), 2);
    hl_key_info in;
    HL_REQUIRE(hl_keys_lookup(ks, k1, strlen(k1), 1000, &in));
    HL_CHECK_INT_EQ(in.id, a.id);
    HL_CHECK_STR_EQ(in.name, "alice");
    HL_CHECK_STR_EQ(in.tenant, "team-a");
    HL_CHECK(!in.cloud_allowed);
    HL_CHECK_STR_EQ(in.models, "m1");
    HL_REQUIRE(hl_keys_lookup(ks, k2, strlen(k2), 1000, &in));
    HL_CHECK_STR_EQ(in.tenant, "bob"); /* no tenant: the name */
    HL_CHECK(!hl_keys_lookup(ks, k2, strlen(k2), 5000, &in)); /* expired */
    HL_CHECK(!hl_keys_lookup(ks, k1, strlen(k1) - 1, 1000, &in));
    HL_CHECK(!hl_keys_lookup(ks, h1, strlen(h1), 1000, &in)); /* the hash is not the key */
    /* revoked in the store: refused after the next reload, still counted */
    a.revoked = true;
    HL_REQUIRE(hl_store_key_update(s, &a) == HL_OK);
    HL_CHECK(hl_keys_lookup(ks, k1, strlen(k1), 1000, &in));
    HL_REQUIRE(hl_keys_reload(ks, s) == HL_OK);
    HL_CHECK(!hl_keys_lookup(ks, k1, strlen(k1), 1000, &in));
    HL_CHECK_INT_EQ(hl_keys_total(ks), 2);
    hl_keys_free(ks);
    close_tmp(&t, s);
}

HL_TEST(list_allows) {
    HL_CHECK(hl_keys_list_allows(NULL, "x"));
    HL_CHECK(hl_keys_list_allows("", "x"));
    HL_CHECK(hl_keys_list_allows("a,b", "b"));
    HL_CHECK(hl_keys_list_allows("a, b ", "b"));
    HL_CHECK(!hl_keys_list_allows("a,bb", "b"));
    HL_CHECK(!hl_keys_list_allows("a,b", NULL));
    HL_CHECK(!hl_keys_list_allows("a,b", ""));
}

/* One admission without a fleet: ADMIT or REFUSE, never WAIT. */
static bool reserve(hl_key_budgets *kb, const hl_key_info *k, double est, long long now, double *spent, double *limit,
                    bool *month) {
    hl_kb_ticket t = {{0, 0}};
    hl_kb_refusal why = {0};
    hl_kb_verdict v = hl_key_budgets_admit(kb, k, est, now, &t, &why);
    *spent = why.spent, *limit = why.limit, *month = why.month;
    return v == HL_KB_ADMIT;
}

HL_TEST(budget_reservations_hold_a_burst) {
    hl_key_budgets *kb = hl_key_budgets_new();
    HL_REQUIRE(kb != NULL);
    hl_key_info k = {.id = 7, .budget_day_usd = 1.0, .budget_month_usd = -1};
    long long now = 1765000000000LL;
    double spent, limit;
    bool month;
    int admitted = 0;
    for (int i = 0; i < 100; i++) admitted += reserve(kb, &k, 0.3, now, &spent, &limit, &month);
    HL_CHECK_INT_EQ(admitted, 3); /* 0.9 reserved; a fourth would pass 1.0 */
    HL_CHECK(!month && limit == 1.0);
    /* Two settle cheaper than reserved: room again. */
    hl_key_budgets_add(kb, &k, 0.1, now);
    hl_key_budgets_release(kb, &k, 0.3);
    hl_key_budgets_add(kb, &k, 0.1, now);
    hl_key_budgets_release(kb, &k, 0.3);
    double d, m;
    hl_key_budgets_spent(kb, 7, now, &d, &m);
    HL_CHECK_NEAR(d, 0.2, 1e-12);
    HL_CHECK(reserve(kb, &k, 0.3, now, &spent, &limit, &month)); /* 0.2 + 0.3 + 0.3 */
    HL_CHECK(!reserve(kb, &k, 0.3, now, &spent, &limit, &month));
    /* The next UTC day starts from nothing spent (reservations still held). */
    HL_CHECK(reserve(kb, &k, 0.3, now + 86400000LL, &spent, &limit, &month));
    /* A key without budgets is never refused; a month budget is checked too. */
    hl_key_info free_key = {.id = 8, .budget_day_usd = -1, .budget_month_usd = -1};
    HL_CHECK(reserve(kb, &free_key, 1e9, now, &spent, &limit, &month));
    hl_key_info monthly = {.id = 9, .budget_day_usd = -1, .budget_month_usd = 0.5};
    HL_CHECK(!reserve(kb, &monthly, 0.6, now, &spent, &limit, &month));
    HL_CHECK(month);
    hl_key_budgets_free(kb);
}

HL_TEST(budget_sync_takes_the_store_figures_without_counting_twice) {
    tmpdb t;
    hl_store *s = open_tmp(&t);
    HL_REQUIRE(s != NULL);
    char jp[160];
    snprintf(jp, sizeof jp, "%s/l.jsonl", t.dir);
    FILE *f = fopen(jp, "w");
    HL_REQUIRE(f != NULL);
    long long now = 1765000000000LL; /* 2025-12-06 */
    fprintf(f, "{\"timestamp\":\"2025-12-06T05:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
               "\"latency_ms\":1,\"cost_usd\":0.25,\"request_id\":\"r1\",\"attempt\":1,\"key_id\":3,\"key_name\":\"k\"}\n");
    fclose(f);
    hl_key_budgets *kb = hl_key_budgets_new();
    hl_key_info k3 = {.id = 3, .budget_day_usd = -1, .budget_month_usd = -1};
    /* This process added 0.25 itself (the line above), then a pass indexed it. */
    hl_key_budgets_add(kb, &k3, 0.25, now);
    hl_key_budgets_sync_begin(kb);
    HL_REQUIRE(hl_store_index(s, jp, NULL) == HL_OK);
    HL_REQUIRE(hl_key_budgets_sync(kb, s, now) == HL_OK);
    double d, m;
    hl_key_budgets_spent(kb, 3, now, &d, &m);
    HL_CHECK_NEAR(d, 0.25, 1e-12);
    HL_CHECK_NEAR(m, 0.25, 1e-12);
    /* Spend added during the pass stays on top of the store's figure. */
    hl_key_budgets_sync_begin(kb);
    hl_key_budgets_add(kb, &k3, 0.5, now);
    HL_REQUIRE(hl_key_budgets_sync(kb, s, now) == HL_OK);
    hl_key_budgets_spent(kb, 3, now, &d, &m);
    HL_CHECK_NEAR(d, 0.75, 1e-12);
    hl_key_budgets_free(kb);
    unlink(jp);
    close_tmp(&t, s);
}

HL_TEST(rate_buckets_refill_and_say_when) {
    hl_key_budgets *kb = hl_key_budgets_new();
    HL_REQUIRE(kb != NULL);
    hl_key_info k = {.id = 1, .rpm = 60, .tpm = 1000, .budget_day_usd = -1, .budget_month_usd = -1};
    long long now = 1000000;
    hl_key_rate r;
    int ok = 0;
    for (int i = 0; i < 100; i++) ok += hl_key_budgets_rate(kb, &k, 1, now, &r);
    HL_CHECK_INT_EQ(ok, 60);
    HL_CHECK_INT_EQ(r.limit_requests, 60);
    HL_CHECK_INT_EQ(r.remaining_requests, 0);
    HL_CHECK_NEAR(r.retry_after_s, 1.0, 1e-9); /* one request a second */
    HL_CHECK(hl_key_budgets_rate(kb, &k, 1, now + 1000, &r)); /* refilled one */
    HL_CHECK(!hl_key_budgets_rate(kb, &k, 1, now + 1000, &r));
    /* tokens: a prompt beyond what is left waits for the refill */
    hl_key_info t = {.id = 2, .tpm = 600, .budget_day_usd = -1, .budget_month_usd = -1};
    HL_CHECK(hl_key_budgets_rate(kb, &t, 500, now, &r));
    HL_CHECK_INT_EQ(r.remaining_tokens, 100);
    HL_CHECK(!hl_key_budgets_rate(kb, &t, 200, now, &r));
    HL_CHECK_NEAR(r.retry_after_s, 10.0, 1e-9); /* 100 missing at 10 a second */
    hl_key_budgets_rate_charge(kb, &t, 100, now); /* output tokens: the bucket is empty */
    HL_CHECK(!hl_key_budgets_rate(kb, &t, 1, now, &r));
    /* a prompt larger than a minute's tokens waits for a full bucket, not forever */
    HL_CHECK(hl_key_budgets_rate(kb, &t, 5000, now + 120000, &r));
    /* no limits: always */
    hl_key_info none = {.id = 3, .budget_day_usd = -1, .budget_month_usd = -1};
    for (int i = 0; i < 1000; i++) HL_CHECK(hl_key_budgets_rate(kb, &none, 1000000, now, &r));
    hl_key_budgets_free(kb);
}

HL_TEST(tenant_buckets_are_shared_by_its_keys) {
    hl_key_budgets *kb = hl_key_budgets_new();
    HL_REQUIRE(kb != NULL);
    hl_tenant_cfg tc[] = {{.name = "acme", .rpm = 10, .tpm = 0}, {.name = "tok", .tpm = 600}};
    HL_REQUIRE(hl_key_budgets_set_tenants(kb, tc, 2) == HL_OK);
    long long now = 1000000;
    hl_key_rate r;
    /* two keys of acme without limits of their own: ten requests a minute between them */
    hl_key_info a = {.id = 1, .budget_day_usd = -1, .budget_month_usd = -1};
    hl_key_info b = a;
    b.id = 2;
    snprintf(a.tenant, sizeof a.tenant, "acme");
    snprintf(b.tenant, sizeof b.tenant, "acme");
    int ok = 0;
    for (int i = 0; i < 8; i++) ok += hl_key_budgets_rate(kb, &a, 1, now, &r);
    for (int i = 0; i < 8; i++) ok += hl_key_budgets_rate(kb, &b, 1, now, &r);
    HL_CHECK_INT_EQ(ok, 10);
    HL_CHECK_INT_EQ(r.limit_requests, 10); /* the tenant's limit is the one that refused */
    HL_CHECK_INT_EQ(r.remaining_requests, 0);
    HL_CHECK_NEAR(r.retry_after_s, 6.0, 1e-9);
    /* a key of another tenant is not affected */
    hl_key_info c = a;
    c.id = 3;
    snprintf(c.tenant, sizeof c.tenant, "other");
    HL_CHECK(hl_key_budgets_rate(kb, &c, 1, now, &r));
    /* the key's own tighter limit and the tenant's both apply: the key's refuses first */
    hl_key_info d = {.id = 4, .rpm = 2, .budget_day_usd = -1, .budget_month_usd = -1};
    snprintf(d.tenant, sizeof d.tenant, "tok");
    HL_CHECK(hl_key_budgets_rate(kb, &d, 100, now, &r));
    HL_CHECK(hl_key_budgets_rate(kb, &d, 100, now, &r));
    HL_CHECK(!hl_key_budgets_rate(kb, &d, 100, now, &r));
    HL_CHECK_INT_EQ(r.limit_requests, 2);
    /* the tenant's tokens: output charged to the tenant too */
    hl_key_info e = {.id = 5, .budget_day_usd = -1, .budget_month_usd = -1};
    snprintf(e.tenant, sizeof e.tenant, "tok");
    hl_key_budgets_rate_charge(kb, &e, 350, now); /* 600 - 200 - 350 = 50 left */
    HL_CHECK(!hl_key_budgets_rate(kb, &e, 100, now, &r));
    HL_CHECK_INT_EQ(r.limit_tokens, 600);
    HL_CHECK_NEAR(r.retry_after_s, 5.0, 1e-9); /* 50 missing at 10 a second */
    HL_CHECK(hl_key_budgets_rate(kb, &e, 50, now, &r));
    /* a reload keeps the buckets of the tenants it keeps */
    HL_REQUIRE(hl_key_budgets_set_tenants(kb, tc, 1) == HL_OK);
    HL_CHECK(!hl_key_budgets_rate(kb, &a, 1, now, &r));
    HL_CHECK(hl_key_budgets_rate(kb, &e, 100000, now, &r)); /* tok: no longer limited */
    hl_key_budgets_free(kb);
}

HL_TEST(live_instances_share_the_limits) {
    hl_key_budgets *kb = hl_key_budgets_new();
    HL_REQUIRE(kb != NULL);
    hl_tenant_cfg tc[] = {{.name = "acme", .rpm = 30}};
    HL_REQUIRE(hl_key_budgets_set_tenants(kb, tc, 1) == HL_OK);
    hl_key_budgets_set_instances(kb, 2);
    long long now = 1000000;
    hl_key_rate r;
    hl_key_info k = {.id = 1, .rpm = 60, .budget_day_usd = -1, .budget_month_usd = -1};
    int ok = 0;
    for (int i = 0; i < 100; i++) ok += hl_key_budgets_rate(kb, &k, 1, now, &r);
    HL_CHECK_INT_EQ(ok, 30); /* half of 60 */
    HL_CHECK_INT_EQ(r.limit_requests, 30);
    HL_CHECK_NEAR(r.retry_after_s, 2.0, 1e-9); /* 30 a minute here */
    hl_key_info t = {.id = 2, .budget_day_usd = -1, .budget_month_usd = -1};
    snprintf(t.tenant, sizeof t.tenant, "acme");
    ok = 0;
    for (int i = 0; i < 100; i++) ok += hl_key_budgets_rate(kb, &t, 1, now, &r);
    HL_CHECK_INT_EQ(ok, 15); /* half of the tenant's 30 */
    /* more instances than the limit: each still admits one a minute */
    hl_key_info s = {.id = 3, .rpm = 2, .budget_day_usd = -1, .budget_month_usd = -1};
    hl_key_budgets_set_instances(kb, 5);
    ok = 0;
    for (int i = 0; i < 10; i++) ok += hl_key_budgets_rate(kb, &s, 1, now, &r);
    HL_CHECK_INT_EQ(ok, 1);
    hl_key_budgets_free(kb);
}

HL_TEST_MAIN()
