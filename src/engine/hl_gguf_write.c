/* hl_gguf_write: see hl_gguf_write.h. */
#include "hl_gguf_write.h"

#include <string.h>

static hl_err put(hl_buf *b, uint64_t v, int n) {
    uint8_t bytes[8];
    for (int i = 0; i < n; i++) bytes[i] = (uint8_t)(v >> (8 * i));
    return hl_buf_append(b, bytes, (size_t)n);
}

static hl_err put_str(hl_buf *b, const char *s, size_t n) {
    hl_err e = put(b, n, 8);
    return e ? e : hl_buf_append(b, s, n);
}

void hl_gguf_writer_init(hl_gguf_writer *w) {
    memset(w, 0, sizeof *w);
    hl_buf_init(&w->kv, 0);
    hl_buf_init(&w->ti, 0);
    w->alignment = HL_GGUF_DEFAULT_ALIGNMENT;
    w->version = 3;
}

void hl_gguf_writer_release(hl_gguf_writer *w) {
    hl_buf_release(&w->kv);
    hl_buf_release(&w->ti);
}

static hl_err kv_head(hl_gguf_writer *w, const char *key, hl_gguf_vtype t) {
    hl_err e = put_str(&w->kv, key, strlen(key));
    if (!e) e = put(&w->kv, (uint64_t)t, 4);
    if (!e) w->n_kv++;
    return e;
}

hl_err hl_gguf_writer_kv_u32(hl_gguf_writer *w, const char *key, uint32_t v) {
    hl_err e = kv_head(w, key, HL_GGUF_V_UINT32);
    return e ? e : put(&w->kv, v, 4);
}

hl_err hl_gguf_writer_kv_i32(hl_gguf_writer *w, const char *key, int32_t v) {
    hl_err e = kv_head(w, key, HL_GGUF_V_INT32);
    return e ? e : put(&w->kv, (uint32_t)v, 4);
}

hl_err hl_gguf_writer_kv_f32(hl_gguf_writer *w, const char *key, float v) {
    uint32_t r;
    memcpy(&r, &v, 4);
    hl_err e = kv_head(w, key, HL_GGUF_V_FLOAT32);
    return e ? e : put(&w->kv, r, 4);
}

hl_err hl_gguf_writer_kv_bool(hl_gguf_writer *w, const char *key, int v) {
    hl_err e = kv_head(w, key, HL_GGUF_V_BOOL);
    return e ? e : put(&w->kv, v != 0, 1);
}

hl_err hl_gguf_writer_kv_str(hl_gguf_writer *w, const char *key, const char *v) {
    hl_err e = kv_head(w, key, HL_GGUF_V_STRING);
    return e ? e : put_str(&w->kv, v, strlen(v));
}

static const int scalar_size[HL_GGUF_V_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

hl_err hl_gguf_writer_kv_arr(hl_gguf_writer *w, const char *key, hl_gguf_vtype t,
                             const void *elems, uint64_t n) {
    if ((unsigned)t >= HL_GGUF_V_COUNT || !scalar_size[t]) return HL_ERR_INVAL;
    hl_err e = kv_head(w, key, HL_GGUF_V_ARRAY);
    if (!e) e = put(&w->kv, (uint64_t)t, 4);
    if (!e) e = put(&w->kv, n, 8);
    /* Elements are written in host order; this code only runs on little-endian hosts, as
     * does the rest of the engine. */
    if (!e) e = hl_buf_append(&w->kv, elems, (size_t)(n * (uint64_t)scalar_size[t]));
    return e;
}

hl_err hl_gguf_writer_kv_arr_str(hl_gguf_writer *w, const char *key,
                                 const char *const *strs, const size_t *lens, uint64_t n) {
    hl_err e = kv_head(w, key, HL_GGUF_V_ARRAY);
    if (!e) e = put(&w->kv, HL_GGUF_V_STRING, 4);
    if (!e) e = put(&w->kv, n, 8);
    for (uint64_t i = 0; !e && i < n; i++)
        e = put_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i]));
    return e;
}

size_t hl_gguf_writer_pad(const hl_gguf_writer *w, uint64_t nbytes) {
    return (size_t)((w->alignment - nbytes % w->alignment) % w->alignment);
}

hl_err hl_gguf_writer_tensor(hl_gguf_writer *w, const char *name, hl_gguf_type type,
                             uint32_t n_dims, const uint64_t *ne) {
    if (n_dims < 1 || n_dims > HL_GGUF_MAX_DIMS || !hl_gguf_type_block(type)) return HL_ERR_INVAL;
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) nel *= ne[d];
    if (ne[0] % hl_gguf_type_block(type)) return HL_ERR_INVAL;
    uint64_t nbytes = nel / hl_gguf_type_block(type) * hl_gguf_type_size(type);
    hl_err e = put_str(&w->ti, name, strlen(name));
    if (!e) e = put(&w->ti, n_dims, 4);
    for (uint32_t d = 0; !e && d < n_dims; d++) e = put(&w->ti, ne[d], 8);
    if (!e) e = put(&w->ti, (uint64_t)type, 4);
    if (!e) e = put(&w->ti, w->data_size, 8);
    if (e) return e;
    w->data_size += nbytes + hl_gguf_writer_pad(w, nbytes);
    w->n_tensors++;
    return HL_OK;
}

hl_err hl_gguf_writer_header(const hl_gguf_writer *w, hl_buf *out) {
    size_t start = out->len;
    hl_err e = hl_buf_append(out, "GGUF", 4);
    if (!e) e = put(out, w->version, 4);
    if (!e) e = put(out, w->n_tensors, 8);
    if (!e) e = put(out, w->n_kv, 8);
    if (!e && w->kv.len) e = hl_buf_append(out, w->kv.data, w->kv.len);
    if (!e && w->ti.len) e = hl_buf_append(out, w->ti.data, w->ti.len);
    static const char zeros[256];
    size_t pad = hl_gguf_writer_pad(w, out->len - start);
    while (!e && pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        e = hl_buf_append(out, zeros, k);
        pad -= k;
    }
    return e;
}
