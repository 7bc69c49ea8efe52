/* hl_err: names for the error codes declared in hl_err.h. */
#include "hl_err.h"

const char *hl_err_str(hl_err err) {
    switch (err) {
    case HL_OK: return "ok";
    case HL_ERR_NOMEM: return "out of memory";
    case HL_ERR_INVAL: return "invalid argument";
    case HL_ERR_LIMIT: return "limit exceeded";
    case HL_ERR_IO: return "I/O error";
    case HL_ERR_PARSE: return "parse error";
    case HL_ERR_AGAIN: return "incomplete input";
    case HL_ERR_NOTFOUND: return "not found";
    case HL_ERR_UNSUPPORTED: return "unsupported";
    case HL_ERR_TIMEOUT: return "timeout";
    case HL_ERR_UPSTREAM: return "upstream error";
    case HL_ERR_CANCELLED: return "cancelled";
    }
    return "unknown error";
}
