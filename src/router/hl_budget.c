/* hl_budget: spend caps (see hl_budget.h). */
#include "hl_budget.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hl_buf.h"

#define TENANT_SLOTS 4096 /* per per-tenant budget; more tenants than this share one bucket */

/* One running total. Alone, only `local` is used. With a shared store the total is
 * base + transit + local: base is the store's figure at the last sync (every instance's spend
 * that reached the database), transit what this process added before the pass that is now
 * syncing began (on its way into the database), local what it added since. */
typedef struct spend {
    double base, transit, local;
    double stage; /* the next base, filled while a sync reads the store */
} spend;

static double spend_total(const spend *s) { return s->base + s->transit + s->local; }

typedef struct tenant_slot {
    char name[64]; /* "" when free */
    spend spent;
} tenant_slot;

typedef struct budget {
    const hl_budget_cfg *cfg;
    long period;           /* yyyymm or yyyymmdd of the totals held */
    spend spent;           /* global scope */
    tenant_slot *tenants;  /* per-tenant scope */
    spend overflow;        /* spend of tenants that found no free slot */
} budget;

struct hl_budgets {
    pthread_mutex_t mu;
    budget *v;
    size_t n;
};

static long period_of(hl_budget_period p, time_t t) {
    struct tm tm;
    gmtime_r(&t, &tm);
    long ym = (long)(tm.tm_year + 1900) * 100 + tm.tm_mon + 1;
    return p == HL_BUDGET_MONTH ? ym : ym * 100 + tm.tm_mday;
}

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The spend cell of tenant in b (created on first use); caller holds the lock. */
static spend *cell(budget *b, const char *tenant) {
    if (!b->cfg->per_tenant) return &b->spent;
    if (!tenant || strlen(tenant) >= sizeof b->tenants[0].name) return &b->overflow;
    size_t i = hash(tenant) % TENANT_SLOTS;
    for (size_t probes = 0; probes < TENANT_SLOTS; probes++, i = (i + 1) % TENANT_SLOTS) {
        tenant_slot *s = &b->tenants[i];
        if (!s->name[0]) {
            snprintf(s->name, sizeof s->name, "%s", tenant);
            return &s->spent;
        }
        if (!strcmp(s->name, tenant)) return &s->spent;
    }
    return &b->overflow;
}

static bool applies(const budget *b, const char *tenant) {
    return !b->cfg->tenant || (tenant && !strcmp(b->cfg->tenant, tenant));
}

/* Starts a new period when the calendar moved on; caller holds the lock. */
static void roll(budget *b, time_t now) {
    long p = period_of(b->cfg->period, now);
    if (p == b->period) return;
    b->period = p;
    memset(&b->spent, 0, sizeof b->spent);
    memset(&b->overflow, 0, sizeof b->overflow);
    if (b->tenants) memset(b->tenants, 0, TENANT_SLOTS * sizeof *b->tenants);
}

hl_err hl_budgets_new(hl_budgets **out, const hl_config *cfg) {
    *out = NULL;
    if (!cfg->n_budgets) return HL_OK;
    hl_budgets *bs = calloc(1, sizeof *bs);
    if (!bs || !(bs->v = calloc(cfg->n_budgets, sizeof *bs->v))) {
        free(bs);
        return HL_ERR_NOMEM;
    }
    pthread_mutex_init(&bs->mu, NULL);
    bs->n = cfg->n_budgets;
    for (size_t i = 0; i < bs->n; i++) {
        bs->v[i].cfg = &cfg->budgets[i];
        if (cfg->budgets[i].per_tenant && !(bs->v[i].tenants = calloc(TENANT_SLOTS, sizeof(tenant_slot)))) {
            hl_budgets_free(bs);
            return HL_ERR_NOMEM;
        }
    }
    *out = bs;
    return HL_OK;
}

void hl_budgets_free(hl_budgets *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) free(b->v[i].tenants);
    free(b->v);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void hl_budgets_add(hl_budgets *b, const char *tenant, double cost_usd, time_t when) {
    if (!b || !(cost_usd > 0)) return;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n; i++) {
        budget *bu = &b->v[i];
        if (!applies(bu, tenant)) continue;
        if (!bu->period) roll(bu, when);
        if (period_of(bu->cfg->period, when) != bu->period) continue; /* an older period's line */
        cell(bu, tenant)->local += cost_usd;
    }
    pthread_mutex_unlock(&b->mu);
}

const hl_budget_cfg *hl_budgets_exceeded(hl_budgets *b, const char *tenant, time_t now,
                                         double *spent, double *limit) {
    if (!b) return NULL;
    const hl_budget_cfg *hit = NULL;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n && !hit; i++) {
        budget *bu = &b->v[i];
        if (!applies(bu, tenant)) continue;
        roll(bu, now);
        double s = spend_total(cell(bu, tenant));
        if (s >= bu->cfg->limit_usd) {
            hit = bu->cfg;
            *spent = s;
            *limit = bu->cfg->limit_usd;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return hit;
}

double hl_budgets_spent(hl_budgets *b, size_t i, const char *tenant, time_t now) {
    if (!b || i >= b->n) return 0;
    pthread_mutex_lock(&b->mu);
    roll(&b->v[i], now);
    double s = spend_total(cell(&b->v[i], tenant));
    pthread_mutex_unlock(&b->mu);
    return s;
}

/* ---- sync with a shared store ---- */

/* Calls fn on every cell of b; caller holds the lock. */
static void each_cell(budget *b, void (*fn)(spend *)) {
    fn(&b->spent);
    fn(&b->overflow);
    if (b->tenants)
        for (size_t i = 0; i < TENANT_SLOTS; i++)
            if (b->tenants[i].name[0]) fn(&b->tenants[i].spent);
}

static void cell_begin(spend *s) {
    s->transit += s->local;
    s->local = 0;
    s->stage = 0;
}

static void cell_end(spend *s) {
    s->base = s->stage;
    s->transit = 0;
    s->stage = 0;
}

void hl_budgets_sync_begin(hl_budgets *b, time_t now) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n; i++) {
        roll(&b->v[i], now);
        each_cell(&b->v[i], cell_begin);
    }
    pthread_mutex_unlock(&b->mu);
}

void hl_budgets_sync_add(hl_budgets *b, const char *tenant, double day_usd, double month_usd) {
    if (!b) return;
    if (tenant && !*tenant) tenant = NULL;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n; i++) {
        budget *bu = &b->v[i];
        if (!applies(bu, tenant)) continue;
        cell(bu, tenant)->stage += bu->cfg->period == HL_BUDGET_MONTH ? month_usd : day_usd;
    }
    pthread_mutex_unlock(&b->mu);
}

void hl_budgets_sync_end(hl_budgets *b, time_t now) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n; i++) {
        budget *bu = &b->v[i];
        /* A period that ended during the sync: what was read belongs to the old one. */
        if (period_of(bu->cfg->period, now) != bu->period) roll(bu, now);
        else each_cell(bu, cell_end);
    }
    pthread_mutex_unlock(&b->mu);
}

/* ---- ledger replay ---- */

/* Unix time of "YYYY-MM-DDTHH:MM:SS" at the start of a ledger line, or -1. Ledger lines start
 * with {"timestamp":"...", which the ledger module guarantees. */
static time_t line_time(const char *line, size_t n) {
    static const char pre[] = "{\"timestamp\":\"";
    if (n < sizeof pre - 1 + 19 || memcmp(line, pre, sizeof pre - 1) != 0) return -1;
    struct tm tm = {0};
    char ts[20];
    memcpy(ts, line + sizeof pre - 1, 19);
    ts[19] = '\0';
    if (!strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
    return timegm(&tm);
}

static void replay_line(hl_budgets *b, const char *line, size_t n, time_t when) {
    if (!memmem(line, n, "\"source\":\"cloud\"", 16)) return;
    json_t *root = json_loadb(line, n, 0, NULL);
    const json_t *cost = json_object_get(root, "cost_usd");
    if (json_is_number(cost))
        hl_budgets_add(b, json_string_value(json_object_get(root, "tenant")), json_number_value(cost), when);
    json_decref(root);
}

hl_err hl_budgets_load_ledger(hl_budgets *b, const char *path, time_t now, size_t *lines) {
    *lines = 0;
    if (!b) return HL_OK;
    /* The oldest period start any budget needs. */
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].cfg->period == HL_BUDGET_MONTH) tm.tm_mday = 1;
    time_t since = timegm(&tm);
    /* Lines are written when an attempt ends but stamped when it began, so near the period
     * start they are not strictly ordered: read on for an hour past it. */
    time_t stop_before = since - 3600;
    pthread_mutex_lock(&b->mu); /* a shared store's indexer may be syncing already */
    for (size_t i = 0; i < b->n; i++) roll(&b->v[i], now);
    pthread_mutex_unlock(&b->mu);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return HL_OK; /* no ledger yet */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return HL_ERR_IO;
    }
    /* Read backwards in blocks; `carry` holds the start of a line cut by a block edge. */
    enum { BLOCK = 1 << 20 };
    hl_buf carry, block;
    hl_buf_init(&carry, 64u << 20);
    hl_buf_init(&block, 0);
    off_t pos = st.st_size;
    bool done = false;
    hl_err rc = HL_OK;
    while (pos > 0 && !done) {
        size_t want = pos > BLOCK ? BLOCK : (size_t)pos;
        pos -= (off_t)want;
        hl_buf_reset(&block);
        if ((rc = hl_buf_reserve(&block, want + carry.len))) break;
        if (pread(fd, block.data, want, pos) != (ssize_t)want) {
            rc = HL_ERR_IO;
            break;
        }
        block.len = want;
        if ((rc = hl_buf_append(&block, carry.data ? carry.data : "", carry.len))) break;
        hl_buf_reset(&carry);
        /* Lines from the end of the block backwards; the first (partial) one is carried. */
        size_t end = block.len;
        while (end > 0) {
            size_t startl = end;
            while (startl > 0 && block.data[startl - 1] != '\n') startl--;
            if (startl == 0 && pos > 0) {
                rc = hl_buf_append(&carry, block.data, end);
                break;
            }
            size_t n = end - startl;
            if (n > 0 && block.data[startl + n - 1] == '\n') n--;
            if (n > 0) {
                time_t t = line_time(block.data + startl, n);
                if (t >= 0 && t < stop_before) {
                    done = true;
                    break;
                }
                if (t >= since) {
                    replay_line(b, block.data + startl, n, t);
                    (*lines)++;
                }
            }
            end = startl > 0 ? startl - 1 : 0;
            if (startl == 0) break;
        }
        if (rc) break;
    }
    hl_buf_release(&carry);
    hl_buf_release(&block);
    close(fd);
    return rc;
}
