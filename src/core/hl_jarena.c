/* hl_jarena: jansson's allocations inside a scope come from a per-thread bump arena (see
 * hl_jarena.h for the rule the callers follow). */
#include "hl_jarena.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define HL_JARENA_TRACK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HL_JARENA_TRACK 1
#endif
#endif

enum { CHUNK = 64 * 1024 }; /* a thread's arena grows by chunks of this size (or one block's) */

/* A chunk: this header, then cap bytes of blocks (chunk_data). */
typedef struct chunk {
    struct chunk *next; /* the chunk filled before this one */
    size_t cap, used;
    size_t pad;         /* keeps the data 16-aligned */
} chunk;

typedef struct state {
    int depth;     /* open scopes */
    int suspended; /* > 0: allocate on the heap even inside a scope (hl_jarena_export) */
    size_t bytes;  /* handed out since the outermost scope began */
#ifdef HL_JARENA_TRACK
    void **blocks; /* every arena block is its own malloc, freed at the end (NULL: freed) */
    size_t n, cap;
#else
    chunk *head;   /* the chunk being filled; NULL: none yet */
#endif
} state;

static _Thread_local state ts;
static bool installed;

#ifdef HL_JARENA_TRACK
static void *arena_alloc(state *s, size_t n) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void **v = realloc(s->blocks, cap * sizeof *v);
        if (!v) return NULL;
        s->blocks = v;
        s->cap = cap;
    }
    void *p = malloc(n ? n : 1);
    if (p) s->blocks[s->n++] = p;
    return p;
}

/* An arena block freed inside its scope is freed now (so ASan sees any later use). */
static bool arena_owns(state *s, void *p) {
    for (size_t i = s->n; i-- > 0;)
        if (s->blocks[i] == p) {
            free(p);
            s->blocks[i] = NULL;
            return true;
        }
    return false;
}

static void arena_reset(state *s) {
    for (size_t i = 0; i < s->n; i++) free(s->blocks[i]);
    free(s->blocks);
    s->blocks = NULL;
    s->n = s->cap = 0;
}
#else
static unsigned char *chunk_data(chunk *c) { return (unsigned char *)(c + 1); }

static void *arena_alloc(state *s, size_t n) {
    n = (n + 15) & ~(size_t)15;
    chunk *c = s->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK ? n : CHUNK;
        chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        *nc = (chunk){.next = c, .cap = cap};
        s->head = c = nc;
    }
    void *p = chunk_data(c) + c->used;
    c->used += n ? n : 16;
    return p;
}

static bool arena_owns(state *s, void *p) {
    for (chunk *c = s->head; c; c = c->next) {
        unsigned char *d = chunk_data(c);
        if ((unsigned char *)p >= d && (unsigned char *)p < d + c->cap) return true;
    }
    return false;
}

/* Keeps one standard chunk, emptied, for the next scope; frees the others. */
static void arena_reset(state *s) {
    chunk *keep = NULL;
    for (chunk *c = s->head, *next; c; c = next) {
        next = c->next;
        if (!keep && c->cap == CHUNK) {
            keep = c;
        } else {
            free(c);
        }
    }
    if (keep) *keep = (chunk){.cap = CHUNK};
    s->head = keep;
}
#endif

/* Outside a scope these are malloc and free exactly, so memory jansson hands out there
 * (json_dumps' strings) may be freed with free() as before. */
static void *j_malloc(size_t n) {
    state *s = &ts;
    if (s->depth <= 0 || s->suspended) return malloc(n);
    void *p = arena_alloc(s, n);
    if (p) s->bytes += n;
    return p;
}

static void j_free(void *p) {
    if (!p) return;
    if (arena_owns(&ts, p)) return; /* taken back at the scope's end */
    free(p);
}

void hl_jarena_install(void) {
    if (installed) return;
    json_set_alloc_funcs(j_malloc, j_free);
    installed = true;
}

void hl_jarena_begin(void) {
    if (installed) ts.depth++;
}

void hl_jarena_end(void) {
    state *s = &ts;
    if (!installed || s->depth <= 0) return;
    if (--s->depth == 0) {
        arena_reset(s);
        s->bytes = 0;
    }
}

size_t hl_jarena_bytes(void) { return ts.bytes; }

json_t *hl_jarena_export(json_t *v) {
    if (!v) return NULL;
    ts.suspended++;
    json_t *copy = json_deep_copy(v);
    ts.suspended--;
    json_decref(v);
    return copy;
}
