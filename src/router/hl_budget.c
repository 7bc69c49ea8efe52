/* hl_budget: spend caps (see hl_budget.h). */
#include "hl_budget.h"

#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hl_buf.h"
#include "hl_ledger.h"

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

/* Replay in two steps: read backwards from the end, timestamps only (hl_ledger_line_time's
 * fast path), to find the first line of the period; then read forwards from there with
 * hl_ledger_read, which validates and deduplicates as every other reader does. */

typedef struct replay {
    hl_budgets *b;
    long long since_ms;
    size_t lines;
} replay;

static hl_err replay_entry(void *ctx, const hl_ledger_entry *e, size_t line_no) {
    (void)line_no;
    replay *rp = ctx;
    if (e->ts_ms < rp->since_ms) return HL_OK;
    rp->lines++;
    if (e->rec.cloud && e->rec.cost_known)
        hl_budgets_add(rp->b, e->rec.tenant, e->rec.cost_usd, (time_t)(e->ts_ms / 1000));
    return HL_OK;
}

/* Walks the lines of block[0..len) from the last one back; sets *start to the offset (in the
 * file: block starts at pos) of the line after the first one older than stop_ms, and *found.
 * The first line of the block, when it may be cut (pos > 0), is left in *carry_len. */
static void scan_block_back(const char *block, size_t len, long long pos, long long stop_ms, long long *start,
                            bool *found, size_t *carry_len) {
    size_t end = len;
    *carry_len = 0;
    while (end > 0) {
        size_t startl = end;
        while (startl > 0 && block[startl - 1] != '\n') startl--;
        if (startl == 0 && pos > 0) {
            *carry_len = end;
            return;
        }
        long long t;
        if (end > startl && hl_ledger_line_time(block + startl, end - startl, &t) == HL_OK && t < stop_ms) {
            *start = pos + (long long)end + 1;
            *found = true;
            return;
        }
        if (startl == 0) return;
        end = startl - 1;
    }
}

/* The offset of the first line at or after stop_ms, reading fd backwards (0 when every line
 * is). Lines after the last '\n' are not looked at: the forward read skips them. */
static hl_err find_start(int fd, long long size, long long stop_ms, long long *start) {
    enum { BLOCK = 1 << 20 };
    hl_buf block;
    hl_buf_init(&block, 0);
    long long pos = size;
    size_t carry = 0;
    bool found = false;
    hl_err rc = HL_OK;
    *start = 0;
    while (pos > 0 && !found && !rc) {
        size_t want = pos > BLOCK ? BLOCK : (size_t)pos;
        pos -= (long long)want;
        /* block = the chunk at pos, then the carried start of a line cut by the last edge */
        if (carry + want > 64u << 20) { /* no newline in 64 MiB: not a ledger */
            rc = HL_ERR_LIMIT;
            break;
        }
        block.len = carry;
        if ((rc = hl_buf_reserve(&block, want))) break;
        memmove(block.data + want, block.data, carry);
        if (pread(fd, block.data, want, (off_t)pos) != (ssize_t)want) {
            rc = HL_ERR_IO;
            break;
        }
        block.len = want + carry;
        scan_block_back(block.data, block.len, pos, stop_ms, start, &found, &carry);
    }
    hl_buf_release(&block);
    return rc;
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
    pthread_mutex_lock(&b->mu); /* a shared store's indexer may be syncing already */
    for (size_t i = 0; i < b->n; i++) roll(&b->v[i], now);
    pthread_mutex_unlock(&b->mu);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return HL_OK; /* no ledger yet */
    struct stat st;
    long long start = 0;
    /* Lines are written when an attempt ends but stamped when it began, so near the period
     * start they are not strictly ordered: read on for an hour past it. */
    hl_err rc = fstat(fd, &st) != 0 ? HL_ERR_IO : find_start(fd, (long long)st.st_size, (since - 3600) * 1000LL, &start);
    close(fd);
    if (rc) return rc;
    replay rp = {.b = b, .since_ms = (long long)since * 1000};
    hl_ledger_read_stats rs;
    char err[256];
    rc = hl_ledger_read(path, start, replay_entry, &rp, &rs, err, sizeof err);
    if (rc == HL_ERR_IO && errno == ENOENT) rc = HL_OK; /* replaced meanwhile */
    *lines = rp.lines;
    return rc;
}
