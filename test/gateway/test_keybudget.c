/* test_keybudget: the budgets of virtual keys' tenants, and the fleet's budget leases
 * (hl_keybudget.h, hl_store.h "budget leases"): the lease arithmetic, and two instances
 * sharing one store (a SQLite file here: the same operations PostgreSQL runs for a fleet;
 * test/integration/keys_fleet.test.mjs runs two gateways on PostgreSQL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_keybudget.h"
#include "hl_store.h"
#include "hl_test.h"

static const long long NOW = 1765000000000LL; /* 2025-12-06T05:46:40Z */

typedef struct tmpdb {
    char dir[64], db[128], journal[128];
} tmpdb;

static hl_store *open_as(tmpdb *t, const char *instance) {
    char err[512];
    hl_store *s = NULL;
    if (hl_store_open(&s, t->db, err, sizeof err) != HL_OK) return NULL;
    if (instance && hl_store_set_instance(s, instance) != HL_OK) abort();
    return s;
}

static void tmp_init(tmpdb *t) {
    snprintf(t->dir, sizeof t->dir, "/tmp/hl_kb_test_XXXXXX");
    if (!mkdtemp(t->dir)) abort();
    snprintf(t->db, sizeof t->db, "%s/k.db", t->dir);
    snprintf(t->journal, sizeof t->journal, "%s/a.jsonl", t->dir);
}

static void tmp_done(tmpdb *t) {
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", t->db, sfx[i]);
        unlink(p);
    }
    unlink(t->journal);
    rmdir(t->dir);
}

static int pokes;
static void count_poke(void *ctx) {
    (void)ctx;
    pokes++;
}

static hl_kb_verdict admit(hl_key_budgets *kb, const hl_key_info *k, double est, hl_kb_ticket *t) {
    hl_kb_refusal why;
    return hl_key_budgets_admit(kb, k, est, NOW, t, &why);
}

/* Admits one request of est on kb, running the store thread's work on conn as a poke asks:
 * ADMIT or REFUSE. */
static hl_kb_verdict admit_fleet(hl_key_budgets *kb, hl_store *conn, const hl_key_info *k, double est) {
    hl_kb_ticket t = {{0, 0}};
    for (int i = 0; i < 10; i++) {
        hl_kb_verdict v = admit(kb, k, est, &t);
        if (v != HL_KB_WAIT) return v;
        hl_key_budgets_lease_work(kb, conn, NOW);
    }
    return HL_KB_WAIT;
}

HL_TEST(lease_arithmetic) {
    /* Room: the tighter cap, less spend, the others' leases and one's own. */
    HL_CHECK_NEAR(hl_store_lease_grant(1.0, -1, 0.2, 0.2, 0.3, 0.1, 5), 0.4, 1e-12);
    HL_CHECK_NEAR(hl_store_lease_grant(1.0, -1, 0.2, 0.2, 0.3, 0.1, 0.25), 0.25, 1e-12);
    HL_CHECK_NEAR(hl_store_lease_grant(1.0, 0.5, 0.1, 0.4, 0, 0, 5), 0.1, 1e-12); /* the month binds */
    HL_CHECK_NEAR(hl_store_lease_grant(1.0, -1, 0.9, 0.9, 0.3, 0, 5), 0, 0);       /* over: nothing */
    HL_CHECK_NEAR(hl_store_lease_grant(-1, -1, 1e9, 1e9, 1e9, 0, 2), 2, 0);        /* no cap */
    HL_CHECK_NEAR(hl_store_lease_grant(1.0, -1, 0, 0, 0, 0, -1), 0, 0);            /* nothing wanted */
    /* Admission against a lease counts reservations and the cost not yet settled. */
    HL_CHECK(hl_key_budgets_lease_fits(1.0, 0.3, 0.4, 0.3));
    HL_CHECK(!hl_key_budgets_lease_fits(1.0, 0.3, 0.4, 0.31));
    HL_CHECK(!hl_key_budgets_lease_fits(0, 0, 0, 0.01));
    /* After a pass a lease keeps its reservations, the unsettled cost and the headroom. */
    HL_CHECK_NEAR(hl_key_budgets_lease_excess(1.0, 0.3, 0.1, 0.2), 0.4, 1e-12);
    HL_CHECK_NEAR(hl_key_budgets_lease_excess(1.0, 0.8, 0.3, 0), 0, 0);
    char subj[64];
    hl_store_lease_subject(12, NULL, subj, sizeof subj);
    HL_CHECK_STR_EQ(subj, "key:12");
    hl_store_lease_subject(0, "team-a", subj, sizeof subj);
    HL_CHECK_STR_EQ(subj, "tenant:team-a");
}

HL_TEST(tenant_budget_holds_all_its_keys) {
    hl_key_budgets *kb = hl_key_budgets_new();
    HL_REQUIRE(kb != NULL);
    char name[] = "team-a";
    hl_tenant_cfg tc = {.name = name, .budget_day_usd = 1.0, .budget_month_usd = -1};
    HL_REQUIRE(hl_key_budgets_set_tenants(kb, &tc, 1) == HL_OK);
    hl_key_info a = {.id = 1, .tenant = "team-a", .budget_day_usd = -1, .budget_month_usd = -1};
    hl_key_info b = {.id = 2, .tenant = "team-a", .budget_day_usd = 5, .budget_month_usd = -1};
    hl_key_info other = {.id = 3, .tenant = "team-b", .budget_day_usd = -1, .budget_month_usd = -1};
    hl_kb_ticket t = {{0, 0}};
    hl_kb_refusal why = {0};
    int admitted = 0;
    for (int i = 0; i < 10; i++) {
        admitted += hl_key_budgets_admit(kb, &a, 0.3, NOW, &t, &why) == HL_KB_ADMIT;
        admitted += hl_key_budgets_admit(kb, &b, 0.3, NOW, &t, &why) == HL_KB_ADMIT;
    }
    HL_CHECK_INT_EQ(admitted, 3); /* 0.9 of the tenant's 1.0, over both keys */
    HL_CHECK(why.tenant && !why.month);
    HL_CHECK_NEAR(why.limit, 1.0, 0);
    /* Another tenant's key is not held by it. */
    HL_CHECK(hl_key_budgets_admit(kb, &other, 0.3, NOW, &t, &why) == HL_KB_ADMIT);
    /* Spend counts too: releasing all and adding 0.8 leaves room for 0.2 only. */
    for (int i = 0; i < 2; i++) hl_key_budgets_release(kb, &a, 0.3);
    hl_key_budgets_release(kb, &b, 0.3);
    hl_key_budgets_add(kb, &b, 0.8, NOW);
    HL_CHECK(hl_key_budgets_admit(kb, &a, 0.3, NOW, &t, &why) == HL_KB_REFUSE);
    HL_CHECK(hl_key_budgets_admit(kb, &a, 0.2, NOW, &t, &why) == HL_KB_ADMIT);
    hl_key_budgets_free(kb);
}

/* Two instances on one store, a key with a day budget of 1.0, requests of 0.3: across both,
 * no more than the cap is ever leased, so three are admitted in all; a fourth waits, then is
 * refused once the store said no. */
HL_TEST(two_instances_share_a_cap_through_leases) {
    tmpdb t;
    tmp_init(&t);
    hl_store *sa = open_as(&t, "a:1"), *sb = open_as(&t, "b:1");
    HL_REQUIRE(sa && sb);
    hl_key_budgets *ka = hl_key_budgets_new(), *kbb = hl_key_budgets_new();
    HL_REQUIRE(ka && kbb);
    hl_key_budgets_set_fleet(ka, count_poke, NULL, 30000);
    hl_key_budgets_set_fleet(kbb, count_poke, NULL, 30000);
    hl_key_info k = {.id = 7, .tenant = "k", .budget_day_usd = 1.0, .budget_month_usd = -1};
    /* Without a lease nothing is admitted at once: the store thread is asked. */
    pokes = 0;
    hl_kb_ticket tk = {{0, 0}};
    HL_CHECK(admit(ka, &k, 0.3, &tk) == HL_KB_WAIT);
    HL_CHECK_INT_EQ(pokes, 1);
    HL_CHECK(admit(ka, &k, 0.3, &tk) == HL_KB_WAIT); /* asked already: no second poke */
    HL_CHECK_INT_EQ(pokes, 1);
    hl_key_budgets_lease_work(ka, sa, NOW);
    HL_CHECK(admit(ka, &k, 0.3, &tk) == HL_KB_ADMIT);
    int admitted = 1, refused = 0;
    for (int i = 0; i < 6; i++) {
        hl_kb_verdict v = admit_fleet(i % 2 ? ka : kbb, i % 2 ? sa : sb, &k, 0.3);
        admitted += v == HL_KB_ADMIT;
        refused += v == HL_KB_REFUSE;
    }
    HL_CHECK_INT_EQ(admitted, 3);
    HL_CHECK_INT_EQ(refused, 4);
    hl_key_budgets_free(ka);
    hl_key_budgets_free(kbb);
    hl_store_close(sa);
    hl_store_close(sb);
    tmp_done(&t);
}

/* The lines an instance's indexer inserts move their cost from its lease to the spend in the
 * same transaction: spend + leases stay what they were. */
HL_TEST(index_pass_settles_the_lease) {
    tmpdb t;
    tmp_init(&t);
    hl_store *sa = open_as(&t, "a:1");
    HL_REQUIRE(sa != NULL);
    hl_key_budgets *ka = hl_key_budgets_new();
    HL_REQUIRE(ka != NULL);
    hl_key_budgets_set_fleet(ka, count_poke, NULL, 30000);
    hl_key_info k = {.id = 7, .tenant = "k", .budget_day_usd = 1.0, .budget_month_usd = -1};
    HL_REQUIRE(admit_fleet(ka, sa, &k, 0.3) == HL_KB_ADMIT);
    HL_REQUIRE(admit_fleet(ka, sa, &k, 0.3) == HL_KB_ADMIT);
    /* One request cost 0.25 (its line written first, then counted), and ended. */
    FILE *f = fopen(t.journal, "w");
    HL_REQUIRE(f != NULL);
    fprintf(f, "{\"timestamp\":\"2025-12-06T05:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
               "\"latency_ms\":1,\"cost_usd\":0.25,\"request_id\":\"r1\",\"attempt\":1,\"key_id\":7,"
               "\"key_name\":\"k\",\"tenant\":\"k\"}\n");
    fclose(f);
    hl_key_budgets_add(ka, &k, 0.25, NOW);
    hl_key_budgets_release(ka, &k, 0.3);
    hl_key_budgets_sync_begin(ka);
    HL_REQUIRE(hl_store_index(sa, t.journal, NULL) == HL_OK);
    /* Before the gateway's sync: the store's lease already lost the 0.25 spent. */
    hl_store *sb = open_as(&t, "b:1");
    HL_REQUIRE(sb != NULL);
    hl_store_lease_ask ask = {.key_id = 7, .cap_day = 1.0, .cap_month = -1, .delta = 5};
    hl_store_lease_result r;
    HL_REQUIRE(hl_store_lease_adjust(sb, &ask, NOW, NOW - 30000, &r) == HL_OK);
    HL_CHECK_NEAR(r.spend_day, 0.25, 1e-12);
    double leased_a = r.others;
    HL_CHECK(leased_a >= 0.6 - 0.25 - 1e-12);
    HL_CHECK_NEAR(r.granted, 1.0 - 0.25 - leased_a, 1e-12); /* the rest, exactly */
    HL_CHECK_NEAR(r.spend_day + r.others + r.lease, 1.0, 1e-12);
    /* The syncs give back what a holds beyond its reservation in flight (the first keeps one
     * interval's reservations as headroom, the second has seen none since). */
    HL_REQUIRE(hl_key_budgets_sync(ka, sa, NOW) == HL_OK);
    hl_key_budgets_sync_begin(ka);
    HL_REQUIRE(hl_key_budgets_sync(ka, sa, NOW) == HL_OK);
    ask.delta = -1e9; /* b gives all back */
    HL_REQUIRE(hl_store_lease_adjust(sb, &ask, NOW, NOW - 30000, &r) == HL_OK);
    HL_CHECK_NEAR(r.lease, 0, 0);
    HL_CHECK_NEAR(r.others, 0.3, 1e-12); /* a still covers its request in flight, no more */
    hl_key_budgets_free(ka);
    hl_store_close(sa);
    hl_store_close(sb);
    tmp_done(&t);
}

/* An instance whose heartbeat stopped loses its leases: their budget returns. */
HL_TEST(dead_instance_lease_is_released) {
    tmpdb t;
    tmp_init(&t);
    hl_store *sa = open_as(&t, "a:1"), *sb = open_as(&t, "b:1");
    HL_REQUIRE(sa && sb);
    hl_store_lease_ask ask = {.key_id = 9, .cap_day = 1.0, .cap_month = -1, .delta = 0.8};
    hl_store_lease_result r;
    HL_REQUIRE(hl_store_lease_adjust(sa, &ask, NOW, NOW - 30000, &r) == HL_OK);
    HL_CHECK_NEAR(r.lease, 0.8, 1e-12);
    /* b, a second later, while a is live: 0.2 left. */
    HL_REQUIRE(hl_store_lease_adjust(sb, &ask, NOW + 1000, NOW + 1000 - 30000, &r) == HL_OK);
    HL_CHECK_NEAR(r.granted, 0.2, 1e-12);
    HL_CHECK_NEAR(r.others, 0.8, 1e-12);
    /* A minute later a has not been seen for longer than the window: its 0.8 is b's to take. */
    long long later = NOW + 60000;
    ask.delta = 0.5;
    HL_REQUIRE(hl_store_lease_adjust(sb, &ask, later, later - 30000, &r) == HL_OK);
    HL_CHECK_NEAR(r.others, 0, 0);
    HL_CHECK_NEAR(r.granted, 0.5, 1e-12);
    HL_CHECK_NEAR(r.lease, 0.7, 1e-12);
    /* A heartbeat expires them too, for every subject. */
    ask.key_id = 10;
    HL_REQUIRE(hl_store_lease_adjust(sa, &ask, later, later - 30000, &r) == HL_OK);
    int live = 0;
    HL_REQUIRE(hl_store_heartbeat(sb, "b:1", later + 60000, later + 30000, &live) == HL_OK);
    HL_CHECK_INT_EQ(live, 1);
    ask.delta = 1.0;
    HL_REQUIRE(hl_store_lease_adjust(sb, &ask, later + 60000, later + 30000, &r) == HL_OK);
    HL_CHECK_NEAR(r.granted, 1.0, 1e-12);
    hl_store_close(sa);
    hl_store_close(sb);
    tmp_done(&t);
}

/* A store without an instance id takes no leases. */
HL_TEST(lease_needs_an_instance) {
    tmpdb t;
    tmp_init(&t);
    hl_store *s = open_as(&t, NULL);
    HL_REQUIRE(s != NULL);
    hl_store_lease_ask ask = {.key_id = 1, .cap_day = 1.0, .cap_month = -1, .delta = 0.5};
    hl_store_lease_result r;
    HL_CHECK(hl_store_lease_adjust(s, &ask, NOW, NOW - 1000, &r) == HL_ERR_INVAL);
    HL_CHECK(hl_store_set_instance(s, "") == HL_OK);
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    HL_CHECK(hl_store_set_instance(s, big) == HL_ERR_INVAL);
    hl_store_close(s);
    tmp_done(&t);
}


HL_TEST_MAIN()
