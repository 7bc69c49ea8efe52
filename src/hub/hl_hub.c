/* hl_hub: pulling a GGUF file from the Hugging Face Hub (see hl_hub.h). */
#include "hl_hub.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hl_buf.h"
#include "hl_sha256.h"

/* ---- specs and listings (pure; fuzzed by test/fuzz/fuzz_hub.c) ---- */

static bool name_char(char c) {
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == '+';
}

/* A repository or path segment: [A-Za-z0-9._-+]{1,max}, not starting with '.'. */
static bool safe_segment(const char *p, size_t n, size_t max) {
    if (!n || n > max || p[0] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(p[i])) return false;
    return true;
}

bool hl_hub_safe_path(const char *p) {
    size_t len = strlen(p);
    if (!len || len > 400) return false;
    for (const char *s = p;;) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (!safe_segment(s, n, 200)) return false;
        if (!slash) return true;
        s = slash + 1;
    }
}

static bool ends_gguf(const char *p) {
    size_t n = strlen(p);
    return n > 5 && !strcasecmp(p + n - 5, ".gguf");
}

static void fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

hl_err hl_hub_parse_spec(const char *s, hl_hub_spec *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    const char *slash = strchr(s, '/');
    if (!slash) {
        fail(err, err_len, "'%s' is not a repository: expected OWNER/NAME[:QUANT|/FILE.gguf]", s);
        return HL_ERR_INVAL;
    }
    const char *name = slash + 1;
    size_t name_n = strcspn(name, "/:");
    size_t repo_n = (size_t)(name + name_n - s);
    if (!safe_segment(s, (size_t)(slash - s), 96) || !safe_segment(name, name_n, 96) || repo_n >= sizeof out->repo) {
        fail(err, err_len, "'%.*s' is not a repository name: OWNER/NAME, each of letters, digits, '.', '_', "
             "'-'", (int)(repo_n < 300 ? repo_n : 300), s);
        return HL_ERR_INVAL;
    }
    memcpy(out->repo, s, repo_n);
    const char *rest = name + name_n;
    if (rest[0] == ':') {
        const char *q = rest + 1;
        size_t qn = strlen(q);
        bool ok = qn && qn < sizeof out->quant;
        for (size_t i = 0; ok && i < qn; i++) ok = isalnum((unsigned char)q[i]) || q[i] == '_' || q[i] == '-' || q[i] == '.';
        if (!ok) {
            fail(err, err_len, "':%.80s' is not a quantization: expected e.g. :Q4_K_M or :Q8_0", q);
            return HL_ERR_INVAL;
        }
        memcpy(out->quant, q, qn);
    } else if (rest[0] == '/') {
        const char *f = rest + 1;
        if (!hl_hub_safe_path(f) || !ends_gguf(f) || strlen(f) >= sizeof out->file) {
            fail(err, err_len, "'%.200s' is not a GGUF file name: expected /FILE.gguf (letters, digits, '.', '_', "
                 "'-', folders separated by '/')", f);
            return HL_ERR_INVAL;
        }
        memcpy(out->file, f, strlen(f));
    }
    return HL_OK;
}

void hl_hub_files_free(hl_hub_file *v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i].path);
    free(v);
}

hl_err hl_hub_parse_tree(const char *json, size_t len, hl_hub_file **out, size_t *n, char *err, size_t err_len) {
    *out = NULL;
    *n = 0;
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!json_is_array(root)) {
        fail(err, err_len, "the file list is not a JSON array");
        json_decref(root);
        return HL_ERR_PARSE;
    }
    hl_hub_file *v = calloc(json_array_size(root) + 1, sizeof *v);
    if (!v) {
        json_decref(root);
        return HL_ERR_NOMEM;
    }
    size_t k = 0, i;
    json_t *e;
    json_array_foreach(root, i, e) {
        if (!json_is_object(e)) {
            fail(err, err_len, "entry %zu of the file list is not an object", i);
            hl_hub_files_free(v, k);
            json_decref(root);
            return HL_ERR_PARSE;
        }
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *path = json_string_value(json_object_get(e, "path"));
        if (!type || strcmp(type, "file") || !path || !ends_gguf(path) || !hl_hub_safe_path(path)) continue;
        if (!(v[k].path = strdup(path))) {
            hl_hub_files_free(v, k);
            json_decref(root);
            return HL_ERR_NOMEM;
        }
        json_t *lfs = json_object_get(e, "lfs");
        json_t *size = json_object_get(json_is_object(lfs) ? lfs : e, "size");
        if (!json_is_integer(size)) size = json_object_get(e, "size");
        v[k].size = json_is_integer(size) && json_integer_value(size) >= 0 ? (long long)json_integer_value(size) : -1;
        const char *oid = json_string_value(json_object_get(lfs, "oid"));
        if (!oid || !hl_hub_etag_sha256(oid, v[k].sha256)) v[k].sha256[0] = '\0';
        k++;
    }
    json_decref(root);
    *out = v;
    *n = k;
    return HL_OK;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

bool hl_hub_quant_matches(const char *path, const char *quant) {
    const char *f = base_name(path);
    size_t qn = strlen(quant), fn = strlen(f);
    if (!qn) return false;
    for (size_t i = 0; i + qn <= fn; i++) {
        if (strncasecmp(f + i, quant, qn)) continue;
        bool before = i == 0 || !isalnum((unsigned char)f[i - 1]);
        char next = f[i + qn];
        bool after = !isalnum((unsigned char)next) && next != '_';
        if (before && after) return true;
    }
    return false;
}

/* Appends the names of v's files (those `pick` marks, or all) to err, as ": a, b, c". */
static void list_choices(const hl_hub_file *v, size_t n, const bool *pick, char *err, size_t err_len) {
    size_t used = strlen(err);
    for (size_t i = 0, shown = 0; i < n && used + 1 < err_len; i++) {
        if (pick && !pick[i]) continue;
        int w = snprintf(err + used, err_len - used, "%s%s", shown++ ? ", " : ": ", v[i].path);
        if (w < 0) break;
        used += (size_t)w;
    }
}

long hl_hub_choose(const hl_hub_file *v, size_t n, const hl_hub_spec *s, char *err, size_t err_len) {
    if (!n) {
        fail(err, err_len, "repository %s has no .gguf file", s->repo);
        return -1;
    }
    if (s->file[0]) {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(v[i].path, s->file)) return (long)i;
        fail(err, err_len, "repository %s has no file %s; its GGUF files", s->repo, s->file);
        list_choices(v, n, NULL, err, err_len);
        return -1;
    }
    if (n == 1 && !s->quant[0]) return 0;
    const char *quant = s->quant[0] ? s->quant : "Q4_K_M";
    bool *pick = calloc(n, sizeof *pick);
    if (!pick) {
        fail(err, err_len, "out of memory");
        return -1;
    }
    long found = -1;
    size_t matches = 0;
    for (size_t i = 0; i < n; i++)
        if ((pick[i] = hl_hub_quant_matches(v[i].path, quant))) {
            found = (long)i;
            matches++;
        }
    if (matches != 1) {
        if (!matches && s->quant[0])
            fail(err, err_len, "no file of repository %s is quantized %s; its GGUF files", s->repo, quant);
        else if (!matches)
            fail(err, err_len, "repository %s has several GGUF files and none is Q4_K_M: name one with "
                 ":QUANT or /FILE.gguf; its GGUF files", s->repo);
        else
            fail(err, err_len, "%zu files of repository %s match %s (a model split in parts is not supported): "
                 "name one with /FILE.gguf", matches, s->repo, quant);
        list_choices(v, n, matches ? pick : NULL, err, err_len);
        found = -1;
    }
    free(pick);
    return found;
}

bool hl_hub_etag_sha256(const char *value, char out[65]) {
    const char *p = value;
    while (*p == ' ') p++;
    if (!strncmp(p, "W/", 2)) p += 2;
    if (*p == '"') p++;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)p[i])) return false;
    const char *end = p + 64;
    if (*end == '"') end++;
    while (*end == ' ' || *end == '\r' || *end == '\n') end++;
    if (*end) return false;
    for (int i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)p[i]);
    out[64] = '\0';
    return true;
}

/* ---- HTTP ---- */

/* What the headers of the last response in a chain said. A new status line resets it. */
typedef struct reply {
    long status;
    char location[2048];
    char linked_etag[160], etag[160], error_code[64], error_message[256];
    long long linked_size, content_length, range_start;
    hl_buf body;               /* small bodies (lists, errors) */
} reply;

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    reply *r = ud;
    size_t len = size * n;
    char line[2300];
    size_t l = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, l);
    line[l] = '\0';
    while (l && (line[l - 1] == '\r' || line[l - 1] == '\n')) line[--l] = '\0';
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        long st = sp ? strtol(sp + 1, NULL, 10) : 0;
        hl_buf body = r->body;
        memset(r, 0, offsetof(reply, body));
        r->body = body;
        hl_buf_reset(&r->body);
        r->status = st;
        r->linked_size = r->content_length = r->range_start = -1;
        return len;
    }
    char *colon = strchr(line, ':');
    if (!colon) return len;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
#define TAKE(name, field) if (!strcasecmp(line, name)) snprintf(r->field, sizeof r->field, "%s", v)
    TAKE("location", location);
    else TAKE("x-linked-etag", linked_etag);
    else TAKE("etag", etag);
    else TAKE("x-error-code", error_code);
    else TAKE("x-error-message", error_message);
#undef TAKE
    else if (!strcasecmp(line, "x-linked-size")) r->linked_size = strtoll(v, NULL, 10);
    else if (!strcasecmp(line, "content-length")) r->content_length = strtoll(v, NULL, 10);
    else if (!strcasecmp(line, "content-range") && !strncasecmp(v, "bytes ", 6)) r->range_start = strtoll(v + 6, NULL, 10);
    return len;
}

static size_t on_small_body(char *p, size_t size, size_t n, void *ud) {
    reply *r = ud;
    return hl_buf_append(&r->body, p, size * n) ? 0 : size * n;
}

/* scheme://host[:port] of url into out ("" when url has none). */
static void origin_of(const char *url, char *out, size_t len) {
    const char *s = strstr(url, "://");
    if (!s) {
        out[0] = '\0';
        return;
    }
    size_t n = (size_t)(s + 3 - url) + strcspn(s + 3, "/?#");
    snprintf(out, len, "%.*s", (int)n, url);
    for (char *c = out; *c; c++) *c = (char)tolower((unsigned char)*c);
}

typedef struct pull_ctx {
    const hl_hub_opts *o;
    char origin[512];          /* the endpoint's scheme://host:port: the token goes there only */
    char auth[1024];           /* "Authorization: Bearer ..." or ""; wiped at the end */
} pull_ctx;

/* A curl handle for url with the headers every call sends: the token when url is on the
 * endpoint's origin. *hdrs is the list to free after the call. */
static CURL *new_handle(pull_ctx *c, const char *url, struct curl_slist **hdrs) {
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    char org[512];
    origin_of(url, org, sizeof org);
    *hdrs = curl_slist_append(NULL, "User-Agent: hybridllm/0.1 (pull)");
    if (c->auth[0] && !strcmp(org, c->origin)) *hdrs = curl_slist_append(*hdrs, c->auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    return h;
}

/* Explains an HTTP error of the Hub about what (a file, the list) in err. */
static hl_err http_error(const pull_ctx *c, const reply *r, const char *repo, const char *what, char *err,
                         size_t err_len) {
    const char *code = r->error_code;
    bool tok = c->auth[0] != '\0';
    if (!strcmp(code, "GatedRepo") || ((r->status == 401 || r->status == 403) && !strcmp(code, "")))
        fail(err, err_len, "%s: repository %s is gated or private (HTTP %ld): %s", what, repo, r->status,
             tok ? "the token in HF_TOKEN has no access to it; accept its terms on the repository's page with that "
                   "account, or use another token"
                 : "set HF_TOKEN to a token of an account that accepted its terms (https://huggingface.co/settings/tokens)");
    else if (!strcmp(code, "RepoNotFound") || (r->status == 404 && !code[0] && !strcmp(what, "the file list")))
        fail(err, err_len, "repository %s not found%s", repo, tok ? "" : " (if it is private, set HF_TOKEN)");
    else if (!strcmp(code, "EntryNotFound") || r->status == 404)
        fail(err, err_len, "%s: not found in repository %s", what, repo);
    else
        fail(err, err_len, "%s: the Hub answered HTTP %ld%s%.200s", what, r->status, r->error_message[0] ? ": " : "",
             r->error_message);
    return r->status == 404 || !strcmp(code, "RepoNotFound") || !strcmp(code, "EntryNotFound") ? HL_ERR_NOTFOUND
                                                                                              : HL_ERR_UPSTREAM;
}

/* GET the repository's file list into *files. */
static hl_err list_files(pull_ctx *c, const char *repo, hl_hub_file **files, size_t *n, char *err, size_t err_len) {
    char url[1024];
    snprintf(url, sizeof url, "%s/api/models/%s/tree/main?recursive=true", c->o->endpoint, repo);
    struct curl_slist *hdrs = NULL;
    CURL *h = new_handle(c, url, &hdrs);
    if (!h) return HL_ERR_NOMEM;
    reply r = {0};
    hl_buf_init(&r.body, 16 << 20);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L); /* libcurl keeps the token to the same origin */
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_small_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    CURLcode cc = curl_easy_perform(h);
    hl_err e = HL_OK;
    if (cc != CURLE_OK) {
        fail(err, err_len, "cannot list the files of %s at %s: %s", repo, c->o->endpoint, curl_easy_strerror(cc));
        e = HL_ERR_IO;
    } else if (r.status / 100 != 2) {
        e = http_error(c, &r, repo, "the file list", err, err_len);
    } else {
        e = hl_hub_parse_tree(r.body.data ? r.body.data : "", r.body.len, files, n, err, err_len);
        if (e == HL_ERR_PARSE) e = HL_ERR_INVAL;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    hl_buf_release(&r.body);
    return e;
}

/* What the HEAD of a file's resolve URL says. */
typedef struct file_meta {
    char url[2048];   /* where to GET it */
    char sha256[65];  /* "" when the Hub published none */
    long long size;   /* -1 when unknown */
} file_meta;

/* HEAD {endpoint}/{repo}/resolve/main/{file}, following relative redirects only. */
static hl_err head_file(pull_ctx *c, const char *repo, const char *file, file_meta *m, char *err, size_t err_len) {
    snprintf(m->url, sizeof m->url, "%s/%s/resolve/main/%s", c->o->endpoint, repo, file);
    m->sha256[0] = '\0';
    m->size = -1;
    reply r = {0};
    hl_buf_init(&r.body, 1 << 16);
    hl_err e = HL_OK;
    for (int hop = 0;; hop++) {
        struct curl_slist *hdrs = NULL;
        CURL *h = new_handle(c, m->url, &hdrs);
        if (!h) {
            e = HL_ERR_NOMEM;
            break;
        }
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
        CURLcode cc = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        if (cc != CURLE_OK) {
            fail(err, err_len, "cannot reach %s: %s", c->o->endpoint, curl_easy_strerror(cc));
            e = HL_ERR_IO;
            break;
        }
        if (!m->sha256[0] && !hl_hub_etag_sha256(r.linked_etag, m->sha256) && !hl_hub_etag_sha256(r.etag, m->sha256))
            m->sha256[0] = '\0';
        if (m->size < 0) m->size = r.linked_size >= 0 ? r.linked_size : r.status / 100 == 2 ? r.content_length : -1;
        if (r.status / 100 == 2) break;
        if (r.status / 100 != 3 || !r.location[0]) {
            e = http_error(c, &r, repo, file, err, err_len);
            break;
        }
        if (hop == 5) {
            fail(err, err_len, "%s: too many redirects", file);
            e = HL_ERR_INVAL;
            break;
        }
        if (r.location[0] == '/') { /* on the Hub (a renamed repository): ask it again there */
            char org[512];
            origin_of(m->url, org, sizeof org);
            int w = snprintf(m->url, sizeof m->url, "%s%.1500s", org, r.location);
            if (w < 0 || (size_t)w >= sizeof m->url) {
                fail(err, err_len, "%s: the redirect is too long", file);
                e = HL_ERR_INVAL;
                break;
            }
            continue;
        }
        if (strncmp(r.location, "http://", 7) && strncmp(r.location, "https://", 8)) {
            fail(err, err_len, "%s: the Hub redirected to something that is not an http(s) URL", file);
            e = HL_ERR_INVAL;
            break;
        }
        snprintf(m->url, sizeof m->url, "%s", r.location); /* the CDN: downloaded from there */
        break;
    }
    hl_buf_release(&r.body);
    return e;
}

/* ---- the download ---- */

typedef struct transfer {
    pull_ctx *c;
    const char *repo;
    int fd;
    long long have;            /* bytes in the .part, all hashed into sha */
    long long start;           /* have when this transfer began */
    long long total;           /* expected size, -1 unknown */
    hl_sha256_ctx sha;
    reply r;
    bool checked;              /* the response's status was looked at (first body bytes) */
    bool refused;              /* not a 200/206: its body is kept in r.body, not written */
    bool io_failed;
    double t0, last_draw;
} transfer;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The .part from offset 0 again (the server ignored Range, or the file is another). */
static bool restart_part(transfer *t) {
    if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) != 0) return false;
    t->have = t->start = 0;
    hl_sha256_init(&t->sha);
    return true;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    transfer *t = ud;
    size_t len = size * n;
    if (!t->checked) {
        t->checked = true;
        if (t->r.status == 200 && t->have > 0) {
            if (t->c->o->out) fprintf(t->c->o->out, "the server ignored the range request: starting over\n");
            if (!restart_part(t)) {
                t->io_failed = true;
                return 0;
            }
        } else if (t->r.status == 206 && t->r.range_start != t->have) {
            t->refused = true; /* a range we did not ask for */
        } else if (t->r.status != 200 && t->r.status != 206) {
            t->refused = true;
        }
    }
    if (t->refused) return hl_buf_append(&t->r.body, p, len) ? 0 : len;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(t->fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            t->io_failed = true;
            return 0;
        }
        off += (size_t)w;
    }
    hl_sha256_update(&t->sha, p, len);
    t->have += (long long)len;
    return len;
}

static void human(long long bytes, char *out, size_t len) {
    double b = (double)bytes;
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(out, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void draw(transfer *t, bool final) {
    FILE *f = t->c->o->out;
    double now = now_s();
    if (!final && now - t->last_draw < 0.2) return;
    t->last_draw = now;
    double el = now - t->t0;
    double rate = el > 0 ? (double)(t->have - t->start) / el : 0;
    char have[32], total[32] = "?", r[32];
    human(t->have, have, sizeof have);
    if (t->total >= 0) human(t->total, total, sizeof total);
    human((long long)rate, r, sizeof r);
    char eta[32] = "--:--";
    if (rate > 0 && t->total > t->have) {
        long s = (long)((double)(t->total - t->have) / rate);
        if (s >= 3600) snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        else snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    int pct = t->total > 0 ? (int)(100.0 * (double)t->have / (double)t->total) : 0;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(f, "\r[%s] %3d%%  %s / %s  %s/s  ETA %s  ", bar, pct, have, total, r, final ? "0:00" : eta);
    if (final) fputc('\n', f);
    fflush(f);
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    transfer *t = ud;
    if (t->c->o->progress && t->c->o->out && !t->refused) draw(t, false);
    return 0;
}

/* Hashes the .part's first t->have bytes (a resumed download). */
static bool hash_existing(transfer *t) {
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    if (!buf || lseek(t->fd, 0, SEEK_SET) != 0) {
        free(buf);
        return false;
    }
    long long left = t->have;
    while (left > 0) {
        ssize_t n = read(t->fd, buf, left < CHUNK ? (size_t)left : CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        hl_sha256_update(&t->sha, buf, (size_t)n);
        left -= n;
    }
    free(buf);
    return left == 0 && lseek(t->fd, 0, SEEK_END) == t->have;
}

/* One GET of the rest. Returns HL_OK when the file is complete; HL_ERR_AGAIN when the
 * transfer broke off (retry); other errors are final. */
static hl_err get_once(transfer *t, const file_meta *m, char *err, size_t err_len) {
    struct curl_slist *hdrs = NULL;
    CURL *h = new_handle(t->c, m->url, &hdrs);
    if (!h) return HL_ERR_NOMEM;
    char range[64];
    if (t->have > 0) {
        snprintf(range, sizeof range, "%lld-", t->have);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    t->checked = t->refused = t->io_failed = false;
    t->start = t->have;
    t->t0 = now_s();
    hl_buf_reset(&t->r.body);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L); /* a CDN may redirect again; no token there */
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* nothing for 60 s: broken off */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t->r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (t->io_failed) {
        fail(err, err_len, "cannot write the download: %s", strerror(errno));
        return HL_ERR_IO;
    }
    if (t->r.status == 416 && t->total >= 0 && t->have == t->total) return HL_OK; /* it was all there */
    if (t->refused || (cc == CURLE_OK && t->r.status / 100 != 2)) {
        if (t->r.status == 416 || t->r.status == 206) { /* the .part does not fit this file: start over */
            if (!restart_part(t)) return HL_ERR_IO;
            fail(err, err_len, "the server refused the range: starting over");
            return HL_ERR_AGAIN;
        }
        return http_error(t->c, &t->r, t->repo, "downloading the file", err, err_len);
    }
    if (cc != CURLE_OK) {
        fail(err, err_len, "the transfer broke off after %lld bytes: %s", t->have, curl_easy_strerror(cc));
        return HL_ERR_AGAIN;
    }
    if (t->total >= 0 && t->have != t->total) {
        fail(err, err_len, "the transfer ended at %lld of %lld bytes", t->have, t->total);
        return t->have < t->total ? HL_ERR_AGAIN : HL_ERR_INVAL;
    }
    return HL_OK;
}

/* mkdir -p of path's folders (not its last segment). */
static bool make_parents(char *path) {
    for (char *s = path + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
        *s = '/';
        if (!ok) return false;
    }
    return true;
}

/* The SHA-256 a .part was for (FILE.part.sha256), into out; "" when none. */
static void read_part_sha(const char *side, char out[65]) {
    out[0] = '\0';
    FILE *f = fopen(side, "r");
    if (!f) return;
    char line[128] = "";
    if (fgets(line, sizeof line, f) && !hl_hub_etag_sha256(line, out)) out[0] = '\0';
    fclose(f);
}

/* Downloads m into path (via path.part), verifying m->sha256. */
static hl_err download(pull_ctx *c, const char *repo, const file_meta *m, const char *path, char *err,
                       size_t err_len) {
    char part[4200], side[4300];
    snprintf(part, sizeof part, "%s.part", path);
    snprintf(side, sizeof side, "%s.part.sha256", path);
    char was[65];
    read_part_sha(side, was);
    if (strcmp(was, m->sha256)) unlink(part); /* for another version of the file (or unknown) */
    FILE *sf = fopen(side, "w");
    if (sf) {
        fprintf(sf, "%s\n", m->sha256);
        fclose(sf);
    }
    transfer t = {.c = c, .repo = repo, .total = m->size};
    hl_buf_init(&t.r.body, 1 << 16);
    hl_sha256_init(&t.sha);
    t.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (t.fd < 0 || fstat(t.fd, &st) != 0) {
        fail(err, err_len, "cannot open %s: %s", part, strerror(errno));
        if (t.fd >= 0) close(t.fd);
        hl_buf_release(&t.r.body);
        return HL_ERR_IO;
    }
    t.have = st.st_size;
    if (t.total >= 0 && t.have > t.total && !restart_part(&t)) t.have = -1;
    if (t.have < 0 || !hash_existing(&t)) {
        fail(err, err_len, "cannot read %s: %s", part, strerror(errno));
        close(t.fd);
        hl_buf_release(&t.r.body);
        return HL_ERR_IO;
    }
    if (t.have > 0 && c->o->out) fprintf(c->o->out, "resuming %s at %lld bytes\n", part, t.have);
    int attempts = c->o->attempts > 0 ? c->o->attempts : 5;
    hl_err e = HL_ERR_AGAIN;
    for (int i = 0; i < attempts && e == HL_ERR_AGAIN; i++) {
        long long before = t.have;
        e = get_once(&t, m, err, err_len);
        if (e == HL_ERR_AGAIN && c->o->out) fprintf(c->o->out, "%s%s; retrying\n", c->o->progress ? "\n" : "", err);
        if (e == HL_ERR_AGAIN && t.have == before && i > 0) sleep(1); /* no progress: do not hammer */
    }
    if (e == HL_OK && c->o->progress && c->o->out) draw(&t, true);
    unsigned char d[HL_SHA256_LEN];
    hl_sha256_final(&t.sha, d);
    char got[65];
    for (int i = 0; i < HL_SHA256_LEN; i++) snprintf(got + 2 * i, 3, "%02x", d[i]);
    if (e == HL_OK && m->sha256[0] && strcmp(got, m->sha256)) {
        fail(err, err_len, "SHA-256 mismatch: the Hub published %s, the download hashes to %s; deleted %s "
             "(try again; if it persists, the mirror serves another file)", m->sha256, got, part);
        close(t.fd);
        unlink(part);
        unlink(side);
        hl_buf_release(&t.r.body);
        return HL_ERR_INVAL;
    }
    if (e == HL_OK && (fsync(t.fd) != 0 || rename(part, path) != 0)) {
        fail(err, err_len, "cannot move %s into place: %s", part, strerror(errno));
        e = HL_ERR_IO;
    }
    close(t.fd);
    if (e == HL_OK) unlink(side);
    if (e == HL_ERR_AGAIN) {
        size_t l = strlen(err);
        snprintf(err + l, err_len - l, " (gave up after %d attempts; run the pull again to resume)", attempts);
        e = HL_ERR_IO;
    }
    if (e == HL_OK && !m->sha256[0] && c->o->out)
        fprintf(c->o->out, "note: the Hub published no SHA-256 for this file (not an LFS file): not verified\n");
    hl_buf_release(&t.r.body);
    return e;
}

hl_err hl_hub_pull(const hl_hub_opts *o, const hl_hub_spec *s, char *path, size_t path_len, bool *already,
                   char *err, size_t err_len) {
    *already = false;
    pull_ctx c = {.o = o};
    origin_of(o->endpoint, c.origin, sizeof c.origin);
    if (o->token && *o->token) {
        if (strpbrk(o->token, "\r\n") || strlen(o->token) > 900) {
            fail(err, err_len, "HF_TOKEN holds a line break or is too long");
            return HL_ERR_INVAL;
        }
        snprintf(c.auth, sizeof c.auth, "Authorization: Bearer %s", o->token);
    }
    char file[512];
    snprintf(file, sizeof file, "%s", s->file);
    hl_err e = HL_OK;
    char want_sha[65] = "";
    long long want_size = -1;
    if (!file[0]) {
        hl_hub_file *v = NULL;
        size_t n = 0;
        if ((e = list_files(&c, s->repo, &v, &n, err, err_len)) == HL_OK) {
            long i = hl_hub_choose(v, n, s, err, err_len);
            if (i < 0) {
                e = strstr(err, "match") && !strstr(err, "no file") ? HL_ERR_INVAL : HL_ERR_NOTFOUND;
            } else {
                snprintf(file, sizeof file, "%s", v[i].path);
                snprintf(want_sha, sizeof want_sha, "%s", v[i].sha256);
                want_size = v[i].size;
            }
        }
        hl_hub_files_free(v, n);
    }
    file_meta m;
    if (e == HL_OK) e = head_file(&c, s->repo, file, &m, err, err_len);
    if (e == HL_OK) {
        if (!m.sha256[0]) snprintf(m.sha256, sizeof m.sha256, "%s", want_sha);
        else if (want_sha[0] && strcmp(want_sha, m.sha256)) {
            fail(err, err_len, "%s: the file list says SHA-256 %s, the file's headers %s", file, want_sha, m.sha256);
            e = HL_ERR_INVAL;
        }
        if (m.size < 0) m.size = want_size;
    }
    if (e == HL_OK) {
        int w = snprintf(path, path_len, "%s/%s/%s", o->dir, s->repo, file);
        if (w < 0 || (size_t)w >= path_len || !make_parents(path)) {
            fail(err, err_len, "cannot create the folders of %s: %s", path, strerror(errno));
            e = HL_ERR_IO;
        }
    }
    struct stat st;
    if (e == HL_OK && stat(path, &st) == 0 && (m.size < 0 || st.st_size == m.size)) {
        *already = true;
    } else if (e == HL_OK) {
        if (o->out) {
            char sz[32] = "size unknown";
            if (m.size >= 0) human(m.size, sz, sizeof sz);
            fprintf(o->out, "pulling %s/%s (%s)\n", s->repo, file, sz);
        }
        e = download(&c, s->repo, &m, path, err, err_len);
    }
    explicit_bzero(c.auth, sizeof c.auth);
    return e;
}
