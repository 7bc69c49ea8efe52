/* Tests for hl_spare: a kept block comes back zeroed, blocks come back last freed first, up
 * to HL_SPARE_MAX a thread are kept and the rest freed, each thread has its own. Under AddressSanitizer nothing is kept (the checks of
 * which block comes back are then left out; the zeroing and the leak check remain). */
#include <pthread.h>
#include <stdint.h>
#include "hl_spare.h"
#include "hl_test.h"

typedef struct block {
    unsigned char bytes[3000];
} block;

static hl_spare spare = HL_SPARE_INIT(sizeof(block));

/* Whether blocks are kept in this build (none under AddressSanitizer). */
#if defined(__SANITIZE_ADDRESS__)
enum { KEPT = 0 };
#else
enum { KEPT = 1 };
#endif

static bool all_zero(const block *b) {
    for (size_t i = 0; i < sizeof b->bytes; i++)
        if (b->bytes[i]) return false;
    return true;
}

HL_TEST(a_kept_block_comes_back_zeroed) {
    block *a = hl_spare_calloc(&spare);
    HL_CHECK(a != NULL && all_zero(a));
    memset(a, 0xab, sizeof *a);
    hl_spare_free(&spare, a);
    block *b = hl_spare_calloc(&spare);
    HL_CHECK(b != NULL && all_zero(b));
    if (KEPT) HL_CHECK(b == a);
    hl_spare_free(&spare, b);
    hl_spare_free(&spare, NULL);
}

/* Two blocks in flight at once (an event loop's usual case), both freed: both come back,
 * the last freed first, zeroed. */
HL_TEST(blocks_come_back_last_freed_first) {
    block *a = hl_spare_calloc(&spare), *b = hl_spare_calloc(&spare);
    HL_CHECK(a && b && a != b);
    memset(a, 1, sizeof *a);
    memset(b, 2, sizeof *b);
    hl_spare_free(&spare, a);
    hl_spare_free(&spare, b);
    block *c = hl_spare_calloc(&spare), *d = hl_spare_calloc(&spare);
    HL_CHECK(c && d && c != d && all_zero(c) && all_zero(d));
    if (KEPT) HL_CHECK(c == b && d == a);
    hl_spare_free(&spare, c);
    hl_spare_free(&spare, d);
}

/* More blocks freed than a thread keeps: the first HL_SPARE_MAX come back (last first), the
 * rest were freed (the leak check of the sanitizer build, which keeps none, would see them). */
HL_TEST(at_most_max_blocks_kept) {
    enum { N = HL_SPARE_MAX + 5 };
    block *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = hl_spare_calloc(&spare);
        HL_CHECK(v[i] != NULL && all_zero(v[i]));
        if (!v[i]) return;
        memset(v[i], 4, sizeof *v[i]); /* the blocks kept by the tests before came back first */
    }
    for (int i = 0; i < N; i++) hl_spare_free(&spare, v[i]);
    for (int i = HL_SPARE_MAX - 1; i >= 0; i--) {
        block *b = hl_spare_calloc(&spare);
        HL_CHECK(b != NULL && all_zero(b));
        if (KEPT) HL_CHECK(b == v[i]);
        v[i] = b;
    }
    for (int i = 0; i < HL_SPARE_MAX; i++) hl_spare_free(&spare, v[i]);
}

static void *thread_keeps_one(void *arg) {
    block *mine = hl_spare_calloc(&spare);
    memset(mine, 3, sizeof *mine);
    hl_spare_free(&spare, mine);
    *(uintptr_t *)arg = (uintptr_t)mine;
    return NULL; /* exits holding its spare: freed by the key's destructor */
}

HL_TEST(each_thread_has_its_own) {
    block *here = hl_spare_calloc(&spare);
    hl_spare_free(&spare, here); /* this thread's spare */
    uintptr_t theirs = 0;
    pthread_t t;
    HL_CHECK(pthread_create(&t, NULL, thread_keeps_one, &theirs) == 0);
    pthread_join(t, NULL);
    block *again = hl_spare_calloc(&spare);
    HL_CHECK(again != NULL && all_zero(again));
    if (KEPT) HL_CHECK(again == here && (uintptr_t)again != theirs); /* not the other thread's */
    hl_spare_free(&spare, again);
}

HL_TEST_MAIN()
