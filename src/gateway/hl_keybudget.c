/* hl_keybudget: virtual keys' budgets with reservations (see hl_keybudget.h). */
#include "hl_keybudget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_time.h"

typedef struct total {
    long long period;          /* UTC day index, or first day of the month */
    double base, transit, local, stage;
} total;

typedef struct bucket {
    double level;              /* what is left; starts full */
    long long at_ms;           /* when level was computed; 0: never used */
} bucket;

typedef struct entry {
    long long id;
    total day, month;
    double reserved;
    bucket req, tok;
} entry;

typedef struct tenant {
    char name[64];
    long rpm, tpm;             /* the fleet's limits (tenants: in the config) */
    bucket req, tok;
} tenant;

struct hl_key_budgets {
    pthread_mutex_t mu;
    entry *v;
    size_t n, cap;
    bool syncing;
    tenant *tenants;
    size_t n_tenants;
    int instances;             /* live gateways sharing the rate limits; >= 1 */
};

static long long day_of(long long ms) { return ms / 86400000; }

static long long month_of(long long ms) {
    int y;
    unsigned m, d;
    hl_time_civil_from_days(day_of(ms), &y, &m, &d);
    return hl_time_days_from_civil(y, m, 1);
}

static double total_of(total *t, long long period) {
    if (t->period != period) memset(t, 0, sizeof *t), t->period = period;
    return t->base + t->transit + t->local;
}

hl_key_budgets *hl_key_budgets_new(void) {
    hl_key_budgets *kb = calloc(1, sizeof *kb);
    if (kb) pthread_mutex_init(&kb->mu, NULL), kb->instances = 1;
    return kb;
}

void hl_key_budgets_free(hl_key_budgets *kb) {
    if (!kb) return;
    pthread_mutex_destroy(&kb->mu);
    free(kb->v);
    free(kb->tenants);
    free(kb);
}

/* The entry of id, created when absent (NULL when out of memory). Under mu. */
static entry *find(hl_key_budgets *kb, long long id, bool create) {
    for (size_t i = 0; i < kb->n; i++)
        if (kb->v[i].id == id) return &kb->v[i];
    if (!create) return NULL;
    if (kb->n == kb->cap) {
        size_t cap = kb->cap ? 2 * kb->cap : 16;
        entry *v = realloc(kb->v, cap * sizeof *v);
        if (!v) return NULL;
        kb->v = v;
        kb->cap = cap;
    }
    entry *e = &kb->v[kb->n++];
    memset(e, 0, sizeof *e);
    e->id = id;
    return e;
}

bool hl_key_budgets_reserve(hl_key_budgets *kb, const hl_key_info *key, double est_usd, long long now_ms,
                            double *spent, double *limit, bool *month) {
    if (!kb || !key->id || (key->budget_day_usd < 0 && key->budget_month_usd < 0)) return true;
    if (est_usd < 0) est_usd = 0;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key->id, true);
    bool ok = true;
    if (e) {
        double d = total_of(&e->day, day_of(now_ms)) + e->reserved;
        double m = total_of(&e->month, month_of(now_ms)) + e->reserved;
        if (key->budget_day_usd >= 0 && d + est_usd > key->budget_day_usd) {
            ok = false;
            *spent = d, *limit = key->budget_day_usd, *month = false;
        } else if (key->budget_month_usd >= 0 && m + est_usd > key->budget_month_usd) {
            ok = false;
            *spent = m, *limit = key->budget_month_usd, *month = true;
        } else {
            e->reserved += est_usd;
        }
    }
    pthread_mutex_unlock(&kb->mu);
    return ok;
}

void hl_key_budgets_release(hl_key_budgets *kb, long long key_id, double est_usd) {
    if (!kb || !key_id) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key_id, false);
    if (e) {
        e->reserved -= est_usd;
        if (e->reserved < 1e-12) e->reserved = 0;
    }
    pthread_mutex_unlock(&kb->mu);
}

void hl_key_budgets_add(hl_key_budgets *kb, long long key_id, double cost_usd, long long now_ms) {
    if (!kb || !key_id || !(cost_usd > 0)) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key_id, true);
    if (e) {
        total_of(&e->day, day_of(now_ms));
        total_of(&e->month, month_of(now_ms));
        e->day.local += cost_usd;
        e->month.local += cost_usd;
    }
    pthread_mutex_unlock(&kb->mu);
}

void hl_key_budgets_spent(hl_key_budgets *kb, long long key_id, long long now_ms, double *day, double *month) {
    *day = *month = 0;
    if (!kb) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key_id, false);
    if (e) {
        *day = total_of(&e->day, day_of(now_ms));
        *month = total_of(&e->month, month_of(now_ms));
    }
    pthread_mutex_unlock(&kb->mu);
}

void hl_key_budgets_sync_begin(hl_key_budgets *kb) {
    if (!kb) return;
    pthread_mutex_lock(&kb->mu);
    for (size_t i = 0; i < kb->n; i++) {
        entry *e = &kb->v[i];
        e->day.transit += e->day.local;
        e->day.local = 0;
        e->month.transit += e->month.local;
        e->month.local = 0;
    }
    kb->syncing = true;
    pthread_mutex_unlock(&kb->mu);
}

typedef struct staged {
    long long id;
    double day, month;
} staged;

typedef struct staging {
    staged *v;
    size_t n, cap;
    bool nomem;
} staging;

static void stage_one(void *ctx, long long key_id, double day_usd, double month_usd) {
    staging *st = ctx;
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        staged *v = realloc(st->v, cap * sizeof *v);
        if (!v) {
            st->nomem = true;
            return;
        }
        st->v = v;
        st->cap = cap;
    }
    st->v[st->n++] = (staged){key_id, day_usd, month_usd};
}

hl_err hl_key_budgets_sync(hl_key_budgets *kb, hl_store *conn, long long now_ms) {
    if (!kb) return HL_OK;
    /* Read without the lock: what is added meanwhile goes to `local`, which the swap leaves. */
    staging st = {0};
    hl_err e = hl_store_key_spend(conn, now_ms, stage_one, &st);
    if (!e && st.nomem) e = HL_ERR_NOMEM;
    long long day = day_of(now_ms), month = month_of(now_ms);
    pthread_mutex_lock(&kb->mu);
    if (!e && kb->syncing) {
        for (size_t i = 0; i < kb->n; i++) {
            entry *x = &kb->v[i];
            total_of(&x->day, day);
            total_of(&x->month, month);
            x->day.base = x->month.base = x->day.transit = x->month.transit = 0;
        }
        for (size_t i = 0; i < st.n; i++) {
            entry *x = find(kb, st.v[i].id, true);
            if (!x) break;
            total_of(&x->day, day);
            total_of(&x->month, month);
            x->day.base = st.v[i].day;
            x->month.base = st.v[i].month;
        }
    }
    kb->syncing = false;
    pthread_mutex_unlock(&kb->mu);
    free(st.v);
    return e;
}

/* Refills b (capacity per minute) up to now. */
static void refill(bucket *b, double per_min, long long now_ms) {
    if (!b->at_ms) b->level = per_min;
    else if (now_ms > b->at_ms) b->level += per_min * (double)(now_ms - b->at_ms) / 60000.0;
    if (b->level > per_min) b->level = per_min;
    if (now_ms > b->at_ms || !b->at_ms) b->at_ms = now_ms;
}

static double secs_to(double missing, double per_min) { return missing <= 0 ? 0 : missing * 60.0 / per_min; }

/* The share of a limit of this instance: limit / live instances, at least 1 (0: no limit). */
static double share(long limit, int instances) {
    if (limit <= 0) return 0;
    double v = (double)limit / (instances > 1 ? instances : 1);
    return v < 1 ? 1 : v;
}

/* Refills req and tok (per minute: rpm, tpm; 0 none) and returns how long until a request of
 * need tokens would pass (0: now). */
static double rate_wait(bucket *req, bucket *tok, double rpm, double tpm, long prompt_tokens, long long now_ms,
                        double *need) {
    /* A request larger than a minute's tokens could never pass: it needs a full bucket. */
    *need = tpm > 0 && (double)prompt_tokens > tpm ? tpm : (double)prompt_tokens;
    if (rpm > 0) refill(req, rpm, now_ms);
    if (tpm > 0) refill(tok, tpm, now_ms);
    double wait = 0;
    if (rpm > 0 && req->level < 1) wait = secs_to(1 - req->level, rpm);
    if (tpm > 0 && tok->level < *need) {
        double w = secs_to(*need - tok->level, tpm);
        if (w > wait) wait = w;
    }
    return wait;
}

static void rate_fill(const bucket *req, const bucket *tok, double rpm, double tpm, hl_key_rate *out) {
    if (rpm > 0) {
        out->limit_requests = (long long)rpm;
        out->remaining_requests = req->level > 0 ? (long long)req->level : 0;
        out->reset_requests_s = secs_to(rpm - req->level, rpm);
    }
    if (tpm > 0) {
        out->limit_tokens = (long long)tpm;
        out->remaining_tokens = tok->level > 0 ? (long long)tok->level : 0;
        out->reset_tokens_s = secs_to(tpm - tok->level, tpm);
    }
}

/* The tenant named name with limits, or NULL. Under mu. */
static tenant *find_tenant(hl_key_budgets *kb, const char *name) {
    if (!name[0]) return NULL;
    for (size_t i = 0; i < kb->n_tenants; i++)
        if (!strcmp(kb->tenants[i].name, name)) return &kb->tenants[i];
    return NULL;
}

bool hl_key_budgets_rate(hl_key_budgets *kb, const hl_key_info *key, long prompt_tokens, long long now_ms,
                         hl_key_rate *out) {
    memset(out, 0, sizeof *out);
    if (!kb || !key->id) return true;
    if (prompt_tokens < 0) prompt_tokens = 0;
    pthread_mutex_lock(&kb->mu);
    int n = kb->instances;
    double rpm = share(key->rpm, n), tpm = share(key->tpm, n);
    entry *e = rpm > 0 || tpm > 0 ? find(kb, key->id, true) : NULL;
    tenant *t = find_tenant(kb, key->tenant);
    double trpm = t ? share(t->rpm, n) : 0, ttpm = t ? share(t->tpm, n) : 0;
    double need = 0, tneed = 0, wait = 0, twait = 0;
    if (e) wait = rate_wait(&e->req, &e->tok, rpm, tpm, prompt_tokens, now_ms, &need);
    if (t) twait = rate_wait(&t->req, &t->tok, trpm, ttpm, prompt_tokens, now_ms, &tneed);
    bool ok = wait <= 0 && twait <= 0;
    if (ok) {
        if (e && rpm > 0) e->req.level -= 1;
        if (e && tpm > 0) e->tok.level -= need;
        if (t && trpm > 0) t->req.level -= 1;
        if (t && ttpm > 0) t->tok.level -= tneed;
    } else {
        out->retry_after_s = wait > twait ? wait : twait;
    }
    /* The headers describe the key's limits, or the tenant's when they refused or the key has
     * none. */
    if (t && (twait > 0 || !e)) rate_fill(&t->req, &t->tok, trpm, ttpm, out);
    else if (e) rate_fill(&e->req, &e->tok, rpm, tpm, out);
    pthread_mutex_unlock(&kb->mu);
    return ok;
}

static void charge(bucket *tok, double tpm, long tokens, long long now_ms) {
    refill(tok, tpm, now_ms);
    tok->level -= (double)tokens;
    if (tok->level < -tpm) tok->level = -tpm; /* at most a minute's debt */
}

void hl_key_budgets_rate_charge(hl_key_budgets *kb, const hl_key_info *key, long tokens, long long now_ms) {
    if (!kb || !key->id || tokens <= 0) return;
    pthread_mutex_lock(&kb->mu);
    int n = kb->instances;
    double tpm = share(key->tpm, n);
    entry *e = tpm > 0 ? find(kb, key->id, true) : NULL;
    if (e) charge(&e->tok, tpm, tokens, now_ms);
    tenant *t = find_tenant(kb, key->tenant);
    if (t && t->tpm > 0) charge(&t->tok, share(t->tpm, n), tokens, now_ms);
    pthread_mutex_unlock(&kb->mu);
}

hl_err hl_key_budgets_set_tenants(hl_key_budgets *kb, const hl_tenant_cfg *v, size_t n) {
    tenant *nt = n ? calloc(n, sizeof *nt) : NULL;
    if (n && !nt) return HL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        snprintf(nt[i].name, sizeof nt[i].name, "%s", v[i].name);
        nt[i].rpm = v[i].rpm;
        nt[i].tpm = v[i].tpm;
    }
    pthread_mutex_lock(&kb->mu);
    /* Buckets of tenants kept by name survive a reload. */
    for (size_t i = 0; i < n; i++) {
        tenant *o = find_tenant(kb, nt[i].name);
        if (o) nt[i].req = o->req, nt[i].tok = o->tok;
    }
    free(kb->tenants);
    kb->tenants = nt;
    kb->n_tenants = n;
    pthread_mutex_unlock(&kb->mu);
    return HL_OK;
}

void hl_key_budgets_set_instances(hl_key_budgets *kb, int live) {
    if (!kb) return;
    pthread_mutex_lock(&kb->mu);
    kb->instances = live > 1 ? live : 1;
    pthread_mutex_unlock(&kb->mu);
}
