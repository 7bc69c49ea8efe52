/* hl_pii: see hl_pii.h for what counts as PII and why.
 *
 * A scan first builds the normalized view (view_build(): Unicode separators, dashes,
 * zero-width and full-width forms folded, wrapped numbers joined, with a map back to the
 * original offsets), then runs the token pass (scan_tokens(): secrets and national ids, which
 * start at word starts, '=', ':' or "-----") and writes "[xx..x]" over what it claims, then
 * the main pass below over what is left, then the custom patterns over the raw bytes. Every
 * match goes through sink_add(), which counts a value once per report and maps its span back
 * to the original text for redaction.
 *
 * The built-in types are found by one hand-written left-to-right pass. The main loop looks
 * only at digits and a few trigger bytes ('(', '+', ':', and the lead byte of full-width
 * forms); letters and spaces go by at the cost of a table lookup. A digit that starts a
 * token (see starts_token()) is offered to the detectors, and when none matches the whole
 * token is skipped, so the inside of a version string, UUID, hash or timestamp is never
 * re-examined as if it were a fresh number. Values that start with letters (an IBAN's
 * country code, an IPv6 group such as "fe80") are found by looking back from their first
 * digit or ':'. Emails are found one ahead of the main loop (find_email()): from each '@'
 * (or "%40", "[at]") back for the local part and on for the domain. Matches never overlap:
 * a match moves the "floor" below which no later match may start.
 *
 * Redacted text, scanned again, must come out clean, so the pass reads the text around a
 * value as it will read once the value is a placeholder "[TYPE_n]": right after a match
 * the previous character reads as ']' (ch_before()), and up to the next email the text
 * ends in '[' (ch_at()).
 *
 * Digit runs are read once into a numrun (groups of digits and the separators between them)
 * and then offered to IPv4, SSN, card and phone, longest candidate first. A candidate may
 * end at the run's true end or at a space between groups ("(415) 555"), because a space is
 * also how prose separates a number from the next one ("call 415-555-2671 2 times").
 *
 * Every character is read through ch_at(), which folds full-width forms to ASCII, so
 * "４１１１ １１１１ １１１１ １１１１" and "ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ" take the same paths as their
 * ASCII twins. Non-ASCII bytes that are not full-width forms read as NA, which no rule
 * treats as a letter or digit: CJK text around a number is a boundary, as a space would be.
 *
 * Custom patterns run afterwards, one PCRE2 pass each, over the raw bytes. */
#include "hl_pii.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "hl_buf.h"

/* ---- Detector ------------------------------------------------------------------------ */

/* PCRE2 limits for custom patterns. The match limit caps backtracking work per match
 * attempt (the JIT honours it); hitting it fails closed (see hl_pii.h). */
#define PII_MATCH_LIMIT 1000000u
#define PII_HEAP_LIMIT_KIB 4096u

typedef struct pii_custom {
    pcre2_code *code;
    char name[HL_PII_MAX_NAME + 1];
    char tag[HL_PII_MAX_NAME + 1]; /* upper-cased name, for placeholders */
} pii_custom;

struct hl_pii_detector {
    size_t n_custom;
    pcre2_match_context *mctx; /* read-only after creation; shared by all scans */
    pii_custom custom[HL_PII_MAX_CUSTOM];
};

static const char *const type_names[HL_PII_NTYPES] = {
    "email", "phone", "ssn", "credit_card", "iban", "ipv4", "ipv6",
    "uk_nino", "es_dni", "nl_bsn", "it_codice_fiscale", "fr_nir", "de_steuer_id",
    "openai_key", "anthropic_key", "aws_access_key", "aws_secret", "github_token",
    "gitlab_token", "slack_token", "stripe_key", "google_api_key", "private_key", "jwt",
    "password_in_url", "env_secret", "custom",
};
static const char *const type_tags[HL_PII_NTYPES] = {
    "EMAIL", "PHONE", "SSN", "CREDIT_CARD", "IBAN", "IPV4", "IPV6",
    "UK_NINO", "ES_DNI", "NL_BSN", "IT_CODICE_FISCALE", "FR_NIR", "DE_STEUER_ID",
    "OPENAI_KEY", "ANTHROPIC_KEY", "AWS_ACCESS_KEY", "AWS_SECRET", "GITHUB_TOKEN",
    "GITLAB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "PRIVATE_KEY", "JWT",
    "PASSWORD_IN_URL", "ENV_SECRET", "CUSTOM",
};

const char *hl_pii_type_name(hl_pii_type t) {
    return (unsigned)t < HL_PII_NTYPES ? type_names[t] : "unknown";
}

const char *hl_pii_custom_name(const hl_pii_detector *d, size_t i) {
    return d && i < d->n_custom ? d->custom[i].name : NULL;
}

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *errbuf, size_t errlen, const char *fmt, ...) {
    if (!errbuf || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static bool name_ok(const char *name) {
    size_t n = 0;
    for (; name[n]; n++) {
        unsigned char c = (unsigned char)name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return n >= 1 && n <= HL_PII_MAX_NAME;
}

/* A custom pattern that matches a placeholder ("(?i)secret\\w*" named "secret" matches
 * "[SECRET_1]") would make every redaction fail: the redacted text would never come out
 * clean. Refused here rather than discovered on live traffic. */
static hl_err check_placeholders(const hl_pii_detector *d, char *errbuf, size_t errlen) {
    if (d->n_custom == 0) return HL_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return HL_ERR_NOMEM;
    hl_err err = HL_OK;
    for (size_t p = 0; p < d->n_custom && !err; p++) {
        for (size_t t = 0; t < HL_PII_CUSTOM + d->n_custom && !err; t++) {
            const char *tag = t < HL_PII_CUSTOM ? type_tags[t] : d->custom[t - HL_PII_CUSTOM].tag;
            for (int num = 1; num <= 99 && !err; num += 98) {
                char ph[HL_PII_MAX_NAME + 8];
                size_t n = (size_t)snprintf(ph, sizeof ph, "[%s_%d]", tag, num);
                bool hit = false;
                for (size_t off = 0; off <= n && !hit;) { /* empty matches do not count */
                    int rc = pcre2_match(d->custom[p].code, (PCRE2_SPTR)ph, n, off, 0, md,
                                         d->mctx);
                    if (rc < 0) break;
                    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                    hit = ov[1] > ov[0];
                    off = (ov[1] > off ? ov[1] : off) + 1;
                }
                if (hit) {
                    set_err(errbuf, errlen,
                            "custom PII pattern '%s' matches the placeholder %s, so redacted "
                            "text could never come out clean",
                            d->custom[p].name, ph);
                    err = HL_ERR_INVAL;
                }
            }
        }
    }
    pcre2_match_data_free(md);
    return err;
}

hl_err hl_pii_detector_new(hl_pii_detector **out, const char *const *patterns,
                           const char *const *names, size_t n_custom, char *errbuf,
                           size_t errlen) {
    hl_err err = HL_OK;
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    if (n_custom > HL_PII_MAX_CUSTOM) {
        set_err(errbuf, errlen, "%zu custom PII patterns; at most %d are allowed", n_custom,
                HL_PII_MAX_CUSTOM);
        return HL_ERR_LIMIT;
    }
    if (n_custom && (!patterns || !names)) {
        set_err(errbuf, errlen, "custom PII patterns need both patterns and names");
        return HL_ERR_INVAL;
    }
    hl_pii_detector *d = calloc(1, sizeof *d);
    if (!d) return HL_ERR_NOMEM;
    if (n_custom) {
        d->mctx = pcre2_match_context_create(NULL);
        if (!d->mctx) {
            err = HL_ERR_NOMEM;
            goto out;
        }
        pcre2_set_match_limit(d->mctx, PII_MATCH_LIMIT);
        pcre2_set_heap_limit(d->mctx, PII_HEAP_LIMIT_KIB);
    }
    for (size_t i = 0; i < n_custom; i++) {
        const char *name = names[i], *pat = patterns[i];
        if (!name || !name_ok(name)) {
            set_err(errbuf, errlen,
                    "custom PII pattern #%zu: name must be 1-%d characters of [A-Za-z0-9_]",
                    i + 1, HL_PII_MAX_NAME);
            err = HL_ERR_INVAL;
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->custom[j].name, name) == 0) {
                set_err(errbuf, errlen, "custom PII pattern '%s': name used twice", name);
                err = HL_ERR_INVAL;
                goto out;
            }
        }
        if (!pat) {
            set_err(errbuf, errlen, "custom PII pattern '%s': no pattern", name);
            err = HL_ERR_INVAL;
            goto out;
        }
        pii_custom *c = &d->custom[i];
        size_t nl = strlen(name);
        memcpy(c->name, name, nl + 1);
        for (size_t j = 0; j <= nl; j++)
            c->tag[j] = (char)(name[j] >= 'a' && name[j] <= 'z' ? name[j] - 32 : name[j]);
        int code;
        PCRE2_SIZE off;
        /* MATCH_INVALID_UTF: request text may be any bytes, and an invalid-UTF error would
         * silently skip the pattern (a miss). */
        c->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
        if (!c->code) {
            PCRE2_UCHAR msg[256];
            if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
                snprintf((char *)msg, sizeof msg, "error %d", code);
            set_err(errbuf, errlen, "custom PII pattern '%s': %s at offset %zu", name,
                    (const char *)msg, (size_t)off);
            err = code == PCRE2_ERROR_NOMEMORY ? HL_ERR_NOMEM : HL_ERR_INVAL;
            goto out;
        }
        d->n_custom = i + 1;
        /* Without JIT (unsupported platform) the interpreter gives the same answers. */
        (void)pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);
    }
    if ((err = check_placeholders(d, errbuf, errlen)) != HL_OK) goto out;
    *out = d;
    d = NULL;
out:
    hl_pii_detector_free(d);
    return err;
}

void hl_pii_detector_free(hl_pii_detector *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_custom; i++) pcre2_code_free(d->custom[i].code);
    pcre2_match_context_free(d->mctx);
    free(d);
}

/* ---- Matches ------------------------------------------------------------------------- */

typedef struct span {
    size_t start, end;
    uint8_t type;   /* hl_pii_type */
    uint8_t custom; /* pattern index when type is HL_PII_CUSTOM */
    int num;        /* placeholder number, assigned while redacting */
} span;

#define SINK_SMALL 32

/* Where matches go: always counted into the report; also collected when redacting. The
 * collected list has no ceiling of its own: matches are non-empty and built-in ones never
 * overlap, so there are at most len * (1 + n_custom) of them. */
typedef struct sink {
    hl_pii_report *r;
    const uint8_t *txt;  /* the bytes spans index: the scan view, or the raw text */
    const uint32_t *map; /* view offset -> original offset (n + 1 entries); NULL: identity */
    const uint8_t *raw;  /* the original text, when map is set */
    bool collect;
    bool nomem;
    bool limit; /* a custom pattern hit PCRE2's match limit */
    span *v;     /* collected spans: small until it outgrows it, then malloc'd */
    span *small; /* the caller's stack array of SINK_SMALL spans */
    size_t n, cap;
} sink;

static void bump(int *c) {
    if (*c < INT_MAX) (*c)++;
}

/* Has the report counted this value already? Values are told apart by type (and custom
 * pattern) and their letters and digits, case aside. Remembers it when not; when the
 * report's table is three quarters full, says "new" without remembering (over-counting is
 * the safe side). An empty span (a custom pattern that failed closed) is always new. */
static bool seen_before(hl_pii_report *r, const uint8_t *txt, unsigned tag, size_t start,
                        size_t end) {
    if (start >= end) return false;
    uint64_t h = 1469598103934665603ull ^ (tag * 0x9E3779B97F4A7C15ull);
    if (tag == HL_PII_PHONE) { /* "+1 415 555 0132" and "(415) 555-0132": the last 9 digits */
        int nd = 0;
        size_t i = end;
        while (i > start && nd < 9)
            if ((unsigned)txt[--i] - (unsigned)'0' < 10u) nd++;
        start = i;
    }
    for (size_t i = start; i < end; i++) {
        unsigned c = txt[i];
        if (c < 0x80 && !((c | 0x20u) - 'a' < 26u || c - '0' < 10u)) continue;
        if (c - 'A' < 26u) c |= 0x20u;
        h = (h ^ c) * 1099511628211ull;
    }
    h |= 1;
    size_t slot = (size_t)(h >> 7) & (HL_PII_SEEN - 1);
    for (int probes = 0; probes < HL_PII_SEEN; probes++) {
        if (r->seen[slot] == h) return true;
        if (r->seen[slot] == 0) {
            if (r->n_seen >= HL_PII_SEEN * 3 / 4) return false;
            r->seen[slot] = h;
            r->n_seen++;
            return false;
        }
        slot = (slot + 1) & (HL_PII_SEEN - 1);
    }
    return false;
}

static void sink_add(sink *k, hl_pii_type t, unsigned custom, size_t start, size_t end) {
    unsigned tag = t == HL_PII_CUSTOM ? HL_PII_CUSTOM + custom : t;
    if (!seen_before(k->r, k->txt, tag, start, end)) {
        bump(&k->r->counts[t]);
        if (t == HL_PII_CUSTOM) bump(&k->r->custom[custom]);
        bump(&k->r->total);
    }
    if (k->map && end > start) {
        /* The value ends after its last character in the original (which may be a folded
         * multi-byte one), not at the next one: dropped zero-width characters after it stay. */
        size_t last = k->map[end - 1], next = k->map[end];
        uint8_t c = k->raw[last];
        size_t w = c < 0xC0 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        start = k->map[start];
        end = last + w < next ? last + w : next; /* a cut sequence ends where the next begins */
    } else if (k->map) {
        start = end = k->map[start];
    }
    if (!k->collect || k->nomem) return;
    if (k->n == k->cap) {
        size_t cap = k->cap * 2;
        span *v = k->v == k->small ? malloc(cap * sizeof *v) : realloc(k->v, cap * sizeof *v);
        if (!v) {
            k->nomem = true;
            return;
        }
        if (k->v == k->small) memcpy(v, k->small, SINK_SMALL * sizeof *v);
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = (span){start, end, (uint8_t)t, (uint8_t)custom, 0};
}

/* ---- Characters ---------------------------------------------------------------------- */

/* Bytes the main loop must look at: 1 = ASCII digit, 2 = a trigger ('(', '+', ':') or
 * 0xEF, the lead byte of the full-width forms. */
static const uint8_t byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

#define NA 0x80u  /* what any non-ASCII character that is not a full-width form reads as */
#define END 0x00u /* what reading past either end of the text gives */

typedef struct scanner {
    const uint8_t *s;
    size_t n;
    size_t lim;      /* reads at or past lim see '[' (the next email's placeholder) */
    size_t floor;    /* end of the last match; nothing may start before it */
    bool matched;    /* floor is a match end (not just the start of the text) */
    size_t em_start; /* the next email, found ahead of the other types; SIZE_MAX: none */
    size_t em_end;
    size_t trig[6];  /* next offset of each email trigger byte (SIZE_MAX: not looked yet) */
    sink *k;
    /* Keyword look-backs, one per word list (phone, SSN), done incrementally: text before
     * kw_scanned[w] has been searched once, and kw_last[w] is 1 + the start of the latest
     * word found there (0: none). Numbers are looked up in increasing order, so every byte
     * is searched once per list, however many numbers a text holds. */
    size_t kw_scanned[2], kw_last[2];
    uint64_t kw_first[2][4]; /* the lists' first bytes; [w][0] == 0: not computed yet */
    /* CSV: when the text's first line is a header, the columns whose name says phone
     * (csv_cols, bit per column, separator csv_sep), and how far the column count of the
     * current line has been followed (csv_pos, csv_col, csv_line). csv_state 0: header not
     * read yet; 1: no phone column; 2: some. */
    int csv_state;
    uint8_t csv_sep;
    uint64_t csv_cols;
    size_t csv_pos, csv_col, csv_line, csv_line_start;
} scanner;

/* The character at i, folded: ASCII as is; U+FF01-U+FF5E (full-width forms, 3 bytes) as
 * U+0021-U+007E; U+3000 (ideographic space) as ' '; any other byte as NA. *w is the number
 * of bytes read. Past the end: END, *w = 0. At the next email: '[', *w = 0, as if it were
 * already its placeholder (see find_email()). */
static inline unsigned ch_at(const scanner *sc, size_t i, size_t *w) {
    if (i >= sc->lim) {
        *w = 0;
        return i >= sc->n ? END : '[';
    }
    const uint8_t *s = sc->s;
    unsigned c = s[i];
    *w = 1;
    if (c < 0x80) return c;
    if (i + 2 < sc->n) {
        if (c == 0xEF && s[i + 1] == 0xBC && s[i + 2] >= 0x81 && s[i + 2] <= 0xBF) {
            *w = 3;
            return 0x21u + (s[i + 2] - 0x81u);
        }
        if (c == 0xEF && s[i + 1] == 0xBD && s[i + 2] >= 0x80 && s[i + 2] <= 0x9E) {
            *w = 3;
            return 0x60u + (s[i + 2] - 0x80u);
        }
        if (c == 0xE3 && s[i + 1] == 0x80 && s[i + 2] == 0x80) {
            *w = 3;
            return ' ';
        }
    }
    return NA;
}

/* The folded character that ends just before i; END at the start of the text. Right after
 * a match it is ']' (and *w = 0): what follows a value is judged as if the value had
 * already been replaced by its placeholder, so that redacted text, scanned again, reads the
 * same around each placeholder ("10.0.0.1-10.0.0.9" and "[IPV4_1]-10.0.0.9" both start a
 * token at the second address). */
static inline unsigned ch_before(const scanner *sc, size_t i, size_t *w) {
    if (i == 0 || (sc->matched && i == sc->floor)) {
        *w = 0;
        return i == 0 ? END : ']';
    }
    unsigned c = sc->s[i - 1];
    if (c < 0x80) {
        *w = 1;
        return c;
    }
    if (i >= 3) {
        size_t w3;
        unsigned f = ch_at(sc, i - 3, &w3);
        if (w3 == 3) {
            *w = 3;
            return f;
        }
    }
    *w = 1;
    return NA;
}

static inline bool is_digit(unsigned c) { return c - '0' < 10u; }
static inline bool is_alpha(unsigned c) { return c < 0x80 && (c | 0x20u) - 'a' < 26u; }
static inline bool is_alnum(unsigned c) { return is_digit(c) || is_alpha(c); }
static inline bool is_hex(unsigned c) { return is_digit(c) || (c < 0x80 && (c | 0x20u) - 'a' < 6u); }
static inline unsigned lower(unsigned c) { return is_alpha(c) ? c | 0x20u : c; }
static inline unsigned hexval(unsigned c) { return is_digit(c) ? c - '0' : (c | 0x20u) - 'a' + 10; }

/* May a token start at i? Not when glued to a letter, digit or '_', nor when it would be
 * the tail of "<alnum>.<here>" or "<digit>-<here>" (a dotted version, a dashed id), unless
 * that '.' or '-' directly follows a match ("10.0.0.1-10.0.0.9", see ch_before()). */
static bool starts_token(const scanner *sc, size_t i) {
    size_t w, w2;
    unsigned p = ch_before(sc, i, &w);
    if (is_alnum(p) || p == '_') return false;
    if (p == '.' || p == '-') {
        unsigned pp = ch_before(sc, i - w, &w2);
        if (p == '.' && is_alnum(pp)) return false;
        if (p == '-' && is_digit(pp)) return false;
    }
    return true;
}

/* May a token end at pos? Not when a letter, digit, '_' or '@' follows, nor '.' or '-'
 * followed by a letter or digit ('-' and a digit is allowed: ranges). */
static bool ends_token(const scanner *sc, size_t pos) {
    size_t w, w2;
    unsigned c = ch_at(sc, pos, &w);
    if (is_alnum(c) || c == '_' || c == '@') return false;
    if (c == '.' || c == '-') {
        unsigned c2 = ch_at(sc, pos + w, &w2);
        if (c == '.' ? is_alnum(c2) : is_alpha(c2)) return false;
    }
    return true;
}

/* Skips a token that no detector took: letters, digits and the punctuation that holds
 * versions, ids and timestamps together. */
static size_t skip_cluster(const scanner *sc, size_t i) {
    while (i < sc->n) {
        size_t w;
        unsigned c = ch_at(sc, i, &w);
        if (!(is_alnum(c) || c == '.' || c == '-' || c == '_' || c == ':')) break;
        i += w;
    }
    return i;
}

static void emit(scanner *sc, hl_pii_type t, size_t start, size_t end) {
    sink_add(sc->k, t, 0, start, end);
    sc->floor = end;
    sc->matched = true;
}

/* Is [i, end) "_<digits>]", the tail of one of our own placeholders ("[PHONE_1]")? Then the
 * word before it is no phone or SSN word: redacted text, scanned again, must come out clean
 * ("[PHONE_1] 4155550132" was "+14155550100 4155550132", whose second number had no word). */
static bool placeholder_tail(const uint8_t *s, size_t i, size_t end) {
    if (i >= end || s[i] != '_') return false;
    size_t j = i + 1;
    while (j < end && is_digit(s[j])) j++;
    return j > i + 1 && j < end && s[j] == ']';
}

/* Does one of words occur (case-insensitively) in the 48 bytes before pos? Words marked
 * with a leading '^' must start a word ("tel" but not "hotel"). */
#define KEYWORD_WINDOW 48
static bool keyword_before_s(const uint8_t *s, size_t pos, const char *const *words) {
    size_t from = pos > KEYWORD_WINDOW ? pos - KEYWORD_WINDOW : 0;
    uint64_t first[4] = {0}; /* the words' first bytes: most positions need no comparison */
    for (const char *const *w = words; *w; w++) {
        unsigned c = (unsigned char)(*w)[(*w)[0] == '^'];
        first[c >> 6] |= 1ull << (c & 63);
    }
    for (size_t i = from; i < pos; i++) {
        unsigned c0 = lower(s[i]);
        if (!(first[c0 >> 6] >> (c0 & 63) & 1)) continue;
        for (const char *const *w = words; *w; w++) {
            const char *k = *w;
            bool at_start = k[0] == '^';
            if (at_start) {
                k++;
                if (i > 0 && is_alpha(s[i - 1])) continue;
            }
            size_t j = 0;
            while (k[j] && i + j < pos && lower(s[i + j]) == (unsigned char)k[j]) j++;
            if (!k[j] && !placeholder_tail(s, i + j, pos)) return true;
        }
    }
    return false;
}

static const char *const phone_words[];
static const char *const ssn_words[];

/* Does a word of words start at i and end at or before pos? */
static bool keyword_at(const uint8_t *s, size_t i, size_t pos, const char *const *words) {
    for (const char *const *w = words; *w; w++) {
        const char *k = *w;
        if (k[0] == '^') {
            k++;
            if (i > 0 && is_alpha(s[i - 1])) continue;
        }
        if (lower(s[i]) != (unsigned char)k[0]) continue;
        size_t j = 0;
        while (k[j] && i + j < pos && lower(s[i + j]) == (unsigned char)k[j]) j++;
        if (!k[j] && !placeholder_tail(s, i + j, pos)) return true;
    }
    return false;
}

static void csv_header(scanner *sc) {
    const uint8_t *s = sc->s;
    size_t n = sc->n < 4096 ? sc->n : 4096, e = 0;
    while (e < n && s[e] != '\n') e++;
    int cnt[3] = {0};
    static const uint8_t seps[3] = {',', ';', '\t'};
    for (size_t i = 0; i < e; i++)
        for (int k = 0; k < 3; k++) cnt[k] += s[i] == seps[k];
    int best = cnt[0] >= cnt[1] ? (cnt[0] >= cnt[2] ? 0 : 2) : (cnt[1] >= cnt[2] ? 1 : 2);
    sc->csv_state = 1;
    if (e == n || cnt[best] < 2) return; /* a header names three columns or more */
    sc->csv_sep = seps[best];
    /* Column names are short and are not sentences. */
    for (size_t i = 0, cs = 0; i <= e; i++) {
        if (i < e && s[i] != sc->csv_sep) {
            if (s[i] == '.' || s[i] == '!' || s[i] == '?' || s[i] == ':') return;
            continue;
        }
        if (i - cs > 24) return;
        cs = i + 1;
    }
    static const char *const words[] = {"phone", "^tel", "^mobile", "^mob", "^cell", "^fax", "whatsapp",
                                        "msisdn", "^handy", "^contact_n", NULL};
    size_t col = 0, cs = 0;
    for (size_t i = 0; i <= e && col < 64; i++) {
        if (i < e && s[i] != sc->csv_sep) continue;
        for (size_t j = cs; j < i; j++)
            if (keyword_at(s, j, i, words)) {
                sc->csv_cols |= 1ull << col;
                break;
            }
        col++;
        cs = i + 1;
    }
    if (sc->csv_cols) sc->csv_state = 2;
}

/* Is pos in a CSV column whose header (the text's first line) says phone? */
static bool csv_phone_column(scanner *sc, size_t pos) {
    if (sc->csv_state == 0) csv_header(sc);
    if (sc->csv_state != 2 || pos < sc->csv_pos) return false;
    for (size_t i = sc->csv_pos; i < pos; i++) {
        if (sc->s[i] == '\n') {
            sc->csv_line++;
            sc->csv_col = 0;
            sc->csv_line_start = i + 1;
        } else if (sc->s[i] == sc->csv_sep) {
            sc->csv_col++;
        }
    }
    sc->csv_pos = pos;
    return sc->csv_line > 0 && sc->csv_col < 64 && (sc->csv_cols >> sc->csv_col & 1);
}

static bool keyword_before(scanner *sc, size_t pos, const char *const *words) {
    int w = words == ssn_words;
    size_t from = pos > KEYWORD_WINDOW ? pos - KEYWORD_WINDOW : 0;
    if (pos < sc->kw_scanned[w]) return keyword_before_s(sc->s, pos, words);
    size_t i = sc->kw_scanned[w] > from ? sc->kw_scanned[w] : from;
    if (i < pos) {
        uint64_t *first = sc->kw_first[w]; /* the words' first bytes: most positions need no comparison */
        if (!first[0] && !first[1] && !first[2] && !first[3]) {
            for (const char *const *x = words; *x; x++) {
                unsigned c = (unsigned char)(*x)[(*x)[0] == '^'];
                first[c >> 6] |= 1ull << (c & 63);
            }
        }
        for (; i < pos; i++) {
            unsigned c0 = lower(sc->s[i]);
            if ((first[c0 >> 6] >> (c0 & 63) & 1) && keyword_at(sc->s, i, pos, words)) sc->kw_last[w] = i + 1;
        }
    }
    sc->kw_scanned[w] = pos;
    return sc->kw_last[w] > from;
}

static const char *const phone_words[] = {
    "phone", "^tel", "^mobile", "^cell", "^call", "^fax", "^sms", "^whatsapp", "^handy",
    "text me", "text us", "reach me", "reach us", "^ring me", "^mob:", "^mob.", "^ph:",
    "^ph.", "wa.me/", "^dial", "^telefon", "^t\xc3\xa9l", "^portable", "^móvil",
    "\xe7\x94\xb5\xe8\xaf\x9d", /* 电话 */
    "\xe6\x89\x8b\xe6\x9c\xba", /* 手机 */
    "\xe9\x9b\xbb\xe8\xa9\xb1", /* 電話 */
    "\xe6\x90\xba\xe5\xb8\xaf", /* 携帯 */
    "\xec\xa0\x84\xed\x99\x94", /* 전화 */
    NULL,
};
static const char *const ssn_words[] = {
    "^ssn", "social security", "^ss#", "^ss no", NULL,
};

/* Does something say that the number at pos is a phone number: a phone word before it, or
 * the header of the CSV column it stands in? */
static bool phone_context(scanner *sc, size_t pos) {
    bool col = csv_phone_column(sc, pos);
    if (col) return true;
    if (!keyword_before(sc, pos, phone_words)) return false;
    /* In the body of a CSV export a phone word counts only on the number's own line: the
     * header's "phone" says nothing about an order id in the next row. */
    return !(sc->csv_state == 2 && sc->csv_line > 0 && sc->kw_last[0] - 1 < sc->csv_line_start);
}

/* ---- Digit runs: IPv4, SSN, card, phone ---------------------------------------------- */

enum { SEP_SPACE = 1, SEP_DASH = 2, SEP_DOT = 4, SEP_SLASH = 8, SEP_PAREN = 16 };
#define NR_MAXG 8 /* more than any value has ("00 33 6 12 34 56 78": 7) */
#define NR_MAXD 40

typedef struct numrun {
    size_t start;          /* the '+', '(' or first digit */
    bool plus;             /* starts with '+' */
    bool truncated;        /* stopped at NR_MAXG/NR_MAXD: the run's true end is unknown */
    int ng, nd;
    size_t gend[NR_MAXG];  /* offset just past group g (past its ')' when parenthesized) */
    uint8_t glen[NR_MAXG]; /* digits in group g */
    uint8_t gpos[NR_MAXG]; /* index in dig[] of group g's first digit */
    uint8_t sep[NR_MAXG];  /* SEP_* before group g; sep[0] is SEP_PAREN for "(415) ..." */
    uint8_t dig[NR_MAXD];  /* digit values */
} numrun;

/* Reads the run at pos, at most maxg groups (NR_MAXG: the whole run, as far as it goes). */
static void numrun_read(const scanner *sc, size_t pos, numrun *r, int maxg) {
    size_t w;
    r->start = pos;
    r->plus = r->truncated = false;
    r->ng = r->nd = 0;
    if (ch_at(sc, pos, &w) == '+') {
        r->plus = true;
        pos += w;
    }
    uint8_t sep = 0;
    for (;;) {
        if (r->ng == maxg || r->nd > 19) { /* no value has more than 19 digits */
            r->truncated = true;
            return;
        }
        bool paren = false;
        unsigned c = ch_at(sc, pos, &w);
        if (c == '(') {
            paren = true;
            pos += w;
        }
        int first = r->nd, len = 0;
        while (is_digit(c = ch_at(sc, pos, &w))) {
            if (r->nd == NR_MAXD) {
                r->nd = first;
                r->truncated = true;
                return;
            }
            r->dig[r->nd++] = (uint8_t)(c - '0');
            len++;
            pos += w;
        }
        if (len == 0) return; /* only after '+' or a lone '(': the run is empty */
        if (paren) {
            if (c != ')') {
                r->nd = first; /* "(415 555": no group here; the run ends before '(' */
                return;
            }
            pos += w;
        }
        int g = r->ng++;
        r->glen[g] = (uint8_t)len;
        r->gpos[g] = (uint8_t)first;
        r->sep[g] = (uint8_t)(sep | (paren ? SEP_PAREN : 0));
        r->gend[g] = pos;

        /* The separator before the next group: one of ' ' '-' '.' '/', or a parenthesis
         * (")-", ") ", " (", "(" alone), and then a digit or '(' and a digit. */
        sep = paren ? SEP_PAREN : 0;
        size_t next = pos;
        c = ch_at(sc, next, &w);
        if (c == ' ' || c == '-' || c == '.' || c == '/') {
            sep |= c == ' ' ? SEP_SPACE : c == '-' ? SEP_DASH : c == '.' ? SEP_DOT : SEP_SLASH;
            next += w;
            c = ch_at(sc, next, &w);
        }
        if (c == '(') {
            size_t w2;
            if (!is_digit(ch_at(sc, next + w, &w2))) return;
            sep |= SEP_PAREN;
        } else if (!is_digit(c) || sep == 0) {
            return;
        }
        pos = next;
    }
}

static int luhn_ok(const uint8_t *d, int n) {
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int v = d[n - 1 - i];
        if (i & 1) {
            v *= 2;
            if (v > 9) v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* Network prefixes and the lengths they issue: Visa 4 (13, 16, 19), Mastercard 51-55 and
 * 2221-2720 (16), Amex 34/37 (15), Diners 30/36/38/39, JCB 35, Maestro/Discover/UnionPay
 * 50, 56-69 (13-19). */
static bool card_prefix_ok(const uint8_t *d, int nd) {
    int p2 = d[0] * 10 + d[1], p4 = p2 * 100 + d[2] * 10 + d[3];
    switch (d[0]) {
    case 4: return nd == 13 || nd == 16 || nd == 19;
    case 5: return p2 >= 51 && p2 <= 55 ? nd == 16 : true;
    case 6: return true;
    /* JCB and Diners issue 14 or 16-19 digits, never 15: a 15-digit run starting 35 or 86
     * that passes Luhn is an IMEI. */
    case 3: return p2 == 34 || p2 == 37 ? nd == 15 : (p2 == 30 || (p2 >= 35 && p2 <= 39)) && nd != 15;
    case 2: return p4 >= 2221 && p4 <= 2720 && nd == 16;
    default: return false;
    }
}

typedef enum { NR_NO, NR_MATCH, NR_EXCLUDED } nr_verdict;

/* IPv4 over groups 0..3. A candidate may also end where a non-dot separator follows
 * ("10.0.0.0/24", "10.0.0.1-10.0.0.9"). */
static nr_verdict check_ipv4(const scanner *sc, const numrun *r, int k, bool end_ok) {
    if (k != 3 || r->plus || r->sep[0]) return NR_NO;
    for (int g = 1; g <= 3; g++)
        if (r->sep[g] != SEP_DOT) return NR_NO;
    if (!end_ok) {
        bool last = k == r->ng - 1;
        if (last || (r->sep[4] & (SEP_DOT | SEP_PAREN))) return NR_NO;
        if (!ends_token(sc, r->gend[3])) return NR_NO;
    }
    int oct[4];
    for (int g = 0; g < 4; g++) {
        if (r->glen[g] > 3) return NR_NO;
        int v = 0;
        for (int j = 0; j < r->glen[g]; j++) v = v * 10 + r->dig[r->gpos[g] + j];
        if (v > 255) return NR_NO;
        oct[g] = v;
    }
    if (oct[0] == 0 || oct[0] == 127 || oct[0] == 255) return NR_EXCLUDED;
    /* Public DNS resolvers ("set DNS to 8.8.8.8") are infrastructure, not someone's host. */
    static const uint8_t resolvers[][4] = {
        {8, 8, 8, 8}, {8, 8, 4, 4}, {1, 1, 1, 1}, {1, 0, 0, 1}, {9, 9, 9, 9}, {149, 112, 112, 112},
    };
    for (size_t j = 0; j < sizeof resolvers / sizeof resolvers[0]; j++)
        if (oct[0] == resolvers[j][0] && oct[1] == resolvers[j][1] &&
            oct[2] == resolvers[j][2] && oct[3] == resolvers[j][3])
            return NR_EXCLUDED;

    /* Version numbers: "version 1.2.3.4", "v 1.2.3.4", "Chrome/120.0.0.0". */
    size_t w, i = r->start;
    unsigned c = ch_before(sc, i, &w);
    if (c == '/') {
        size_t w2;
        return is_alnum(ch_before(sc, i - w, &w2)) ? NR_EXCLUDED : NR_MATCH;
    }
    for (int skipped = 0; skipped < 4 && (c == ' ' || c == ':' || c == '=' || c == '.');
         skipped++) {
        i -= w;
        c = ch_before(sc, i, &w);
    }
    char word[10];
    int wl = 0;
    while (is_alpha(c) && wl < (int)sizeof word - 1) {
        word[wl++] = (char)lower(c);
        i -= w;
        c = ch_before(sc, i, &w);
    }
    if (is_alpha(c)) return NR_MATCH; /* longer than any version word */
    word[wl] = '\0';
    static const char *const version_words[] = {
        "noisrev", "rev", "v", "esaeler", "dliub", "erawmrif", "wf", "ver", NULL,
    }; /* reversed: word[] was read backwards */
    for (const char *const *v = version_words; *v; v++)
        if (strcmp(word, *v) == 0) return NR_EXCLUDED;
    return NR_MATCH;
}

static bool check_ssn(scanner *sc, const numrun *r, int k) {
    if (r->plus || r->sep[0]) return false;
    const uint8_t *d = r->dig;
    if (k == 2) {
        if (r->glen[0] != 3 || r->glen[1] != 2 || r->glen[2] != 4) return false;
        if (r->sep[1] != r->sep[2] || (r->sep[1] != SEP_DASH && r->sep[1] != SEP_SPACE))
            return false;
    } else if (k == 0) {
        if (r->glen[0] != 9 || !keyword_before(sc, r->start, ssn_words)) return false;
    } else {
        return false;
    }
    int area = d[0] * 100 + d[1] * 10 + d[2], group = d[3] * 10 + d[4];
    int serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

static bool check_card(const numrun *r, int k, int nd) {
    if (r->plus || r->sep[0] || nd < 13 || nd > 19) return false;
    if (k > 0) {
        uint8_t sep = r->sep[1];
        if (sep != SEP_SPACE && sep != SEP_DASH) return false;
        if (r->glen[0] != 4) return false;
        for (int g = 1; g <= k; g++) {
            if (r->sep[g] != sep) return false;
            if (r->glen[g] > 6 || (g < k && r->glen[g] < 3)) return false;
        }
    }
    return card_prefix_ok(r->dig, nd) && luhn_ok(r->dig, nd);
}

static bool check_phone(scanner *sc, const numrun *r, int k, int nd, int *kw) {
    if (nd > 15) return false;
    if (r->plus) return nd >= 8;
    int ng = k + 1;
    uint8_t seps = 0;
    for (int g = 0; g <= k; g++) seps |= r->sep[g];
    const uint8_t *d = r->dig;

    if (ng > 1) {
        /* North American: [1] NXX NXX XXXX. */
        int o = r->glen[0] == 1 && d[0] == 1 ? 1 : 0;
        if (ng - o == 3 && r->glen[o] == 3 && r->glen[o + 1] == 3 && r->glen[o + 2] == 4 &&
            d[o] >= 2 && d[o + 3] >= 2 && !(seps & SEP_SLASH))
            return true;
        /* Trunk 0 ("020 ...", or "00" and a country code): 10+ digits, one kind of
         * separator besides parentheses, groups after the first of 2-8 digits. A first
         * group of only zeros is no dialling prefix ("000-12-3456"), and when every group
         * starts with 0 it is a zero-padded list ("001 002 003 004"). */
        uint8_t plain = seps & (uint8_t)~SEP_PAREN;
        bool zeros = true, all_lead0 = true;
        for (int j = 0; j < r->glen[0]; j++) zeros &= d[j] == 0;
        /* "00" and a country code may be followed by one-digit groups ("0033 6 12 34 56
         * 78", "00 31 6 1234 5678"). */
        bool intl = d[0] == 0 && d[1] == 0 && nd >= 11 && k >= 1 &&
                    (r->glen[0] == 2 ? d[r->gpos[1]] != 0 : r->glen[0] <= 4 && d[2] != 0);
        if (d[0] == 0 && (!zeros || intl) && nd >= 10 && (plain & (plain - 1)) == 0) {
            bool ok = true;
            for (int g = 1; g <= k && ok; g++) {
                ok = r->glen[g] >= (intl ? 1 : 2) && r->glen[g] <= 8;
                all_lead0 &= d[r->gpos[g]] == 0;
            }
            if (ok && !all_lead0) return true;
        }
    }
    /* Indian mobiles in 5-5 groups ("98765 43210"): 6-9 first, one separator. */
    if (ng == 2 && r->glen[0] == 5 && r->glen[1] == 5 && d[0] >= 6 &&
        (r->sep[1] == SEP_SPACE || r->sep[1] == SEP_DASH))
        return true;
    /* The shapes a phone word lets through; checked before looking for the word, since
     * most digit runs in text are short numbers that need no look-back. A grouping needs
     * one kind of separator and must not be a date ("Tel 2024-01-05 10:30"). */
    bool shape = ng == 1 ? nd >= 10
                         : (ng == 2 && r->glen[0] == 3 && r->glen[1] == 4 && d[0] >= 2);
    if (!shape && ng > 1 && nd >= 10) {
        uint8_t plain = seps & (uint8_t)~SEP_PAREN;
        shape = (plain & (plain - 1)) == 0;
        for (int g = 1; g <= k; g++) shape &= r->glen[g] >= 2;
        bool date = (r->glen[0] == 4 && (d[0] == 1 || d[0] == 2) && r->glen[1] == 2) ||
                    (r->glen[0] <= 2 && r->glen[1] <= 2 && ng > 2 && r->glen[2] == 4);
        if (date) shape = false;
    }
    if (!shape) return false;
    if (*kw < 0) *kw = phone_context(sc, r->start);
    return *kw;
}

/* Offers the digit run at start to IPv4, SSN, card and phone, longest candidate first.
 * Returns where to go on (past a match or an excluded value), or 0. */
static size_t try_numbers(scanner *sc, size_t start) {
    numrun r;
    /* Most runs in text can only be a phone number with a phone word before them (their
     * first two groups rule out every other shape): read those, look for the word once,
     * and give up without reading the rest or trying each candidate end when there is
     * none. */
    numrun_read(sc, start, &r, 2);
    if (r.ng == 0) return 0;
    int kw = -1; /* phone word before the run: unknown until needed */
    int g0 = r.glen[0];
    bool two = r.ng >= 2;
    bool other = r.plus || r.dig[0] == 0 || (r.sep[0] & SEP_PAREN) || g0 >= 9 ||
                 (two && (r.sep[1] & SEP_DOT) && g0 <= 3) ||
                 (g0 == 1 && r.dig[0] == 1 && two && r.glen[1] == 3) ||
                 (g0 == 3 && two && (r.glen[1] == 3 || r.glen[1] == 2)) || (g0 == 4 && two) ||
                 (g0 == 5 && two && r.glen[1] == 5);
    if (!other && !(kw = phone_context(sc, r.start))) return 0;
    if (r.truncated) numrun_read(sc, start, &r, NR_MAXG);
    if (kw < 0 && !r.plus && r.dig[0] == 0 && r.dig[1] != 0 && r.ng > 1 && g0 <= 2 && r.glen[1] <= 2 &&
        !(r.sep[1] & SEP_DOT)) {
        /* Zero-padded short groups ("01 02 03"): no trunk prefix, no SSN or card shape, so
         * only a phone word helps. */
        bool all0 = true;
        for (int g = 1; g < r.ng && all0; g++) all0 = r.dig[r.gpos[g]] == 0;
        if (all0 && !(kw = phone_context(sc, r.start))) return 0;
    }
    int cum[NR_MAXG];
    for (int g = 0, t = 0; g < r.ng; g++) cum[g] = t += r.glen[g];
    for (int k = r.ng - 1; k >= 0; k--) {
        if (cum[k] > 19) continue; /* longer than any value */
        bool true_end = k == r.ng - 1 && !r.truncated;
        bool end_ok = true_end ? ends_token(sc, r.gend[k])
                               : k + 1 < r.ng && (r.sep[k + 1] & ~SEP_PAREN) == SEP_SPACE;
        nr_verdict v = check_ipv4(sc, &r, k, end_ok);
        if (v == NR_EXCLUDED) return r.gend[k];
        if (v == NR_MATCH) {
            emit(sc, HL_PII_IPV4, start, r.gend[k]);
            return r.gend[k];
        }
        if (!end_ok) continue;
        hl_pii_type t;
        if (check_ssn(sc, &r, k))
            t = HL_PII_SSN;
        else if (check_card(&r, k, cum[k]))
            t = HL_PII_CREDIT_CARD;
        else if (check_phone(sc, &r, k, cum[k], &kw))
            t = HL_PII_PHONE;
        else
            continue;
        emit(sc, t, start, r.gend[k]);
        return r.gend[k];
    }
    /* A card- or ICCID-shaped run that failed its checks (three or more groups, the first
     * of 4 digits, 13-20 digits) is skipped whole: its groups are no phone number. */
    if (!r.plus && r.ng >= 3 && r.glen[0] == 4 && cum[r.ng - 1] >= 13 && cum[r.ng - 1] <= 20 &&
        r.sep[0] == 0) {
        bool cardlike = true;
        for (int g = 1; g < r.ng; g++)
            cardlike &= r.sep[g] == r.sep[1] && (r.sep[1] == SEP_SPACE || r.sep[1] == SEP_DASH) &&
                        r.glen[g] >= 2 && r.glen[g] <= 6;
        if (cardlike) return r.gend[r.ng - 1];
    }
    return 0;
}

/* ---- IPv6 ---------------------------------------------------------------------------- */

/* Is there a run of 1-4 hex digits at i followed by ':'? */
static bool hex_then_colon(const scanner *sc, size_t i) {
    size_t w;
    for (int n = 0; n < 5; n++) {
        unsigned c = ch_at(sc, i, &w);
        if (c == ':') return n > 0;
        if (!is_hex(c)) return false;
        i += w;
    }
    return false;
}

/* Dotted quad at i for an IPv6 tail; returns its end or 0. */
static size_t ipv4_tail(const scanner *sc, size_t i) {
    size_t w;
    for (int g = 0; g < 4; g++) {
        if (g) {
            if (ch_at(sc, i, &w) != '.') return 0;
            i += w;
        }
        int v = 0, len = 0;
        unsigned c;
        while (is_digit(c = ch_at(sc, i, &w)) && len < 4) {
            v = v * 10 + (int)(c - '0');
            len++;
            i += w;
        }
        if (len == 0 || len > 3 || v > 255) return 0;
    }
    return i;
}

static size_t try_ipv6(scanner *sc, size_t start) {
    size_t pos = start, w, w2;
    int groups = 0, dc = -1;
    bool digit = false, long_group = false, tail = false;
    unsigned val[8] = {0};
    if (ch_at(sc, pos, &w) == ':') {
        if (ch_at(sc, pos + w, &w2) != ':') return 0;
        dc = 0;
        pos += w + w2;
    }
    for (;;) {
        size_t gstart = pos;
        unsigned v = 0, c;
        int len = 0;
        bool gdigit = false;
        while (len < 5 && is_hex(c = ch_at(sc, pos, &w))) {
            gdigit |= is_digit(c);
            v = v * 16 + hexval(c);
            len++;
            pos += w;
        }
        if (len == 0) break;
        if (ch_at(sc, pos, &w) == '.' && is_digit(ch_at(sc, pos + w, &w2))) {
            size_t e = groups <= 6 ? ipv4_tail(sc, gstart) : 0;
            if (!e) return 0;
            pos = e;
            groups += 2;
            digit = long_group = tail = true;
            break;
        }
        if (len > 4 || groups == 8) return 0;
        digit |= gdigit;
        long_group |= len >= 3;
        val[groups++] = v;
        if (ch_at(sc, pos, &w) != ':') break;
        unsigned c2 = ch_at(sc, pos + w, &w2);
        if (c2 == ':') {
            if (dc >= 0) return 0;
            dc = groups;
            pos += w + w2;
        } else if (is_hex(c2)) {
            pos += w;
        } else {
            break;
        }
    }
    if (dc < 0 ? groups != 8 : groups > 7) return 0;
    if (dc >= 0 && (!digit || !long_group)) return 0;
    if (!ends_token(sc, pos)) return 0;
    /* "::", "::1" and their long forms name no one. */
    bool zero = !tail;
    for (int g = 0; zero && g + 1 < groups; g++) zero = val[g] == 0;
    if (zero && (groups == 0 || val[groups - 1] <= 1)) return pos;
    emit(sc, HL_PII_IPV6, start, pos);
    return pos;
}

/* ---- IBAN ---------------------------------------------------------------------------- */

/* ISO 13616 registry: country code and IBAN length. */
static const struct { char cc[3]; uint8_t len; } iban_countries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
    {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22},
    {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20},
    {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
    {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30},
    {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21},
    {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33},
    {"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27},
    {"SO", 23}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29},
    {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

static int iban_length(unsigned a, unsigned b) {
    for (size_t i = 0; i < sizeof iban_countries / sizeof iban_countries[0]; i++)
        if ((unsigned char)iban_countries[i].cc[0] == a &&
            (unsigned char)iban_countries[i].cc[1] == b)
            return iban_countries[i].len;
    return 0;
}

static size_t try_iban(scanner *sc, size_t start) {
    char buf[34];
    size_t pos = start, w;
    unsigned sep = 0;
    int n = 0;
    unsigned a = lower(ch_at(sc, pos, &w)) - 32;
    size_t w1;
    unsigned b = lower(ch_at(sc, pos + w, &w1)) - 32;
    int len = iban_length(a, b);
    if (!len) return 0;
    while (n < len) {
        unsigned c = ch_at(sc, pos, &w);
        if (is_alnum(c)) {
            buf[n++] = (char)(is_alpha(c) ? (c | 0x20u) - 32 : c);
            pos += w;
            continue;
        }
        /* Printed IBANs are grouped by fours; a separator anywhere else ends the value. */
        if ((c == ' ' || c == '-') && n % 4 == 0 && (sep == 0 || sep == c)) {
            size_t w2;
            if (!is_alnum(ch_at(sc, pos + w, &w2))) return 0;
            sep = c;
            pos += w;
            continue;
        }
        return 0;
    }
    if (!is_digit((unsigned char)buf[2]) || !is_digit((unsigned char)buf[3])) return 0;
    if (!ends_token(sc, pos)) return 0;
    unsigned m = 0;
    for (int i = 0; i < len; i++) {
        unsigned c = (unsigned char)buf[(i + 4) % len];
        m = is_digit(c) ? (m * 10 + (c - '0')) % 97 : (m * 100 + (c - 'A' + 10)) % 97;
    }
    /* A mistyped IBAN is skipped whole: its digit groups are no card or phone. */
    if (m == 1) emit(sc, HL_PII_IBAN, start, pos);
    return pos;
}

/* ---- Email --------------------------------------------------------------------------- */

/* An obfuscated "[at]"/"(at)"/"{at}" (or "dot") at i, case-insensitive. Returns its length
 * or 0. */
static size_t obf_word(const scanner *sc, size_t i, const char *word) {
    static const char open[] = "[({", close[] = "])}";
    if (i >= sc->n) return 0;
    const char *o = memchr(open, sc->s[i], 3);
    if (!o) return 0;
    size_t wl = strlen(word);
    if (i + wl + 2 > sc->n) return 0;
    for (size_t j = 0; j < wl; j++)
        if (lower(sc->s[i + 1 + j]) != (unsigned char)word[j]) return 0;
    return sc->s[i + 1 + wl] == (unsigned char)close[o - open] ? wl + 2 : 0;
}

enum { AT_PLAIN, AT_PCT, AT_OBF };

static bool local_char(unsigned c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '+' || c == '-' || c == '\'';
}

/* Where a domain whose last label is [ls, le) may end: after the whole label when it is a
 * TLD (two or more ASCII letters, or punycode "xn--..."); after its letters when non-ASCII
 * text follows them, which is the sentence after the address ("joe@example.com谢谢");
 * otherwise 0. */
static size_t tld_end(const scanner *sc, size_t ls, size_t le) {
    size_t t = ls, w, letters = 0;
    unsigned c;
    while (t < le && is_alpha(c = ch_at(sc, t, &w))) {
        letters++;
        t += w;
    }
    if (t == le) return letters >= 2 ? le : 0;
    if (le - ls > 4 && lower(sc->s[ls]) == 'x' && lower(sc->s[ls + 1]) == 'n' &&
        sc->s[ls + 2] == '-' && sc->s[ls + 3] == '-') {
        bool puny = true;
        for (size_t i = ls; i < le && puny; i += w) {
            c = ch_at(sc, i, &w);
            puny = is_alnum(c) || c == '-';
        }
        if (puny) return le;
    }
    return letters >= 2 && ch_at(sc, t, &w) == NA ? t : 0;
}

/* An email around the '@' (or "%40", "[at]") at [at, at + aw). Returns its end (and its
 * start in *start) or 0. */
static size_t try_email(const scanner *sc, size_t at, size_t aw, int kind, size_t *start) {
    size_t w, w2;
    /* The local part, backwards; never below the last match. */
    size_t le = at;
    if (kind == AT_OBF && ch_before(sc, le, &w) == ' ') le -= w;
    size_t ls = le;
    int count = 0;
    while (ls > sc->floor) {
        unsigned c = ch_before(sc, ls, &w);
        /* Two-byte UTF-8 (Latin, Greek, Cyrillic letters: "josé.garcía", "иван") belongs
         * to the name; longer sequences (CJK) are the sentence around it. */
        if (c == NA && ls - sc->floor >= 2 && (sc->s[ls - 1] & 0xC0) == 0x80 &&
            sc->s[ls - 2] >= 0xC2 && sc->s[ls - 2] <= 0xDF)
            w = 2;
        else if (!local_char(c) || w > ls - sc->floor)
            break;
        if (++count > 64) return 0;
        ls -= w;
    }
    bool alnum = false;
    for (size_t i = ls; i < le; i += w) {
        unsigned c = ch_at(sc, i, &w);
        /* leading dots ("...joe@") and quotes ("'joe@x.com'") are prose */
        if ((c == '.' || c == '\'') && !alnum) ls = i + w;
        alnum |= is_alnum(c) || c == NA;
    }
    if (!alnum) return 0;

    /* The domain: labels joined by dots. It ends after the last label that can be a TLD;
     * when the last one cannot ("joe@example.com.123"), after an earlier one. */
    size_t pos = at + aw;
    if (kind == AT_OBF && ch_at(sc, pos, &w) == ' ') pos += w;
    size_t ds = pos, first_end = 0, end = 0;
    if (ch_at(sc, pos, &w) == '-') return 0; /* no label starts with '-' */
    int labels = 0, end_labels = 0;
    for (;;) {
        size_t lstart = pos;
        unsigned c;
        while (pos < sc->n && ((c = ch_at(sc, pos, &w)) == NA || is_alnum(c) || c == '-'))
            pos += w;
        if (pos == lstart) break;
        if (++labels == 1) {
            first_end = pos;
        } else {
            size_t e = tld_end(sc, lstart, pos);
            if (e && e - lstart <= 63) {
                end = e;
                end_labels = labels;
            }
        }
        if (pos - lstart > 63) break; /* nothing after an over-long label can be a domain */
        size_t dot = pos, dl = 0;
        c = ch_at(sc, dot, &w);
        if (c == '.') {
            dl = w;
        } else if (kind == AT_OBF) {
            size_t sp = c == ' ' ? w : 0;
            size_t o = obf_word(sc, dot + sp, "dot");
            if (o) {
                dl = sp + o;
                if (ch_at(sc, dot + dl, &w2) == ' ') dl += w2;
            }
        }
        if (!dl) break;
        c = ch_at(sc, dot + dl, &w2);
        if (!(is_alnum(c) || c == NA)) break; /* a sentence's full stop */
        pos = dot + dl;
    }
    if (!end || first_end - ds > 63 || end - ds > 253) return 0;

    /* Retina assets: "icon@2x.png". */
    if (end_labels == 2 && first_end - ds >= 2 && lower(sc->s[first_end - 1]) == 'x') {
        size_t i = ds;
        while (i < first_end - 1 && is_digit(sc->s[i])) i++;
        if (i == first_end - 1) return 0;
    }
    /* scp and URL authorities: "git@github.com:org/repo", "user@host:8080". */
    if (ch_at(sc, end, &w) == ':') {
        unsigned c = ch_at(sc, end + w, &w2);
        if (c != END && c != ' ' && c != '\n' && c != '\t' && c != '\r') return 0;
    }
    *start = ls;
    return end;
}

/* Emails are found ahead of everything else: from the end of the last match, the next
 * email trigger that starts a valid address. Its local part claims whatever it covers
 * ("10.0.0.1john@x.com", "fe80::1:ffika [at] x.com" leave no IPv4 or a shorter IPv6), and
 * until the main loop reaches it, reads stop there as if it were already "[EMAIL_n]", so
 * the text before it reads the same in redacted text scanned again. */
static const uint8_t email_triggers[6] = {'@', '%', '[', '(', '{', 0xEF};

/* The first email trigger byte at or after from (n if none). Each trigger byte's next
 * offset is remembered, so every byte is searched once per trigger (by memchr, fast)
 * however many times this is asked. */
static size_t next_trigger(scanner *sc, size_t from) {
    size_t best = sc->n;
    for (int t = 0; t < 6; t++) {
        if (sc->trig[t] == SIZE_MAX || sc->trig[t] < from) {
            const uint8_t *p = from < sc->n ? memchr(sc->s + from, email_triggers[t], sc->n - from)
                                            : NULL;
            sc->trig[t] = p ? (size_t)(p - sc->s) : sc->n;
        }
        if (sc->trig[t] < best) best = sc->trig[t];
    }
    return best;
}

static void find_email(scanner *sc, size_t from) {
    const uint8_t *s = sc->s;
    sc->lim = sc->n;
    sc->em_start = sc->em_end = SIZE_MAX;
    for (size_t i = from; (i = next_trigger(sc, i)) < sc->n; i++) {
        size_t w, o, start = 0, end = 0;
        unsigned c = ch_at(sc, i, &w);
        if (c == '@')
            end = try_email(sc, i, w, AT_PLAIN, &start);
        else if (c == '%' && i + 2 < sc->n && s[i + 1] == '4' && s[i + 2] == '0')
            end = try_email(sc, i, 3, AT_PCT, &start);
        else if ((c == '[' || c == '(' || c == '{') && (o = obf_word(sc, i, "at")) != 0)
            end = try_email(sc, i, o, AT_OBF, &start);
        if (end) {
            sc->em_start = start;
            sc->em_end = end;
            sc->lim = start;
            return;
        }
    }
}

/* ---- The pass ------------------------------------------------------------------------ */

/* Walks back from i over up to 5 letters; returns how many there are and sets *ws to where
 * the first of them starts. */
static int letters_before(const scanner *sc, size_t i, size_t *ws, bool *hex) {
    int n = 0;
    size_t w;
    *hex = true;
    while (n < 5 && i > sc->floor) {
        unsigned c = ch_before(sc, i, &w);
        if (!is_alpha(c) || w > i - sc->floor) break;
        *hex &= is_hex(c);
        i -= w;
        n++;
    }
    *ws = i;
    return n;
}

/* A digit. Letters never stop the main loop: the only values that start with letters (an
 * IBAN's country code, an IPv6 group such as "fe80") have a digit or ':' within five
 * characters, and are picked up from there. */
static size_t on_digit(scanner *sc, size_t i) {
    size_t w, r = 0;
    if (is_alpha(ch_before(sc, i, &w))) {
        size_t ws;
        bool hex;
        int n = letters_before(sc, i, &ws, &hex);
        size_t w1;
        if (n == 3 && lower(sc->s[ws]) == 'i' && lower(sc->s[ws + 1]) == 'p' &&
            lower(sc->s[ws + 2]) == 'v' && ch_at(sc, i, &w) == '6' && ch_at(sc, i + 1, &w1) == ':') {
            /* "[IPv6:2001:db8::1]" in a Received: header: the address follows the tag. */
            r = try_ipv6(sc, i + 2);
            return r ? r : skip_cluster(sc, i + 2);
        }
        if (n < 5 && starts_token(sc, ws)) {
            if (n == 2) r = try_iban(sc, ws);
            if (!r && hex && hex_then_colon(sc, ws)) r = try_ipv6(sc, ws);
        }
        return r ? r : skip_cluster(sc, i);
    }
    if (!starts_token(sc, i)) return skip_cluster(sc, i);
    if (hex_then_colon(sc, i)) r = try_ipv6(sc, i);
    if (!r) r = try_numbers(sc, i);
    return r ? r : skip_cluster(sc, i);
}

/* A ':'. IPv6 addresses whose first group is all letters ("fe::1", "abcd:ef01::2") and
 * those that start with "::". */
static size_t on_colon(scanner *sc, size_t i, size_t w) {
    size_t ws, w1;
    bool hex;
    int n = letters_before(sc, i, &ws, &hex);
    if (n > 0) return n < 5 && hex && starts_token(sc, ws) ? try_ipv6(sc, ws) : 0;
    unsigned p = ch_before(sc, i, &w1);
    if (ch_at(sc, i + w, &w1) == ':' && !is_alnum(p) && p != ':') return try_ipv6(sc, i);
    return 0;
}

static void scan_builtin(scanner *sc) {
    const uint8_t *s = sc->s;
    size_t n = sc->n, i = 0;
    find_email(sc, 0);
    while (i < n) {
        if (i >= sc->em_start) {
            emit(sc, HL_PII_EMAIL, sc->em_start, sc->em_end);
            i = sc->em_end;
            find_email(sc, i);
            continue;
        }
        size_t stop = sc->em_start < n ? sc->em_start : n;
        while (i < stop && byte_class[s[i]] == 0) i++;
        if (i == stop) continue;
        uint8_t cls = byte_class[s[i]];
        if (cls == 1) {
            i = on_digit(sc, i);
            continue;
        }
        size_t w, w1, next = 0;
        unsigned c = ch_at(sc, i, &w);
        if (is_digit(c)) {
            i = on_digit(sc, i);
            continue;
        }
        switch (c) {
        case '(':
            if (is_digit(ch_at(sc, i + w, &w1)) && starts_token(sc, i))
                next = try_numbers(sc, i);
            break;
        case '+':
            if (is_digit(ch_at(sc, i + w, &w1)) && starts_token(sc, i))
                next = try_numbers(sc, i);
            break;
        case ':':
            next = on_colon(sc, i, w);
            break;
        default:
            break;
        }
        i = next ? next : i + w;
    }
}

/* ---- The scan view ------------------------------------------------------------------- */

/* The text as every built-in rule reads it, built once per scan: Unicode spaces (no-break,
 * thin, narrow no-break, figure, ideographic, ...) read as ' ', dashes and minus signs
 * (U+2010-2015, U+2212, U+FE63) as '-', full-width forms as their ASCII twins, zero-width
 * characters (U+200B-200D, U+2060, U+FEFF, LRM/RLM, soft hyphen) are dropped, and a line
 * break inside a number ("4111 1111\n> 1111 1111": a digit, optionally a separator, then
 * the break, optional '>' quote markers and spaces, then a digit) reads as one space. map[j]
 * is the original offset of view byte j (map[n] = the text's length), so spans found in the
 * view redact the right original bytes. Plain ASCII without such line breaks is scanned in
 * place (map NULL). The token pass (secrets, national ids) writes over what it claims
 * ("[xxxx]", the shape of a placeholder), so buf is made on the first claim when the scan
 * runs in place. */
typedef struct view {
    const uint8_t *s;
    size_t n;
    uint8_t *buf; /* owned; NULL while s is the caller's text */
    uint32_t *map; /* owned; NULL: identity. 32 bits: 5 bytes of view per byte of text */
    bool nomem;
} view;

static bool view_needed(const uint8_t *t, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uint8_t c = t[i];
        if (c >= 0x80) return true;
        if (c == '\n' && i > 0) {
            size_t j = i;
            while (j > 0 && (t[j - 1] == '\r' || t[j - 1] == ' ' || t[j - 1] == '-' || t[j - 1] == ')')) j--;
            if (j > 0 && is_digit(t[j - 1])) return true;
        }
    }
    return false;
}

/* What the UTF-8 sequence at t[i] reads as: *w bytes, returns the ASCII byte, -1 to drop,
 * or -2 to keep the bytes as they are. */
static int fold_utf8(const uint8_t *t, size_t len, size_t i, size_t *w) {
    uint8_t c = t[i];
    *w = 1;
    if (c == 0xC2 && i + 1 < len) {
        *w = 2;
        if (t[i + 1] == 0xA0) return ' ';
        if (t[i + 1] == 0xAD) return -1;
        return -2;
    }
    if (i + 2 >= len) return -2;
    uint8_t b = t[i + 1], x = t[i + 2];
    *w = 3;
    if (c == 0xE2 && b == 0x80) {
        if (x <= 0x8A || x == 0xAF) return ' ';
        if (x >= 0x8B && x <= 0x8F) return -1;
        if (x >= 0x90 && x <= 0x95) return '-';
        if (x == 0xA4) return '.'; /* one dot leader */
        if (x == 0x99) return '\''; /* right single quotation mark, the typographic apostrophe */
    }
    if (c == 0xE2 && b == 0x81) {
        if (x == 0x9F) return ' ';
        if (x >= 0xA0 && x <= 0xA4) return -1;
    }
    if (c == 0xE2 && b == 0x88 && x == 0x92) return '-';
    if (c == 0xE3 && b == 0x80 && x == 0x80) return ' ';
    if (c == 0xEF && b == 0xBB && x == 0xBF) return -1;
    if (c == 0xEF && b == 0xB9 && x == 0xA3) return '-';
    if (c == 0xEF && b == 0xBC && x >= 0x81) return 0x21 + (x - 0x81);
    if (c == 0xEF && b == 0xBD && x >= 0x80 && x <= 0x9E) return 0x60 + (x - 0x80);
    *w = 1;
    return -2;
}

static void view_build(view *v, const uint8_t *t, size_t len) {
    memset(v, 0, sizeof *v);
    v->s = t;
    v->n = len;
    if (!view_needed(t, len)) return;
    if (len >= UINT32_MAX) { /* far past any request body: scanned as it is */
        v->nomem = true;
        return;
    }
    v->buf = malloc(len + 1);
    v->map = malloc((len + 1) * sizeof *v->map);
    if (!v->buf || !v->map) {
        free(v->buf);
        free(v->map);
        v->buf = NULL;
        v->map = NULL;
        v->nomem = true;
        return;
    }
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = t[i];
        if (c == '\n' || (c == '\r' && i + 1 < len && t[i + 1] == '\n')) {
            uint8_t p = j ? v->buf[j - 1] : 0;
            bool line_start = false; /* the line's last token is also its first */
            bool after_digit = is_digit(p) || ((p == ' ' || p == '-' || p == ')') && j > 1 && is_digit(v->buf[j - 2]));
            /* A wrapped value continues a group sequence: the line's last token follows a
             * space, dash, '+' or parenthesis on its line (not a CSV ';' or ',', not the line's
             * start unless it starts with letters, as an IBAN does), and the next line's
             * first token is followed by one or ends there. */
            if (after_digit) {
                size_t b = j - (is_digit(p) ? 0 : 1), lo = b > 40 ? b - 40 : 0;
                while (b > lo && is_alnum(v->buf[b - 1])) b--;
                uint8_t q = b ? v->buf[b - 1] : 0;
                line_start = q == '\n' || q == 0;
                after_digit = b < j && (q == ' ' || q == '-' || q == '(' || q == ')' || q == '+' ||
                                        (is_alpha(v->buf[b]) && line_start)); /* "DE89\n3704" */
                line_start &= b < j && !after_digit;
            }
            if (after_digit || line_start) {
                size_t k = i + (c == '\r' ? 2 : 1), lim = k + 16;
                while (k < len && k < lim && (t[k] == ' ' || t[k] == '\t' || t[k] == '>')) k++;
                size_t w, e = k;
                int f = k < len ? (t[k] < 0x80 ? t[k] : fold_utf8(t, len, k, &w)) : -2;
                while (e < len && e - k < 40 && is_digit(t[e])) e++;
                bool follows = e == len || e - k >= 40 || (e > k && (t[e] == ' ' || t[e] == '\t' || t[e] == '\n' ||
                                                                    t[e] == '\r' || t[e] == '-' || t[e] == '.' ||
                                                                    t[e] == ',' || t[e] == ')' || t[e] >= 0x80));
                /* A number alone on its line ("4903\n7164 9980 4368") joins only a line that
                 * goes on in groups: a list of numbers, one a line, stays a list. */
                if (line_start && !after_digit)
                    follows = e > k && e + 1 < len && (t[e] == ' ' || t[e] == '-') && is_digit(t[e + 1]);
                if (f >= 0 && is_digit((unsigned)f) && (follows || (t[k] >= 0x80 && !line_start))) {
                    if (is_digit(p)) {
                        v->buf[j] = ' ';
                        v->map[j++] = (uint32_t)i;
                    }
                    i = k;
                    continue;
                }
            }
        }
        if (c < 0x80) {
            v->buf[j] = c;
            v->map[j++] = (uint32_t)i++;
            continue;
        }
        size_t w;
        int f = fold_utf8(t, len, i, &w);
        if (f == -1) {
            i += w;
        } else if (f >= 0) {
            v->buf[j] = (uint8_t)f;
            v->map[j++] = (uint32_t)i;
            i += w;
        } else {
            v->buf[j] = c;
            v->map[j++] = (uint32_t)i++;
        }
    }
    v->map[j] = (uint32_t)len;
    v->buf[j] = 0;
    v->s = v->buf;
    v->n = j;
}

static void view_free(view *v) {
    free(v->buf);
    free(v->map);
}

/* Makes the view writable (a copy of the caller's text when scanning in place). */
static uint8_t *view_writable(view *v) {
    if (v->buf) return v->buf;
    if (v->nomem) return NULL;
    v->buf = malloc(v->n + 1);
    if (!v->buf) {
        v->nomem = true;
        return NULL;
    }
    memcpy(v->buf, v->s, v->n);
    v->buf[v->n] = 0;
    v->s = v->buf;
    return v->buf;
}

/* ---- The token pass: secrets and national ids ---------------------------------------- */

typedef struct tokscan {
    view *v;
    sink *k;
} tokscan;

static inline bool is_word(unsigned c) { return is_alnum(c) || c == '_'; }
static inline bool is_upper(unsigned c) { return c - 'A' < 26u; }
static inline bool is_lower_c(unsigned c) { return c - 'a' < 26u; }
static inline bool b64url(unsigned c) { return is_alnum(c) || c == '_' || c == '-'; }

/* Counts a value and writes "[xx..x]" over it in the view, so that the main pass and the
 * rest of this one read it as they will read its placeholder. */
static size_t claim(tokscan *ts, hl_pii_type t, size_t start, size_t end) {
    sink_add(ts->k, t, 0, start, end);
    uint8_t *b = view_writable(ts->v);
    if (b && end - start >= 2) {
        b[start] = '[';
        memset(b + start + 1, 'x', end - start - 2);
        b[end - 1] = ']';
    }
    ts->k->txt = ts->v->s;
    return end;
}

static bool has_prefix(const uint8_t *s, size_t n, size_t i, const char *p) {
    size_t l = strlen(p);
    return i + l <= n && memcmp(s + i, p, l) == 0;
}

/* Length of the run at i of bytes that ok() accepts, up to max + 1. */
static size_t run_len(const uint8_t *s, size_t n, size_t i, bool (*ok)(unsigned), size_t max) {
    size_t j = i;
    while (j < n && j - i <= max && ok(s[j])) j++;
    return j - i;
}

static bool alnum_ok(unsigned c) { return is_alnum(c); }
static bool b64url_ok(unsigned c) { return b64url(c); }
static bool upper_digit_ok(unsigned c) { return is_upper(c) || is_digit(c); }
static bool b64_ok(unsigned c) { return is_alnum(c) || c == '/' || c == '+'; }
static bool word_ok(unsigned c) { return is_word(c); }
static bool slack_ok(unsigned c) { return is_alnum(c) || c == '-'; }
static bool hook_ok(unsigned c) { return is_alnum(c) || c == '/'; }

/* A token of prefix p followed by at least min bytes that ok() accepts, ending at a
 * boundary (no more such bytes). Returns its end or 0. */
static size_t prefixed(const uint8_t *s, size_t n, size_t i, const char *p, bool (*ok)(unsigned),
                       size_t min, size_t max) {
    if (!has_prefix(s, n, i, p)) return 0;
    size_t at = i + strlen(p), l = run_len(s, n, at, ok, max);
    if (l < min || l > max) return 0;
    if (at + l < n && (is_alnum(s[at + l]))) return 0;
    return at + l;
}

/* Does [a, b) mix letters and digits (a random token rather than a word)? */
static bool mixed(const uint8_t *s, size_t a, size_t b) {
    bool d = false, l = false;
    for (size_t i = a; i < b; i++) {
        d |= is_digit(s[i]);
        l |= is_alpha(s[i]);
    }
    return d && l;
}

/* A 40-character AWS secret access key at i (base64 alphabet, mixed). */
static size_t aws_secret_at(const uint8_t *s, size_t n, size_t i) {
    if (i > 0 && b64_ok(s[i - 1])) return 0;
    size_t l = run_len(s, n, i, b64_ok, 40);
    if (l != 40 || !mixed(s, i, i + 40)) return 0;
    bool up = false, lo = false;
    for (size_t j = i; j < i + 40; j++) {
        up |= is_upper(s[j]);
        lo |= is_lower_c(s[j]);
    }
    return up && lo ? i + 40 : 0;
}

static size_t try_key_word(tokscan *ts, size_t i) {
    const uint8_t *s = ts->v->s;
    size_t n = ts->v->n, e;
    switch (s[i]) {
    case 's':
        if ((e = prefixed(s, n, i, "sk-ant-", b64url_ok, 20, 400)))
            return claim(ts, HL_PII_ANTHROPIC_KEY, i, e);
        if ((e = prefixed(s, n, i, "sk-", b64url_ok, 20, 400)) && mixed(s, i + 3, e))
            return claim(ts, HL_PII_OPENAI_KEY, i, e);
        if ((e = prefixed(s, n, i, "sk_live_", alnum_ok, 16, 200)) ||
            (e = prefixed(s, n, i, "sk_test_", alnum_ok, 16, 200)))
            return claim(ts, HL_PII_STRIPE_KEY, i, e);
        return 0;
    case 'r':
        if ((e = prefixed(s, n, i, "rk_live_", alnum_ok, 16, 200)) ||
            (e = prefixed(s, n, i, "rk_test_", alnum_ok, 16, 200)))
            return claim(ts, HL_PII_STRIPE_KEY, i, e);
        return 0;
    case 'w':
        if ((e = prefixed(s, n, i, "whsec_", alnum_ok, 24, 200)))
            return claim(ts, HL_PII_STRIPE_KEY, i, e);
        return 0;
    case 'A':
        if (((e = prefixed(s, n, i, "AKIA", upper_digit_ok, 16, 16)) ||
             (e = prefixed(s, n, i, "ASIA", upper_digit_ok, 16, 16))) && e - i == 20) {
            size_t end = claim(ts, HL_PII_AWS_ACCESS_KEY, i, e);
            /* The secret that comes with it, on the same line ("AKIA... wJalr..."). */
            size_t j = end;
            while (j < n && j < end + 8 && (s[j] == ' ' || s[j] == ',' || s[j] == ':' ||
                                            s[j] == '|' || s[j] == '\t' || s[j] == '"' || s[j] == '\'' ||
                                            s[j] == ';' || s[j] == '='))
                j++;
            size_t se = j > end ? aws_secret_at(s, n, j) : 0;
            if (se) return claim(ts, HL_PII_AWS_SECRET, j, se);
            return end;
        }
        if ((e = prefixed(s, n, i, "AIza", b64url_ok, 35, 35)))
            return claim(ts, HL_PII_GOOGLE_API_KEY, i, e);
        return 0;
    case 'g':
        if (i + 4 <= n && s[i + 1] == 'h' && s[i + 3] == '_' && s[i + 2] && strchr("pousr", s[i + 2]) &&
            (e = prefixed(s, n, i + 4, "", alnum_ok, 30, 255)))
            return claim(ts, HL_PII_GITHUB_TOKEN, i, e);
        if ((e = prefixed(s, n, i, "github_pat_", word_ok, 40, 255)))
            return claim(ts, HL_PII_GITHUB_TOKEN, i, e);
        if ((e = prefixed(s, n, i, "glpat-", b64url_ok, 20, 255)))
            return claim(ts, HL_PII_GITLAB_TOKEN, i, e);
        return 0;
    case 'x':
        if (i + 5 <= n && has_prefix(s, n, i, "xox") && s[i + 3] && strchr("abposr", s[i + 3]) && s[i + 4] == '-' &&
            (e = prefixed(s, n, i + 5, "", slack_ok, 10, 255)) && mixed(s, i + 5, e))
            return claim(ts, HL_PII_SLACK_TOKEN, i, e);
        if ((e = prefixed(s, n, i, "xapp-", slack_ok, 10, 255)) && mixed(s, i + 5, e))
            return claim(ts, HL_PII_SLACK_TOKEN, i, e);
        return 0;
    case 'h':
        if ((e = prefixed(s, n, i, "hooks.slack.com/services/", hook_ok, 20, 255)))
            return claim(ts, HL_PII_SLACK_TOKEN, i, e);
        return 0;
    case 'e': {
        /* JWT: header "eyJ...", '.', payload (a JSON object: "ey..." or "ew..."), '.',
         * signature (may be empty: alg none). */
        if (!has_prefix(s, n, i, "eyJ")) return 0;
        size_t a = run_len(s, n, i, b64url_ok, 4096);
        if (a < 10 || a > 4096 || i + a >= n || s[i + a] != '.') return 0;
        size_t p = i + a + 1;
        if (p + 2 > n || s[p] != 'e' || (s[p + 1] != 'y' && s[p + 1] != 'w')) return 0;
        size_t b = run_len(s, n, p, b64url_ok, 65536);
        if (b < 10 || b > 65536 || p + b >= n || s[p + b] != '.') return 0;
        size_t q = p + b + 1, c = run_len(s, n, q, b64url_ok, 4096);
        if (c > 4096) return 0;
        return claim(ts, HL_PII_JWT, i, q + c);
    }
    default:
        return 0;
    }
}

/* -- National ids -- */

static const char *const bsn_words[] = {"^bsn", "burgerservice", "^sofi", NULL};
static const char *const steuer_words[] = {"steuer", "^idnr", "identifikationsnummer", "^tin", "tax id", NULL};

/* Reads digits at i with single separators from seps between them, up to max digits;
 * returns the end and fills d[], *nd, and the digit counts before each separator in
 * *sepmask (bit k: a separator after the k-th digit). */
static size_t read_digits(const uint8_t *s, size_t n, size_t i, const char *seps, uint8_t *d, int max,
                          int *nd, uint32_t *sepmask) {
    *nd = 0;
    *sepmask = 0;
    size_t end = i;
    while (i < n) {
        if (is_digit(s[i])) {
            if (*nd == max) return 0; /* longer than any id here */
            d[(*nd)++] = (uint8_t)(s[i] - '0');
            end = ++i;
            continue;
        }
        if (*nd > 0 && (s[i] == seps[0] || s[i] == seps[1]) && i + 1 < n && is_digit(s[i + 1])) {
            /* Only the ids' printed groupings (NIR 1-2-2-2-3-3-2, Steuer-ID 2-3-3-3, BSN
             * 4.2.3) have separators: stop at the first one that fits none of them, so that
             * spaced digits are not read again from every digit. */
            static const uint32_t forms[] = {(1u << 1) | (1u << 3) | (1u << 5) | (1u << 7) | (1u << 10) | (1u << 13),
                                             (1u << 2) | (1u << 5) | (1u << 8), (1u << 4) | (1u << 6)};
            uint32_t m = *sepmask | 1u << *nd, upto = (2u << *nd) - 1;
            bool fits = false;
            for (int f = 0; f < 3; f++) fits |= (forms[f] & upto) == m;
            if (!fits) return 0;
            *sepmask = m;
            i++;
            continue;
        }
        break;
    }
    return end;
}

static bool nir_ok(const uint8_t *d) {
    if (d[0] != 1 && d[0] != 2) return false;
    int mm = d[3] * 10 + d[4];
    if (mm == 0 || (mm > 12 && mm < 20) || (mm > 42 && mm < 50)) return false;
    uint64_t v = 0;
    for (int j = 0; j < 13; j++) v = v * 10 + d[j];
    return (int)(97 - v % 97) == d[13] * 10 + d[14];
}

static bool steuer_ok(const uint8_t *d) {
    if (d[0] == 0) return false;
    int cnt[10] = {0}, twice = 0, missing = 0;
    for (int j = 0; j < 10; j++) cnt[d[j]]++;
    for (int j = 0; j < 10; j++) {
        if (cnt[j] == 0) missing++;
        else if (cnt[j] == 2 || cnt[j] == 3) twice++;
        else if (cnt[j] > 3) return false;
    }
    if (twice != 1 || missing < 1 || missing > 2) return false;
    int product = 10;
    for (int j = 0; j < 10; j++) {
        int sum = (d[j] + product) % 10;
        if (sum == 0) sum = 10;
        product = (sum * 2) % 11;
    }
    int check = 11 - product;
    if (check == 10) check = 0;
    return check == d[10];
}

static bool bsn_ok(const uint8_t *d) {
    int sum = 0;
    for (int j = 0; j < 8; j++) sum += (9 - j) * d[j];
    sum -= d[8];
    return sum % 11 == 0 && !(d[0] == 0 && d[1] == 0);
}

static const char dni_letters[] = "TRWAGMYFPDXBNJZSQVHLCKE";

/* May an id end at e? Not glued to a word character or '@', nor followed by '-' or '.'
 * and a letter or digit ("12345678A-rev" is a part number). */
static bool id_end_ok(const uint8_t *s, size_t n, size_t e) {
    if (e >= n) return true;
    if (is_word(s[e]) || s[e] == '@') return false;
    return !((s[e] == '-' || s[e] == '.') && e + 1 < n && is_alnum(s[e + 1]));
}

/* A digit at a word start: DNI (8 digits and a letter), NIR, BSN, Steuer-ID. */
static size_t try_id_digits(tokscan *ts, size_t i) {
    const uint8_t *s = ts->v->s;
    size_t n = ts->v->n;
    uint8_t d[16];
    int nd;
    uint32_t sm;
    size_t e = read_digits(s, n, i, " .", d, 15, &nd, &sm);
    if (!e || (e < n && (is_alpha(s[e]) && nd != 8))) return 0;
    if (nd == 8 && sm == 0 && e < n) {
        size_t l = e + ((s[e] == '-' || s[e] == ' ') && e + 1 < n ? 1 : 0);
        unsigned c = l < n ? s[l] : 0;
        if (is_upper(c) && id_end_ok(s, n, l + 1)) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++) v = v * 10 + d[j];
            if (dni_letters[v % 23] == (char)c) return claim(ts, HL_PII_ES_DNI, i, l + 1);
        }
        return 0;
    }
    if (e < n && (is_word(s[e]) || s[e] == '@')) return 0;
    if (e + 1 < n && (s[e] == '.' || s[e] == '-') && is_alnum(s[e + 1])) return 0;
    if (nd == 15 && (sm == 0 || sm == ((1u << 1) | (1u << 3) | (1u << 5) | (1u << 7) | (1u << 10) | (1u << 13))) &&
        nir_ok(d))
        return claim(ts, HL_PII_FR_NIR, i, e);
    if (nd == 9 && (sm == 0 || sm == ((1u << 4) | (1u << 6))) && bsn_ok(d) && keyword_before_s(s, i, bsn_words))
        return claim(ts, HL_PII_NL_BSN, i, e);
    if (nd == 11 && (sm == 0 || sm == ((1u << 2) | (1u << 5) | (1u << 8))) && steuer_ok(d) &&
        keyword_before_s(s, i, steuer_words))
        return claim(ts, HL_PII_DE_STEUER_ID, i, e);
    return 0;
}

static int cf_odd(unsigned c) {
    static const uint8_t odd[26] = {1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20,
                                    11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23};
    return odd[is_digit(c) ? c - '0' : c - 'A'];
}

/* An uppercase letter at a word start: UK NINO, Spanish NIE, Italian codice fiscale. */
static size_t try_id_letters(tokscan *ts, size_t i) {
    const uint8_t *s = ts->v->s;
    size_t n = ts->v->n;
    if (i + 9 > n || !is_upper(s[i + 1])) {
        /* NIE: X/Y/Z, 7 digits, letter. */
        if (i + 9 <= n && (s[i] == 'X' || s[i] == 'Y' || s[i] == 'Z')) {
            uint32_t v = (uint32_t)(s[i] - 'X');
            size_t j = i + 1;
            for (; j < i + 8 && is_digit(s[j]); j++) v = v * 10 + (s[j] - '0');
            if (j != i + 8) return 0;
            if (s[j] == '-' && j + 1 < n) j++;
            if (j < n && is_upper(s[j]) && id_end_ok(s, n, j + 1) && dni_letters[v % 23] == (char)s[j])
                return claim(ts, HL_PII_ES_DNI, i, j + 1);
        }
        return 0;
    }
    /* NINO: two letters, 6 digits (optionally in spaced pairs), A-D. */
    if (is_digit(s[i + 2]) || (s[i + 2] == ' ' && is_digit(s[i + 3]))) {
        unsigned a = s[i], b = s[i + 1];
        if (strchr("DFIQUV", (int)a) || strchr("DFIOQUV", (int)b)) return 0;
        static const char *const bad[] = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"};
        for (size_t j = 0; j < 7; j++)
            if (bad[j][0] == (char)a && bad[j][1] == (char)b) return 0;
        size_t j = i + 2;
        bool spaced = s[j] == ' ';
        for (int g = 0; g < 3; g++) {
            if (spaced) {
                if (j >= n || s[j] != ' ') return 0;
                j++;
            }
            if (j + 2 > n || !is_digit(s[j]) || !is_digit(s[j + 1])) return 0;
            j += 2;
        }
        if (spaced && j < n && s[j] == ' ') j++;
        if (j < n && s[j] >= 'A' && s[j] <= 'D' && id_end_ok(s, n, j + 1))
            return claim(ts, HL_PII_UK_NINO, i, j + 1);
        if (!spaced && id_end_ok(s, n, j) && j - i == 8 && keyword_before_s(s, i, (const char *const[]){"^nino", "national insurance", "^ni number", "^ni no", NULL}))
            return claim(ts, HL_PII_UK_NINO, i, j);
        return 0;
    }
    /* Codice fiscale: 6 letters, 2 digits, month letter, 2 digits, letter, 3 digits, check
     * letter (digits may be replaced by LMNPQRSTUV: omocodia). */
    if (i + 16 > n || !id_end_ok(s, n, i + 16)) return 0;
    static const char pat[] = "LLLLLLDDMDDLDDDC";
    int sum = 0;
    for (int j = 0; j < 16; j++) {
        unsigned c = s[i + (size_t)j];
        switch (pat[j]) {
        case 'L': case 'C':
            if (!is_upper(c)) return 0;
            break;
        case 'M':
            if (!strchr("ABCDEHLMPRST", (int)c) || !c) return 0;
            break;
        default:
            if (!is_digit(c) && !(c && strchr("LMNPQRSTUV", (int)c))) return 0;
        }
        if (j == 15) return sum % 26 == (int)(c - 'A') ? claim(ts, HL_PII_IT_CODICE_FISCALE, i, i + 16) : 0;
        sum += j % 2 == 0 ? cf_odd(c) : (int)(is_digit(c) ? c - '0' : c - 'A');
    }
    return 0;
}

/* -- Assignments: NAME=value, "name": "value", Password=...; in connection strings -- */

static bool has_sub(const char *h, const char *needle) { return strstr(h, needle) != NULL; }

static bool ends_with(const char *h, size_t hl, const char *t) {
    size_t tl = strlen(t);
    return hl >= tl && memcmp(h + hl - tl, t, tl) == 0;
}

/* How secret a lower-cased name says its value is: 0 not, else the value's minimum length. */
static int secret_name(const char *nm, size_t l) {
    /* Most names say nothing secret: look for the stems first. */
    bool stem = false;
    for (size_t i = 0; i + 3 <= l && !stem; i++) {
        switch (nm[i]) {
        case 'p': stem = nm[i + 1] == 'a' || nm[i + 1] == 'w'; break;
        case 's': stem = nm[i + 1] == 'e' && nm[i + 2] == 'c'; break;
        case 't': stem = nm[i + 1] == 'o' && nm[i + 2] == 'k'; break;
        case 'k': stem = nm[i + 1] == 'e' && nm[i + 2] == 'y'; break;
        case 'c': stem = nm[i + 1] == 'r' && nm[i + 2] == 'e'; break;
        case 'a': stem = nm[i + 1] == 'u' && nm[i + 2] == 't'; break;
        default: break;
        }
    }
    if (!stem) return 0;
    static const char *const not_values[] = {
        "limit", "count", "max", "min", "length", "len", "size", "ttl", "expiry", "expires",
        "timeout", "url", "uri", "file", "path", "name", "id", "type", "header", "prefix",
        "field", "env", "version", "policy", "hint", "mode", "dir", "enabled", "required",
        "rotation", "ref", "endpoint", "host", "user", "username", "format", "algorithm", NULL,
    };
    size_t seg = l;
    while (seg > 0 && nm[seg - 1] != '_' && nm[seg - 1] != '-' && nm[seg - 1] != '.') seg--;
    for (const char *const *w = not_values; *w; w++)
        if (strcmp(nm + seg, *w) == 0) return 0;
    if (has_sub(nm, "password") || has_sub(nm, "passwd") || has_sub(nm, "passphrase") ||
        strcmp(nm + seg, "pwd") == 0 || strcmp(nm + seg, "pass") == 0)
        return 6;
    if (has_sub(nm, "secret") || has_sub(nm, "credential")) return 8;
    if (ends_with(nm, l, "token")) return 8;
    if (ends_with(nm, l, "apikey") || ends_with(nm, l, "api_key") || ends_with(nm, l, "api-key")) return 8;
    if (ends_with(nm, l, "key") &&
        (has_sub(nm, "private") || has_sub(nm, "access") || has_sub(nm, "auth") || has_sub(nm, "signing") ||
         has_sub(nm, "encryption") || has_sub(nm, "master") || has_sub(nm, "client") || has_sub(nm, "license") ||
         has_sub(nm, "service") || has_sub(nm, "app_key") || has_sub(nm, "webhook")))
        return 8;
    if (strcmp(nm, "authorization") == 0) return 8;
    return 0;
}

/* Values that stand in for a secret rather than being one. */
static bool placeholder_value(const uint8_t *s, size_t a, size_t b) {
    unsigned c = s[a];
    if (c == '$' || c == '<' || c == '{' || c == '%' || c == '[' || c == '*' || c == '(') return true;
    bool same = true;
    for (size_t j = a + 1; j < b; j++) same &= lower(s[j]) == lower(c) || s[j] == '*' || s[j] == '.';
    if (same) return true;
    char low[40];
    size_t l = b - a < sizeof low - 1 ? b - a : sizeof low - 1;
    for (size_t j = 0; j < l; j++) low[j] = (char)lower(s[a + j]);
    low[l] = '\0';
    static const char *const words[] = {
        "your", "changeme", "change_me", "redacted", "placeholder", "example", "secret", "password",
        "null", "none", "true", "false", "undefined", "todo", "xxx", "...", "dummy", "sample",
        "insert", "replace", "process.env", "os.environ", "getenv", "env(", "env.", NULL,
    };
    for (const char *const *w = words; *w; w++)
        if (strstr(low, *w) == low || (strlen(*w) >= 4 && strstr(low, *w))) return true;
    return false;
}

static size_t try_assign(tokscan *ts, size_t at) {
    const uint8_t *s = ts->v->s;
    size_t n = ts->v->n;
    /* The name, backwards over an optional closing quote and spaces. */
    size_t e = at;
    while (e > 0 && at - e < 2 && s[e - 1] == ' ') e--;
    bool quoted = e > 0 && (s[e - 1] == '"' || s[e - 1] == '\'');
    if (quoted) e--;
    size_t b = e;
    while (b > 0 && e - b < 64 && (is_word(s[b - 1]) || s[b - 1] == '-' || s[b - 1] == '.')) b--;
    if (b == e || e - b >= 64 || (b > 0 && is_word(s[b - 1]))) return 0;
    char nm[65];
    size_t l = e - b;
    for (size_t j = 0; j < l; j++) nm[j] = (char)lower(s[b + j]);
    nm[l] = '\0';
    int min = secret_name(nm, l);
    if (!min) return 0;
    /* The value. */
    size_t v = at + 1;
    while (v < n && v - at < 3 && s[v] == ' ') v++;
    unsigned q = v < n && (s[v] == '"' || s[v] == '\'' || s[v] == '`') ? s[v] : 0;
    if (q) v++;
    if (v + 7 <= n && (memcmp(s + v, "Bearer ", 7) == 0 || memcmp(s + v, "bearer ", 7) == 0)) v += 7;
    else if (v + 6 <= n && memcmp(s + v, "Basic ", 6) == 0) v += 6;
    if (v >= n) return 0;
    if (is_word(s[v])) {
        size_t r = try_key_word(ts, v);
        if (r) return r;
    }
    /* In a connection string ("...;User Id=sa;Password=x&y;") only ';' ends the value. */
    /* On a line of its own ("NAME=value", "export NAME=value": a .env file) the value
     * runs to the end of the line; in a URL query only to the next '&'; in prose also to
     * punctuation. */
    bool conn = min == 6 && b > 0 && s[b - 1] == ';';
    bool line = b == 0 || s[b - 1] == '\n' || (b >= 7 && memcmp(s + b - 7, "export ", 7) == 0);
    bool query = b > 0 && (s[b - 1] == '?' || s[b - 1] == '&');
    size_t ve = v;
    while (ve < n && ve - v <= 512) {
        unsigned c = s[ve];
        if (q ? c == q || c == '\n'
              : conn ? c <= ' ' || c == ';' || c == '"' || c == '\''
              : line ? c <= ' ' || c == '"' || c == '\''
              : query ? c <= ' ' || c == '&' || c == '#' || c == '"' || c == '\''
                      : (c <= ' ' || c == ';' || c == ',' || c == '"' || c == '\'' || c == '&' || c == ')' ||
                         c == ']' || c == '}' || c == '<' || c == '>' || c == '`'))
            break;
        ve++;
    }
    if (ve - v > 512) return ve; /* no secret is that long; do not read it again */
    if (ve - v < (size_t)min || placeholder_value(s, v, ve)) return 0;
    /* A name that says secret, and a value of only letters, reads as prose after ':'
     * ("password: forgotten") unless it mixes in digits or symbols. */
    if (s[at] == ':' && !quoted && !q) {
        bool plain = true;
        for (size_t j = v; j < ve; j++) plain &= is_alpha(s[j]);
        if (plain) return 0;
    }
    bool aws = (has_sub(nm, "aws") || has_sub(nm, "secret_access") || has_sub(nm, "secretaccess")) &&
               ve - v == 40 && aws_secret_at(s, n, v) == ve;
    conn |= min == 6 && ve < n && s[ve] == ';';
    return claim(ts, aws ? HL_PII_AWS_SECRET : conn ? HL_PII_PASSWORD_IN_URL : HL_PII_ENV_SECRET, v, ve);
}

/* scheme://user:password@host: the password. */
static size_t try_url_password(tokscan *ts, size_t colon) {
    const uint8_t *s = ts->v->s;
    size_t n = ts->v->n;
    if (colon + 3 > n || s[colon + 1] != '/' || s[colon + 2] != '/' || colon < 2 || !is_alpha(s[colon - 1]))
        return 0;
    size_t u = colon + 3, j = u, pw = 0, at = 0;
    for (; j < n && j - u < 256; j++) {
        unsigned c = s[j];
        if (c <= ' ' || c == '/' || c == '"' || c == '\'' || c == '<' || c == '>') break;
        if (c == ':' && !pw) pw = j + 1;
        if (c == '@') at = j;
    }
    if (!pw || !at || at <= pw) return 0;
    if (placeholder_value(s, pw, at) || at - pw > 200) return colon + 3;
    return claim(ts, HL_PII_PASSWORD_IN_URL, pw, at);
}

/* -- Private key blocks -- */
static size_t try_pem(tokscan *ts, size_t i) {
    const uint8_t *s = ts->v->s;
    size_t n = ts->v->n;
    if (!has_prefix(s, n, i, "-----BEGIN ")) return 0;
    size_t j = i + 11;
    while (j < n && j - i < 64 && (is_upper(s[j]) || s[j] == ' ' || is_digit(s[j]))) j++;
    if (!has_prefix(s, n, j, "-----")) return 0;
    const uint8_t *pk = NULL;
    for (size_t k = i + 11; k + 11 <= j; k++)
        if (memcmp(s + k, "PRIVATE KEY", 11) == 0) pk = s + k;
    if (!pk) return j + 5;
    const uint8_t *end = memmem(s + j + 5, n - j - 5, "-----END ", 9);
    size_t e = n;
    if (end) {
        e = (size_t)(end - s) + 9;
        while (e < n && e - (size_t)(end - s) < 80 && s[e] != '-' && s[e] != '\n') e++;
        while (e < n && s[e] == '-') e++;
    }
    return claim(ts, HL_PII_PRIVATE_KEY, i, e);
}

/* Bytes that start something in the token pass: 1 letters and digits that can start a
 * value at a word start, 2 '=' and ':', 3 '-'. */
static const uint8_t tok_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, 2, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static void scan_tokens(view *v, sink *k) {
    tokscan ts = {v, k};
    size_t n = v->n;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = v->s;
        uint8_t cls = tok_class[s[i]];
        if (!cls) continue;
        size_t r = 0;
        if (cls == 1) {
            if (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '-' || s[i - 1] == '.')) {
                /* inside a word: skip to its end */
                continue;
            }
            unsigned c1 = i + 1 < n ? s[i + 1] : 0;
            if (is_digit(s[i])) {
                r = try_id_digits(&ts, i);
            } else if (is_upper(s[i])) {
                /* Keys and ids that start with a capital go on with a capital or digit
                 * ("AKIA", "AIza", "AB123456C", "X1234567L"): prose words ("The") do not. */
                if (is_upper(c1) || is_digit(c1) || (s[i] == 'A' && c1 == 'I')) {
                    r = try_key_word(&ts, i);
                    if (!r) r = try_id_letters(&ts, i);
                }
            } else {
                /* The second letter of each lower-case prefix: sk- sk_ rk_ whsec_ gh*_
                 * github_pat_ glpat- xox* xapp- hooks. eyJ. */
                bool maybe = false;
                switch (s[i]) {
                case 's': case 'r': maybe = c1 == 'k'; break;
                case 'w': case 'h': maybe = c1 == 'h' || c1 == 'o'; break;
                case 'g': maybe = c1 == 'h' || c1 == 'i' || c1 == 'l'; break;
                case 'x': maybe = c1 == 'o' || c1 == 'a'; break;
                case 'e': maybe = c1 == 'y'; break;
                default: break;
                }
                if (maybe) r = try_key_word(&ts, i);
            }
        } else if (cls == 2) {
            if (s[i] == ':') r = try_url_password(&ts, i);
            if (!r) r = try_assign(&ts, i);
        } else if (i + 11 <= n && s[i + 1] == '-') {
            r = try_pem(&ts, i);
        }
        if (r > i) i = r - 1;
    }
}

/* ---- Custom patterns ----------------------------------------------------------------- */

/* PCRE2 allocates its general context and match data through these, from an arena on the
 * scanning thread's stack, so a scan neither calls malloc nor shares mutable state. Only
 * the interpreter's backtracking frames (no JIT) can outgrow the arena; they fall back to
 * malloc. */
typedef struct pii_arena {
    _Alignas(max_align_t) unsigned char buf[1024];
    size_t used;
} pii_arena;

static void *arena_malloc(size_t size, void *ud) {
    pii_arena *a = ud;
    size_t need = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    if (need >= size && need <= sizeof a->buf - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    return malloc(size);
}

static void arena_free(void *p, void *ud) {
    pii_arena *a = ud;
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->buf;
    if (u < lo || u >= lo + sizeof a->buf) free(p);
}

static void scan_custom(const hl_pii_detector *d, const uint8_t *s, size_t n, sink *k) {
    if (d->n_custom == 0) return;
    pii_arena arena;
    arena.used = 0;
    pcre2_general_context *gc = pcre2_general_context_create(arena_malloc, arena_free, &arena);
    pcre2_match_data *md = gc ? pcre2_match_data_create(1, gc) : NULL;
    if (!md) {
        /* Cannot happen with the arena; if it ever does, fail closed. */
        for (size_t p = 0; p < d->n_custom; p++) sink_add(k, HL_PII_CUSTOM, (unsigned)p, 0, 0);
        k->limit = true;
        goto out;
    }
    for (size_t p = 0; p < d->n_custom; p++) {
        size_t off = 0;
        while (off <= n) {
            int rc = pcre2_match(d->custom[p].code, s, n, off, 0, md, d->mctx);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                sink_add(k, HL_PII_CUSTOM, (unsigned)p, 0, 0);
                k->limit = true;
                break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me > ms && me <= n) {
                sink_add(k, HL_PII_CUSTOM, (unsigned)p, ms, me);
                off = me;
            } else {
                /* An empty match (or a \K oddity): step one character on. */
                off = (me > off ? me : off) + 1;
                while (off < n && (s[off] & 0xC0) == 0x80) off++;
            }
        }
    }
out:
    pcre2_match_data_free(md);
    pcre2_general_context_free(gc);
}

/* The normalized view, then the token pass (secrets, national ids) over it, then the main
 * pass over what the token pass left, then the custom patterns over the raw bytes. */
static void scan_all(const hl_pii_detector *d, const char *text, size_t len, sink *k) {
    view v;
    view_build(&v, (const uint8_t *)text, len);
    k->txt = v.s;
    k->map = v.map;
    k->raw = (const uint8_t *)text;
    scan_tokens(&v, k);
    if (v.nomem) k->r->incomplete = 1;
    k->txt = v.s;
    scanner sc = {v.s, v.n, v.n, 0, false, SIZE_MAX, SIZE_MAX,
                  {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX}, k, {0, 0}, {0, 0}, {{0}}, 0, 0, 0, 0, 0, 0, 0};
    scan_builtin(&sc);
    k->txt = (const uint8_t *)text;
    k->map = NULL;
    if (d) scan_custom(d, (const uint8_t *)text, len, k);
    view_free(&v);
}

void hl_pii_scan(const hl_pii_detector *d, const char *text, size_t len, hl_pii_report *report) {
    hl_pii_report scratch;
    if (!report) {
        memset(&scratch, 0, sizeof scratch);
        report = &scratch;
    }
    sink k = {.r = report};
    scan_all(d, text, len, &k);
}

/* ---- Redaction ----------------------------------------------------------------------- */

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->type != y->type) return x->type < y->type ? -1 : 1; /* built-in first */
    if (x->end != y->end) return x->end > y->end ? -1 : 1;
    return x->custom < y->custom ? -1 : x->custom > y->custom;
}

/* Placeholder numbering is per tag: a built-in type, or one custom pattern. */
#define NTAGS (HL_PII_CUSTOM + HL_PII_MAX_CUSTOM)
static unsigned span_tag_index(const span *sp) {
    return sp->type == HL_PII_CUSTOM ? HL_PII_CUSTOM + sp->custom : sp->type;
}

static const char *span_tag(const hl_pii_detector *d, const span *sp) {
    return sp->type == HL_PII_CUSTOM && d && sp->custom < d->n_custom ? d->custom[sp->custom].tag
                                                                      : type_tags[sp->type];
}

static uint64_t span_hash(const char *text, const span *sp) {
    uint64_t h = 1469598103934665603ull ^ span_tag_index(sp);
    for (size_t i = sp->start; i < sp->end; i++) h = (h ^ (uint8_t)text[i]) * 1099511628211ull;
    return h;
}

/* Gives each of the m spans its placeholder number: the number of an earlier identical
 * value with the same tag, or the tag's next number (next[] carries on across passes). A
 * hash set of first occurrences keeps this linear in the text, whatever the number of
 * values. */
static hl_err number_spans(const char *text, span *v, size_t m, int next[NTAGS]) {
    size_t cap = 16;
    while (cap < 2 * m) cap *= 2;
    size_t *slot = calloc(cap, sizeof *slot); /* index + 1 of a first occurrence; 0: empty */
    if (!slot) return HL_ERR_NOMEM;
    for (size_t i = 0; i < m; i++) {
        span *sp = &v[i];
        unsigned tag = span_tag_index(sp);
        size_t len = sp->end - sp->start;
        for (size_t h = (size_t)span_hash(text, sp) & (cap - 1);; h = (h + 1) & (cap - 1)) {
            if (!slot[h]) {
                slot[h] = i + 1;
                sp->num = next[tag] < INT_MAX ? ++next[tag] : INT_MAX;
                break;
            }
            const span *q = &v[slot[h] - 1];
            if (span_tag_index(q) == tag && q->end - q->start == len &&
                memcmp(text + q->start, text + sp->start, len) == 0) {
                sp->num = q->num;
                break;
            }
        }
    }
    free(slot);
    return HL_OK;
}

/* One redaction pass: scans text (counting into report) and, when anything is found,
 * writes the text with placeholders into *b, which must be initialized and empty. *found
 * gets the number of values found. */
static hl_err redact_pass(const hl_pii_detector *d, const char *text, size_t len,
                          hl_pii_report *report, int next[NTAGS], hl_buf *b, size_t *found) {
    hl_err err = HL_OK;
    span small[SINK_SMALL];
    sink k = {.r = report, .collect = true, .v = small, .small = small, .cap = SINK_SMALL};
    *found = 0;
    scan_all(d, text, len, &k);
    if (k.limit) {
        err = HL_ERR_LIMIT;
        goto out;
    }
    if (k.nomem) {
        err = HL_ERR_NOMEM;
        goto out;
    }
    *found = k.n;
    if (k.n == 0) goto out;

    /* Built-in spans are sorted and disjoint; custom ones may overlap anything. An overlap
     * joins the earlier span, which grows to cover both. */
    qsort(k.v, k.n, sizeof *k.v, span_cmp);
    size_t m = 0;
    for (size_t i = 0; i < k.n; i++) {
        if (m && k.v[i].start < k.v[m - 1].end) {
            if (k.v[i].end > k.v[m - 1].end) k.v[m - 1].end = k.v[i].end;
            continue;
        }
        k.v[m++] = k.v[i];
    }
    if ((err = number_spans(text, k.v, m, next)) != HL_OK) goto out;

    /* The output is at most the input plus one placeholder per value: "[" TAG "_" number
     * "]", the number at most 10 digits. */
    size_t ceiling = len;
    for (size_t i = 0; i < m; i++) ceiling += strlen(span_tag(d, &k.v[i])) + 13;
    hl_buf_init(b, ceiling);
    size_t at = 0;
    for (size_t i = 0; i < m; i++) {
        const span *sp = &k.v[i];
        if ((err = hl_buf_append(b, text + at, sp->start - at)) != HL_OK) goto out;
        if ((err = hl_buf_printf(b, "[%s_%d]", span_tag(d, sp), sp->num)) != HL_OK) goto out;
        at = sp->end;
    }
    err = hl_buf_append(b, text + at, len - at);
out:
    if (k.v != small) free(k.v);
    return err;
}

/* Redaction passes before giving up. The second pass finds something only when replacing
 * values changed how the text around them reads (a custom match that cut a token so its
 * rest looks like a phone number; an SSN word that a shorter placeholder brought within
 * reach of a number); a third is rarer still. */
#define PII_MAX_PASSES 4

hl_err hl_pii_redact(const hl_pii_detector *d, const char *text, size_t len, char **out,
                     size_t *out_len, hl_pii_report *report) {
    hl_err err;
    hl_pii_report scratch;
    int next[NTAGS] = {0};
    hl_buf cur, nb;
    size_t found;
    *out = NULL;
    *out_len = 0;
    if (!report) {
        memset(&scratch, 0, sizeof scratch);
        report = &scratch;
    }
    hl_buf_init(&cur, 0);
    hl_buf_init(&nb, 0);
    /* The first pass is the one reported: later passes only redact what the first one's
     * placeholders made visible. */
    err = redact_pass(d, text, len, report, next, &cur, &found);
    if (err != HL_OK || found == 0) goto out;
    for (int pass = 2;; pass++) {
        memset(&scratch, 0, sizeof scratch);
        err = redact_pass(d, cur.data, cur.len, &scratch, next, &nb, &found);
        if (err != HL_OK) goto out;
        if (found == 0) break;
        if (pass == PII_MAX_PASSES) {
            err = HL_ERR_LIMIT; /* cannot be made clean: fail closed */
            goto out;
        }
        hl_buf_release(&cur);
        cur = nb;
        hl_buf_init(&nb, 0);
    }
    *out_len = cur.len;
    *out = hl_buf_steal(&cur);
out:
    hl_buf_release(&cur);
    hl_buf_release(&nb);
    return err;
}

/* ---- Report -------------------------------------------------------------------------- */

hl_err hl_pii_report_format(const hl_pii_report *r, const hl_pii_detector *d, char *buf,
                            size_t len) {
    if (len == 0) return HL_ERR_LIMIT;
    size_t at = 0;
    buf[0] = '\0';
    for (int t = 0; t < HL_PII_NTYPES; t++) {
        if (t == HL_PII_CUSTOM && d) {
            for (size_t i = 0; i < d->n_custom; i++) {
                if (!r->custom[i]) continue;
                int n = snprintf(buf + at, len - at, "%scustom.%s:%d", at ? "," : "",
                                 d->custom[i].name, r->custom[i]);
                if (n < 0 || (size_t)n >= len - at) goto full;
                at += (size_t)n;
            }
            continue;
        }
        if (!r->counts[t]) continue;
        int n = snprintf(buf + at, len - at, "%s%s:%d", at ? "," : "", type_names[t],
                         r->counts[t]);
        if (n < 0 || (size_t)n >= len - at) goto full;
        at += (size_t)n;
    }
    return HL_OK;
full:
    buf[0] = '\0';
    return HL_ERR_LIMIT;
}
