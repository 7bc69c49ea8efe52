/* hl_gguf_write: builds GGUF v3 files, for our tools (tools/hl_mkgguf) and for tests that
 * need a GGUF of a given shape or a deliberately broken one.
 *
 * Usage: add key/value pairs and tensor infos (shape and type only), then
 * hl_gguf_writer_header() produces everything up to the data section. The caller then
 * writes each tensor's bytes in the order the tensors were added, each followed by
 * hl_gguf_writer_pad(nbytes) zero bytes; that lets a tool stream a gigabyte of weights
 * without holding them in memory.
 *
 * Ownership: the writer owns its buffers; hl_gguf_writer_release() frees them. Strings are
 * copied. */
#ifndef HL_GGUF_WRITE_H
#define HL_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include "hl_buf.h"
#include "hl_gguf.h"

typedef struct hl_gguf_writer {
    hl_buf kv;          /* encoded key/value pairs */
    hl_buf ti;          /* encoded tensor infos */
    uint64_t n_kv, n_tensors;
    uint64_t data_size; /* bytes of the data section so far, padding included */
    uint32_t alignment;
    uint32_t version;   /* 3 by default; tests set 2 */
} hl_gguf_writer;

void hl_gguf_writer_init(hl_gguf_writer *w);
void hl_gguf_writer_release(hl_gguf_writer *w);

hl_err hl_gguf_writer_kv_u32(hl_gguf_writer *w, const char *key, uint32_t v);
hl_err hl_gguf_writer_kv_i32(hl_gguf_writer *w, const char *key, int32_t v);
hl_err hl_gguf_writer_kv_f32(hl_gguf_writer *w, const char *key, float v);
hl_err hl_gguf_writer_kv_bool(hl_gguf_writer *w, const char *key, int v);
hl_err hl_gguf_writer_kv_str(hl_gguf_writer *w, const char *key, const char *v);
/* A numeric array: n elements of type t (scalar types only), copied from elems. */
hl_err hl_gguf_writer_kv_arr(hl_gguf_writer *w, const char *key, hl_gguf_vtype t,
                             const void *elems, uint64_t n);
/* A string array; lens may be NULL for NUL-terminated strings. */
hl_err hl_gguf_writer_kv_arr_str(hl_gguf_writer *w, const char *key,
                                 const char *const *strs, const size_t *lens, uint64_t n);
/* Records a tensor's info; its data goes in the data section in call order. Sets alignment
 * first if it is not 32 (general.alignment is written by the caller as a kv). */
hl_err hl_gguf_writer_tensor(hl_gguf_writer *w, const char *name, hl_gguf_type type,
                             uint32_t n_dims, const uint64_t *ne);
/* Appends the header (magic .. padding before the data section) to out. */
hl_err hl_gguf_writer_header(const hl_gguf_writer *w, hl_buf *out);
/* Zero bytes to write after a tensor of nbytes bytes. */
size_t hl_gguf_writer_pad(const hl_gguf_writer *w, uint64_t nbytes);

#endif
