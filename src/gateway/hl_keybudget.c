/* hl_keybudget: virtual keys' budgets with reservations (see hl_keybudget.h). */
#include "hl_keybudget.h"

#include <pthread.h>
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

struct hl_key_budgets {
    pthread_mutex_t mu;
    entry *v;
    size_t n, cap;
    bool syncing;
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
    if (kb) pthread_mutex_init(&kb->mu, NULL);
    return kb;
}

void hl_key_budgets_free(hl_key_budgets *kb) {
    if (!kb) return;
    pthread_mutex_destroy(&kb->mu);
    free(kb->v);
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

bool hl_key_budgets_rate(hl_key_budgets *kb, const hl_key_info *key, long prompt_tokens, long long now_ms,
                         hl_key_rate *out) {
    memset(out, 0, sizeof *out);
    if (!kb || !key->id || (key->rpm <= 0 && key->tpm <= 0)) return true;
    if (prompt_tokens < 0) prompt_tokens = 0;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key->id, true);
    bool ok = true;
    if (e) {
        double rpm = (double)key->rpm, tpm = (double)key->tpm;
        /* A request larger than a minute's tokens could never pass: it needs a full bucket. */
        double need_tok = tpm > 0 && (double)prompt_tokens > tpm ? tpm : (double)prompt_tokens;
        if (rpm > 0) refill(&e->req, rpm, now_ms);
        if (tpm > 0) refill(&e->tok, tpm, now_ms);
        double wait = 0;
        if (rpm > 0 && e->req.level < 1) wait = secs_to(1 - e->req.level, rpm);
        if (tpm > 0 && e->tok.level < need_tok) {
            double w = secs_to(need_tok - e->tok.level, tpm);
            if (w > wait) wait = w;
        }
        if (wait > 0) {
            ok = false;
            out->retry_after_s = wait;
        } else {
            if (rpm > 0) e->req.level -= 1;
            if (tpm > 0) e->tok.level -= need_tok;
        }
        if (rpm > 0) {
            out->limit_requests = key->rpm;
            out->remaining_requests = e->req.level > 0 ? (long long)e->req.level : 0;
            out->reset_requests_s = secs_to(rpm - e->req.level, rpm);
        }
        if (tpm > 0) {
            out->limit_tokens = key->tpm;
            out->remaining_tokens = e->tok.level > 0 ? (long long)e->tok.level : 0;
            out->reset_tokens_s = secs_to(tpm - e->tok.level, tpm);
        }
    }
    pthread_mutex_unlock(&kb->mu);
    return ok;
}

void hl_key_budgets_rate_charge(hl_key_budgets *kb, const hl_key_info *key, long tokens, long long now_ms) {
    if (!kb || !key->id || key->tpm <= 0 || tokens <= 0) return;
    pthread_mutex_lock(&kb->mu);
    entry *e = find(kb, key->id, true);
    if (e) {
        refill(&e->tok, (double)key->tpm, now_ms);
        e->tok.level -= (double)tokens;
        if (e->tok.level < -(double)key->tpm) e->tok.level = -(double)key->tpm; /* at most a minute's debt */
    }
    pthread_mutex_unlock(&kb->mu);
}
