/* Tests for the replicas of a backend (hl_backend.h, `replicas: true`): the choice of the
 * replica (two at random, the one with fewer in flight), skipping replicas that are down or
 * whose breaker is open, each replica's own breaker, the in-flight count, and that a backend
 * without replicas keeps its one breaker. No network: the backends are resolved unprobed. */
#include <stdlib.h>
#include <string.h>
#include "hl_backend.h"
#include "hl_config.h"
#include "hl_test.h"

static const char yaml[] =
    "server: {listen: '127.0.0.1:1'}\n"
    "ledger: {path: /tmp/x.jsonl}\n"
    "backends:\n"
    "  - name: pool\n"
    "    kind: openai\n"
    "    location: local\n"
    "    base_url: [http://127.0.0.1:1/v1, http://127.0.0.1:2/v1, http://127.0.0.1:3/v1]\n"
    "    replicas: true\n"
    "    model: m\n"
    "    breaker_failures: 2\n"
    "    breaker_open_ms: 1000\n"
    "  - name: first\n"
    "    kind: openai\n"
    "    location: local\n"
    "    base_url: [http://127.0.0.1:1/v1, http://127.0.0.1:2/v1]\n"
    "    model: m\n"
    "routes: [{name: d, to: [pool]}]\n";

static hl_config *load(const char *text) {
    hl_config *cfg = NULL;
    char err[512] = "";
    if (hl_config_parse("t.yaml", text, strlen(text), &cfg, err, sizeof err) != HL_OK) {
        fprintf(stderr, "  config: %s\n", err);
        return NULL;
    }
    return cfg;
}

/* A simple random sequence for the choices. */
static uint64_t rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

HL_TEST(power_of_two_choices_by_in_flight) {
    hl_config *cfg = load(yaml);
    HL_REQUIRE(cfg);
    hl_backends bs;
    HL_REQUIRE(hl_backends_init(&bs, cfg, false) == HL_OK);
    hl_backend *b = hl_backends_find(&bs, "pool");
    HL_REQUIRE(b && b->n_replicas == 3);
    HL_CHECK_STR_EQ(hl_backend_replica_url(b, 2), "http://127.0.0.1:3/v1");
    HL_CHECK(hl_backend_replica_url(b, -1) == NULL);
    /* 300 attempts held open: each replica gets about a third (never more than one over
     * another: the emptier of any two is taken). */
    uint64_t s = 42;
    int got[3] = {0}, held[300];
    for (int i = 0; i < 300; i++) {
        bool probe = true;
        int r = -2;
        HL_REQUIRE(hl_backend_admit_at(b, 0, rnd(&s), &probe, &r));
        HL_REQUIRE(r >= 0 && r < 3);
        HL_CHECK(!probe);
        got[r]++;
        held[i] = r;
    }
    for (int r = 0; r < 3; r++) HL_CHECK(got[r] >= 90 && got[r] <= 110);
    for (int r = 0; r < 3; r++) HL_CHECK_INT_EQ(atomic_load(&b->replicas[r].in_flight), got[r]);
    for (int i = 0; i < 300; i++) hl_backend_replica_done(b, held[i]);
    for (int r = 0; r < 3; r++) HL_CHECK_INT_EQ(atomic_load(&b->replicas[r].in_flight), 0);

    /* A busy replica is avoided whenever it is drawn with another. */
    atomic_store(&b->replicas[0].in_flight, 50);
    int zero = 0;
    for (int i = 0; i < 200; i++) {
        bool probe;
        int r;
        HL_REQUIRE(hl_backend_admit_at(b, 0, rnd(&s), &probe, &r));
        zero += r == 0;
        hl_backend_replica_done(b, r);
    }
    HL_CHECK_INT_EQ(zero, 0);
    atomic_store(&b->replicas[0].in_flight, 0);
    hl_backends_release(&bs);
    hl_config_free(cfg);
}

HL_TEST(down_and_broken_replicas_are_skipped) {
    hl_config *cfg = load(yaml);
    HL_REQUIRE(cfg);
    hl_backends bs;
    HL_REQUIRE(hl_backends_init(&bs, cfg, false) == HL_OK);
    hl_backend *b = hl_backends_find(&bs, "pool");
    HL_REQUIRE(b);
    uint64_t s = 7;
    /* A connection failure takes replica 1 out at once. */
    hl_backend_suspect_at(b, 1);
    HL_CHECK(!atomic_load(&b->replicas[1].ready));
    HL_CHECK(atomic_load(&b->suspect));
    HL_CHECK(atomic_load(&b->ready));
    /* Two failures open replica 2's breaker (breaker_failures: 2); the backend's stays closed. */
    hl_backend_report_at(b, 2, false, false, 10);
    hl_backend_report_at(b, 2, false, false, 20);
    HL_CHECK_STR_EQ(hl_replica_breaker_name(&b->replicas[2]), "open");
    HL_CHECK_STR_EQ(hl_breaker_state_name(b), "closed");
    for (int i = 0; i < 50; i++) {
        bool probe;
        int r;
        HL_REQUIRE(hl_backend_admit_at(b, 100, rnd(&s), &probe, &r));
        HL_CHECK_INT_EQ(r, 0);
        hl_backend_replica_done(b, r);
    }
    HL_CHECK(hl_backend_breaker_allows(b, 100));
    char why[400];
    HL_CHECK(hl_backend_readiness(b, 100, why, sizeof why));
    /* Replica 0 down too: nothing can take an attempt until the open period ends. */
    hl_backend_suspect_at(b, 0);
    bool probe;
    int r;
    HL_CHECK(!hl_backend_breaker_allows(b, 100));
    HL_CHECK(!hl_backend_admit_at(b, 100, rnd(&s), &probe, &r));
    HL_CHECK(!hl_backend_readiness(b, 100, why, sizeof why));
    /* After breaker_open_ms replica 2 gets one half-open probe; a success closes it. */
    HL_REQUIRE(hl_backend_admit_at(b, 1100, rnd(&s), &probe, &r));
    HL_CHECK_INT_EQ(r, 2);
    HL_CHECK(probe);
    HL_CHECK(!hl_backend_admit_at(b, 1100, rnd(&s), &probe, &r)); /* the one probe is out */
    hl_backend_report_at(b, 2, true, true, 1200);
    hl_backend_replica_done(b, 2);
    HL_CHECK_STR_EQ(hl_replica_breaker_name(&b->replicas[2]), "closed");
    HL_REQUIRE(hl_backend_admit_at(b, 1300, rnd(&s), &probe, &r));
    HL_CHECK(r == 2 && !probe);
    hl_backend_replica_done(b, r);
    /* A latency sample goes to the backend and to the replica. */
    for (int i = 0; i < 16; i++) hl_backend_record_latency_at(b, 2, 10.0 + i);
    HL_CHECK(atomic_load(&b->replicas[2].lat_p95) >= 0 && hl_backend_p95(b) >= 0);
    HL_CHECK(atomic_load(&b->replicas[0].lat_p95) < 0);
    hl_backends_release(&bs);
    hl_config_free(cfg);
}

HL_TEST(a_list_without_replicas_has_one_breaker) {
    hl_config *cfg = load(yaml);
    HL_REQUIRE(cfg);
    hl_backends bs;
    HL_REQUIRE(hl_backends_init(&bs, cfg, false) == HL_OK);
    hl_backend *b = hl_backends_find(&bs, "first");
    HL_REQUIRE(b && b->n_replicas == 0);
    bool probe;
    int r = 5;
    HL_REQUIRE(hl_backend_admit_at(b, 0, 1, &probe, &r));
    HL_CHECK_INT_EQ(r, -1);
    HL_CHECK_STR_EQ(hl_backend_base_url(b), "http://127.0.0.1:1/v1");
    for (int i = 0; i < 5; i++) hl_backend_report_at(b, -1, false, false, i);
    HL_CHECK_STR_EQ(hl_breaker_state_name(b), "open");
    hl_backends_release(&bs);
    hl_config_free(cfg);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The latency p95 is the exact order statistic of the window (rank ceil(0.95 n)), whatever
 * the order and repeats of the samples: checked against a sort at every refresh. */
HL_TEST(latency_p95_is_the_exact_rank_of_the_window) {
    hl_config *cfg = load(yaml);
    HL_REQUIRE(cfg);
    hl_backends bs;
    HL_REQUIRE(hl_backends_init(&bs, cfg, false) == HL_OK);
    hl_backend *b = hl_backends_find(&bs, "first");
    HL_REQUIRE(b);
    double window[128], sorted[128];
    uint64_t s = 7;
    for (int i = 0; i < 600; i++) {
        double ms = (double)(rnd(&s) % (i < 300 ? 40 : 1000)) / 4; /* many repeats, then few */
        window[i % 128] = ms;
        hl_backend_record_latency(b, ms);
        int n = i + 1 < 128 ? i + 1 : 128, head = (i + 1) % 128;
        if (n < 16 || (n < 128 ? head % 8 : head % 64) != 0) continue; /* no refresh */
        memcpy(sorted, window, (size_t)n * sizeof sorted[0]);
        qsort(sorted, (size_t)n, sizeof sorted[0], cmp_double);
        int rank = (n * 95 + 99) / 100; /* ceil(0.95 n) */
        if (hl_backend_p95(b) != sorted[rank - 1]) {
            HL_CHECK(hl_backend_p95(b) == sorted[rank - 1]);
            break;
        }
    }
    hl_backends_release(&bs);
    hl_config_free(cfg);
}

HL_TEST(replicas_config) {
    hl_config *cfg = NULL;
    char err[512];
    const char *bad = "server: {listen: '127.0.0.1:1'}\nledger: {path: /tmp/x.jsonl}\n"
                      "backends:\n  - {name: e, kind: builtin, location: local, model_path: /m.gguf, model: m,\n"
                      "     replicas: true}\nroutes: [{name: d, to: [e]}]\n";
    HL_CHECK(hl_config_parse("t.yaml", bad, strlen(bad), &cfg, err, sizeof err) != HL_OK);
    HL_CHECK(strstr(err, "replicas") != NULL && strstr(err, "t.yaml:4") != NULL);
}

HL_TEST_MAIN()
