/* hl_health: warm-up, re-probing and keep-warm pings (see hl_health.h). */
#include "hl_health.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>
#include "hl_log.h"
#include "hl_time.h"

struct hl_health {
    hl_backends *bs;
    const hl_config *cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void ping_and_log(hl_backend *b, const char *why) {
    double ms = hl_backend_ping(b);
    if (ms >= 0) {
        atomic_store(&b->warm, true);
        hl_log(HL_LOG_INFO, "backend %s: %s completion took %.0f ms", b->cfg->name, why, ms);
    } else {
        hl_log(HL_LOG_WARN, "backend %s: %s completion failed", b->cfg->name, why);
    }
}

void hl_health_warmup(hl_backends *bs) {
    for (size_t i = 0; i < bs->n; i++) {
        hl_backend *b = &bs->v[i];
        /* builtin backends warm themselves up when they load */
        if (b->cfg->warmup == HL_YES && atomic_load(&b->ready) && !b->builtin) ping_and_log(b, "warm-up");
    }
}

/* Wakes every TICK_MS (or health_interval_ms when shorter): backends a request found
 * unreachable (suspect) are probed at once, the others every health_interval_ms. */
#define TICK_MS 200

static void *health_main(void *arg) {
    hl_health *h = arg;
    long interval = h->cfg->health_interval_ms;
    long tick = interval < TICK_MS ? interval : TICK_MS;
    double next_round = (double)uv_hrtime() / 1e6 + (double)interval;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec until = hl_time_after(CLOCK_REALTIME, tick);
        pthread_cond_timedwait(&h->cv, &h->mu, &until);
        if (h->stop) break;
        pthread_mutex_unlock(&h->mu);
        double now = (double)uv_hrtime() / 1e6;
        bool round = now >= next_round;
        if (round) next_round = now + (double)interval;
        for (size_t i = 0; i < h->bs->n; i++) {
            hl_backend *b = &h->bs->v[i];
            bool ready = atomic_load(&b->ready);
            bool due = atomic_load(&b->suspect) || (round && (!ready || hl_backend_probes_when_ready(b)));
            if (due) {
                bool now_ready = hl_backend_reprobe(b, h->cfg);
                char st[320];
                hl_backend_status(b, st, sizeof st);
                if (now_ready && !ready) {
                    pthread_mutex_lock(&b->mu);
                    hl_log(HL_LOG_INFO, "backend %s is ready now (%s, model %s)", b->cfg->name, b->base_url, b->model);
                    pthread_mutex_unlock(&b->mu);
                    if (b->cfg->warmup == HL_YES) ping_and_log(b, "warm-up");
                } else if (!now_ready && ready) {
                    hl_log(HL_LOG_WARN, "backend %s is not ready: %s", b->cfg->name, st);
                }
                if (!now_ready) continue;
            }
            if (!round || !atomic_load(&b->ready)) continue;
            if (b->cfg->keep_warm_ms > 0 && !b->builtin && now - atomic_load(&b->last_used_ms) >= (double)b->cfg->keep_warm_ms) {
                atomic_store(&b->last_used_ms, now);
                ping_and_log(b, "keep-warm");
            }
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

hl_err hl_health_start(hl_health **out, hl_backends *bs, const hl_config *cfg) {
    hl_health *h = calloc(1, sizeof *h);
    if (!h) return HL_ERR_NOMEM;
    h->bs = bs;
    h->cfg = cfg;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
        return HL_ERR_IO;
    }
    *out = h;
    return HL_OK;
}

void hl_health_stop(hl_health *h) {
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
