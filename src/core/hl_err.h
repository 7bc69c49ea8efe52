/* hl_err: the one error type of hybridllm.
 *
 * Every function that can fail returns an hl_err: 0 (HL_OK) on success, a negative code
 * otherwise. Results travel through out-parameters. hl_err_str() names a code for logs and
 * error messages; it never returns NULL. */
#ifndef HL_ERR_H
#define HL_ERR_H

typedef enum hl_err {
    HL_OK = 0,
    HL_ERR_NOMEM = -1,     /* allocation failed */
    HL_ERR_INVAL = -2,     /* invalid argument or input */
    HL_ERR_LIMIT = -3,     /* a configured ceiling was reached (size, count) */
    HL_ERR_IO = -4,        /* system call failed; errno has the detail */
    HL_ERR_PARSE = -5,     /* malformed input (HTTP, JSON, YAML, SSE, GGUF) */
    HL_ERR_AGAIN = -6,     /* incremental parser needs more bytes */
    HL_ERR_NOTFOUND = -7,  /* named thing does not exist */
    HL_ERR_UNSUPPORTED = -8, /* valid input that this build or backend cannot honour */
    HL_ERR_TIMEOUT = -9,
    HL_ERR_UPSTREAM = -10, /* an upstream backend failed */
    HL_ERR_CANCELLED = -11,
} hl_err;

/* Returns from the calling function with x's error, if any: for functions that only chain
 * calls and own nothing that needs releasing on the way out. */
#define HL_TRY(x) do { hl_err hl_e_ = (x); if (hl_e_) return hl_e_; } while (0)

/* Returns a static, human-readable name for err. */
const char *hl_err_str(hl_err err);

#endif
