/* hl_gguf: a validating reader for GGUF (versions 2 and 3), the file format of llama.cpp
 * models, over a read-only mmap of the file (or a caller's buffer, for the fuzzer).
 *
 * The engine trusts nothing in a model file. hl_gguf_open() walks the whole header once and
 * checks every count, length, offset, size, alignment and type against the file's size
 * before anything else looks at it; afterwards every string, array and tensor it hands out
 * is known to lie inside the file. A corrupt or truncated file is HL_ERR_PARSE with a
 * message naming what was wrong and where (never a crash or an out-of-bounds read); a
 * well-formed file that uses something we cannot run (an unknown tensor type, a nested
 * array) is HL_ERR_UNSUPPORTED.
 *
 * Layout (all integers little-endian; nothing in the header is aligned):
 *
 *   offset  size  field
 *   0       4     magic "GGUF" (bytes 47 47 55 46)
 *   4       4     u32 version: 2 or 3 (version 1 used 32-bit counts and is not accepted)
 *   8       8     u64 n_tensors
 *   16      8     u64 n_kv
 *   24      ...   n_kv key/value pairs:
 *                   string key            (u64 length, then that many bytes, no NUL)
 *                   u32 value type        (hl_gguf_vtype)
 *                   value                 scalar: 1, 2, 4 or 8 bytes by type
 *                                         string: u64 length + bytes
 *                                         array:  u32 element type, u64 count, elements
 *                                                 (arrays of arrays are not accepted)
 *           ...   n_tensors tensor infos:
 *                   string name
 *                   u32 n_dims            1..4
 *                   u64 ne[n_dims]        ne[0] is the contiguous (row) dimension
 *                   u32 type              ggml type (hl_gguf_type)
 *                   u64 offset            from the start of the data section; a multiple
 *                                         of the alignment
 *           pad   zero bytes up to a multiple of the alignment (general.alignment, a u32
 *                 power of two; 32 when absent)
 *           ...   data section: tensor bytes. A tensor of type T with shape ne holds
 *                 ne[0]/block(T) blocks of size(T) bytes per row, rows contiguous, then
 *                 ne[1], ne[2], ne[3] in that order. ne[0] must be a multiple of block(T).
 *
 * Keys and tensor names must be unique. Strings are not NUL-terminated in the file, so they
 * are handed out as (pointer, length) slices that borrow the mapping.
 *
 * Ownership: hl_gguf_open() and hl_gguf_open_buffer() return an hl_gguf the caller frees
 * with hl_gguf_free(). Everything reachable from it (kv, tensors, slices, tensor data)
 * borrows the mapping and is valid until then. hl_gguf_open_buffer() borrows the caller's
 * buffer, which must outlive the hl_gguf. An hl_gguf is immutable after opening and may be
 * read from any number of threads. */
#ifndef HL_GGUF_H
#define HL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hl_err.h"

#define HL_GGUF_MAX_DIMS 4
#define HL_GGUF_DEFAULT_ALIGNMENT 32
#define HL_GGUF_ERR_MAX 256 /* size of the error-message buffer callers should pass */

/* Value types of key/value pairs, numbered as in the file. */
typedef enum hl_gguf_vtype {
    HL_GGUF_V_UINT8 = 0,
    HL_GGUF_V_INT8 = 1,
    HL_GGUF_V_UINT16 = 2,
    HL_GGUF_V_INT16 = 3,
    HL_GGUF_V_UINT32 = 4,
    HL_GGUF_V_INT32 = 5,
    HL_GGUF_V_FLOAT32 = 6,
    HL_GGUF_V_BOOL = 7,
    HL_GGUF_V_STRING = 8,
    HL_GGUF_V_ARRAY = 9,
    HL_GGUF_V_UINT64 = 10,
    HL_GGUF_V_INT64 = 11,
    HL_GGUF_V_FLOAT64 = 12,
    HL_GGUF_V_COUNT
} hl_gguf_vtype;

/* Tensor element types, numbered as ggml numbers them. Only the ones whose block layout we
 * know are listed; any other number in a file is HL_ERR_UNSUPPORTED. */
typedef enum hl_gguf_type {
    HL_GGUF_F32 = 0,
    HL_GGUF_F16 = 1,
    HL_GGUF_Q4_0 = 2,
    HL_GGUF_Q4_1 = 3,
    HL_GGUF_Q5_0 = 6,
    HL_GGUF_Q5_1 = 7,
    HL_GGUF_Q8_0 = 8,
    HL_GGUF_Q8_1 = 9,
    HL_GGUF_Q2_K = 10,
    HL_GGUF_Q3_K = 11,
    HL_GGUF_Q4_K = 12,
    HL_GGUF_Q5_K = 13,
    HL_GGUF_Q6_K = 14,
    HL_GGUF_Q8_K = 15,
    HL_GGUF_I8 = 24,
    HL_GGUF_I16 = 25,
    HL_GGUF_I32 = 26,
    HL_GGUF_I64 = 27,
    HL_GGUF_F64 = 28,
    HL_GGUF_BF16 = 30,
    HL_GGUF_TYPE_COUNT = 40 /* bound for tables indexed by type */
} hl_gguf_type;

/* A borrowed, length-delimited string inside the file (not NUL-terminated). */
typedef struct hl_gguf_str {
    const char *p;
    uint64_t n;
} hl_gguf_str;

typedef struct hl_gguf_kv {
    hl_gguf_str key;
    hl_gguf_vtype type;
    /* Scalars, widened: integers and bools in i (signed) or u (unsigned), floats in f. */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } v;
    hl_gguf_str str;          /* type STRING */
    hl_gguf_vtype arr_type;   /* type ARRAY: element type (never ARRAY) */
    uint64_t arr_n;           /* type ARRAY: element count */
    const uint8_t *arr_data;  /* type ARRAY: first element in the file (unaligned) */
} hl_gguf_kv;

typedef struct hl_gguf_tensor {
    hl_gguf_str name;
    uint32_t n_dims;
    uint64_t ne[HL_GGUF_MAX_DIMS]; /* ne[0]: row length; dims past n_dims are 1 */
    hl_gguf_type type;
    uint64_t offset;               /* from the data section */
    uint64_t nbytes;               /* validated: offset + nbytes lies inside the file */
    const void *data;              /* borrows the mapping; aligned as the file says */
} hl_gguf_tensor;

typedef struct hl_gguf {
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    hl_gguf_kv *kv;            /* n_kv entries in file order; owned */
    uint64_t n_tensors;
    hl_gguf_tensor *tensors;   /* n_tensors entries in file order; owned */
    uint64_t data_offset;      /* file offset of the data section */
    const uint8_t *base;       /* the whole file */
    size_t size;
    bool mapped;               /* base is our mmap (unmapped by hl_gguf_free) */
    uint32_t *kv_index;        /* kv sorted by key, for binary search; owned */
    uint32_t *tensor_index;    /* tensors sorted by name; owned */
} hl_gguf;

/* Maps the file at path read-only and validates it. On failure *out is NULL and err (of
 * err_size bytes, HL_GGUF_ERR_MAX is enough; may be NULL) holds a message naming the file. */
hl_err hl_gguf_open(hl_gguf **out, const char *path, char *err, size_t err_size);
/* The same over size bytes at data (borrowed; must outlive the result). */
hl_err hl_gguf_open_buffer(hl_gguf **out, const void *data, size_t size, char *err,
                           size_t err_size);
/* Unmaps and frees. NULL is fine. */
void hl_gguf_free(hl_gguf *g);
/* The caller promises never to read [p, p + n) (inside g's tensor data) again: on a mapped
 * file, the whole pages inside it leave the process's memory and become inaccessible, so a
 * read after all is a crash, not a silent page-in. A no-op for buffers (not ours to drop). */
void hl_gguf_release(hl_gguf *g, const void *p, size_t n);

/* Lookups by exact key or name; NULL when absent. */
const hl_gguf_kv *hl_gguf_find_kv(const hl_gguf *g, const char *key);
const hl_gguf_tensor *hl_gguf_find_tensor(const hl_gguf *g, const char *name);

/* Typed getters. HL_ERR_NOTFOUND when the key is absent (out untouched, so callers may
 * preset a default), HL_ERR_PARSE when present with an incompatible type or a value out of
 * the target's range. Integer getters accept any integer type; get_f32 also integers. */
hl_err hl_gguf_get_u32(const hl_gguf *g, const char *key, uint32_t *out);
hl_err hl_gguf_get_i64(const hl_gguf *g, const char *key, int64_t *out);
hl_err hl_gguf_get_f32(const hl_gguf *g, const char *key, float *out);
hl_err hl_gguf_get_bool(const hl_gguf *g, const char *key, bool *out);
hl_err hl_gguf_get_str(const hl_gguf *g, const char *key, hl_gguf_str *out);
/* An array of elements of type want: sets *n and *data (borrowed, unaligned). */
hl_err hl_gguf_get_arr(const hl_gguf *g, const char *key, hl_gguf_vtype want, uint64_t *n,
                       const uint8_t **data);
/* Fills out[0..kv->arr_n) with the strings of a string array (out is caller-allocated). */
hl_err hl_gguf_arr_strings(const hl_gguf_kv *kv, hl_gguf_str *out);
/* Element i of a numeric array as a double (kv must be a numeric array, i < arr_n). */
double hl_gguf_arr_num(const hl_gguf_kv *kv, uint64_t i);

/* Compares a slice with a C string. */
bool hl_gguf_str_eq(hl_gguf_str s, const char *c);

/* Type facts. block: elements per block (1 for plain types); size: bytes per block. Both 0
 * for numbers we do not know. */
const char *hl_gguf_type_name(uint32_t type);
uint32_t hl_gguf_type_block(uint32_t type);
uint32_t hl_gguf_type_size(uint32_t type);
/* Bytes of one row of n elements (n a multiple of the block); 0 when invalid. */
size_t hl_gguf_row_size(uint32_t type, uint64_t n);
const char *hl_gguf_vtype_name(uint32_t vtype);

#endif
