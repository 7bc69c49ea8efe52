/* hl_url: URLs as they may be shown. A backend URL can carry credentials
 * (http://user:pass@host/v1?token=...); wherever one is shown (logs, /readyz) the user
 * information and the values of secret-looking query parameters are masked. */
#ifndef HL_URL_H
#define HL_URL_H

#include <stddef.h>

/* Copies the text in (which may hold URLs anywhere, or be one) to out[0..n), NUL-terminated
 * and cut at n - 1 bytes, with every URL's user information ("user:pass@") replaced by
 * "***@" and the value of every query parameter whose name says key, token, secret,
 * password, signature, auth or credential replaced by "***". Returns out. */
char *hl_url_redact(const char *in, char *out, size_t n);

#endif
