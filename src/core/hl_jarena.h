/* hl_jarena: a per-thread bump arena for jansson's allocations inside a scope.
 *
 * Parsing a small JSON body with jansson makes dozens of small allocations (each object, its
 * hash table, each string) that are all freed moments later by one json_decref. Inside a scope
 * (hl_jarena_begin .. hl_jarena_end) this thread's jansson allocations come from a bump arena
 * and their frees cost nothing; hl_jarena_end takes them all back at once. Outside a scope,
 * and on threads that never open one, jansson allocates with malloc as usual.
 *
 * The rule: NOTHING jansson allocated inside a scope may be used after the scope ends. A value
 * that must outlive it (kept in a request, a cache, the config) is copied out with
 * hl_jarena_export first. Under AddressSanitizer each arena allocation is a real malloc freed
 * at the scope's end, so a value that escapes anyway is reported as a use after free.
 *
 * json_set_alloc_funcs is process-global: hl_jarena_install runs first thing in main. Outside
 * a scope the functions are malloc and free themselves, so what jansson hands out there
 * (json_dumps' strings) is still freed with free(); a free inside a scope checks whether the
 * block lies in this thread's arena. Nothing json_dumps returns inside a scope may be freed with
 * free(). */
#ifndef HL_JARENA_H
#define HL_JARENA_H

#include <jansson.h>

/* Routes jansson's allocations through the arena (idempotent; before any jansson use). */
void hl_jarena_install(void);
/* Opens a scope on this thread. Scopes nest; the memory returns at the outermost end. Does
 * nothing unless hl_jarena_install ran. */
void hl_jarena_begin(void);
void hl_jarena_end(void);
/* Bytes this thread's open scopes took from the arena (0 outside a scope): for tests. */
size_t hl_jarena_bytes(void);
/* A deep copy of v on the heap (outside any scope), consuming the caller's reference to v:
 * what a scope hands out. NULL stays NULL; NULL too when out of memory (v is released). */
json_t *hl_jarena_export(json_t *v);

#endif
