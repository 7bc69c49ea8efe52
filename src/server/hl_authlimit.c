/* hl_authlimit: see hl_authlimit.h. */
#include "hl_authlimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* An address as the table keys it: the family, then 4 bytes (IPv4, IPv4-mapped IPv6
 * included) or the first 8 of an IPv6 address. */
typedef struct addr_key {
    unsigned char b[9];
} addr_key;

typedef struct slot {
    addr_key key;
    bool used;
    int failures;           /* in the window */
    long long window_start; /* ms: the window's first failure */
} slot;

struct hl_authlimit {
    pthread_mutex_t mu;
    slot v[HL_AUTHLIMIT_SLOTS];
};

hl_authlimit *hl_authlimit_new(void) {
    hl_authlimit *l = calloc(1, sizeof *l);
    if (l && pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        l = NULL;
    }
    return l;
}

void hl_authlimit_free(hl_authlimit *l) {
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static bool key_of(const struct sockaddr *sa, addr_key *k) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(k, 0, sizeof *k);
    if (sa->sa_family == AF_INET) {
        k->b[0] = 4;
        memcpy(k->b + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (!memcmp(a, mapped, sizeof mapped)) {
            k->b[0] = 4;
            memcpy(k->b + 1, a + 12, 4);
        } else {
            k->b[0] = 6;
            memcpy(k->b + 1, a, 8);
        }
        return true;
    }
    return false;
}

/* The slot of k with a live window (one that ended is cleared); NULL when none. Under mu. */
static slot *find(hl_authlimit *l, const addr_key *k, long long now_ms) {
    for (size_t i = 0; i < HL_AUTHLIMIT_SLOTS; i++) {
        slot *s = &l->v[i];
        if (!s->used || memcmp(&s->key, k, sizeof *k)) continue;
        if (now_ms - s->window_start >= HL_AUTHLIMIT_WINDOW_MS || now_ms < s->window_start) {
            memset(s, 0, sizeof *s);
            return NULL;
        }
        return s;
    }
    return NULL;
}

bool hl_authlimit_allow(hl_authlimit *l, const struct sockaddr *peer, long long now_ms, long long *retry_ms) {
    addr_key k;
    *retry_ms = 0;
    if (!l || !peer || !key_of(peer, &k)) return true;
    pthread_mutex_lock(&l->mu);
    slot *s = find(l, &k, now_ms);
    bool ok = !s || s->failures < HL_AUTHLIMIT_FAILURES;
    if (!ok) *retry_ms = s->window_start + HL_AUTHLIMIT_WINDOW_MS - now_ms;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void hl_authlimit_failed(hl_authlimit *l, const struct sockaddr *peer, long long now_ms) {
    addr_key k;
    if (!l || !peer || !key_of(peer, &k)) return;
    pthread_mutex_lock(&l->mu);
    slot *s = find(l, &k, now_ms);
    if (!s) {
        /* a free slot, or the one whose window started first (an ended window counts as free) */
        size_t pick = 0;
        for (size_t i = 0; i < HL_AUTHLIMIT_SLOTS; i++) {
            const slot *c = &l->v[i];
            bool ended = !c->used || now_ms - c->window_start >= HL_AUTHLIMIT_WINDOW_MS || now_ms < c->window_start;
            if (ended) {
                pick = i;
                break;
            }
            if (c->window_start < l->v[pick].window_start) pick = i;
        }
        s = &l->v[pick];
        *s = (slot){.key = k, .used = true, .window_start = now_ms};
    }
    if (s->failures < HL_AUTHLIMIT_FAILURES) s->failures++;
    pthread_mutex_unlock(&l->mu);
}
