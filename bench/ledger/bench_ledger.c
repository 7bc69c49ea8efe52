/* bench_ledger: how long the SQLite store (and the PostgreSQL one, with HL_BENCH_PG) takes
 * to index a large ledger journal and to report on it (issue 5: "fast on a ledger of 10
 * million records").
 *
 * For each size N it writes N synthetic ledger lines with hl_ledger_format (30 days, 70%
 * local, 5% of requests retried or escalated, 20 tenants, streaming, a few errors), indexes
 * them into a fresh store in one hl_store_index() call, re-runs the index (nothing to do),
 * then times `report` grouped by source, backend, tenant, day and day,source over all of it
 * and by source over the last 7 days, each from the rollups and from the rows (--exact) side
 * by side: medians of HL_BENCH_REPS runs (default 5; rows: HL_BENCH_EXACT_REPS, default 3)
 * and their ratio, and whether both give the same counts.
 *
 *   bench_ledger                 1M records
 *   bench_ledger 200000 5000000  the sizes given
 *   HL_BENCH_10M=1 bench_ledger  1M and 10M (the 10M case takes minutes and ~5 GB of disk)
 *   HL_BENCH_DIR=/var/tmp ...    where the journal and database go (default /tmp)
 *   HL_BENCH_PG=postgresql://... also into that database (its hybridllm tables are dropped
 *                                first), the same journal, side by side
 *   bench_ledger --generate N FILE   only write a journal of N records (to try the CLI on)
 *
 * Build and run: bench/ledger/run.sh (the bench_ledger target, Release). */
#include <libpq-fe.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_report.h"
#include "hl_store.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static double unit(void) {
    return (double)(rng() >> 11) / 9007199254740992.0;
}

static long long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

/* Writes n attempts (not requests: retries count) to path. */
static int generate(const char *path, long long n) {
    static const char *const tenants[] = {"acme", "globex", "initech", "umbrella", "hooli",
        "stark", "wayne", "wonka", "tyrell", "cyberdyne", "soylent", "aperture", "massive",
        "oscorp", "vandelay", "prestige", "dunder", "pied", "bluth", "krusty"};
    static const char *const tasks[] = {"chat", "code", "summarize", "classify", "extract"};
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    static char fbuf[1 << 22];
    setvbuf(f, fbuf, _IOFBF, sizeof fbuf);
    hl_buf b;
    hl_buf_init(&b, 0);
    const double start = 1714521600.0, span = 30 * 86400.0; /* May 2024 */
    char id[40];
    long long req = 0;
    for (long long i = 0; i < n; req++) {
        snprintf(id, sizeof id, "req_%016llx%08llx", (unsigned long long)rng(), (unsigned long long)req);
        bool retried = unit() < 0.05;
        int attempts = retried ? 2 : 1;
        const char *tenant = unit() < 0.1 ? NULL : tenants[rng() % 20];
        const char *task = tasks[rng() % 5];
        bool sensitive = unit() < 0.1;
        for (int a = 1; a <= attempts && i < n; a++, i++) {
            hl_ledger_record r = {0};
            r.timestamp = start + span * (double)i / (double)n + unit() * 2.0;
            r.request_id = id;
            r.attempt = a;
            /* Second attempts are the cloud: escalations and fallbacks. */
            r.cloud = a == 2 ? true : unit() < 0.3;
            bool vllm = unit() < 0.6, anthropic = unit() < 0.5;
            r.backend = r.cloud ? (anthropic ? "anthropic" : "openai") : (vllm ? "vllm" : "llamacpp");
            r.model = r.cloud ? (anthropic ? "claude-3-5-sonnet-20241022" : "gpt-4o") : "llama-3.1-8b-instruct";
            r.route_reason = sensitive ? "rule:privacy" : r.cloud ? "rule:complex" : "rule:default";
            r.status = a == 1 && retried ? (unit() < 0.5 ? "escalated" : "error")
                       : unit() < 0.02 ? "error" : unit() < 0.01 ? "cancelled" : "ok";
            r.tenant = tenant;
            r.task_type = task;
            r.task_inferred = unit() < 0.5;
            r.sensitive = sensitive;
            r.stream = unit() < 0.6;
            long in = 50 + (long)(-log(1 - unit()) * 800), out = 10 + (long)(-log(1 - unit()) * 250);
            r.usage = (hl_usage){.input_tokens = in, .output_tokens = out, .known = true};
            r.latency_ms = (r.cloud ? 400 : 150) + -log(1 - unit()) * (r.cloud ? 1500 : 900);
            r.ttft_ms = r.stream ? r.latency_ms * 0.15 : -1;
            r.confidence = !strcmp(r.status, "escalated") ? 0.4 : -1;
            r.cost_known = true;
            r.cost_usd = r.cloud ? (in * 3.0 + out * 15.0) / 1e6 : r.latency_ms / 3.6e6 * 0.05;
            r.http_status = !strcmp(r.status, "error") ? 529 : 200;
            r.error = !strcmp(r.status, "error") ? "upstream overloaded" : NULL;
            hl_buf_reset(&b);
            if (hl_ledger_format(&r, &b) != HL_OK || fwrite(b.data, 1, b.len, f) != b.len) {
                fclose(f);
                return -1;
            }
        }
    }
    hl_buf_release(&b);
    return fclose(f);
}

static void rm_db(const char *db) {
    char p[600];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median time of reps builds (and renders) of o; *out keeps the last report. */
static double time_report(hl_store *s, const hl_report_opts *o, int reps, hl_report **out) {
    double t[16];
    if (reps > 16) reps = 16;
    *out = NULL;
    for (int i = 0; i < reps; i++) {
        hl_report *r = NULL;
        char err[512];
        double t0 = now_s();
        if (hl_report_build(s, o, &r, err, sizeof err) != HL_OK) {
            fprintf(stderr, "report: %s\n", err);
            return -1;
        }
        hl_buf b;
        hl_buf_init(&b, 0);
        hl_report_render(r, HL_REPORT_TABLE, &b);
        t[i] = now_s() - t0;
        hl_buf_release(&b);
        hl_report_free(*out);
        *out = r;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

/* One report from the rollups and from the rows (--exact), side by side: medians of
 * HL_BENCH_REPS runs (default 5) and of HL_BENCH_EXACT_REPS (default 3), their ratio, and
 * whether the two agree on the counts. */
static int report(hl_store *s, const char *group, long long from, const char *what) {
    static const hl_price price = {"gpt-4o", 2.5, 10, 1.25, 2.5};
    hl_report_opts o;
    hl_report_opts_init(&o);
    o.from_ms = from;
    o.cloud_price = &price;
    if (hl_report_parse_group_by(group, &o) != HL_OK) return 1;
    int reps = getenv("HL_BENCH_REPS") ? atoi(getenv("HL_BENCH_REPS")) : 5;
    int exact_reps = getenv("HL_BENCH_EXACT_REPS") ? atoi(getenv("HL_BENCH_EXACT_REPS")) : 3;
    hl_report *a = NULL, *b = NULL;
    double ta = time_report(s, &o, reps < 1 ? 1 : reps, &a);
    o.exact = true;
    double tb = time_report(s, &o, exact_reps < 1 ? 1 : exact_reps, &b);
    int rc = ta < 0 || tb < 0 || !a || !b || !a->from_rollups;
    if (!rc) {
        bool agree = a->n_rows == b->n_rows && a->total.requests == b->total.requests &&
                     a->total.attempts == b->total.attempts && a->total.input_tokens == b->total.input_tokens &&
                     fabs(a->total.latency_p95_ms - b->total.latency_p95_ms) <= 0.02 * b->total.latency_p95_ms;
        printf("  report %-24s rollups %8.4f s   rows %8.3f s   %7.1fx   (%zu groups, %llu attempts%s)\n", what, ta,
               tb, tb / ta, a->n_rows, a->total.attempts, agree ? "; figures agree" : "; FIGURES DIFFER");
        rc = !agree;
    }
    hl_report_free(a);
    hl_report_free(b);
    return rc;
}

/* Empties the PostgreSQL database at uri of hybridllm's tables, so each run starts fresh. */
static int pg_reset(const char *uri) {
    PGconn *c = PQconnectdb(uri);
    PGresult *r = PQstatus(c) == CONNECTION_OK
                      ? PQexec(c, "SET client_min_messages = warning; DROP VIEW IF EXISTS ledger;"
                                  " DROP TABLE IF EXISTS inferences, journal_state, cloud_spend, schema_version, client_keys,"
                                  " instances, budget_leases, rollups, rollups_day CASCADE;"
                                  " DROP FUNCTION IF EXISTS hybridllm_cloud_spend_add();"
                                  " DROP FUNCTION IF EXISTS hybridllm_hist_add(bigint[], bigint[])")
                      : NULL;
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "%s: %s", uri, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : 1;
}

/* Indexes journal into the store at location (emptied first) and runs the reports. */
static int bench_store(const char *journal, const char *location, bool pg) {
    char where[600];
    hl_store_redact(location, where, sizeof where);
    printf(" -- %s\n", pg ? "PostgreSQL" : "SQLite");
    if (pg ? pg_reset(location) : (rm_db(location), 0)) return 1;
    hl_store *s = NULL;
    char err[512];
    if (hl_store_open(&s, location, err, sizeof err) != HL_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    hl_store_index_stats st;
    double t0 = now_s();
    if (hl_store_index(s, journal, &st) != HL_OK) {
        fprintf(stderr, "index: %s\n", hl_store_errmsg(s));
        hl_store_close(s);
        return 1;
    }
    double dt = now_s() - t0;
    printf("  index (one pass)          %8.2f s  %6.2f M lines/s  (%llu inserted, %llu malformed)\n", dt,
           (double)st.lines / dt / 1e6, st.inserted, st.malformed);
    if (!pg) {
        char wal[600];
        snprintf(wal, sizeof wal, "%s-wal", location);
        printf("  files                     db %.0f MB + wal %.0f MB\n", file_size(location) / 1e6, file_size(wal) / 1e6);
    }
    t0 = now_s();
    hl_store_index(s, journal, &st);
    printf("  index again (no-op)       %8.4f s  (%llu lines)\n", now_s() - t0, st.lines);
    int rc = 0;
    rc |= report(s, "source", HL_STORE_TIME_MIN, "by source");
    rc |= report(s, "backend", HL_STORE_TIME_MIN, "by backend");
    rc |= report(s, "tenant", HL_STORE_TIME_MIN, "by tenant");
    rc |= report(s, "day", HL_STORE_TIME_MIN, "by day");
    rc |= report(s, "day,source", HL_STORE_TIME_MIN, "by day,source");
    rc |= report(s, "source", (1714521600LL + 23 * 86400) * 1000, "by source, last 7 days");
    hl_store_close(s);
    if (!pg && !getenv("HL_BENCH_KEEP")) rm_db(location);
    return rc;
}

static int bench(const char *dir, long long n) {
    char journal[512], db[512];
    snprintf(journal, sizeof journal, "%s/hl_bench_ledger_%lld.jsonl", dir, n);
    snprintf(db, sizeof db, "%s/hl_bench_ledger_%lld.db", dir, n);
    printf("== %lld records ==\n", n);
    double t0 = now_s();
    if (generate(journal, n) != 0) {
        perror(journal);
        return 1;
    }
    printf("  generate journal          %8.2f s  (%.0f MB)\n", now_s() - t0, file_size(journal) / 1e6);
    int rc = bench_store(journal, db, false);
    const char *pg = getenv("HL_BENCH_PG");
    if (pg && *pg) rc |= bench_store(journal, pg, true);
    if (!getenv("HL_BENCH_KEEP")) unlink(journal);
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = getenv("HL_BENCH_DIR") ? getenv("HL_BENCH_DIR") : "/tmp";
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures as they come, also through a pipe */
    int rc = 0;
    if (argc == 4 && !strcmp(argv[1], "--generate")) {
        if (generate(argv[3], atoll(argv[2])) != 0) {
            perror(argv[3]);
            return 1;
        }
        return 0;
    }
    if (argc > 1) {
        for (int i = 1; i < argc; i++) rc |= bench(dir, atoll(argv[i]));
        return rc;
    }
    rc |= bench(dir, 1000000);
    if (getenv("HL_BENCH_10M")) rc |= bench(dir, 10000000);
    else printf("(set HL_BENCH_10M=1 for the 10M-record case)\n");
    return rc;
}
