/* hl_spare: freed blocks of a kind kept per thread, up to HL_SPARE_MAX, for the next
 * allocations of that kind.
 *
 * The gateway allocates a few blocks a request that are larger than glibc's per-thread cache
 * takes (1032 bytes: the exchange, the provider call), so each malloc and free of them went
 * through the arena's bins, coalescing and all: a visible share of a request's CPU at tens of
 * thousands a second. An event loop has many requests in flight at once (each waits for its
 * upstream), so it allocates several blocks before it frees any: one kept block was taken by
 * the first of them and the rest went to malloc (at 32 connections nearly every allocation
 * did). A stack of HL_SPARE_MAX blocks a thread and kind covers what a loop has in flight.
 *
 * A spare is a static hl_spare per kind, HL_SPARE_INIT(sizeof that kind). hl_spare_calloc()
 * gives a zeroed block of that size (the last one the thread kept, else calloc: NULL when out
 * of memory); hl_spare_free() keeps the block on the thread's stack, or frees it when the
 * stack is full. A thread's blocks are freed when the thread exits. Under AddressSanitizer
 * no block is kept (a use after free must stay visible). */
#ifndef HL_SPARE_H
#define HL_SPARE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum { HL_SPARE_MAX = 64 }; /* blocks kept a thread and kind */

typedef struct hl_spare {
    atomic_int ready;  /* key created */
    pthread_key_t key; /* the thread's kept blocks, freed at its exit */
    size_t size;
} hl_spare;

#define HL_SPARE_INIT(block_size) {0, 0, (block_size)}

void *hl_spare_calloc(hl_spare *s);
void hl_spare_free(hl_spare *s, void *p);

#endif
