/* hl_keybudget: virtual keys' budgets with reservations (see hl_keybudget.h). */
#include "hl_keybudget.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_log.h"
#include "hl_time.h"

typedef struct total {
    long long period;          /* UTC day index, or first day of the month */
    double base, transit, local, stage;
} total;

typedef struct bucket {
    double level;              /* what is left; starts full */
    long long at_ms;           /* when level was computed; 0: never used */
} bucket;

/* A budget's running figures: a key's or a tenant's. */
typedef struct purse {
    total day, month;
    double reserved;           /* admitted requests' reservations not yet released */
    /* Fleet only (hl_key_budgets_set_fleet): */
    double lease;              /* this instance's lease in the store, as last read or granted */
    double pend_transit, pend_local; /* cost added here, not yet settled (transit: before the
                                  pass now syncing began) */
    double want;               /* budget admissions wait for, not yet asked of the store */
    double recent;             /* reserved since the last pass: the headroom asked and kept */
    double cap_day, cap_month; /* the budgets, for the store thread; < 0: none */
    unsigned long long started, served; /* store rounds begun / done for this purse */
    bool short_;               /* the last round done could not grant all it asked */
    bool leased;               /* the store thread looks after this purse's lease */
} purse;

typedef struct entry {
    long long id;
    purse p;
    bucket req, tok;
} entry;

typedef struct tenant {
    char name[64];
    long rpm, tpm;             /* the fleet's limits (tenants: in the config) */
    double budget_day, budget_month; /* < 0: none */
    purse p;
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
    /* Fleet: */
    void (*poke)(void *ctx);
    void *poke_ctx;
    long long live_window_ms;
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

/* The tenant named name with limits or budgets, or NULL. Under mu. */
static tenant *find_tenant(hl_key_budgets *kb, const char *name) {
    if (!name[0]) return NULL;
    for (size_t i = 0; i < kb->n_tenants; i++)
        if (!strcmp(kb->tenants[i].name, name)) return &kb->tenants[i];
    return NULL;
}

bool hl_key_budgets_lease_fits(double lease, double reserved, double unsettled, double est) {
    return reserved + unsettled + est <= lease + 1e-9;
}

double hl_key_budgets_lease_excess(double lease, double reserved, double unsettled, double keep) {
    double x = lease - reserved - unsettled - (keep > 0 ? keep : 0);
    return x > 1e-9 ? x : 0;
}

/* What one purse says of a reservation of est: ADMIT (nothing taken yet), REFUSE (*why
 * filled) or WAIT (the missing budget asked of the store). Under mu. */
static hl_kb_verdict purse_check(hl_key_budgets *kb, purse *p, double cap_day, double cap_month, double est,
                                 long long now_ms, unsigned long long *round, hl_kb_refusal *why, bool *asked) {
    double d = total_of(&p->day, day_of(now_ms)) + p->reserved;
    double m = total_of(&p->month, month_of(now_ms)) + p->reserved;
    if (cap_day >= 0 && d + est > cap_day) {
        *why = (hl_kb_refusal){d, cap_day, false, false};
        return HL_KB_REFUSE;
    }
    if (cap_month >= 0 && m + est > cap_month) {
        *why = (hl_kb_refusal){m, cap_month, true, false};
        return HL_KB_REFUSE;
    }
    if (!kb->poke) return HL_KB_ADMIT;
    p->leased = true;
    p->cap_day = cap_day;
    p->cap_month = cap_month;
    if (hl_key_budgets_lease_fits(p->lease, p->reserved, p->pend_transit + p->pend_local, est)) return HL_KB_ADMIT;
    if (*round && p->served >= *round) {
        /* The round that served this request's ask is done and it still does not fit. */
        if (p->short_) {
            double leased = p->reserved + p->pend_transit + p->pend_local;
            bool month = cap_day < 0 || (cap_month >= 0 && cap_month - m < cap_day - d);
            *why = (hl_kb_refusal){(month ? m - p->reserved : d - p->reserved) + leased, month ? cap_month : cap_day,
                                   month, false};
            return HL_KB_REFUSE;
        }
        *round = 0; /* granted, but others here took it: ask again */
    }
    if (!*round) {
        p->want += est;
        *round = p->started + 1;
        *asked = true;
    }
    return HL_KB_WAIT;
}

hl_kb_verdict hl_key_budgets_admit(hl_key_budgets *kb, const hl_key_info *key, double est_usd, long long now_ms,
                                   hl_kb_ticket *ticket, hl_kb_refusal *why) {
    if (!kb || !key->id) return HL_KB_ADMIT;
    if (est_usd < 0) est_usd = 0;
    bool key_budget = key->budget_day_usd >= 0 || key->budget_month_usd >= 0;
    pthread_mutex_lock(&kb->mu);
    tenant *t = find_tenant(kb, key->tenant);
    if (t && t->budget_day < 0 && t->budget_month < 0) t = NULL;
    entry *e = key_budget ? find(kb, key->id, true) : NULL;
    hl_kb_verdict v = HL_KB_ADMIT, vt = HL_KB_ADMIT;
    bool asked = false;
    if (e) v = purse_check(kb, &e->p, key->budget_day_usd, key->budget_month_usd, est_usd, now_ms, &ticket->round[0],
                           why, &asked);
    if (v != HL_KB_REFUSE && t) {
        hl_kb_refusal tw;
        vt = purse_check(kb, &t->p, t->budget_day, t->budget_month, est_usd, now_ms, &ticket->round[1], &tw, &asked);
        if (vt == HL_KB_REFUSE) *why = tw, why->tenant = true, v = HL_KB_REFUSE;
        else if (vt == HL_KB_WAIT) v = HL_KB_WAIT;
    }
    if (v == HL_KB_ADMIT) {
        if (e) e->p.reserved += est_usd, e->p.recent += est_usd;
        if (t) t->p.reserved += est_usd, t->p.recent += est_usd;
        *ticket = (hl_kb_ticket){{0, 0}};
    }
    bool poke = asked && kb->poke;
    void (*fn)(void *) = kb->poke;
    void *ctx = kb->poke_ctx;
    pthread_mutex_unlock(&kb->mu);
    if (poke) fn(ctx);
    return v;
}

static void unreserve(purse *p, double est) {
    p->reserved -= est;
    if (p->reserved < 1e-12) p->reserved = 0;
}

void hl_key_budgets_release(hl_key_budgets *kb, const hl_key_info *key, double est_usd) {
    if (!kb || !key->id) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key->id, false);
    if (e) unreserve(&e->p, est_usd);
    tenant *t = find_tenant(kb, key->tenant);
    if (t && (t->budget_day >= 0 || t->budget_month >= 0)) unreserve(&t->p, est_usd);
    pthread_mutex_unlock(&kb->mu);
}

static void purse_add(purse *p, double cost_usd, long long now_ms) {
    total_of(&p->day, day_of(now_ms));
    total_of(&p->month, month_of(now_ms));
    p->day.local += cost_usd;
    p->month.local += cost_usd;
    p->pend_local += cost_usd;
}

void hl_key_budgets_add(hl_key_budgets *kb, const hl_key_info *key, double cost_usd, long long now_ms) {
    if (!kb || !key->id || !(cost_usd > 0)) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key->id, true);
    if (e) purse_add(&e->p, cost_usd, now_ms);
    tenant *t = find_tenant(kb, key->tenant);
    if (t) purse_add(&t->p, cost_usd, now_ms);
    pthread_mutex_unlock(&kb->mu);
}

void hl_key_budgets_spent(hl_key_budgets *kb, long long key_id, long long now_ms, double *day, double *month) {
    *day = *month = 0;
    if (!kb) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key_id, false);
    if (e) {
        *day = total_of(&e->p.day, day_of(now_ms));
        *month = total_of(&e->p.month, month_of(now_ms));
    }
    pthread_mutex_unlock(&kb->mu);
}

static void purse_begin(purse *p) {
    p->day.transit += p->day.local;
    p->day.local = 0;
    p->month.transit += p->month.local;
    p->month.local = 0;
    p->pend_transit += p->pend_local;
    p->pend_local = 0;
}

void hl_key_budgets_sync_begin(hl_key_budgets *kb) {
    if (!kb) return;
    pthread_mutex_lock(&kb->mu);
    for (size_t i = 0; i < kb->n; i++) purse_begin(&kb->v[i].p);
    for (size_t i = 0; i < kb->n_tenants; i++) purse_begin(&kb->tenants[i].p);
    kb->syncing = true;
    pthread_mutex_unlock(&kb->mu);
}

/* What the store said, read before taking the lock: spend per key and tenant, leases. */
typedef struct staged {
    long long id;              /* 0: a tenant */
    char name[200];            /* the tenant; or the lease's subject */
    double day, month;
} staged;

typedef struct staging {
    staged *v;
    size_t n, cap;
    bool nomem;
} staging;

static staged *stage_push(staging *st) {
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        staged *v = realloc(st->v, cap * sizeof *v);
        if (!v) {
            st->nomem = true;
            return NULL;
        }
        st->v = v;
        st->cap = cap;
    }
    staged *x = &st->v[st->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void stage_key(void *ctx, long long key_id, double day_usd, double month_usd) {
    staged *x = stage_push(ctx);
    if (x) x->id = key_id, x->day = day_usd, x->month = month_usd;
}

static void stage_tenant(void *ctx, const char *name, double day_usd, double month_usd) {
    staged *x = stage_push(ctx);
    if (x) snprintf(x->name, sizeof x->name, "%s", name), x->day = day_usd, x->month = month_usd;
}

static void stage_lease(void *ctx, const char *subject, double amount) {
    staged *x = stage_push(ctx);
    if (x) snprintf(x->name, sizeof x->name, "%s", subject), x->day = amount;
}

static void purse_rebase(purse *p, long long day, long long month) {
    total_of(&p->day, day);
    total_of(&p->month, month);
    p->day.base = p->month.base = p->day.transit = p->month.transit = 0;
}

/* The lease of subject as read after the pass (0 when it has none). Under mu. */
static double lease_of(const staging *ls, const char *subject) {
    for (size_t i = 0; i < ls->n; i++)
        if (!strcmp(ls->v[i].name, subject)) return ls->v[i].day;
    return 0;
}

static void apply_sync(hl_key_budgets *kb, const staging *st, const staging *ls, long long now_ms) {
    long long day = day_of(now_ms), month = month_of(now_ms);
    for (size_t i = 0; i < kb->n; i++) purse_rebase(&kb->v[i].p, day, month);
    for (size_t i = 0; i < kb->n_tenants; i++) purse_rebase(&kb->tenants[i].p, day, month);
    for (size_t i = 0; i < st->n; i++) {
        purse *p = NULL;
        if (st->v[i].id) {
            entry *x = find(kb, st->v[i].id, true);
            if (!x) break;
            p = &x->p;
        } else {
            tenant *t = find_tenant(kb, st->v[i].name);
            if (!t) continue;
            p = &t->p;
        }
        total_of(&p->day, day);
        total_of(&p->month, month);
        p->day.base = st->v[i].day;
        p->month.base = st->v[i].month;
    }
    if (!ls) return;
    /* The leases as the pass left them: the lines it inserted were settled against them. */
    char subj[200];
    for (size_t i = 0; i < kb->n; i++) {
        hl_store_lease_subject(kb->v[i].id, NULL, subj, sizeof subj);
        kb->v[i].p.lease = lease_of(ls, subj);
        kb->v[i].p.pend_transit = 0;
    }
    for (size_t i = 0; i < kb->n_tenants; i++) {
        hl_store_lease_subject(0, kb->tenants[i].name, subj, sizeof subj);
        kb->tenants[i].p.lease = lease_of(ls, subj);
        kb->tenants[i].p.pend_transit = 0;
    }
}

static void give_back(hl_key_budgets *kb, hl_store *conn, long long now_ms);

hl_err hl_key_budgets_sync(hl_key_budgets *kb, hl_store *conn, long long now_ms) {
    if (!kb) return HL_OK;
    /* Read without the lock: what is added meanwhile goes to `local`, which the swap leaves. */
    staging st = {0}, ls = {0};
    pthread_mutex_lock(&kb->mu);
    bool fleet = kb->poke != NULL, tenants = kb->n_tenants > 0;
    pthread_mutex_unlock(&kb->mu);
    hl_err e = hl_store_key_spend(conn, now_ms, stage_key, &st);
    if (!e && tenants) e = hl_store_cloud_spend(conn, now_ms, stage_tenant, &st);
    if (!e && fleet) e = hl_store_leases_mine(conn, stage_lease, &ls);
    if (!e && (st.nomem || ls.nomem)) e = HL_ERR_NOMEM;
    pthread_mutex_lock(&kb->mu);
    if (!e && kb->syncing) apply_sync(kb, &st, fleet ? &ls : NULL, now_ms);
    kb->syncing = false;
    pthread_mutex_unlock(&kb->mu);
    free(st.v);
    free(ls.v);
    if (!e && fleet) give_back(kb, conn, now_ms);
    return e;
}

/* ---- fleet: leases ---- */

void hl_key_budgets_set_fleet(hl_key_budgets *kb, void (*poke)(void *ctx), void *ctx, long long live_window_ms) {
    if (!kb) return;
    pthread_mutex_lock(&kb->mu);
    kb->poke = poke;
    kb->poke_ctx = ctx;
    kb->live_window_ms = live_window_ms;
    pthread_mutex_unlock(&kb->mu);
}

/* One change of a lease the store thread makes, prepared under mu and done without it. */
typedef struct lease_job {
    long long key_id;
    char tenant[64];
    double cap_day, cap_month;
    double delta, extra;
    unsigned long long round;
} lease_job;

/* The purse a job is for, or NULL when it went away meanwhile. Under mu. */
static purse *job_purse(hl_key_budgets *kb, const lease_job *j) {
    if (j->key_id) {
        entry *e = find(kb, j->key_id, false);
        return e ? &e->p : NULL;
    }
    tenant *t = find_tenant(kb, j->tenant);
    return t ? &t->p : NULL;
}

/* Collects the jobs: asks (want > 0) or, after a pass, give-backs. Under mu. */
static size_t collect_jobs(hl_key_budgets *kb, lease_job *jobs, size_t max, bool asks) {
    size_t n = 0;
    for (size_t i = 0; i < kb->n + kb->n_tenants && n < max; i++) {
        bool is_key = i < kb->n;
        purse *p = is_key ? &kb->v[i].p : &kb->tenants[i - kb->n].p;
        if (!p->leased) continue;
        lease_job j = {.key_id = is_key ? kb->v[i].id : 0, .cap_day = p->cap_day, .cap_month = p->cap_month};
        if (!is_key) snprintf(j.tenant, sizeof j.tenant, "%s", kb->tenants[i - kb->n].name);
        if (asks) {
            if (!(p->want > 0)) continue;
            j.delta = p->want;
            j.extra = p->recent; /* headroom: one interval's reservations so far */
            p->want = 0;
            j.round = ++p->started;
        } else {
            double x = hl_key_budgets_lease_excess(p->lease, p->reserved, p->pend_transit + p->pend_local, p->recent);
            p->recent = 0;
            if (!(x > 0)) continue;
            j.delta = -x;
            p->lease -= x; /* no admission may count on it from now */
        }
        jobs[n++] = j;
    }
    return n;
}

enum { MAX_JOBS = 64 };

/* Runs the jobs against the store and applies the outcomes. */
static void run_jobs(hl_key_budgets *kb, hl_store *conn, lease_job *jobs, size_t n, long long now_ms) {
    pthread_mutex_lock(&kb->mu);
    long long since = now_ms - kb->live_window_ms;
    int live = kb->instances;
    pthread_mutex_unlock(&kb->mu);
    for (size_t i = 0; i < n; i++) {
        lease_job *j = &jobs[i];
        hl_store_lease_ask a = {.key_id = j->key_id, .tenant = j->tenant, .cap_day = j->cap_day,
                                .cap_month = j->cap_month, .delta = j->delta, .extra = j->extra, .sharers = live};
        hl_store_lease_result r;
        hl_err e = hl_store_lease_adjust(conn, &a, now_ms, since, &r);
        if (e) hl_log(HL_LOG_WARN, "keys: cannot change a budget lease: %s", hl_store_errmsg(conn));
        pthread_mutex_lock(&kb->mu);
        purse *p = job_purse(kb, j);
        if (p && !e) p->lease = r.lease;
        if (p && j->delta > 0) {
            p->short_ = e || r.granted < j->delta - 1e-12;
            if (j->round > p->served) p->served = j->round;
        }
        pthread_mutex_unlock(&kb->mu);
    }
}

void hl_key_budgets_lease_work(hl_key_budgets *kb, hl_store *conn, long long now_ms) {
    if (!kb) return;
    lease_job jobs[MAX_JOBS];
    for (;;) {
        pthread_mutex_lock(&kb->mu);
        size_t n = kb->poke ? collect_jobs(kb, jobs, MAX_JOBS, true) : 0;
        pthread_mutex_unlock(&kb->mu);
        if (!n) return;
        run_jobs(kb, conn, jobs, n, now_ms);
    }
}

static void give_back(hl_key_budgets *kb, hl_store *conn, long long now_ms) {
    lease_job jobs[MAX_JOBS];
    pthread_mutex_lock(&kb->mu);
    size_t n = collect_jobs(kb, jobs, MAX_JOBS, false);
    pthread_mutex_unlock(&kb->mu);
    run_jobs(kb, conn, jobs, n, now_ms);
    hl_key_budgets_lease_work(kb, conn, now_ms); /* asks made meanwhile */
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
        nt[i].budget_day = isnan(v[i].budget_day_usd) ? -1 : v[i].budget_day_usd;
        nt[i].budget_month = isnan(v[i].budget_month_usd) ? -1 : v[i].budget_month_usd;
    }
    pthread_mutex_lock(&kb->mu);
    /* Buckets of tenants kept by name survive a reload. */
    for (size_t i = 0; i < n; i++) {
        tenant *o = find_tenant(kb, nt[i].name);
        if (o) nt[i].req = o->req, nt[i].tok = o->tok, nt[i].p = o->p;
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
