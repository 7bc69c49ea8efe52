/* hl_gguf: the validating GGUF reader; the layout and the rules are in hl_gguf.h.
 *
 * Parsing is one forward pass with a bounds-checked cursor: every read asks the cursor for
 * n bytes and gets NULL (and an error message with the file offset) when fewer remain, so no
 * later code can read past the end. Counts from the file are never trusted for allocation:
 * before allocating n entries we check that the bytes left could hold n minimal entries. */
#include "hl_gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct type_info {
    const char *name;
    uint32_t block, size;
} type_info;

static const type_info type_table[HL_GGUF_TYPE_COUNT] = {
    [HL_GGUF_F32] = {"F32", 1, 4},
    [HL_GGUF_F16] = {"F16", 1, 2},
    [HL_GGUF_Q4_0] = {"Q4_0", 32, 18},
    [HL_GGUF_Q4_1] = {"Q4_1", 32, 20},
    [HL_GGUF_Q5_0] = {"Q5_0", 32, 22},
    [HL_GGUF_Q5_1] = {"Q5_1", 32, 24},
    [HL_GGUF_Q8_0] = {"Q8_0", 32, 34},
    [HL_GGUF_Q8_1] = {"Q8_1", 32, 36},
    [HL_GGUF_Q2_K] = {"Q2_K", 256, 84},
    [HL_GGUF_Q3_K] = {"Q3_K", 256, 110},
    [HL_GGUF_Q4_K] = {"Q4_K", 256, 144},
    [HL_GGUF_Q5_K] = {"Q5_K", 256, 176},
    [HL_GGUF_Q6_K] = {"Q6_K", 256, 210},
    [HL_GGUF_Q8_K] = {"Q8_K", 256, 292},
    [HL_GGUF_I8] = {"I8", 1, 1},
    [HL_GGUF_I16] = {"I16", 1, 2},
    [HL_GGUF_I32] = {"I32", 1, 4},
    [HL_GGUF_I64] = {"I64", 1, 8},
    [HL_GGUF_F64] = {"F64", 1, 8},
    [HL_GGUF_BF16] = {"BF16", 1, 2},
};

const char *hl_gguf_type_name(uint32_t type) {
    if (type < HL_GGUF_TYPE_COUNT && type_table[type].name) return type_table[type].name;
    return "unknown";
}

uint32_t hl_gguf_type_block(uint32_t type) {
    return type < HL_GGUF_TYPE_COUNT ? type_table[type].block : 0;
}

uint32_t hl_gguf_type_size(uint32_t type) {
    return type < HL_GGUF_TYPE_COUNT ? type_table[type].size : 0;
}

size_t hl_gguf_row_size(uint32_t type, uint64_t n) {
    uint32_t b = hl_gguf_type_block(type);
    if (!b || n % b) return 0;
    uint64_t r;
    if (__builtin_mul_overflow(n / b, (uint64_t)hl_gguf_type_size(type), &r) || r > SIZE_MAX)
        return 0;
    return (size_t)r;
}

static const char *const vtype_names[HL_GGUF_V_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
/* Bytes of a scalar value of each type; 0 for string and array. */
static const uint8_t vtype_size[HL_GGUF_V_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *hl_gguf_vtype_name(uint32_t vtype) {
    return vtype < HL_GGUF_V_COUNT ? vtype_names[vtype] : "unknown";
}

bool hl_gguf_str_eq(hl_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.n == n && memcmp(s.p, c, n) == 0;
}

/* ---- the cursor ---------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t size, pos;
    char *err;
    size_t err_size;
    const char *what; /* what is being read, for messages ("tensor 3 name") */
} cursor;

static hl_err fail(cursor *c, hl_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static hl_err fail(cursor *c, hl_err code, const char *fmt, ...) {
    if (c->err && c->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Returns a pointer to the next n bytes and advances, or NULL (message set) when the file
 * ends first. */
static const uint8_t *take(cursor *c, uint64_t n) {
    if (n > c->size - c->pos) {
        fail(c, HL_ERR_PARSE, "truncated: %s needs %llu bytes at offset %zu, file has %zu",
             c->what, (unsigned long long)n, c->pos, c->size);
        return NULL;
    }
    const uint8_t *r = c->p + c->pos;
    c->pos += (size_t)n;
    return r;
}

static uint64_t le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static bool rd_u32(cursor *c, uint32_t *v) {
    const uint8_t *b = take(c, 4);
    if (b) *v = (uint32_t)le(b, 4);
    return b != NULL;
}

static bool rd_u64(cursor *c, uint64_t *v) {
    const uint8_t *b = take(c, 8);
    if (b) *v = le(b, 8);
    return b != NULL;
}

static bool rd_str(cursor *c, hl_gguf_str *s) {
    uint64_t n;
    if (!rd_u64(c, &n)) return false;
    const uint8_t *b = take(c, n);
    if (!b) return false;
    s->p = (const char *)b;
    s->n = n;
    return true;
}

static size_t left(const cursor *c) { return c->size - c->pos; }

/* Reads one key/value pair's value of type t into kv. */
static hl_err rd_value(cursor *c, hl_gguf_kv *kv, uint32_t t, const char *key_for_msg) {
    if (t >= HL_GGUF_V_COUNT)
        return fail(c, HL_ERR_PARSE, "key '%s': unknown value type %u at offset %zu",
                    key_for_msg, t, c->pos - 4);
    kv->type = (hl_gguf_vtype)t;
    if (t == HL_GGUF_V_STRING) return rd_str(c, &kv->str) ? HL_OK : HL_ERR_PARSE;
    if (t == HL_GGUF_V_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (!rd_u32(c, &et) || !rd_u64(c, &n)) return HL_ERR_PARSE;
        if (et >= HL_GGUF_V_COUNT)
            return fail(c, HL_ERR_PARSE, "key '%s': unknown array element type %u",
                        key_for_msg, et);
        if (et == HL_GGUF_V_ARRAY)
            return fail(c, HL_ERR_UNSUPPORTED, "key '%s': arrays of arrays are not supported",
                        key_for_msg);
        kv->arr_type = (hl_gguf_vtype)et;
        kv->arr_n = n;
        kv->arr_data = c->p + c->pos;
        if (et == HL_GGUF_V_STRING) {
            /* Each string needs at least its 8-byte length: reject absurd counts before
             * walking them, so a huge count costs nothing. */
            if (n > left(c) / 8)
                return fail(c, HL_ERR_PARSE, "key '%s': %llu strings cannot fit in the %zu "
                            "bytes left", key_for_msg, (unsigned long long)n, left(c));
            for (uint64_t i = 0; i < n; i++) {
                hl_gguf_str s;
                if (!rd_str(c, &s)) return HL_ERR_PARSE;
            }
            return HL_OK;
        }
        uint64_t bytes;
        if (__builtin_mul_overflow(n, (uint64_t)vtype_size[et], &bytes) || bytes > left(c))
            return fail(c, HL_ERR_PARSE, "key '%s': array of %llu %s overruns the file",
                        key_for_msg, (unsigned long long)n, vtype_names[et]);
        take(c, bytes);
        return HL_OK;
    }
    const uint8_t *b = take(c, vtype_size[t]);
    if (!b) return HL_ERR_PARSE;
    uint64_t raw = le(b, vtype_size[t]);
    switch (t) {
    case HL_GGUF_V_INT8: kv->v.i = (int8_t)raw; break;
    case HL_GGUF_V_INT16: kv->v.i = (int16_t)raw; break;
    case HL_GGUF_V_INT32: kv->v.i = (int32_t)raw; break;
    case HL_GGUF_V_INT64: kv->v.i = (int64_t)raw; break;
    case HL_GGUF_V_FLOAT32: {
        uint32_t r32 = (uint32_t)raw;
        float f;
        memcpy(&f, &r32, 4);
        kv->v.f = f;
        break;
    }
    case HL_GGUF_V_FLOAT64: memcpy(&kv->v.f, &raw, 8); break;
    case HL_GGUF_V_BOOL:
        if (raw > 1)
            return fail(c, HL_ERR_PARSE, "key '%s': bool value %u is not 0 or 1", key_for_msg,
                        (unsigned)raw);
        kv->v.u = raw;
        break;
    default: kv->v.u = raw; break;
    }
    return HL_OK;
}

/* Copies a slice into buf for messages, cut and NUL-terminated. */
static const char *msg_str(hl_gguf_str s, char *buf, size_t n) {
    size_t k = s.n < n - 1 ? (size_t)s.n : n - 1;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        buf[i] = ch >= 32 && ch < 127 ? (char)ch : '?';
    }
    buf[k] = 0;
    return buf;
}

static int cmp_str(hl_gguf_str a, hl_gguf_str b) {
    size_t n = a.n < b.n ? (size_t)a.n : (size_t)b.n;
    int r = n ? memcmp(a.p, b.p, n) : 0;
    if (r) return r;
    return a.n < b.n ? -1 : a.n > b.n;
}

/* qsort has no context argument in C11; the sort runs under the caller's single thread of
 * parsing, and glibc's qsort_r is a GNU extension we can use since we build with
 * _GNU_SOURCE. */
static int cmp_kv_idx(const void *a, const void *b, void *ctx) {
    const hl_gguf *g = ctx;
    return cmp_str(g->kv[*(const uint32_t *)a].key, g->kv[*(const uint32_t *)b].key);
}

static int cmp_tensor_idx(const void *a, const void *b, void *ctx) {
    const hl_gguf *g = ctx;
    return cmp_str(g->tensors[*(const uint32_t *)a].name,
                   g->tensors[*(const uint32_t *)b].name);
}

static hl_err parse(hl_gguf *g, cursor *c) {
    char name[64];
    c->what = "header";
    const uint8_t *magic = take(c, 4);
    if (!magic) return HL_ERR_PARSE;
    if (memcmp(magic, "GGUF", 4) != 0) return fail(c, HL_ERR_PARSE, "not a GGUF file (bad magic)");
    if (!rd_u32(c, &g->version) || !rd_u64(c, &g->n_tensors) || !rd_u64(c, &g->n_kv))
        return HL_ERR_PARSE;
    if (g->version == 1)
        return fail(c, HL_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only 2 and 3)");
    if (g->version != 2 && g->version != 3)
        return fail(c, HL_ERR_PARSE, "unknown GGUF version %u", g->version);
    /* A key/value pair takes at least 8 (key length) + 4 (type) + 1 (smallest value) bytes;
     * a tensor info at least 8 (name length) + 4 + 8 (one dim) + 4 + 8. Counts that cannot
     * fit are corrupt, and checking first bounds the allocations below by the file size. */
    if (g->n_kv > left(c) / 13)
        return fail(c, HL_ERR_PARSE, "n_kv %llu cannot fit in a %zu-byte file",
                    (unsigned long long)g->n_kv, c->size);
    if (g->n_tensors > left(c) / 32)
        return fail(c, HL_ERR_PARSE, "n_tensors %llu cannot fit in a %zu-byte file",
                    (unsigned long long)g->n_tensors, c->size);
    if (g->n_kv > UINT32_MAX || g->n_tensors > UINT32_MAX)
        return fail(c, HL_ERR_LIMIT, "too many entries");
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    g->kv_index = malloc((g->n_kv ? g->n_kv : 1) * sizeof *g->kv_index);
    g->tensor_index = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *g->tensor_index);
    if (!g->kv || !g->tensors || !g->kv_index || !g->tensor_index)
        return fail(c, HL_ERR_NOMEM, "out of memory");

    char what[96];
    c->what = what;
    g->alignment = HL_GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        hl_gguf_kv *kv = &g->kv[i];
        snprintf(what, sizeof what, "key %llu", (unsigned long long)i);
        if (!rd_str(c, &kv->key)) return HL_ERR_PARSE;
        msg_str(kv->key, name, sizeof name);
        snprintf(what, sizeof what, "value of '%s'", name);
        uint32_t t;
        if (!rd_u32(c, &t)) return HL_ERR_PARSE;
        hl_err e = rd_value(c, kv, t, name);
        if (e) return e;
        if (hl_gguf_str_eq(kv->key, "general.alignment")) {
            if (kv->type != HL_GGUF_V_UINT32 || kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)))
                return fail(c, HL_ERR_PARSE, "general.alignment must be a u32 power of two");
            g->alignment = (uint32_t)kv->v.u;
        }
        g->kv_index[i] = (uint32_t)i;
    }
    qsort_r(g->kv_index, g->n_kv, sizeof *g->kv_index, cmp_kv_idx, g);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (cmp_str(g->kv[g->kv_index[i - 1]].key, g->kv[g->kv_index[i]].key) == 0)
            return fail(c, HL_ERR_PARSE, "duplicate key '%s'",
                        msg_str(g->kv[g->kv_index[i]].key, name, sizeof name));

    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hl_gguf_tensor *t = &g->tensors[i];
        snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
        if (!rd_str(c, &t->name)) return HL_ERR_PARSE;
        msg_str(t->name, name, sizeof name);
        snprintf(what, sizeof what, "tensor '%s' info", name);
        uint32_t type;
        if (!rd_u32(c, &t->n_dims)) return HL_ERR_PARSE;
        if (t->n_dims < 1 || t->n_dims > HL_GGUF_MAX_DIMS)
            return fail(c, HL_ERR_PARSE, "tensor '%s': %u dimensions (1..4 allowed)", name,
                        t->n_dims);
        for (int d = 0; d < HL_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (!rd_u64(c, &t->ne[d])) return HL_ERR_PARSE;
        if (!rd_u32(c, &type) || !rd_u64(c, &t->offset)) return HL_ERR_PARSE;
        if (!hl_gguf_type_block(type))
            return fail(c, HL_ERR_UNSUPPORTED, "tensor '%s': unknown type %u", name, type);
        t->type = (hl_gguf_type)type;
        /* Element count and byte size, with every product checked (ggml's int64 limit). */
        uint64_t nel = 1;
        for (int d = 0; d < HL_GGUF_MAX_DIMS; d++)
            if (t->ne[d] > INT64_MAX || __builtin_mul_overflow(nel, t->ne[d], &nel) ||
                nel > INT64_MAX)
                return fail(c, HL_ERR_PARSE, "tensor '%s': shape overflows", name);
        if (t->ne[0] % hl_gguf_type_block(type))
            return fail(c, HL_ERR_PARSE, "tensor '%s': row length %llu is not a multiple of "
                        "%s's block of %u", name, (unsigned long long)t->ne[0],
                        hl_gguf_type_name(type), hl_gguf_type_block(type));
        if (__builtin_mul_overflow(nel / hl_gguf_type_block(type),
                                   (uint64_t)hl_gguf_type_size(type), &t->nbytes))
            return fail(c, HL_ERR_PARSE, "tensor '%s': byte size overflows", name);
        if (t->offset % g->alignment)
            return fail(c, HL_ERR_PARSE, "tensor '%s': offset %llu is not a multiple of the "
                        "alignment %u", name, (unsigned long long)t->offset, g->alignment);
        g->tensor_index[i] = (uint32_t)i;
    }
    qsort_r(g->tensor_index, g->n_tensors, sizeof *g->tensor_index, cmp_tensor_idx, g);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (cmp_str(g->tensors[g->tensor_index[i - 1]].name,
                    g->tensors[g->tensor_index[i]].name) == 0)
            return fail(c, HL_ERR_PARSE, "duplicate tensor '%s'",
                        msg_str(g->tensors[g->tensor_index[i]].name, name, sizeof name));

    /* The data section starts at the next multiple of the alignment. */
    uint64_t a = g->alignment;
    g->data_offset = (c->pos + a - 1) / a * a;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hl_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (g->data_offset > c->size ||
            __builtin_add_overflow(t->offset, t->nbytes, &end) ||
            end > c->size - g->data_offset)
            return fail(c, HL_ERR_PARSE, "tensor '%s': data [%llu, +%llu) lies outside the "
                        "%llu-byte data section", msg_str(t->name, name, sizeof name),
                        (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                        (unsigned long long)(c->size > g->data_offset ?
                                             c->size - g->data_offset : 0));
        t->data = c->p + g->data_offset + t->offset;
    }
    return HL_OK;
}

void hl_gguf_free(hl_gguf *g) {
    if (!g) return;
    if (g->mapped && g->base) munmap((void *)g->base, g->size);
    free(g->kv);
    free(g->tensors);
    free(g->kv_index);
    free(g->tensor_index);
    free(g);
}

void hl_gguf_release(hl_gguf *g, const void *p, size_t n) {
    if (!g || !g->mapped || !n) return;
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)p, hi = lo + n;
    uintptr_t base = (uintptr_t)g->base, end = base + g->size;
    if (lo < base || hi > end) return;
    lo = (lo + ps - 1) / ps * ps; /* whole pages only: the neighbours' bytes stay */
    hi = hi / ps * ps;
    if (hi <= lo) return;
    mprotect((void *)lo, hi - lo, PROT_NONE);
    madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static hl_err open_common(hl_gguf **out, const uint8_t *base, size_t size, bool mapped,
                          const char *label, char *err, size_t err_size) {
    *out = NULL;
    hl_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        if (mapped) munmap((void *)base, size);
        if (err && err_size) snprintf(err, err_size, "%s: out of memory", label);
        return HL_ERR_NOMEM;
    }
    g->base = base;
    g->size = size;
    g->mapped = mapped;
    char msg[HL_GGUF_ERR_MAX] = "";
    cursor c = {.p = base, .size = size, .err = msg, .err_size = sizeof msg, .what = ""};
    hl_err e = parse(g, &c);
    if (e) {
        if (err && err_size) snprintf(err, err_size, "%s: %s", label, msg);
        hl_gguf_free(g);
        return e;
    }
    *out = g;
    return HL_OK;
}

hl_err hl_gguf_open_buffer(hl_gguf **out, const void *data, size_t size, char *err,
                           size_t err_size) {
    return open_common(out, data, size, false, "gguf buffer", err, err_size);
}

hl_err hl_gguf_open(hl_gguf **out, const char *path, char *err, size_t err_size) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && err_size) snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? HL_ERR_NOTFOUND : HL_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int en = errno;
        close(fd);
        if (err && err_size) snprintf(err, err_size, "%s: %s", path, strerror(en));
        return HL_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (err && err_size) snprintf(err, err_size, "%s: not a regular file", path);
        return HL_ERR_IO;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        if (err && err_size) snprintf(err, err_size, "%s: empty file, not a GGUF", path);
        return HL_ERR_PARSE;
    }
    void *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int en = errno;
    close(fd);
    if (base == MAP_FAILED) {
        if (err && err_size) snprintf(err, err_size, "%s: mmap: %s", path, strerror(en));
        return HL_ERR_IO;
    }
    return open_common(out, base, size, true, path, err, err_size);
}

/* ---- lookups --------------------------------------------------------------------------- */

static hl_gguf_str cstr(const char *s) { return (hl_gguf_str){s, strlen(s)}; }

const hl_gguf_kv *hl_gguf_find_kv(const hl_gguf *g, const char *key) {
    hl_gguf_str k = cstr(key);
    size_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_str(g->kv[g->kv_index[mid]].key, k);
        if (r == 0) return &g->kv[g->kv_index[mid]];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

const hl_gguf_tensor *hl_gguf_find_tensor(const hl_gguf *g, const char *name) {
    hl_gguf_str k = cstr(name);
    size_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_str(g->tensors[g->tensor_index[mid]].name, k);
        if (r == 0) return &g->tensors[g->tensor_index[mid]];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static bool is_signed(hl_gguf_vtype t) {
    return t == HL_GGUF_V_INT8 || t == HL_GGUF_V_INT16 || t == HL_GGUF_V_INT32 ||
           t == HL_GGUF_V_INT64;
}

static bool is_unsigned(hl_gguf_vtype t) {
    return t == HL_GGUF_V_UINT8 || t == HL_GGUF_V_UINT16 || t == HL_GGUF_V_UINT32 ||
           t == HL_GGUF_V_UINT64;
}

hl_err hl_gguf_get_i64(const hl_gguf *g, const char *key, int64_t *out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv) return HL_ERR_NOTFOUND;
    if (is_signed(kv->type)) *out = kv->v.i;
    else if (is_unsigned(kv->type) && kv->v.u <= INT64_MAX) *out = (int64_t)kv->v.u;
    else return HL_ERR_PARSE;
    return HL_OK;
}

hl_err hl_gguf_get_u32(const hl_gguf *g, const char *key, uint32_t *out) {
    int64_t v;
    hl_err e = hl_gguf_get_i64(g, key, &v);
    if (e) return e;
    if (v < 0 || v > UINT32_MAX) return HL_ERR_PARSE;
    *out = (uint32_t)v;
    return HL_OK;
}

hl_err hl_gguf_get_f32(const hl_gguf *g, const char *key, float *out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv) return HL_ERR_NOTFOUND;
    if (kv->type == HL_GGUF_V_FLOAT32 || kv->type == HL_GGUF_V_FLOAT64) *out = (float)kv->v.f;
    else if (is_signed(kv->type)) *out = (float)kv->v.i;
    else if (is_unsigned(kv->type)) *out = (float)kv->v.u;
    else return HL_ERR_PARSE;
    return HL_OK;
}

hl_err hl_gguf_get_bool(const hl_gguf *g, const char *key, bool *out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv) return HL_ERR_NOTFOUND;
    if (kv->type != HL_GGUF_V_BOOL) return HL_ERR_PARSE;
    *out = kv->v.u != 0;
    return HL_OK;
}

hl_err hl_gguf_get_str(const hl_gguf *g, const char *key, hl_gguf_str *out) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv) return HL_ERR_NOTFOUND;
    if (kv->type != HL_GGUF_V_STRING) return HL_ERR_PARSE;
    *out = kv->str;
    return HL_OK;
}

hl_err hl_gguf_get_arr(const hl_gguf *g, const char *key, hl_gguf_vtype want, uint64_t *n,
                       const uint8_t **data) {
    const hl_gguf_kv *kv = hl_gguf_find_kv(g, key);
    if (!kv) return HL_ERR_NOTFOUND;
    if (kv->type != HL_GGUF_V_ARRAY || kv->arr_type != want) return HL_ERR_PARSE;
    *n = kv->arr_n;
    *data = kv->arr_data;
    return HL_OK;
}

hl_err hl_gguf_arr_strings(const hl_gguf_kv *kv, hl_gguf_str *out) {
    if (kv->type != HL_GGUF_V_ARRAY || kv->arr_type != HL_GGUF_V_STRING) return HL_ERR_PARSE;
    /* Bounds were checked when the file was opened; walk the same way again. */
    const uint8_t *p = kv->arr_data;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t n = le(p, 8);
        out[i].p = (const char *)p + 8;
        out[i].n = n;
        p += 8 + n;
    }
    return HL_OK;
}

double hl_gguf_arr_num(const hl_gguf_kv *kv, uint64_t i) {
    unsigned sz = vtype_size[kv->arr_type];
    uint64_t raw = le(kv->arr_data + i * sz, (int)sz);
    switch (kv->arr_type) {
    case HL_GGUF_V_INT8: return (int8_t)raw;
    case HL_GGUF_V_INT16: return (int16_t)raw;
    case HL_GGUF_V_INT32: return (int32_t)raw;
    case HL_GGUF_V_INT64: return (double)(int64_t)raw;
    case HL_GGUF_V_FLOAT32: {
        uint32_t r = (uint32_t)raw;
        float f;
        memcpy(&f, &r, 4);
        return f;
    }
    case HL_GGUF_V_FLOAT64: {
        double d;
        memcpy(&d, &raw, 8);
        return d;
    }
    default: return (double)raw;
    }
}
