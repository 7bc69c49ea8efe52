/* hl_tok: SentencePiece-style and byte-level BPE tokenizers; see hl_tok.h.
 *
 * Both merge algorithms keep the text as a doubly linked list of symbols (byte ranges of the
 * input) and a binary heap of candidate merges of neighbouring symbols; a candidate whose
 * symbols changed since it was queued is recognised by its length and skipped. Token and
 * merge strings are looked up in open-addressing hash tables over slices of the GGUF. */
#include "hl_tok.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_tok_unicode.h"
#include "hl_utf8.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

#define MAX_EOG 16
#define MAX_TEXT (64u << 20) /* longest text we tokenize */

/* A hash table from strings to indices, sized at twice the entries (power of two). */
typedef struct strmap {
    uint32_t *slot; /* index + 1; 0 empty */
    uint32_t mask;
    const hl_gguf_str *keys;
} strmap;

struct hl_tok {
    hl_tok_kind kind;
    uint32_t n_vocab;
    hl_gguf_str *text;      /* [n_vocab] token strings (borrowed from the GGUF); owned array */
    float *score;           /* [n_vocab] SPM scores; owned */
    uint8_t *type;          /* [n_vocab] token types; owned */
    strmap vocab;           /* text -> id */
    hl_gguf_str *merges;    /* [n_merges] "left right"; owned array */
    uint32_t n_merges;
    strmap merge_rank;      /* "left right" -> rank */
    int32_t byte_token[256];/* SPM: id of <0xXX>; BPE: id of the byte's mapped character */
    uint16_t byte_cp[256];  /* BPE: the character each byte maps to */
    int16_t cp_byte[512];   /* BPE: the inverse, -1 for characters no byte maps to */
    int32_t bos, eos, unk;
    bool add_bos, add_space_prefix, ignore_merges;
    int max_digits;         /* BPE pre-tokenizer: digits per piece (Llama 3: 3, Qwen2: 1) */
    int32_t eog[MAX_EOG];
    int n_eog;
    int32_t *special;       /* ids matched in text (control/user-defined), longest first */
    uint32_t n_special;
    uint8_t special_first[32]; /* bitmap of the first bytes of special tokens */
    size_t max_piece;          /* longest token text, bytes */
};

/* ---- helpers ---------------------------------------------------------------------------- */

static hl_err errf(char *err, size_t n, hl_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static hl_err errf(char *err, size_t n, hl_err code, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return code;
}

static uint32_t hash(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static hl_err strmap_build(strmap *m, const hl_gguf_str *keys, uint32_t n) {
    uint32_t cap = 16;
    while (cap < 2 * (uint64_t)n) cap *= 2;
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot) return HL_ERR_NOMEM;
    m->mask = cap - 1;
    m->keys = keys;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h = hash(keys[i].p, keys[i].n) & m->mask;
        for (;;) {
            uint32_t s = m->slot[h];
            if (!s) {
                m->slot[h] = i + 1;
                break;
            }
            /* Duplicate strings: the first id wins, as in llama.cpp's map. */
            if (keys[s - 1].n == keys[i].n && memcmp(keys[s - 1].p, keys[i].p, keys[i].n) == 0)
                break;
            h = (h + 1) & m->mask;
        }
    }
    return HL_OK;
}

static int32_t strmap_get(const strmap *m, const char *p, size_t n) {
    if (!m->slot) return -1;
    uint32_t h = hash(p, n) & m->mask;
    for (;;) {
        uint32_t s = m->slot[h];
        if (!s) return -1;
        if (m->keys[s - 1].n == n && memcmp(m->keys[s - 1].p, p, n) == 0) return (int32_t)(s - 1);
        h = (h + 1) & m->mask;
    }
}

static size_t utf8_len(uint8_t c) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

/* Decodes one code point at p (n bytes left); invalid sequences decode as the byte itself
 * (and *len = 1), so every input is consumed. */
static uint32_t utf8_decode(const uint8_t *p, size_t n, size_t *len) {
    size_t l = utf8_len(p[0]);
    if (l == 1 || l > n) {
        *len = 1;
        return p[0];
    }
    for (size_t i = 1; i < l; i++)
        if ((p[i] & 0xc0) != 0x80) {
            *len = 1;
            return p[0];
        }
    *len = l;
    if (l == 2) return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    if (l == 3) return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
           (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
}

/* GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68
 * bytes map in order to U+0100 onwards, so every byte string becomes printable text. */
static uint32_t byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae)) return b;
    uint32_t n = 0;
    for (uint32_t c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae))) n++;
    return 256 + n;
}


/* ---- loading ---------------------------------------------------------------------------- */

void hl_tok_free(hl_tok *t) {
    if (!t) return;
    free(t->text);
    free(t->score);
    free(t->type);
    free(t->vocab.slot);
    free(t->merges);
    free(t->merge_rank.slot);
    free(t->special);
    free(t);
}

static int cmp_special_len(const void *a, const void *b, void *ctx) {
    const hl_tok *t = ctx;
    uint64_t la = t->text[*(const int32_t *)a].n, lb = t->text[*(const int32_t *)b].n;
    if (la != lb) return la > lb ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

static void add_eog(hl_tok *t, int32_t id) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) return;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    if (t->n_eog < MAX_EOG) t->eog[t->n_eog++] = id;
}

static int32_t get_id(const hl_gguf *g, const char *key, int32_t def, uint32_t n_vocab) {
    uint32_t v;
    if (hl_gguf_get_u32(g, key, &v) != HL_OK || v >= n_vocab) return def;
    return (int32_t)v;
}

/* ---- loading: hl_tok_load's steps, in order; each fills part of t or says what is wrong -- */

/* The tokenizer model and, for BPE, the pre-tokenizer, which must be one we have written. */
static hl_err load_kind(hl_tok *t, const hl_gguf *g, hl_gguf_str model, char *err,
                        size_t err_size) {
    hl_gguf_str pre = {"default", 7};
    (void)hl_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    if (hl_gguf_str_eq(model, "llama")) {
        t->kind = HL_TOK_SPM;
        return HL_OK;
    }
    if (!hl_gguf_str_eq(model, "gpt2"))
        return errf(err, err_size, HL_ERR_UNSUPPORTED, "tokenizer model '%.*s' is not supported",
                    (int)(model.n < 32 ? model.n : 32), model.p);
    t->kind = HL_TOK_BPE;
    /* The Llama 3 and Qwen2 pre-tokenizers are written (they differ only in how many
     * digits go together); others split text differently, so they are refused. Llama 3
     * also looks whole pieces up before merging, as llama.cpp does for it. */
    if (hl_gguf_str_eq(pre, "llama-bpe") || hl_gguf_str_eq(pre, "llama3")) {
        t->ignore_merges = true;
        t->max_digits = 3;
    } else if (hl_gguf_str_eq(pre, "qwen2")) {
        t->max_digits = 1;
    } else {
        return errf(err, err_size, HL_ERR_UNSUPPORTED, "BPE pre-tokenizer '%.*s' is not "
                    "supported (llama-bpe, qwen2)", (int)(pre.n < 32 ? pre.n : 32), pre.p);
    }
    return HL_OK;
}

/* The token strings (required), their scores and types (optional: 0 and normal), and the
 * map from text to id. */
static hl_err load_vocab(hl_tok *t, const hl_gguf *g, char *err, size_t err_size) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!kv || kv->type != HL_GGUF_V_ARRAY || kv->arr_type != HL_GGUF_V_STRING ||
        kv->arr_n == 0 || kv->arr_n > (1u << 24))
        return errf(err, err_size, HL_ERR_PARSE, "missing or bad tokenizer.ggml.tokens");
    t->n_vocab = (uint32_t)kv->arr_n;
    t->text = malloc(t->n_vocab * sizeof *t->text);
    t->score = calloc(t->n_vocab, sizeof *t->score);
    t->type = malloc(t->n_vocab);
    if (!t->text || !t->score || !t->type)
        return errf(err, err_size, HL_ERR_NOMEM, "out of memory");
    hl_gguf_arr_strings(kv, t->text);
    memset(t->type, TT_NORMAL, t->n_vocab);
    const hl_gguf_kv *sk = hl_gguf_find_kv(g, "tokenizer.ggml.scores");
    if (sk && sk->type == HL_GGUF_V_ARRAY && sk->arr_n == t->n_vocab)
        for (uint32_t i = 0; i < t->n_vocab; i++) t->score[i] = (float)hl_gguf_arr_num(sk, i);
    const hl_gguf_kv *tk = hl_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (tk && tk->type == HL_GGUF_V_ARRAY && tk->arr_n == t->n_vocab &&
        tk->arr_type != HL_GGUF_V_STRING)
        for (uint32_t i = 0; i < t->n_vocab; i++) {
            double v = hl_gguf_arr_num(tk, i);
            t->type[i] = v >= 1 && v <= 6 ? (uint8_t)v : TT_NORMAL;
        }
    hl_err e = strmap_build(&t->vocab, t->text, t->n_vocab);
    if (e) errf(err, err_size, e, "out of memory");
    return e;
}

/* The special ids (with the defaults of each kind), whether to add BOS and a space prefix,
 * and the end-of-generation set: EOS, EOT, EOM, and the control tokens known to end a turn. */
static void load_special_ids(hl_tok *t, const hl_gguf *g) {
    t->bos = get_id(g, "tokenizer.ggml.bos_token_id", t->kind == HL_TOK_SPM ? 1 : -1, t->n_vocab);
    t->eos = get_id(g, "tokenizer.ggml.eos_token_id", t->kind == HL_TOK_SPM ? 2 : -1, t->n_vocab);
    t->unk = get_id(g, "tokenizer.ggml.unknown_token_id", t->kind == HL_TOK_SPM ? 0 : -1, t->n_vocab);
    t->add_bos = t->kind == HL_TOK_SPM || t->bos >= 0;
    (void)hl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    t->add_space_prefix = t->kind == HL_TOK_SPM;
    (void)hl_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    add_eog(t, t->eos);
    add_eog(t, get_id(g, "tokenizer.ggml.eot_token_id", -1, t->n_vocab));
    add_eog(t, get_id(g, "tokenizer.ggml.eom_token_id", -1, t->n_vocab));
    static const char *const eog_names[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>",
                                            "<|im_end|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>"};
    for (size_t i = 0; i < sizeof eog_names / sizeof *eog_names; i++) {
        int32_t id = strmap_get(&t->vocab, eog_names[i], strlen(eog_names[i]));
        if (id >= 0 && (t->type[id] == TT_CONTROL || t->type[id] == TT_USER)) add_eog(t, id);
    }
}

/* Bytes to characters (BPE) and back, and each byte's token: <0xXX> for SPM, the byte's
 * mapped character for BPE (-1 where the vocabulary has none). */
static void build_byte_maps(hl_tok *t) {
    for (int i = 0; i < 512; i++) t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        t->byte_cp[b] = (uint16_t)byte_to_cp((uint8_t)b);
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->kind == HL_TOK_SPM) n = (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
        else n = hl_utf8_put(s, t->byte_cp[b]);
        t->byte_token[b] = strmap_get(&t->vocab, s, n);
    }
}

/* Special tokens to find in text, longest first so that a longer one wins, with the bitmap
 * of their first bytes; and the longest token text. */
static hl_err index_special(hl_tok *t, char *err, size_t err_size) {
    t->special = malloc(t->n_vocab * sizeof *t->special);
    if (!t->special) return errf(err, err_size, HL_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->text[i].n > t->max_piece) t->max_piece = (size_t)t->text[i].n;
        if ((t->type[i] == TT_CONTROL || t->type[i] == TT_USER) && t->text[i].n > 0) {
            t->special[t->n_special++] = (int32_t)i;
            uint8_t c = (uint8_t)t->text[i].p[0];
            t->special_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        }
    }
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special_len, t);
    return HL_OK;
}

/* BPE only: the merges ("left right", in rank order) and the map from a merge to its rank. */
static hl_err load_merges(hl_tok *t, const hl_gguf *g, char *err, size_t err_size) {
    const hl_gguf_kv *mk = hl_gguf_find_kv(g, "tokenizer.ggml.merges");
    if (!mk || mk->type != HL_GGUF_V_ARRAY || mk->arr_type != HL_GGUF_V_STRING ||
        mk->arr_n > (1u << 24))
        return errf(err, err_size, HL_ERR_PARSE, "missing or bad tokenizer.ggml.merges");
    t->n_merges = (uint32_t)mk->arr_n;
    t->merges = malloc((t->n_merges ? t->n_merges : 1) * sizeof *t->merges);
    if (!t->merges) return errf(err, err_size, HL_ERR_NOMEM, "out of memory");
    hl_gguf_arr_strings(mk, t->merges);
    hl_err e = strmap_build(&t->merge_rank, t->merges, t->n_merges);
    if (e) errf(err, err_size, e, "out of memory");
    return e;
}

hl_err hl_tok_load(hl_tok **out, const hl_gguf *g, char *err, size_t err_size) {
    *out = NULL;
    hl_gguf_str model;
    if (hl_gguf_get_str(g, "tokenizer.ggml.model", &model) != HL_OK)
        return errf(err, err_size, HL_ERR_PARSE, "missing tokenizer.ggml.model");
    hl_tok *t = calloc(1, sizeof *t);
    if (!t) return errf(err, err_size, HL_ERR_NOMEM, "out of memory");
    hl_err e = load_kind(t, g, model, err, err_size);
    if (!e) e = load_vocab(t, g, err, err_size);
    if (!e) {
        load_special_ids(t, g);
        build_byte_maps(t);
        e = index_special(t, err, err_size);
    }
    if (!e && t->kind == HL_TOK_BPE) e = load_merges(t, g, err, err_size);
    if (e) {
        hl_tok_free(t);
        return e;
    }
    *out = t;
    return HL_OK;
}

hl_tok_kind hl_tok_kind_of(const hl_tok *t) { return t->kind; }
uint32_t hl_tok_n_vocab(const hl_tok *t) { return t->n_vocab; }
int32_t hl_tok_bos(const hl_tok *t) { return t->bos; }
int32_t hl_tok_eos(const hl_tok *t) { return t->eos; }
bool hl_tok_add_bos(const hl_tok *t) { return t->add_bos && t->bos >= 0; }
size_t hl_tok_max_piece(const hl_tok *t) { return t->max_piece > 3 ? t->max_piece : 3; }

bool hl_tok_is_eog(const hl_tok *t, int32_t id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

/* ---- the merge engine shared by both models --------------------------------------------- */

typedef struct sym {
    const char *p;
    uint32_t n;     /* 0 once merged into its left neighbour */
    int32_t prev, next;
} sym;

typedef struct cand {
    float key;      /* higher merges first: SPM score, or minus the BPE rank */
    int32_t left, right;
    uint32_t size;  /* bytes of the merged text when queued */
} cand;

typedef struct session {
    const hl_tok *t;
    sym *syms;
    cand *heap;
    size_t n_heap, cap_heap;
    int32_t *out;
    size_t cap, n;
    bool overflow;
} session;

static bool cand_before(const cand *a, const cand *b) {
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(session *s, cand c) {
    if (s->n_heap == s->cap_heap) return; /* cannot happen: sized for every pair */
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = c;
}

static cand heap_pop(session *s) {
    cand top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const cand *bc = &last;
        if (l < s->n_heap && cand_before(&s->heap[l], bc)) {
            best = l;
            bc = &s->heap[l];
        }
        if (r < s->n_heap && cand_before(&s->heap[r], bc)) best = r;
        if (best == i) break;
        s->heap[i] = s->heap[best];
        i = best;
    }
    if (s->n_heap) s->heap[i] = last;
    return top;
}

static void emit(session *s, int32_t id) {
    if (s->n < s->cap) s->out[s->n] = id;
    else s->overflow = true;
    s->n++;
}

/* Queues the merge of symbols left and right if the model allows it. */
static void try_pair(session *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const hl_tok *t = s->t;
    const sym *a = &s->syms[left], *b = &s->syms[right];
    uint32_t size = a->n + b->n;
    if (t->kind == HL_TOK_SPM) {
        /* The two symbols are adjacent in the text, so their concatenation is a slice. */
        int32_t id = strmap_get(&t->vocab, a->p, size);
        if (id < 0) return;
        heap_push(s, (cand){t->score[id], left, right, size});
    } else {
        char buf[512];
        if ((size_t)size + 1 > sizeof buf) return; /* no merge is that long */
        memcpy(buf, a->p, a->n);
        buf[a->n] = ' ';
        memcpy(buf + a->n + 1, b->p, b->n);
        int32_t rank = strmap_get(&t->merge_rank, buf, (size_t)size + 1);
        if (rank < 0) return;
        heap_push(s, (cand){-(float)rank, left, right, size});
    }
}

/* Splits text[0..n) into characters, merges, and emits the ids of the final symbols;
 * symbols that are not tokens fall back to their bytes. */
static hl_err merge_and_emit(session *s, const char *text, size_t n) {
    if (n == 0) return HL_OK;
    s->syms = malloc(n * sizeof *s->syms);
    s->cap_heap = 2 * n + 2; /* n-1 initial pairs, at most 2 per merge after */
    s->n_heap = 0;
    s->heap = malloc(s->cap_heap * sizeof *s->heap);
    if (!s->syms || !s->heap) {
        free(s->syms);
        free(s->heap);
        return HL_ERR_NOMEM;
    }
    int32_t count = 0;
    for (size_t off = 0; off < n;) {
        size_t l = utf8_len((uint8_t)text[off]);
        if (l > n - off) l = n - off;
        s->syms[count] = (sym){text + off, (uint32_t)l, count - 1, off + l == n ? -1 : count + 1};
        off += l;
        count++;
    }
    for (int32_t i = 1; i < count; i++) try_pair(s, i - 1, i);
    while (s->n_heap) {
        cand c = heap_pop(s);
        sym *a = &s->syms[c.left], *b = &s->syms[c.right];
        if (a->n == 0 || b->n == 0 || a->n + b->n != c.size) continue;
        a->n += b->n;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0) s->syms[b->next].prev = c.left;
        try_pair(s, a->prev, c.left);
        try_pair(s, c.left, a->next);
    }
    for (int32_t i = 0; i != -1; i = s->syms[i].next) {
        const sym *y = &s->syms[i];
        int32_t id = strmap_get(&s->t->vocab, y->p, y->n);
        if (id >= 0) {
            emit(s, id);
            continue;
        }
        if (s->t->kind == HL_TOK_SPM) {
            for (uint32_t k = 0; k < y->n; k++) {
                int32_t b = s->t->byte_token[(uint8_t)y->p[k]];
                emit(s, b >= 0 ? b : s->t->unk);
            }
        } else {
            /* A byte-level symbol is one mapped character per byte; each is a token. */
            for (uint32_t k = 0; k < y->n;) {
                size_t l = utf8_len((uint8_t)y->p[k]);
                if (l > y->n - k) l = y->n - k;
                int32_t cid = strmap_get(&s->t->vocab, y->p + k, l);
                if (cid >= 0) emit(s, cid);
                k += (uint32_t)l;
            }
        }
    }
    free(s->syms);
    free(s->heap);
    s->syms = NULL;
    s->heap = NULL;
    return HL_OK;
}

/* ---- SentencePiece ---------------------------------------------------------------------- */

static hl_err spm_fragment(session *s, const char *text, size_t n, bool space_prefix) {
    /* " " prefix, then every space becomes U+2581 (3 bytes). */
    size_t spaces = space_prefix;
    for (size_t i = 0; i < n; i++) spaces += text[i] == ' ';
    size_t len = n + 2 * spaces + space_prefix;
    char *buf = malloc(len ? len : 1);
    if (!buf) return HL_ERR_NOMEM;
    size_t o = 0;
    if (space_prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            buf[o++] = text[i];
        }
    }
    hl_err e = merge_and_emit(s, buf, o);
    free(buf);
    return e;
}

/* ---- byte-level BPE with the Llama 3 pre-tokenizer -------------------------------------- */

static bool in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

static bool is_letter(uint32_t cp) {
    return in_ranges(cp, hl_tok_letters, sizeof hl_tok_letters / sizeof *hl_tok_letters);
}

static bool is_number(uint32_t cp) {
    return in_ranges(cp, hl_tok_numbers, sizeof hl_tok_numbers / sizeof *hl_tok_numbers);
}

/* Unicode White_Space. */
static bool is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static bool is_nl(uint32_t cp) { return cp == '\r' || cp == '\n'; }

static uint32_t lower_ascii(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/* Length in code points of the pre-token starting at cps[i], per the Llama 3 pattern
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} |
 *    ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * whose alternatives are tried in order, the first that matches winning. Qwen2's pattern is
 * the same with \p{N} (one digit) for \p{N}{1,3}: max_digits. */
static size_t llama3_match(const uint32_t *c, size_t i, size_t n, size_t max_digits) {
    size_t left = n - i;
    if (c[i] == '\'' && left >= 2) {
        uint32_t a = lower_ascii(c[i + 1]), b = left >= 3 ? lower_ascii(c[i + 2]) : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    {
        size_t j = i;
        if (!is_nl(c[j]) && !is_letter(c[j]) && !is_number(c[j]) && j + 1 < n) j++;
        if (is_letter(c[j])) {
            while (j < n && is_letter(c[j])) j++;
            return j - i;
        }
    }
    if (is_number(c[i])) {
        size_t j = i;
        while (j < n && j - i < max_digits && is_number(c[j])) j++;
        return j - i;
    }
    {
        size_t j = i + (c[i] == ' ');
        size_t k = j;
        while (k < n && !is_space(c[k]) && !is_letter(c[k]) && !is_number(c[k])) k++;
        if (k > j) {
            while (k < n && is_nl(c[k])) k++;
            return k - i;
        }
    }
    size_t j = i;
    while (j < n && is_space(c[j])) j++;
    /* here c[i] is whitespace, so j > i */
    for (size_t k = j; k > i; k--)
        if (is_nl(c[k - 1])) return k - i;
    if (j == n) return j - i;
    if (j - i >= 2) return j - i - 1;
    return j - i;
}

static hl_err bpe_fragment(session *s, const char *text, size_t n) {
    const hl_tok *t = s->t;
    uint32_t *cps = malloc((n ? n : 1) * sizeof *cps);
    size_t *offs = malloc((n + 1) * sizeof *offs);
    char *word = malloc(2 * n + 4); /* each byte maps to at most 2 bytes of UTF-8 */
    hl_err e = HL_OK;
    if (!cps || !offs || !word) {
        e = HL_ERR_NOMEM;
        goto out;
    }
    size_t nc = 0;
    for (size_t off = 0; off < n;) {
        size_t l;
        offs[nc] = off;
        cps[nc++] = utf8_decode((const uint8_t *)text + off, n - off, &l);
        off += l;
    }
    offs[nc] = n;
    for (size_t i = 0; i < nc && !e;) {
        size_t k = llama3_match(cps, i, nc, (size_t)t->max_digits);
        size_t b0 = offs[i], b1 = offs[i + k], wl = 0;
        for (size_t b = b0; b < b1; b++) wl += hl_utf8_put(word + wl, t->byte_cp[(uint8_t)text[b]]);
        int32_t id = t->ignore_merges ? strmap_get(&t->vocab, word, wl) : -1;
        if (id >= 0) emit(s, id);
        else e = merge_and_emit(s, word, wl);
        i += k;
    }
out:
    free(cps);
    free(offs);
    free(word);
    return e;
}

/* ---- encode / decode -------------------------------------------------------------------- */

/* The longest special token at text[i..n), or -1. */
static int32_t special_at(const hl_tok *t, const char *text, size_t i, size_t n, bool parse_special) {
    uint8_t c = (uint8_t)text[i];
    if (!(t->special_first[c >> 3] & (1u << (c & 7)))) return -1;
    for (uint32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        const hl_gguf_str *s = &t->text[id];
        if (t->type[id] == TT_CONTROL && !parse_special) continue;
        if (s->n <= n - i && memcmp(text + i, s->p, s->n) == 0) return id;
    }
    return -1;
}

hl_err hl_tok_encode(const hl_tok *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t *ids, size_t cap, size_t *n) {
    *n = 0;
    if (len > MAX_TEXT) return HL_ERR_LIMIT;
    session s = {.t = t, .out = ids, .cap = cap};
    if (add_bos && t->bos >= 0) emit(&s, t->bos);
    bool prev_special = true; /* the SPM space prefix goes on the first piece of text */
    size_t start = 0;
    hl_err e = HL_OK;
    /* Only user-defined tokens need the scan when parse_special is off; skip it when a
     * vocabulary has none of those. */
    for (size_t i = 0; i <= len && !e;) {
        int32_t sp = i < len && t->n_special ? special_at(t, text, i, len, parse_special) : -1;
        if (sp < 0 && i < len) {
            i++;
            continue;
        }
        if (i > start) {
            if (t->kind == HL_TOK_SPM)
                e = spm_fragment(&s, text + start, i - start, t->add_space_prefix && prev_special);
            else
                e = bpe_fragment(&s, text + start, i - start);
            prev_special = false;
        }
        if (sp < 0) break;
        emit(&s, sp);
        prev_special = true;
        i += t->text[sp].n;
        start = i;
    }
    *n = s.n < cap ? s.n : cap;
    if (e) return e;
    return s.overflow ? HL_ERR_LIMIT : HL_OK;
}

static int put(char *buf, size_t cap, const char *p, size_t n) {
    if (n <= cap) memcpy(buf, p, n);
    return (int)n;
}

int hl_tok_piece(const hl_tok *t, int32_t id, bool special, char *buf, size_t cap) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) return -1;
    const hl_gguf_str *s = &t->text[id];
    switch (t->type[id]) {
    case TT_CONTROL:
        return special ? put(buf, cap, s->p, s->n) : 0;
    case TT_UNKNOWN:
        return t->kind == HL_TOK_SPM ? put(buf, cap, "\xe2\x96\x85", 3) : put(buf, cap, s->p, s->n);
    case TT_USER:
        return put(buf, cap, s->p, s->n);
    case TT_BYTE:
        if (t->kind == HL_TOK_SPM && s->n == 6) {
            char b = (char)strtol((char[]){s->p[3], s->p[4], 0}, NULL, 16);
            return put(buf, cap, &b, 1);
        }
        break;
    default:
        break;
    }
    size_t o = 0;
    if (t->kind == HL_TOK_SPM) {
        for (size_t i = 0; i < s->n;) {
            if (s->n - i >= 3 && memcmp(s->p + i, "\xe2\x96\x81", 3) == 0) {
                if (o < cap) buf[o] = ' ';
                o++;
                i += 3;
            } else {
                if (o < cap) buf[o] = s->p[i];
                o++;
                i++;
            }
        }
        return (int)o;
    }
    for (size_t i = 0; i < s->n;) {
        size_t l;
        uint32_t cp = utf8_decode((const uint8_t *)s->p + i, s->n - i, &l);
        int b = cp < 512 ? t->cp_byte[cp] : -1;
        if (b >= 0) {
            if (o < cap) buf[o] = (char)b;
            o++;
        } else {
            for (size_t k = 0; k < l; k++, o++)
                if (o < cap) buf[o] = s->p[i + k];
        }
        i += l;
    }
    return (int)o;
}
