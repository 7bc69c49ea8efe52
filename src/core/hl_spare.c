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

static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;

/* The key, created on first use; false when the system has no key left (then every block is
 * simply allocated and freed). */
static bool key_ready(hl_spare *s) {
    if (SPARE_OFF) return false;
    int r = atomic_load_explicit(&s->ready, memory_order_acquire);
    if (r) return r > 0;
    pthread_mutex_lock(&create_mu);
    if (!atomic_load_explicit(&s->ready, memory_order_relaxed))
        atomic_store_explicit(&s->ready, pthread_key_create(&s->key, free) == 0 ? 1 : -1, memory_order_release);
    pthread_mutex_unlock(&create_mu);
    return atomic_load_explicit(&s->ready, memory_order_relaxed) > 0;
}

void *hl_spare_calloc(hl_spare *s) {
    if (!key_ready(s)) return calloc(1, s->size);
    void *p = pthread_getspecific(s->key);
    if (!p) return calloc(1, s->size);
    pthread_setspecific(s->key, NULL);
    return memset(p, 0, s->size);
}

void hl_spare_free(hl_spare *s, void *p) {
    if (!p) return;
    if (key_ready(s) && !pthread_getspecific(s->key) && pthread_setspecific(s->key, p) == 0) return;
    free(p);
}
