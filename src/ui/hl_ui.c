/* hl_ui: the dashboard's HTTP side (see hl_ui.h): who may look, the page and its assets
 * (compiled in, internal/hl_ui_assets.h), the login session, and the /api/ queries, which run
 * on libuv's thread pool and answer from the loop that took the request. */
#include "hl_ui.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/time.h>
#include <uv.h>
#include "hl_log.h"
#include "hl_ui_assets.h"

#define UI_MAGIC 0x75694a42u          /* first field of a query job, see hl_ui_owns */
#define UI_SESSIONS 64                /* browsers logged in at once (the oldest goes first) */
#define UI_SESSION_MS (12LL * 3600 * 1000)
#define UI_COOKIE "hl_ui_session"
/* Queries in libuv's thread pool at once. The pool also resolves upstream host names
 * (uv_getaddrinfo), so the dashboard must never hold all of it: `serve` makes it 8 threads
 * (UV_THREADPOOL_SIZE, unless set), and a query past this many gets a 503 to retry (the page
 * does). */
#define UI_MAX_JOBS 4

typedef struct ui_session {
    char token[65];                   /* 64 hex digits; "" when free */
    long long expires_ms;
} ui_session;

struct hl_ui {
    hl_ui_access access;
    char *key;                        /* the admin key; owned, wiped on free; NULL: none */
    char *location;                   /* the store's location; owned; NULL: none */
    hl_ui_sources src;
    hl_authlimit *limit;              /* wrong keys per address; borrowed; may be NULL */
    atomic_int jobs;                  /* queries in the thread pool */
    pthread_mutex_t mu;               /* sessions: the loops share them */
    ui_session sessions[UI_SESSIONS];
};

/* One /api/ query on its way through the thread pool. */
typedef struct ui_job {
    uint32_t magic;                   /* UI_MAGIC */
    uv_work_t work;
    hl_ui *ui;
    hl_conn *c;                       /* NULL once the connection was aborted */
    hl_ui_view view;
    hl_ui_query q;
    long long now_ms;
    char rid[64];
    hl_buf out;
    hl_err e;
    char err[512];
} ui_job;

static long long wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Constant time in the contents: depends on the lengths only. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) diff |= (unsigned char)((i < alen ? a[i] : 0) ^ b[i]);
    return diff == 0;
}

hl_ui *hl_ui_new(hl_ui_access access, const char *admin_key, const char *store_location,
                 const hl_ui_sources *src, hl_authlimit *limit) {
    hl_ui *ui = calloc(1, sizeof *ui);
    if (!ui) return NULL;
    ui->access = access;
    ui->key = admin_key ? strdup(admin_key) : NULL;
    ui->location = store_location ? strdup(store_location) : NULL;
    if ((admin_key && !ui->key) || (store_location && !ui->location)) {
        free(ui->key);
        free(ui->location);
        free(ui);
        return NULL;
    }
    ui->src = *src;
    ui->limit = limit;
    pthread_mutex_init(&ui->mu, NULL);
    return ui;
}

void hl_ui_free(hl_ui *ui) {
    if (!ui) return;
    if (ui->key) explicit_bzero(ui->key, strlen(ui->key));
    explicit_bzero(ui->sessions, sizeof ui->sessions);
    free(ui->key);
    free(ui->location);
    pthread_mutex_destroy(&ui->mu);
    free(ui);
}

static bool starts(hl_slice s, const char *lit) {
    size_t n = strlen(lit);
    return s.n >= n && !memcmp(s.p, lit, n);
}

static bool is(hl_slice s, const char *lit) { return s.n == strlen(lit) && starts(s, lit); }

bool hl_ui_path(hl_slice path) { return is(path, "/ui") || starts(path, "/ui/") || starts(path, "/api/"); }

bool hl_ui_owns(const void *conn_data) { return conn_data && *(const uint32_t *)conn_data == UI_MAGIC; }

void hl_ui_abort(void *conn_data) { ((ui_job *)conn_data)->c = NULL; }

/* ------------------------------------------------------------------ answers */

/* Headers every answer carries: the request id, and a policy that lets the page run only its
 * own scripts and never be framed. */
static void base_headers(char *h, size_t n, const char *rid, const char *extra) {
    snprintf(h, n,
             "x-request-id: %s\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\n"
             "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; "
             "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'\r\n"
             "referrer-policy: no-referrer\r\n%s",
             rid, extra ? extra : "");
}

/* An error in OpenAI's shape. */
static void respond_err(hl_conn *c, const char *rid, int status, const char *type, const char *param,
                        const char *code, const char *message, const char *extra) {
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_buf_puts(&b, "{\"error\":{\"message\":");
    hl_buf_json_str(&b, message, strlen(message));
    hl_buf_printf(&b, ",\"type\":\"%s\",\"param\":", type);
    if (param && *param) hl_buf_json_str(&b, param, strlen(param));
    else hl_buf_puts(&b, "null");
    hl_buf_printf(&b, ",\"code\":\"%s\"}}", code);
    char h[768];
    base_headers(h, sizeof h, rid, extra);
    if (b.data) hl_conn_respond(c, status, h, "application/json", b.data, b.len);
    else hl_conn_respond(c, 500, h, "text/plain", "out of memory\n", 14);
    hl_buf_release(&b);
}

static void respond_asset(hl_conn *c, const char *rid, int status, const hl_ui_asset *a, const char *extra) {
    char h[768];
    base_headers(h, sizeof h, rid, extra);
    hl_conn_respond(c, status, h, a->type, (const char *)a->data, a->len);
}

static const hl_ui_asset *asset_named(const char *name) {
    for (size_t i = 0; i < hl_ui_n_assets; i++)
        if (!strcmp(hl_ui_assets[i].name, name)) return &hl_ui_assets[i];
    return NULL;
}

/* ------------------------------------------------------------------ sessions */

static bool hex_token(char out[65]) {
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) return false;
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof raw);
    return true;
}

/* A new session's token into out; false when no random bytes. */
static bool session_open(hl_ui *ui, char out[65]) {
    if (!hex_token(out)) return false;
    long long now = wall_ms();
    pthread_mutex_lock(&ui->mu);
    size_t slot = 0;
    for (size_t i = 0; i < UI_SESSIONS; i++) {
        if (!ui->sessions[i].token[0] || ui->sessions[i].expires_ms <= now) {
            slot = i;
            break;
        }
        if (ui->sessions[i].expires_ms < ui->sessions[slot].expires_ms) slot = i;
    }
    memcpy(ui->sessions[slot].token, out, 65);
    ui->sessions[slot].expires_ms = now + UI_SESSION_MS;
    pthread_mutex_unlock(&ui->mu);
    return true;
}

/* The session cookie's value in the request, or an empty slice. */
static hl_slice cookie_token(const hl_http_req *req) {
    for (int i = 0; i < req->n_headers; i++) {
        const hl_http_header *h = &req->headers[i];
        if (h->name.n != 6 || strncasecmp(h->name.p, "cookie", 6)) continue;
        const char *p = h->value.p, *end = p + h->value.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';')) p++;
            const char *e = memchr(p, ';', (size_t)(end - p));
            if (!e) e = end;
            size_t cn = sizeof UI_COOKIE - 1;
            if ((size_t)(e - p) > cn && !memcmp(p, UI_COOKIE "=", cn + 1))
                return (hl_slice){p + cn + 1, (size_t)(e - p) - cn - 1};
            p = e;
        }
    }
    return (hl_slice){NULL, 0};
}

/* Checks every slot whatever matches, so the time taken says nothing about the token. */
static bool session_valid(hl_ui *ui, hl_slice tok, bool drop) {
    if (tok.n != 64) return false;
    long long now = wall_ms();
    bool ok = false;
    pthread_mutex_lock(&ui->mu);
    for (size_t i = 0; i < UI_SESSIONS; i++) {
        ui_session *s = &ui->sessions[i];
        bool m = s->token[0] && s->expires_ms > now && ct_equal(tok.p, tok.n, s->token, 64);
        if (m && drop) memset(s, 0, sizeof *s);
        ok |= m;
    }
    pthread_mutex_unlock(&ui->mu);
    return ok;
}

static bool key_matches(const hl_ui *ui, const char *k, size_t n) {
    return ui->key && ct_equal(k, n, ui->key, strlen(ui->key));
}

/* The admin key as a bearer token (scripts): 1 the right one, -1 another, 0 none given. */
static int bearer_key(const hl_ui *ui, const hl_http_req *req) {
    const hl_slice *v = hl_http_header_get(req, "authorization");
    if (!v || v->n <= 7 || strncasecmp(v->p, "Bearer ", 7)) return 0;
    return key_matches(ui, v->p + 7, v->n - 7) ? 1 : -1;
}

/* The peer of c, into *ss; NULL when it has none (then no limit applies to it). */
static const struct sockaddr *peer_of(hl_conn *c, struct sockaddr_storage *ss) {
    return hl_conn_peer(c, ss) == HL_OK ? (const struct sockaddr *)ss : NULL;
}

static long long mono_ms(void) { return (long long)(uv_hrtime() / 1000000); }

/* Whether c's address may present a key now (hl_authlimit.h); when not, answers 429. */
static bool key_allowed(hl_ui *ui, hl_conn *c, const char *rid) {
    struct sockaddr_storage ss;
    long long wait_ms;
    if (hl_authlimit_allow(ui->limit, peer_of(c, &ss), mono_ms(), &wait_ms)) return true;
    char msg[128], extra[64];
    snprintf(msg, sizeof msg, "Too many wrong admin keys from this address: try again in %lld s.", (wait_ms + 999) / 1000);
    snprintf(extra, sizeof extra, "retry-after: %lld\r\n", (wait_ms + 999) / 1000);
    respond_err(c, rid, 429, "rate_limit_error", NULL, "too_many_wrong_keys", msg, extra);
    return false;
}

static void key_failed(hl_ui *ui, hl_conn *c) {
    struct sockaddr_storage ss;
    hl_authlimit_failed(ui->limit, peer_of(c, &ss), mono_ms());
}

typedef enum { AUTH_OK, AUTH_NO, AUTH_ANSWERED /* refused with 429 */ } auth_result;

/* The admin key as a bearer token (scripts), which alone decides when given, or a live
 * session (browsers). */
static auth_result authorized(hl_ui *ui, hl_conn *c, const hl_http_req *req, const char *rid) {
    int bearer = bearer_key(ui, req);
    if (!bearer) return session_valid(ui, cookie_token(req), false) ? AUTH_OK : AUTH_NO;
    if (!key_allowed(ui, c, rid)) return AUTH_ANSWERED;
    if (bearer > 0) return AUTH_OK;
    key_failed(ui, c);
    return AUTH_NO;
}

/* POST /ui/login with key=<admin key> (a form): a session cookie and back to /ui, or the form
 * again with why. */
static void login(hl_ui *ui, hl_conn *c, const char *rid, const char *body, size_t len) {
    if (!key_allowed(ui, c, rid)) return;
    char key[512];
    bool got = false;
    if (len > 4 && len < sizeof key && !memcmp(body, "key=", 4)) {
        /* The form's only field; its value percent-decoded. */
        size_t o = 0;
        got = true;
        for (size_t i = 4; i < len && got; i++) {
            char ch = body[i];
            if (ch == '&') break;
            if (ch == '+') ch = ' ';
            else if (ch == '%') {
                unsigned v = 0;
                if (i + 2 >= len || sscanf(body + i + 1, "%2x", &v) != 1) got = false;
                ch = (char)v;
                i += 2;
            }
            key[o++] = ch;
        }
        key[o] = '\0';
        got = got && key_matches(ui, key, o);
    }
    explicit_bzero(key, sizeof key);
    char tok[65];
    if (!got) {
        key_failed(ui, c);
        hl_log(HL_LOG_WARN, "dashboard: a login with a wrong admin key");
        const hl_ui_asset *a = asset_named("login-failed.html");
        respond_asset(c, rid, 401, a, NULL);
        return;
    }
    if (!session_open(ui, tok)) {
        respond_err(c, rid, 500, "api_error", NULL, "no_random", "No random bytes from the kernel.", NULL);
        return;
    }
    char extra[256];
    snprintf(extra, sizeof extra,
             "set-cookie: " UI_COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict\r\nlocation: /ui\r\n",
             tok, UI_SESSION_MS / 1000);
    explicit_bzero(tok, sizeof tok);
    char h[1024];
    base_headers(h, sizeof h, rid, extra);
    hl_conn_respond(c, 303, h, "text/plain", "", 0);
}

static void logout(hl_ui *ui, hl_conn *c, const char *rid, const hl_http_req *req) {
    session_valid(ui, cookie_token(req), true);
    char h[1024];
    base_headers(h, sizeof h, rid,
                 "set-cookie: " UI_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict\r\nlocation: /ui\r\n");
    hl_conn_respond(c, 303, h, "text/plain", "", 0);
}

/* ------------------------------------------------------------------ queries */

static void job_work(uv_work_t *w) {
    ui_job *j = w->data;
    hl_store *s = NULL;
    j->e = HL_OK;
    if (j->ui->location && j->view != HL_UI_PRIVACY && j->view != HL_UI_ADVISE)
        j->e = hl_store_open_existing(&s, j->ui->location, j->err, sizeof j->err);
    if (j->e && j->view == HL_UI_BUDGETS) j->e = HL_OK; /* the configured budgets still answer */
    hl_ui_sources src = j->ui->src;
    src.now_ms = j->now_ms;
    if (!j->e) j->e = hl_ui_build(j->view, &j->q, s, &src, &j->out, j->err, sizeof j->err);
    hl_store_close(s);
}

static void job_done(uv_work_t *w, int status) {
    ui_job *j = w->data;
    if (j->c) {
        hl_conn_set_data(j->c, NULL);
        if (status || j->e) {
            hl_log(HL_LOG_WARN, "dashboard: %s", status ? "the query was cancelled" : j->err);
            respond_err(j->c, j->rid, 503, "api_error", NULL, "store_unavailable",
                        "The ledger store cannot answer now; try again.", NULL);
        } else {
            char h[768];
            base_headers(h, sizeof h, j->rid, NULL);
            hl_conn_respond(j->c, 200, h, "application/json", j->out.data, j->out.len);
        }
    }
    atomic_fetch_sub(&j->ui->jobs, 1);
    hl_buf_release(&j->out);
    free(j);
}

static void api(hl_ui *ui, hl_conn *c, const hl_http_req *req, const char *rid) {
    hl_ui_view view;
    if (!is(req->method, "GET")) {
        respond_err(c, rid, 405, "invalid_request_error", NULL, "method_not_allowed", "Use GET on /api/.",
                    "allow: GET\r\n");
        return;
    }
    if (!hl_ui_view_of(req->path, &view)) {
        respond_err(c, rid, 404, "invalid_request_error", NULL, "unknown_url",
                    "Unknown dashboard view: see /api/filters, spend, requests, latency, privacy, budgets, "
                    "advise, agreement.", NULL);
        return;
    }
    if (atomic_fetch_add(&ui->jobs, 1) >= UI_MAX_JOBS) {
        atomic_fetch_sub(&ui->jobs, 1);
        respond_err(c, rid, 503, "api_error", NULL, "busy", "The dashboard is answering other queries; retry.",
                    "retry-after: 1\r\n");
        return;
    }
    ui_job *j = calloc(1, sizeof *j);
    if (!j) {
        atomic_fetch_sub(&ui->jobs, 1);
        respond_err(c, rid, 500, "api_error", NULL, "out_of_memory", "Out of memory.", NULL);
        return;
    }
    const char *q = memchr(req->target.p, '?', req->target.n);
    size_t qn = q ? req->target.n - (size_t)(q + 1 - req->target.p) : 0;
    char param[64], msg[256];
    if (hl_ui_query_parse(q ? q + 1 : "", qn, &j->q, param, sizeof param, msg, sizeof msg) != HL_OK) {
        atomic_fetch_sub(&ui->jobs, 1);
        free(j);
        respond_err(c, rid, 400, "invalid_request_error", param, "invalid_value", msg, NULL);
        return;
    }
    j->magic = UI_MAGIC;
    j->ui = ui;
    j->c = c;
    j->view = view;
    j->now_ms = wall_ms();
    snprintf(j->rid, sizeof j->rid, "%s", rid);
    hl_buf_init(&j->out, 0);
    j->work.data = j;
    hl_conn_set_data(c, j);
    if (uv_queue_work(hl_worker_loop(hl_conn_worker(c)), &j->work, job_work, job_done) != 0) {
        hl_conn_set_data(c, NULL);
        atomic_fetch_sub(&ui->jobs, 1);
        hl_buf_release(&j->out);
        free(j);
        respond_err(c, rid, 503, "api_error", NULL, "busy", "The dashboard cannot queue a query now.", NULL);
    }
}

/* ------------------------------------------------------------------ the entry point */

void hl_ui_handle(hl_ui *ui, hl_conn *c, const hl_http_req *req, const char *body, size_t len, const char *rid) {
    hl_slice path = req->path;
    auth_result auth;
    if (ui->access == HL_UI_CLOSED) {
        respond_err(c, rid, 403, "permission_error", NULL, "dashboard_closed",
                    "The dashboard is closed: server.admin_key_env is set but its variable is empty or unusable.",
                    NULL);
        return;
    }
    if (ui->access == HL_UI_LOOPBACK) {
        struct sockaddr_storage ss;
        if (hl_conn_peer(c, &ss) != HL_OK || !hl_ui_peer_is_loopback((struct sockaddr *)&ss)) {
            respond_err(c, rid, 403, "permission_error", NULL, "loopback_only",
                        "The dashboard answers loopback clients only: set server.admin_key_env to open it to "
                        "others with the admin key.", NULL);
            return;
        }
    }
    if (is(path, "/ui/logout") && is(req->method, "POST")) {
        logout(ui, c, rid, req);
        return;
    }
    if (ui->access == HL_UI_LOOPBACK) {
        /* open */
    } else if (is(path, "/ui/login")) {
        if (is(req->method, "POST")) login(ui, c, rid, body, len);
        else respond_asset(c, rid, 200, asset_named("login.html"), NULL);
        return;
    } else if (is(path, "/ui/app.css")) {
        /* the login form's style too: no figures in it */
    } else if ((auth = authorized(ui, c, req, rid)) != AUTH_OK) {
        if (auth == AUTH_ANSWERED) return;
        if (is(path, "/ui") || is(path, "/ui/")) {
            /* a browser: to the form (a 401 page would read as an error in its console) */
            char h[768];
            base_headers(h, sizeof h, rid, "location: /ui/login\r\n");
            hl_conn_respond(c, 303, h, "text/plain", "", 0);
        } else
            respond_err(c, rid, 401, "authentication_error", NULL, "invalid_admin_key",
                        "Log in at /ui, or send the admin key as 'Authorization: Bearer <admin key>'.", NULL);
        return;
    }
    if (starts(path, "/api/")) {
        api(ui, c, req, rid);
        return;
    }
    if (!is(req->method, "GET")) {
        respond_err(c, rid, 405, "invalid_request_error", NULL, "method_not_allowed", "Use GET on /ui.",
                    "allow: GET\r\n");
        return;
    }
    const hl_ui_asset *a = NULL;
    if (is(path, "/ui") || is(path, "/ui/")) {
        a = asset_named("index.html");
    } else if (path.n > 4 && path.n < 64 && !memchr(path.p + 4, '/', path.n - 4)) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(path.n - 4), path.p + 4);
        if (strcmp(name, "login.html") && strcmp(name, "login-failed.html")) a = asset_named(name);
    }
    if (a) respond_asset(c, rid, 200, a, NULL);
    else respond_err(c, rid, 404, "invalid_request_error", NULL, "unknown_url", "No such dashboard file.", NULL);
}
