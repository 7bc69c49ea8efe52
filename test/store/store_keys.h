/* store_keys: the client-key lifecycle both store backends must pass (included by
 * test_store_sqlite.c and test_store_pg.c, so the two are held to one behaviour). */
#ifndef STORE_KEYS_H
#define STORE_KEYS_H

#include <stdio.h>
#include <string.h>
#include "hl_keybudget.h"
#include "hl_store.h"
#include "hl_test.h"

typedef struct key_seen {
    int n;
    long long id[8];
    char name[8][32], tenant[8][32], models[8][64];
    bool revoked[8], cloud_allowed[8], tenant_null[8];
    double day[8];
    long long rpm[8], last_used[8];
} key_seen;

static hl_err key_collect(void *ctx, const hl_store_key *k) {
    key_seen *s = ctx;
    if (s->n >= 8) return HL_OK;
    int i = s->n++;
    s->id[i] = k->id;
    snprintf(s->name[i], sizeof s->name[i], "%s", k->name);
    snprintf(s->tenant[i], sizeof s->tenant[i], "%s", k->tenant ? k->tenant : "");
    s->tenant_null[i] = k->tenant == NULL;
    snprintf(s->models[i], sizeof s->models[i], "%s", k->models ? k->models : "(any)");
    s->revoked[i] = k->revoked;
    s->cloud_allowed[i] = k->cloud_allowed;
    s->day[i] = k->budget_day_usd;
    s->rpm[i] = k->rpm;
    s->last_used[i] = k->last_used_at_ms;
    return HL_OK;
}

/* Create two keys, refuse a taken name, update one, revoke it, touch, list. */
static void check_key_lifecycle(hl_store *s) {
    hl_store_key a = {.name = "alice", .prefix = "hl-0123abcd",
                      .hash = "0000000000000000000000000000000000000000000000000000000000000001",
                      .tenant = "team-a", .models = "gpt-4o-mini,llama", .cloud_allowed = true,
                      .budget_day_usd = 1.5, .budget_month_usd = -1, .rpm = 60, .created_at_ms = 1000};
    hl_store_key b = {.name = "bob", .prefix = "hl-9999ffff",
                      .hash = "0000000000000000000000000000000000000000000000000000000000000002",
                      .cloud_allowed = false, .budget_day_usd = -1, .budget_month_usd = -1, .created_at_ms = 2000};
    long long ida = 0, idb = 0;
    HL_REQUIRE(hl_store_key_insert(s, &a, &ida) == HL_OK);
    HL_REQUIRE(hl_store_key_insert(s, &b, &idb) == HL_OK);
    HL_CHECK(ida > 0 && idb > ida);
    hl_store_key dup = b;
    dup.hash = "0000000000000000000000000000000000000000000000000000000000000003";
    HL_CHECK(hl_store_key_insert(s, &dup, NULL) == HL_ERR_INVAL);
    HL_CHECK(strstr(hl_store_errmsg(s), "already exists") != NULL);

    key_seen seen = {0};
    HL_REQUIRE(hl_store_keys_list(s, key_collect, &seen) == HL_OK);
    HL_REQUIRE(seen.n == 2);
    HL_CHECK_STR_EQ(seen.name[0], "alice");
    HL_CHECK_STR_EQ(seen.tenant[0], "team-a");
    HL_CHECK_STR_EQ(seen.models[0], "gpt-4o-mini,llama");
    HL_CHECK(seen.day[0] == 1.5);
    HL_CHECK_INT_EQ(seen.rpm[0], 60);
    HL_CHECK(seen.cloud_allowed[0] && !seen.cloud_allowed[1]);
    HL_CHECK(seen.tenant_null[1]);
    HL_CHECK(seen.day[1] < 0);
    HL_CHECK_STR_EQ(seen.models[1], "(any)");
    HL_CHECK(!seen.revoked[0] && !seen.revoked[1]);

    /* Update: a new budget and no model list; then revoke. */
    a.id = ida;
    a.models = NULL;
    a.budget_day_usd = 2.25;
    HL_CHECK(hl_store_key_update(s, &a) == HL_OK);
    b.id = idb;
    b.revoked = true;
    HL_CHECK(hl_store_key_update(s, &b) == HL_OK);
    hl_store_key ghost = b;
    ghost.id = idb + 100;
    ghost.name = "ghost";
    HL_CHECK(hl_store_key_update(s, &ghost) == HL_ERR_NOTFOUND);
    hl_store_key clash = a;
    clash.name = "bob";
    HL_CHECK(hl_store_key_update(s, &clash) == HL_ERR_INVAL);
    HL_CHECK(hl_store_key_touch(s, ida, 5000) == HL_OK);
    HL_CHECK(hl_store_key_touch(s, ida, 4000) == HL_OK); /* never moves back */

    memset(&seen, 0, sizeof seen);
    HL_REQUIRE(hl_store_keys_list(s, key_collect, &seen) == HL_OK);
    HL_REQUIRE(seen.n == 2);
    HL_CHECK_STR_EQ(seen.name[0], "alice");
    HL_CHECK_STR_EQ(seen.models[0], "(any)");
    HL_CHECK(seen.day[0] == 2.25);
    HL_CHECK_INT_EQ(seen.last_used[0], 5000);
    HL_CHECK_INT_EQ(seen.last_used[1], 0);
    HL_CHECK(!seen.revoked[0] && seen.revoked[1]);
}

typedef struct spend_seen {
    int n;
    long long id[4];
    double day[4], month[4];
} spend_seen;

static void spend_collect(void *ctx, long long key_id, double day_usd, double month_usd) {
    spend_seen *s = ctx;
    if (s->n >= 4) return;
    s->id[s->n] = key_id;
    s->day[s->n] = day_usd;
    s->month[s->n++] = month_usd;
}

/* Cloud spend per key: today's and this month's, local answers and other months left out;
 * key_id and key_name are indexed. journal: a path the helper may write. */
static void check_key_spend(hl_store *s, const char *journal) {
    FILE *f = fopen(journal, "w");
    HL_REQUIRE(f != NULL);
    const char *fmt = "{\"timestamp\":\"%s\",\"source\":\"%s\",\"input_tokens\":1,\"output_tokens\":1,"
                      "\"latency_ms\":1,\"cost_usd\":%s,\"request_id\":\"%s\",\"attempt\":1%s}\n";
    fprintf(f, fmt, "2025-12-06T01:00:00Z", "cloud", "0.5", "a", ",\"key_id\":3,\"key_name\":\"k3\"");
    fprintf(f, fmt, "2025-12-02T01:00:00Z", "cloud", "0.25", "b", ",\"key_id\":3,\"key_name\":\"k3\"");
    fprintf(f, fmt, "2025-11-30T01:00:00Z", "cloud", "4", "c", ",\"key_id\":3,\"key_name\":\"k3\"");
    fprintf(f, fmt, "2025-12-06T02:00:00Z", "local", "9", "d", ",\"key_id\":3,\"key_name\":\"k3\"");
    fprintf(f, fmt, "2025-12-06T03:00:00Z", "cloud", "1", "e", "");
    fprintf(f, fmt, "2025-12-06T04:00:00Z", "cloud", "0.125", "f", ",\"key_id\":4,\"key_name\":\"k4\"");
    fclose(f);
    HL_REQUIRE(hl_store_index(s, journal, NULL) == HL_OK);
    spend_seen seen = {0};
    HL_REQUIRE(hl_store_key_spend(s, 1765000000000LL /* 2025-12-06T05:46Z */, spend_collect, &seen) == HL_OK);
    HL_REQUIRE(seen.n == 2);
    int i3 = seen.id[0] == 3 ? 0 : 1, i4 = 1 - i3;
    HL_CHECK_INT_EQ(seen.id[i3], 3);
    HL_CHECK_INT_EQ(seen.id[i4], 4);
    HL_CHECK(seen.day[i3] == 0.5 && seen.month[i3] == 0.75);
    HL_CHECK(seen.day[i4] == 0.125 && seen.month[i4] == 0.125);
    remove(journal);
}

/* Heartbeats through two connections to one store (two gateways): each sees the other while
 * it is within the window, and its rate limits are divided by what it sees. */
static void check_heartbeat(hl_store *a, hl_store *b) {
    int live = 0;
    long long t = 1700000000000LL, win = 3000; /* three index intervals of 1 s */
    HL_CHECK(hl_store_heartbeat(a, "", t, t - win, &live) == HL_ERR_INVAL);
    HL_REQUIRE(hl_store_heartbeat(a, "gw-a", t, t - win, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 1);
    HL_REQUIRE(hl_store_heartbeat(b, "gw-b", t + 500, t + 500 - win, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 2);
    HL_REQUIRE(hl_store_heartbeat(a, "gw-a", t + 1000, t + 1000 - win, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 2);
    /* each gets half of a key's and a tenant's limit */
    hl_key_budgets *kb = hl_key_budgets_new();
    HL_REQUIRE(kb != NULL);
    hl_key_budgets_set_instances(kb, live);
    hl_key_info k = {.id = 1, .rpm = 10, .budget_day_usd = -1, .budget_month_usd = -1};
    hl_key_rate r;
    int ok = 0;
    for (int i = 0; i < 20; i++) ok += hl_key_budgets_rate(kb, &k, 1, t, &r);
    HL_CHECK_INT_EQ(ok, 5);
    hl_key_budgets_free(kb);
    /* a heartbeat older than now never moves last_seen back */
    HL_REQUIRE(hl_store_heartbeat(b, "gw-b", t, t + 1000 - win, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 2);
    /* b stops: once its last heartbeat is out of a's window, a is alone */
    HL_REQUIRE(hl_store_heartbeat(a, "gw-a", t + 3600, t + 3600 - win, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 1);
}

#endif
