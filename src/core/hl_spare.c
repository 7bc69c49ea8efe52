/* hl_spare: see hl_spare.h. */
#include "hl_spare.h"

#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer every block is freed for real, so that a use after free is caught. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_OFF 1
#endif
#endif
#ifndef SPARE_OFF
#define SPARE_OFF 0
#endif

/* A thread's kept blocks of one kind: v[0..n), the last freed on top. */
typedef struct kept {
    size_t n;
    void *v[HL_SPARE_MAX];
} kept;

static void kept_free(void *p) {
    kept *k = p;
    for (size_t i = 0; i < k->n; i++) free(k->v[i]);
    free(k);
}

static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;

/* The key, created on first use; false when the system has no key left (then every block is
 * simply allocated and freed). */
static bool key_ready(hl_spare *s) {
    if (SPARE_OFF) return false;
    int r = atomic_load_explicit(&s->ready, memory_order_acquire);
    if (r) return r > 0;
    pthread_mutex_lock(&create_mu);
    if (!atomic_load_explicit(&s->ready, memory_order_relaxed))
        atomic_store_explicit(&s->ready, pthread_key_create(&s->key, kept_free) == 0 ? 1 : -1, memory_order_release);
    pthread_mutex_unlock(&create_mu);
    return atomic_load_explicit(&s->ready, memory_order_relaxed) > 0;
}

void *hl_spare_calloc(hl_spare *s) {
    kept *k = key_ready(s) ? pthread_getspecific(s->key) : NULL;
    if (!k || !k->n) return calloc(1, s->size);
    return memset(k->v[--k->n], 0, s->size);
}

void hl_spare_free(hl_spare *s, void *p) {
    if (!p) return;
    if (key_ready(s)) {
        kept *k = pthread_getspecific(s->key);
        if (!k && (k = calloc(1, sizeof *k)) && pthread_setspecific(s->key, k) != 0) {
            free(k);
            k = NULL;
        }
        if (k && k->n < HL_SPARE_MAX) {
            k->v[k->n++] = p;
            return;
        }
    }
    free(p);
}
