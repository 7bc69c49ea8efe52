/* hl_compare: the answer-against-reference scores behind shadow comparisons and eval runs.
 * The rules of each method are stated in hl_compare.h; this file keeps every method free of
 * locale and of Unicode decoding, so that any byte string (invalid UTF-8 included) scores the
 * same on every machine, and bounded in time by the token caps. */
#include "hl_compare.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"auto", "exact", "json", "tools", "token_f1", "rouge_l"};

const char *hl_cmp_method_name(hl_cmp_method m) {
    if ((int)m < 0 || (size_t)m >= sizeof method_names / sizeof method_names[0]) return NULL;
    return method_names[m];
}

bool hl_cmp_method_parse(const char *s, hl_cmp_method *out) {
    if (!s) return false;
    for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
        if (strcmp(s, method_names[i]) == 0) {
            *out = (hl_cmp_method)i;
            return true;
        }
    return false;
}

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static unsigned char fold(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c; }
static const char *text_of(const hl_chat_response *r) { return r && r->text ? r->text : ""; }

/* A cursor that reads a string as the json rule sees it: ASCII case folded, leading and
 * trailing whitespace gone, each inner whitespace run one space. Nothing is allocated. */
typedef struct fold_cur { const unsigned char *p, *end; } fold_cur;

static void fold_init(fold_cur *c, const char *s, size_t len) {
    c->p = (const unsigned char *)s;
    c->end = c->p + len;
    while (c->p < c->end && is_ws(*c->p)) c->p++;
}

static int fold_next(fold_cur *c) {
    if (c->p == c->end) return -1;
    if (is_ws(*c->p)) {
        while (c->p < c->end && is_ws(*c->p)) c->p++;
        return c->p == c->end ? -1 : ' ';
    }
    return fold(*c->p++);
}

static bool folded_equal(const char *a, size_t alen, const char *b, size_t blen) {
    fold_cur x, y;
    fold_init(&x, a, alen);
    fold_init(&y, b, blen);
    for (;;) {
        int ca = fold_next(&x), cb = fold_next(&y);
        if (ca != cb) return false;
        if (ca < 0) return true;
    }
}

/* ---- exact ---------------------------------------------------------------------------- */

static bool is_quote(char c) { return c == '"' || c == '\'' || c == '`'; }
static bool is_trail_punct(char c) { return c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?'; }

/* The normalized label of s in a new string (caller frees); NULL when out of memory. */
static char *label_normalize(const char *s, size_t *out_len) {
    size_t len = strlen(s), n = 0;
    char *o = malloc(len + 1);
    if (!o) return NULL;
    fold_cur c;
    fold_init(&c, s, len);
    for (int ch; (ch = fold_next(&c)) >= 0;) o[n++] = (char)ch;
    size_t b = 0, e = n; /* o[b..e) is the label; o has no outer whitespace yet */
    for (bool changed = true; changed;) {
        changed = false;
        while (e > b && is_trail_punct(o[e - 1])) e--, changed = true;
        while (e > b && o[e - 1] == ' ') e--;
        if (e - b >= 2 && is_quote(o[b]) && o[e - 1] == o[b]) b++, e--, changed = true;
        while (b < e && o[b] == ' ') b++;
        while (e > b && o[e - 1] == ' ') e--;
    }
    memmove(o, o + b, e - b);
    o[e - b] = '\0';
    *out_len = e - b;
    return o;
}

static hl_err score_exact(const char *a, const char *b, double *score) {
    size_t la, lb;
    char *na = label_normalize(a, &la), *nb = label_normalize(b, &lb);
    hl_err e = HL_OK;
    if (!na || !nb) e = HL_ERR_NOMEM;
    else *score = la == lb && memcmp(na, nb, la) == 0 ? 1 : 0;
    free(na);
    free(nb);
    return e;
}

/* ---- json ----------------------------------------------------------------------------- */

/* The JSON text inside an optional ``` fence (``` or ```json on its own line or inline). */
static void unfence(const char *s, const char **p, size_t *len) {
    const char *b = s, *e = s + strlen(s);
    while (b < e && is_ws((unsigned char)*b)) b++;
    while (e > b && is_ws((unsigned char)e[-1])) e--;
    if (e - b >= 3 && memcmp(b, "```", 3) == 0) {
        b += 3;
        while (b < e && ((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z'))) b++; /* language tag */
        if (e - b >= 3 && memcmp(e - 3, "```", 3) == 0) e -= 3;
    }
    *p = b;
    *len = (size_t)(e - b);
}

/* Parses text as JSON (any value) after unfencing; NULL when it is not JSON. Caller decrefs. */
static json_t *parse_answer(const char *text) {
    const char *p;
    size_t len;
    unfence(text, &p, &len);
    if (len == 0) return NULL;
    json_error_t err;
    return json_loadb(p, len, JSON_DECODE_ANY, &err);
}

/* Leaves of v: scalars and empty containers count one each. The parser's depth limit
 * (jansson's 2048) bounds the recursion here and in json_walk. */
static double leaves(const json_t *v) {
    double n = 0;
    size_t i;
    const char *k;
    json_t *c;
    if (json_is_object(v) && json_object_size(v) > 0) {
        json_object_foreach((json_t *)v, k, c) n += leaves(c);
        return n;
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        json_array_foreach(v, i, c) n += leaves(c);
        return n;
    }
    return 1;
}

static bool leaf_equal(const json_t *a, const json_t *b) {
    if (json_is_string(a) && json_is_string(b))
        return folded_equal(json_string_value(a), json_string_length(a), json_string_value(b), json_string_length(b));
    if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
    if (json_is_real(a) && json_is_real(b)) return json_real_value(a) == json_real_value(b);
    if (json_is_number(a) && json_is_number(b)) {
        /* An integer and a real: equal when the real is that integer exactly. Comparing as
         * doubles would make 2^53+1 equal 2^53.0 equal 2^53, and tool-call matching needs an
         * equivalence relation. */
        const json_t *i = json_is_integer(a) ? a : b, *r = i == a ? b : a;
        double x = json_real_value(r);
        if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0) || x != floor(x)) return false;
        return (json_int_t)x == json_integer_value(i);
    }
    if (json_is_boolean(a) && json_is_boolean(b)) return json_is_true(a) == json_is_true(b);
    return json_is_null(a) && json_is_null(b);
}

static bool is_container(const json_t *v) { return json_is_object(v) || json_is_array(v); }
static size_t container_size(const json_t *v) { return json_is_object(v) ? json_object_size(v) : json_array_size(v); }

/* Adds the matching leaves of a and b to *match and the leaves of their union to *uni. */
static void json_walk(const json_t *a, const json_t *b, double *match, double *uni) {
    bool ca = is_container(a), cb = is_container(b);
    if (!ca && !cb) {
        *uni += 1;
        if (leaf_equal(a, b)) *match += 1;
        return;
    }
    if (ca != cb || json_typeof(a) != json_typeof(b)) {
        *uni += leaves(a) + leaves(b);
        return;
    }
    size_t na = container_size(a), nb = container_size(b);
    if (na == 0 || nb == 0) {
        if (na == nb) *match += 1, *uni += 1;
        else *uni += leaves(a) + leaves(b);
        return;
    }
    if (json_is_array(a)) {
        size_t i;
        for (i = 0; i < na && i < nb; i++) json_walk(json_array_get(a, i), json_array_get(b, i), match, uni);
        for (; i < na; i++) *uni += leaves(json_array_get(a, i));
        for (; i < nb; i++) *uni += leaves(json_array_get(b, i));
        return;
    }
    const char *k;
    json_t *va;
    json_object_foreach((json_t *)a, k, va) {
        const json_t *vb = json_object_get(b, k);
        if (vb) json_walk(va, vb, match, uni);
        else *uni += leaves(va);
    }
    json_object_foreach((json_t *)b, k, va)
        if (!json_object_get(a, k)) *uni += leaves(va);
}

static double json_score(const json_t *a, const json_t *b) {
    double match = 0, uni = 0;
    json_walk(a, b, &match, &uni);
    return uni > 0 ? match / uni : 0;
}

static hl_err score_json(const char *a, const char *b, double *score) {
    json_t *ja = parse_answer(a), *jb = ja ? parse_answer(b) : NULL;
    *score = ja && jb ? json_score(ja, jb) : 0;
    json_decref(ja);
    json_decref(jb);
    return HL_OK;
}

/* ---- tools ---------------------------------------------------------------------------- */

typedef struct call_view {
    const char *name, *args; /* borrowed */
    json_t *parsed;          /* owned; NULL when the arguments are not JSON */
    bool used;
} call_view;

static bool blank(const char *s) {
    while (*s && is_ws((unsigned char)*s)) s++;
    return *s == '\0';
}

static hl_err calls_view(const hl_chat_response *r, call_view **out, size_t *n) {
    *n = r ? r->n_tool_calls : 0;
    if (*n > HL_CMP_MAX_CALLS) *n = HL_CMP_MAX_CALLS;
    *out = calloc(*n ? *n : 1, sizeof **out);
    if (!*out) return HL_ERR_NOMEM;
    for (size_t i = 0; i < *n; i++) {
        call_view *c = &(*out)[i];
        c->name = r->tool_calls[i].name ? r->tool_calls[i].name : "";
        c->args = r->tool_calls[i].arguments ? r->tool_calls[i].arguments : "";
        json_error_t err;
        c->parsed = blank(c->args) ? json_object() : json_loads(c->args, JSON_DECODE_ANY, &err);
    }
    return HL_OK;
}

static void calls_free(call_view *v, size_t n) {
    for (size_t i = 0; v && i < n; i++) json_decref(v[i].parsed);
    free(v);
}

static bool call_equal(const call_view *a, const call_view *b) {
    if (strcmp(a->name, b->name) != 0) return false;
    if (a->parsed && b->parsed) return json_score(a->parsed, b->parsed) == 1.0;
    if (!a->parsed && !b->parsed) return folded_equal(a->args, strlen(a->args), b->args, strlen(b->args));
    return false;
}

/* Greedy matching is a maximum matching here: call equality is an equivalence relation, so
 * any unused equal partner is as good as any other. */
static hl_err score_tools(const hl_chat_response *ref, const hl_chat_response *cand, double *score) {
    call_view *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, matched = 0;
    hl_err e = calls_view(ref, &a, &na);
    if (!e) e = calls_view(cand, &b, &nb);
    if (!e) {
        for (size_t i = 0; i < na; i++)
            for (size_t j = 0; j < nb; j++)
                if (!b[j].used && call_equal(&a[i], &b[j])) {
                    b[j].used = true;
                    matched++;
                    break;
                }
        size_t ta = ref ? ref->n_tool_calls : 0, tb = cand ? cand->n_tool_calls : 0;
        size_t mx = ta > tb ? ta : tb;
        *score = mx ? (double)matched / (double)mx : 1;
    }
    calls_free(a, na);
    calls_free(b, nb);
    return e;
}

/* ---- word tokens ---------------------------------------------------------------------- */

typedef struct tok { const unsigned char *p; uint32_t len, side, pos; } tok;

static bool word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Appends up to max tokens of s to v (which has room), tagged with side. */
static size_t tokenize(const char *s, uint32_t side, size_t max, tok *v, size_t at) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p && n < max) {
        while (*p && !word_byte(*p)) p++;
        if (!*p) break;
        const unsigned char *b = p;
        while (*p && word_byte(*p)) p++;
        v[at + n] = (tok){b, (uint32_t)(p - b), side, (uint32_t)n};
        n++;
    }
    return n;
}

static int tok_cmp(const void *x, const void *y) {
    const tok *a = x, *b = y;
    uint32_t n = a->len < b->len ? a->len : b->len;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char ca = fold(a->p[i]), cb = fold(b->p[i]);
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static int u32_cmp(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* Each answer as a sequence of token ids (equal ids: equal lower-cased words). */
typedef struct tok_ids { uint32_t *a, *b; size_t na, nb; } tok_ids;

static hl_err tok_ids_build(const char *sa, const char *sb, size_t max, tok_ids *t) {
    memset(t, 0, sizeof *t);
    size_t la = strlen(sa), lb = strlen(sb);
    size_t ca = la / 2 + 1 < max ? la / 2 + 1 : max, cb = lb / 2 + 1 < max ? lb / 2 + 1 : max;
    tok *v = malloc((ca + cb) * sizeof *v);
    t->a = malloc((ca ? ca : 1) * sizeof *t->a);
    t->b = malloc((cb ? cb : 1) * sizeof *t->b);
    if (!v || !t->a || !t->b) {
        free(v);
        free(t->a);
        free(t->b);
        return HL_ERR_NOMEM;
    }
    t->na = tokenize(sa, 0, ca, v, 0);
    t->nb = tokenize(sb, 1, cb, v, t->na);
    size_t n = t->na + t->nb;
    qsort(v, n, sizeof *v, tok_cmp);
    uint32_t id = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && tok_cmp(&v[i - 1], &v[i]) != 0) id++;
        (v[i].side ? t->b : t->a)[v[i].pos] = id;
    }
    free(v);
    return HL_OK;
}

static void tok_ids_release(tok_ids *t) {
    free(t->a);
    free(t->b);
}

static double f_measure(size_t common, size_t na, size_t nb) {
    if (na == 0 && nb == 0) return 1;
    return 2.0 * (double)common / (double)(na + nb);
}

static hl_err score_f1(const char *sa, const char *sb, double *score) {
    tok_ids t;
    HL_TRY(tok_ids_build(sa, sb, HL_CMP_MAX_F1_TOKENS, &t));
    qsort(t.a, t.na, sizeof *t.a, u32_cmp);
    qsort(t.b, t.nb, sizeof *t.b, u32_cmp);
    size_t i = 0, j = 0, common = 0;
    while (i < t.na && j < t.nb) {
        if (t.a[i] == t.b[j]) common++, i++, j++;
        else if (t.a[i] < t.b[j]) i++;
        else j++;
    }
    *score = f_measure(common, t.na, t.nb);
    tok_ids_release(&t);
    return HL_OK;
}

/* Longest common subsequence length with one row of the shorter sequence's length. */
static hl_err lcs_len(const uint32_t *x, size_t nx, const uint32_t *y, size_t ny, size_t *out) {
    if (nx < ny) {
        const uint32_t *tp = x;
        x = y, y = tp;
        size_t tn = nx;
        nx = ny, ny = tn;
    }
    uint32_t *row = calloc(ny + 1, sizeof *row);
    if (!row) return HL_ERR_NOMEM;
    for (size_t i = 0; i < nx; i++) {
        uint32_t diag = 0; /* row[j] of the previous i, before it is overwritten */
        for (size_t j = 1; j <= ny; j++) {
            uint32_t up = row[j];
            if (x[i] == y[j - 1]) row[j] = diag + 1;
            else if (row[j - 1] > row[j]) row[j] = row[j - 1];
            diag = up;
        }
    }
    *out = row[ny];
    free(row);
    return HL_OK;
}

static hl_err score_rouge_l(const char *sa, const char *sb, double *score) {
    tok_ids t;
    HL_TRY(tok_ids_build(sa, sb, HL_CMP_MAX_LCS_TOKENS, &t));
    size_t l = 0;
    hl_err e = lcs_len(t.a, t.na, t.b, t.nb, &l);
    if (!e) *score = f_measure(l, t.na, t.nb);
    tok_ids_release(&t);
    return e;
}

/* ---- the entry points ----------------------------------------------------------------- */

static bool json_container_text(const char *s) {
    json_t *j = parse_answer(s);
    bool ok = is_container(j);
    json_decref(j);
    return ok;
}

hl_cmp_method hl_cmp_pick(const char *task_type, const hl_chat_response *ref, const hl_chat_response *cand) {
    if ((ref && ref->n_tool_calls) || (cand && cand->n_tool_calls)) return HL_CMP_TOOLS;
    if (task_type && strcmp(task_type, "classification") == 0) return HL_CMP_EXACT;
    if (task_type && strcmp(task_type, "extraction") == 0) return HL_CMP_JSON;
    if (json_container_text(text_of(ref)) && json_container_text(text_of(cand))) return HL_CMP_JSON;
    return HL_CMP_ROUGE_L;
}

hl_err hl_compare(const hl_chat_response *ref, const hl_chat_response *cand, const char *task_type,
                  hl_cmp_method method, double threshold, hl_cmp_result *out) {
    if ((int)method < HL_CMP_AUTO || method > HL_CMP_ROUGE_L) return HL_ERR_INVAL;
    hl_cmp_method m = method == HL_CMP_AUTO ? hl_cmp_pick(task_type, ref, cand) : method;
    bool graded = m == HL_CMP_TOKEN_F1 || m == HL_CMP_ROUGE_L;
    if (graded && !(threshold > 0 && threshold <= 1)) return HL_ERR_INVAL; /* NaN fails too */
    const char *a = text_of(ref), *b = text_of(cand);
    double score = 0;
    hl_err e = HL_OK;
    switch (m) {
    case HL_CMP_EXACT: e = score_exact(a, b, &score); break;
    case HL_CMP_JSON: e = score_json(a, b, &score); break;
    case HL_CMP_TOOLS: e = score_tools(ref, cand, &score); break;
    case HL_CMP_TOKEN_F1: e = score_f1(a, b, &score); break;
    case HL_CMP_ROUGE_L: e = score_rouge_l(a, b, &score); break;
    case HL_CMP_AUTO: return HL_ERR_INVAL;
    }
    if (e) return e;
    out->score = score;
    out->method = m;
    out->agree = graded ? score >= threshold : score == 1.0;
    return HL_OK;
}

double hl_cmp_cosine(const float *a, const float *b, size_t n) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (!isfinite(x) || !isfinite(y)) return 0;
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if (na == 0 || nb == 0) return 0;
    double c = dot / (sqrt(na) * sqrt(nb));
    if (!(c > 0)) return 0;
    return c > 1 ? 1 : c;
}
