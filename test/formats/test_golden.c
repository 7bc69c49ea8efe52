/* Golden-file tests of the whole translation path, for every pair of ingress format and
 * provider kind (issue 4): request in, exact bytes out to the upstream; upstream reply in,
 * exact bytes back to the client.
 *
 * Each directory test/golden/<case>/ holds:
 *   ingress                  "openai", "anthropic", "completions" (legacy /v1/completions) or
 *                            "responses": the format the client speaks
 *   provider                 "openai" or "anthropic": the upstream's kind; "openai-responses":
 *                            kind openai spoken natively in the Responses API (what an OpenAI
 *                            cloud backend gets from a Responses client: spec.native_responses)
 *   model                    optional: the upstream model name (default "upstream-model")
 *   client_request.json      the body the client sends
 *   upstream_request.json    expected: the exact body the gateway sends upstream
 *   upstream_http.txt        expected: "POST <url>" and the request headers, one per line
 *   upstream_response.json   what the upstream answers (non-streaming), or
 *   upstream_response.sse    what the upstream streams (exact bytes)
 *   client_response.json     expected: the exact bytes the client gets, or
 *   client_response.sse      expected: the exact stream the client gets
 *
 * The test does what the gateway (src/gateway/hl_gateway.c) does with one attempt on one
 * backend: parse with the ingress table, check and build with the provider table, then
 * either parse the reply and render it (usage estimated when the upstream gave none), or
 * feed the stream through hl_sse into the provider's decoder and the ingress encoder, taking
 * usage from the last HL_EV_USAGE event, ending with encode_end when the upstream ended the
 * stream properly ([DONE] / message_stop, or a finish reason) and encode_error otherwise.
 * Streams are fed whole, 1 byte at a time and 7 bytes at a time: all three must give the
 * same bytes. Response ids are the ingress prefix + "golden-id" (request id "golden-id"),
 * created is 1700000000, the backend is named "golden" with key "sk-golden-key".
 *
 * The expected files were checked by hand against ../shared/reference/api-contracts.md and
 * the providers' API references: they say what the bytes SHOULD be, so a translation bug
 * shows up as a failure here, not as a silently regenerated file.
 *
 * HL_GOLDEN_UPDATE=1 rewrites every expected file from the actual output (for intentional
 * changes to the translation: review the git diff of test/golden/ before committing it!).
 * HL_GOLDEN_CASE=<name> runs only that case. HL_SRC_DIR (set by ctest) is the repository
 * root; "." otherwise. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl_chat.h"
#include "hl_ingress.h"
#include "hl_provider.h"
#include "hl_sse.h"
#include "hl_test.h"

#define GOLDEN_REQUEST_ID "golden-id"
#define GOLDEN_CREATED 1700000000L
#define GOLDEN_BACKEND "golden"
#define GOLDEN_KEY "sk-golden-key"
#define GOLDEN_MAX_SSE_EVENT (16u << 20) /* as the gateway's MAX_SSE_EVENT */

/* ------------------------------------------------------------------ files */

static bool update_mode(void) {
    const char *u = getenv("HL_GOLDEN_UPDATE");
    return u && u[0] && strcmp(u, "0") != 0;
}

static const char *golden_root(char *buf, size_t n) {
    const char *src = getenv("HL_SRC_DIR");
    snprintf(buf, n, "%s/test/golden", src && src[0] ? src : ".");
    return buf;
}

/* Reads dir/name whole into *out (NUL-terminated). false when it does not exist. */
static bool read_file(const char *dir, const char *name, hl_buf *out) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    hl_buf_init(out, 0);
    if (!f) return false;
    char chunk[8192];
    size_t n;
    bool ok = true;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (hl_buf_append(out, chunk, n)) ok = false;
    if (ferror(f)) ok = false;
    fclose(f);
    if (ok && !out->data) ok = hl_buf_append(out, "", 0) == HL_OK;
    return ok;
}

static bool file_exists(const char *dir, const char *name) {
    char path[2048];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static bool write_file(const char *dir, const char *name, const char *data, size_t len) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* The first word of a small file ("openai\n" -> "openai"). */
static bool read_word(const char *dir, const char *name, char *out, size_t n) {
    hl_buf b;
    out[0] = 0;
    if (!read_file(dir, name, &b)) {
        hl_buf_release(&b);
        return false;
    }
    size_t i = 0, j = 0;
    while (i < b.len && strchr(" \t\r\n", b.data[i])) i++;
    while (i < b.len && !strchr(" \t\r\n", b.data[i]) && j + 1 < n) out[j++] = b.data[i++];
    out[j] = 0;
    hl_buf_release(&b);
    return j > 0;
}

/* ------------------------------------------------------------------ diffs */

/* Prints one line of a diff; a long line is cut to a window around column `focus`. */
static void print_line(FILE *f, char mark, const char *s, size_t len, size_t focus) {
    const size_t before = 120, after = 280;
    size_t from = focus > before ? focus - before : 0;
    size_t to = from + before + after < len ? from + before + after : len;
    fprintf(f, "    %c", mark);
    if (from) fprintf(f, "(%zu bytes)...", from);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    if (to < len) fprintf(f, "...(%zu more bytes)", len - to);
    fputc('\n', f);
}

/* Start of line number `line` (0-based) in s, and its length without the '\n'; false past
 * the end. */
static bool nth_line(const char *s, size_t len, size_t line, size_t *start, size_t *llen) {
    size_t pos = 0;
    for (size_t l = 0; l < line; l++) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        if (!nl) return false;
        pos = (size_t)(nl - s) + 1;
    }
    if (pos >= len && !(pos == len && line == 0)) return false;
    const char *nl = memchr(s + pos, '\n', len - pos);
    *start = pos;
    *llen = nl ? (size_t)(nl - (s + pos)) : len - pos;
    return true;
}

/* Compares; on a mismatch prints the first differing offset and a unified-style excerpt. */
static bool same_bytes(const char *what, const char *exp, size_t elen, const char *act, size_t alen) {
    if (elen == alen && memcmp(exp, act, elen) == 0) return true;
    size_t off = 0;
    while (off < elen && off < alen && exp[off] == act[off]) off++;
    size_t line = 0, line_start = 0;
    for (size_t i = 0; i < off; i++)
        if (exp[i] == '\n') line++, line_start = i + 1;
    size_t focus = off - line_start; /* column of the first difference */
    fprintf(stderr, "  %s: differs at byte %zu (line %zu); expected %zu bytes, got %zu\n", what,
            off, line + 1, elen, alen);
    fprintf(stderr, "    @@ line %zu @@\n", line + 1);
    size_t s, l;
    if (line > 0 && nth_line(exp, elen, line - 1, &s, &l)) print_line(stderr, ' ', exp + s, l, 0);
    /* Print the differing lines of both sides, then resynchronize on the next equal pair. */
    size_t el = line, al = line;
    int shown = 0;
    for (;;) {
        size_t es, ell, as, all;
        bool he = nth_line(exp, elen, el, &es, &ell);
        bool ha = nth_line(act, alen, al, &as, &all);
        if (!he && !ha) break;
        if (he && ha && ell == all && memcmp(exp + es, act + as, ell) == 0) {
            print_line(stderr, ' ', exp + es, ell, 0);
            break;
        }
        if (++shown > 6) {
            fprintf(stderr, "    ...\n");
            break;
        }
        if (he) print_line(stderr, '-', exp + es, ell, focus), el++;
        if (ha) print_line(stderr, '+', act + as, all, focus), al++;
        focus = 0;
    }
    return false;
}

/* Checks actual against dir/name, or rewrites the file in update mode. */
static bool check_expected(const char *dir, const char *name, const char *act, size_t alen) {
    hl_buf exp;
    bool have = read_file(dir, name, &exp);
    bool ok;
    if (update_mode()) {
        ok = true;
        if (!have || exp.len != alen || memcmp(exp.data, act, alen) != 0) {
            ok = write_file(dir, name, act, alen);
            fprintf(stderr, "  updated %s/%s%s\n", dir, name, ok ? "" : " (write FAILED)");
        }
    } else if (!have) {
        fprintf(stderr, "  %s/%s: missing (run with HL_GOLDEN_UPDATE=1 to create it)\n", dir, name);
        ok = false;
    } else {
        ok = same_bytes(name, exp.data, exp.len, act, alen);
    }
    hl_buf_release(&exp);
    return ok;
}

/* ------------------------------------------------------------------ one exchange */

typedef struct exchange {
    const hl_ingress *ing;
    const hl_provider *prov;
    hl_provider_decoder dec;
    hl_stream_encoder enc;
    hl_buf out;
    hl_usage usage;
    hl_finish finish;
    bool got_done, stream_error;
    char stream_errmsg[256];
    size_t out_bytes;
    size_t text_bytes;
    hl_err encode_rc;
} exchange;

static hl_usage final_usage(const exchange *ex) {
    hl_usage u = ex->usage;
    if (!u.known) {
        u.input_tokens = hl_tokens_estimate(ex->text_bytes);
        u.output_tokens = hl_tokens_estimate(ex->out_bytes);
        u.estimated = true;
    }
    return u;
}

static int on_stream_event(void *ud, const hl_stream_event *ev) {
    exchange *ex = ud;
    switch (ev->type) {
    case HL_EV_TEXT:
    case HL_EV_TOOL_CALL:
        ex->out_bytes += ev->text_len;
        break;
    case HL_EV_FINISH:
        ex->finish = ev->finish;
        break;
    case HL_EV_USAGE:
        ex->usage = ev->usage; /* cumulative: replace, never add */
        break;
    case HL_EV_ERROR:
        ex->stream_error = true;
        snprintf(ex->stream_errmsg, sizeof ex->stream_errmsg, "%.*s", (int)ev->text_len, ev->text);
        return 0;
    case HL_EV_DONE:
        ex->got_done = true;
        return 0;
    default:
        break;
    }
    hl_err e = ex->ing->encode_event(&ex->enc, ev, &ex->out);
    if (e) ex->encode_rc = e;
    return e ? -1 : 0;
}

static int on_sse(void *ud, const hl_sse_event *sse) {
    exchange *ex = ud;
    if (ex->got_done || ex->stream_error) return 0; /* anything after the end is ignored */
    int rc = ex->prov->wire->decode(&ex->dec, sse, on_stream_event, ex);
    if (rc == HL_ERR_PARSE) {
        ex->stream_error = true;
        snprintf(ex->stream_errmsg, sizeof ex->stream_errmsg, "malformed stream event");
    }
    return 0;
}

/* Runs one upstream stream through the pipeline, fed `split` bytes at a time (0: whole). */
static bool run_stream(const hl_ingress *ing, const hl_provider *prov, const hl_chat_request *req,
                       const char *model, const hl_buf *up, size_t split, hl_buf *client) {
    exchange ex;
    memset(&ex, 0, sizeof ex);
    ex.ing = ing;
    ex.prov = prov;
    ex.text_bytes = req->text_bytes;
    hl_buf_init(&ex.out, 0);
    char chat_id[64];
    snprintf(chat_id, sizeof chat_id, "%s%s", ing->id_prefix, GOLDEN_REQUEST_ID);
    prov->wire->decoder_init(&ex.dec);
    ing->encoder_init(&ex.enc, chat_id, model, GOLDEN_CREATED, req->include_usage, GOLDEN_REQUEST_ID);
    hl_sse sse;
    hl_sse_init(&sse, GOLDEN_MAX_SSE_EVENT);
    bool ok = true;
    size_t step = split ? split : (up->len ? up->len : 1);
    for (size_t off = 0; off < up->len && ok; off += step) {
        size_t n = up->len - off < step ? up->len - off : step;
        int rc = hl_sse_feed(&sse, up->data + off, n, on_sse, &ex);
        if (rc) {
            fprintf(stderr, "  hl_sse_feed failed (%d) at offset %zu, split %zu\n", rc, off, split);
            ok = false;
        }
        /* The gateway writes what was encoded to the client after every feed. */
        if (ok && ex.out.len) {
            if (hl_buf_append(client, ex.out.data, ex.out.len)) ok = false;
            hl_buf_reset(&ex.out);
        }
    }
    hl_sse_finish(&sse);
    hl_sse_release(&sse);
    if (ex.encode_rc) {
        fprintf(stderr, "  encode_event failed: %s\n", hl_err_str(ex.encode_rc));
        ok = false;
    }
    if (ok) {
        hl_usage u = final_usage(&ex);
        hl_err e;
        if (!ex.stream_error && (ex.got_done || ex.finish != HL_FINISH_NONE)) {
            e = ing->encode_end(&ex.enc, &u, &ex.out);
        } else {
            char why[320];
            if (ex.stream_error) snprintf(why, sizeof why, "upstream stream error: %s", ex.stream_errmsg);
            else snprintf(why, sizeof why, "upstream stream ended without finishing");
            hl_api_error err;
            hl_api_error_set(&err, 502, HL_AE_API, NULL, "upstream_stream_error", "Backend '%s': %s",
                             GOLDEN_BACKEND, why);
            e = ing->encode_error(&ex.enc, &err, &ex.out);
        }
        if (e || hl_buf_append(client, ex.out.data ? ex.out.data : "", ex.out.len)) ok = false;
    }
    if (ing->encoder_release) ing->encoder_release(&ex.enc);
    hl_buf_release(&ex.out);
    return ok;
}

static bool run_plain(const hl_ingress *ing, const hl_provider *prov, const hl_chat_request *req,
                      const char *model, const hl_buf *up, hl_buf *client) {
    hl_chat_response resp;
    hl_chat_response_init(&resp);
    bool ok = prov->wire->parse_response(up->data, up->len, &resp) == HL_OK;
    if (!ok) {
        fprintf(stderr, "  parse_response refused the upstream reply\n");
    } else {
        /* As the gateway: usage estimated when absent, model filled when missing. */
        exchange ex;
        memset(&ex, 0, sizeof ex);
        ex.usage = resp.usage;
        ex.text_bytes = req->text_bytes;
        ex.out_bytes = resp.text ? strlen(resp.text) : 0;
        resp.usage = final_usage(&ex);
        if (!resp.model || !resp.model[0]) {
            free(resp.model);
            resp.model = strdup(model);
        }
        char chat_id[64];
        snprintf(chat_id, sizeof chat_id, "%s%s", ing->id_prefix, GOLDEN_REQUEST_ID);
        ok = ing->write_response(client, &resp, chat_id, GOLDEN_CREATED) == HL_OK;
    }
    hl_chat_response_release(&resp);
    return ok;
}

static const hl_ingress *ingress_named(const char *s) {
    if (!strcmp(s, "openai")) return &hl_ingress_openai;
    if (!strcmp(s, "anthropic")) return &hl_ingress_anthropic;
    if (!strcmp(s, "completions")) return &hl_ingress_completions;
    if (!strcmp(s, "responses")) return &hl_ingress_responses;
    return NULL;
}

static bool provider_named(const char *s, hl_provider_kind *k) {
    if (!strcmp(s, "openai") || !strcmp(s, "openai-responses")) *k = HL_PROVIDER_OPENAI;
    else if (!strcmp(s, "anthropic")) *k = HL_PROVIDER_ANTHROPIC;
    else return false;
    return true;
}

/* Runs one case directory; prints why it fails. */
static bool run_case(const char *dir) {
    char ing_name[32], prov_name[32], model[128];
    if (!read_word(dir, "ingress", ing_name, sizeof ing_name) ||
        !read_word(dir, "provider", prov_name, sizeof prov_name)) {
        fprintf(stderr, "  %s: needs files 'ingress' and 'provider'\n", dir);
        return false;
    }
    if (!read_word(dir, "model", model, sizeof model)) snprintf(model, sizeof model, "upstream-model");
    const hl_ingress *ing = ingress_named(ing_name);
    hl_provider_kind kind;
    if (!ing || !provider_named(prov_name, &kind)) {
        fprintf(stderr, "  %s: unknown ingress '%s' or provider '%s'\n", dir, ing_name, prov_name);
        return false;
    }
    const hl_provider *prov = hl_provider_for(kind);
    hl_provider native = *prov;
    if (!strcmp(prov_name, "openai-responses")) {
        native.wire = hl_provider_responses_wire();
        prov = &native;
    }

    hl_buf creq, up, url, body, http, client;
    hl_buf_init(&url, 0);
    hl_buf_init(&body, 0);
    hl_buf_init(&http, 0);
    hl_buf_init(&client, 0);
    hl_chat_request req;
    hl_chat_request_init(&req);
    hl_buf headers;
    hl_buf_init(&headers, 0);
    bool ok = true;
    bool have_up = false;

    if (!read_file(dir, "client_request.json", &creq)) {
        fprintf(stderr, "  %s: missing client_request.json\n", dir);
        ok = false;
        goto out;
    }
    hl_api_error err;
    memset(&err, 0, sizeof err);
    if (ing->parse_request(creq.data, creq.len, &req, &err) != HL_OK) {
        fprintf(stderr, "  %s ingress refused the request: %d %s (param %s)\n", ing_name,
                err.status, err.message, err.param);
        ok = false;
        goto out;
    }
    if (prov->check && prov->check(&req, &err) != HL_OK) {
        fprintf(stderr, "  %s provider refused the request: %s\n", prov_name, err.message);
        ok = false;
        goto out;
    }

    /* Upstream request: the body, and the URL with the headers. */
    hl_backend_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = GOLDEN_BACKEND;
    cfg.kind = kind;
    cfg.location = HL_LOCATION_CLOUD;
    char base[64], key[32];
    snprintf(base, sizeof base, "%s",
             kind == HL_PROVIDER_OPENAI ? "https://api.openai.com/v1" : "https://api.anthropic.com");
    snprintf(key, sizeof key, "%s", GOLDEN_KEY);
    hl_backend backend;
    memset(&backend, 0, sizeof backend);
    backend.cfg = &cfg;
    backend.base_url = base;
    backend.api_key = key;
    backend.model = model;
    if (prov->wire->build(&backend, NULL, &req, model, &url, &body, &headers) != HL_OK) {
        fprintf(stderr, "  %s provider could not build the request\n", prov_name);
        ok = false;
        goto out;
    }
    hl_buf_printf(&http, "POST %s\n", url.data);
    for (const char *h = headers.data, *end = h + headers.len; h && h < end; h += strlen(h) + 1)
        hl_buf_printf(&http, "%s\n", h);
    ok &= check_expected(dir, "upstream_request.json", body.data ? body.data : "", body.len);
    ok &= check_expected(dir, "upstream_http.txt", http.data, http.len);

    /* The reply. */
    bool sse_file = file_exists(dir, "upstream_response.sse");
    if (sse_file != req.stream) {
        fprintf(stderr, "  %s: the request %s but the upstream reply is upstream_response.%s\n", dir,
                req.stream ? "streams" : "does not stream", sse_file ? "sse" : "json");
        ok = false;
        goto out;
    }
    const char *up_name = req.stream ? "upstream_response.sse" : "upstream_response.json";
    const char *client_name = req.stream ? "client_response.sse" : "client_response.json";
    have_up = read_file(dir, up_name, &up);
    if (!have_up) {
        fprintf(stderr, "  %s: missing %s\n", dir, up_name);
        ok = false;
        goto out;
    }
    if (!req.stream) {
        if (!run_plain(ing, prov, &req, model, &up, &client)) {
            ok = false;
            goto out;
        }
    } else {
        static const size_t splits[] = {0, 1, 7};
        for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
            hl_buf got;
            hl_buf_init(&got, 0);
            if (!run_stream(ing, prov, &req, model, &up, splits[i], &got)) {
                ok = false;
            } else if (i == 0) {
                hl_buf_append(&client, got.data ? got.data : "", got.len);
            } else {
                char what[64];
                snprintf(what, sizeof what, "stream fed %zu byte(s) at a time vs whole", splits[i]);
                if (!same_bytes(what, client.data ? client.data : "", client.len,
                                got.data ? got.data : "", got.len))
                    ok = false;
            }
            hl_buf_release(&got);
        }
        if (!ok) goto out;
    }
    ok &= check_expected(dir, client_name, client.data ? client.data : "", client.len);

out:
    hl_buf_release(&headers);
    hl_chat_request_release(&req);
    hl_buf_release(&creq);
    if (have_up) hl_buf_release(&up);
    hl_buf_release(&url);
    hl_buf_release(&body);
    hl_buf_release(&http);
    hl_buf_release(&client);
    return ok;
}

/* ------------------------------------------------------------------ case list */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the case directories (those with an 'ingress' file). */
static char **list_cases(const char *root, size_t *n) {
    *n = 0;
    DIR *d = opendir(root);
    if (!d) return NULL;
    char **v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char dir[1536];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        if (!file_exists(dir, "ingress")) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        if (!(v[*n] = strdup(e->d_name))) break;
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void free_cases(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

HL_TEST(golden_cases) {
    char root[1024];
    golden_root(root, sizeof root);
    size_t n;
    char **cases = list_cases(root, &n);
    if (!n) {
        HL_FAIL_("no golden cases under %s (set HL_SRC_DIR to the repository root)", root);
        return;
    }
    const char *only = getenv("HL_GOLDEN_CASE");
    int failed = 0, ran = 0;
    hl_buf failed_names;
    hl_buf_init(&failed_names, 0);
    for (size_t i = 0; i < n; i++) {
        if (only && only[0] && strcmp(only, cases[i]) != 0) continue;
        char dir[1536];
        snprintf(dir, sizeof dir, "%s/%s", root, cases[i]);
        fprintf(stderr, "golden %s\n", cases[i]);
        ran++;
        if (!run_case(dir)) {
            failed++;
            fprintf(stderr, "  FAIL %s\n", cases[i]);
            hl_buf_printf(&failed_names, "  %s\n", cases[i]);
        }
    }
    printf("golden: %d case(s), %d failed\n%s", ran, failed, failed_names.data ? failed_names.data : "");
    hl_buf_release(&failed_names);
    if (!ran) HL_FAIL_("no golden case named '%s'", only);
    if (failed) HL_FAIL_("%d golden case(s) failed", failed);
    free_cases(cases, n);
}

/* Every ingress x provider pair must be covered both streaming and not, with tools. */
HL_TEST(golden_coverage) {
    char root[1024];
    golden_root(root, sizeof root);
    size_t n;
    char **cases = list_cases(root, &n);
    static const char *const ingresses[] = {"openai", "anthropic", "responses"};
    static const char *const kinds[] = {"openai", "anthropic"};
    bool seen[3][2][2] = {{{false}}};      /* ingress, provider, stream */
    bool tools[3][2][2] = {{{false}}};     /* ... with tool definitions */
    for (size_t i = 0; i < n; i++) {
        char dir[1536], in[32], pv[32];
        snprintf(dir, sizeof dir, "%s/%s", root, cases[i]);
        if (!read_word(dir, "ingress", in, sizeof in) || !read_word(dir, "provider", pv, sizeof pv) ||
            !strcmp(pv, "openai-responses"))
            continue;
        int a = !strcmp(in, "anthropic") ? 1 : !strcmp(in, "responses") ? 2 : 0, b = !strcmp(pv, "anthropic");
        int s = file_exists(dir, "upstream_response.sse");
        seen[a][b][s] = true;
        hl_buf req;
        if (read_file(dir, "client_request.json", &req) && strstr(req.data, "\"tools\""))
            tools[a][b][s] = true;
        hl_buf_release(&req);
    }
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++)
            for (int s = 0; s < 2; s++) {
                if (!seen[a][b][s] || !tools[a][b][s])
                    HL_FAIL_("no golden case %s -> %s, %s%s", ingresses[a], kinds[b],
                             s ? "streaming" : "non-streaming", seen[a][b][s] ? ", with tools" : "");
            }
    free_cases(cases, n);
}

HL_TEST_MAIN()
