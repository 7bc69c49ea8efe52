/* hl_url: masking credentials in URLs shown to people (see hl_url.h). */
#include "hl_url.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Where a URL written in free text ends: at whitespace, a quote, a bracket or a comma-space
 * would be too clever; whitespace, quotes and angle brackets are enough for our messages. */
static bool url_stop(char c) { return c == '\0' || isspace((unsigned char)c) || c == '"' || c == '\'' || c == '<' || c == '>'; }

static bool secret_name(const char *p, size_t n) {
    static const char *const words[] = {"key", "token", "secret", "passw", "pwd", "sig", "auth", "credential", "session"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t k = strlen(words[w]);
        for (size_t i = 0; i + k <= n; i++)
            if (!strncasecmp(p + i, words[w], k)) return true;
    }
    return false;
}

typedef struct out_buf {
    char *p;
    size_t n, len;
} out_buf;

static void put(out_buf *o, const char *s, size_t k) {
    size_t room = o->n - 1 - o->len;
    if (k > room) k = room;
    memcpy(o->p + o->len, s, k);
    o->len += k;
}

/* Copies the URL starting at in (its scheme's first byte; "://" at in + scheme_len), masked;
 * returns where it ended. */
static const char *put_url(out_buf *o, const char *in, size_t scheme_len) {
    const char *end = in;
    while (!url_stop(*end)) end++;
    const char *auth = in + scheme_len + 3, *auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#') auth_end++;
    const char *at = NULL;
    for (const char *q = auth; q < auth_end; q++)
        if (*q == '@') at = q;
    put(o, in, (size_t)(auth - in));
    if (at) {
        put(o, "***", 3);
        auth = at;
    }
    const char *q = memchr(auth, '?', (size_t)(end - auth));
    if (!q) {
        put(o, auth, (size_t)(end - auth));
        return end;
    }
    put(o, auth, (size_t)(q + 1 - auth));
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq && secret_name(p, (size_t)(eq - p))) {
            put(o, p, (size_t)(eq + 1 - p));
            put(o, "***", 3);
        } else {
            put(o, p, (size_t)(pe - p));
        }
        if (amp) put(o, "&", 1);
        p = amp ? amp + 1 : end;
    }
    return end;
}

char *hl_url_redact(const char *in, char *out, size_t n) {
    if (!n) return out;
    out_buf o = {out, n, 0};
    const char *p = in ? in : "";
    while (*p && o.len < n - 1) {
        const char *sep = strstr(p, "://");
        if (!sep) {
            put(&o, p, strlen(p));
            break;
        }
        const char *scheme = sep;
        while (scheme > p && (isalnum((unsigned char)scheme[-1]) || scheme[-1] == '+' || scheme[-1] == '-' ||
                              scheme[-1] == '.'))
            scheme--;
        put(&o, p, (size_t)(scheme - p));
        if (scheme == sep) { /* "://" with no scheme: not a URL */
            put(&o, sep, 3);
            p = sep + 3;
            continue;
        }
        p = put_url(&o, scheme, (size_t)(sep - scheme));
    }
    out[o.len] = '\0';
    return out;
}
