/* hl_spare: one freed block of a kind kept per thread, for the next allocation of that kind.
 *
 * The gateway allocates a few blocks a request that are larger than glibc's per-thread cache
 * takes (1032 bytes: the exchange, the provider call), so each malloc and free of them went
 * through the arena's bins, coalescing and all: a visible share of a request's CPU at tens of
 * thousands a second. An event loop serves its requests one callback at a time, so the block
 * its last request freed is almost always the one its next request wants.
 *
 * A spare is a static hl_spare per kind, HL_SPARE_INIT(sizeof that kind). hl_spare_calloc()
 * gives a zeroed block of that size (the thread's spare, else calloc: NULL when out of
 * memory); hl_spare_free() keeps the block as the thread's spare, or frees it when the thread
 * holds one already. A thread's spare is freed when the thread exits. Under AddressSanitizer
 * no block is kept (a use after free must stay visible). */
#ifndef HL_SPARE_H
#define HL_SPARE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct hl_spare {
    atomic_int ready;  /* key created */
    pthread_key_t key; /* the thread's spare block, freed at its exit */
    size_t size;
} hl_spare;

#define HL_SPARE_INIT(block_size) {0, 0, (block_size)}

void *hl_spare_calloc(hl_spare *s);
void hl_spare_free(hl_spare *s, void *p);

#endif
