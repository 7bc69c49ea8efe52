/* hl_admin: the admin API (see hl_admin.h). */
#include "hl_admin.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <uv.h>
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_exchange.h"
#include "hl_ingress.h"
#include "hl_keybudget.h"
#include "hl_log.h"
#include "hl_time.h"

struct hl_admin {
    char *key;                 /* the admin key; owned, wiped on free */
    char *location;            /* the store's location; owned; NULL: none */
    hl_keys *keys;             /* borrowed */
    hl_key_budgets *budgets;   /* borrowed; may be NULL */
    hl_authlimit *limit;       /* borrowed; may be NULL */
    pthread_mutex_t mu;        /* one admin call at a time on conn */
    hl_store *conn;            /* opened on first use */
};

hl_admin *hl_admin_new(const char *admin_key, const char *store_location, hl_keys *keys,
                       struct hl_key_budgets *budgets, hl_authlimit *limit) {
    hl_admin *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->key = strdup(admin_key);
    a->location = store_location ? strdup(store_location) : NULL;
    if (!a->key || (store_location && !a->location)) {
        free(a->key);
        free(a->location);
        free(a);
        return NULL;
    }
    a->keys = keys;
    a->budgets = budgets;
    a->limit = limit;
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void hl_admin_free(hl_admin *a) {
    if (!a) return;
    explicit_bzero(a->key, strlen(a->key));
    free(a->key);
    free(a->location);
    hl_store_close(a->conn);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

bool hl_admin_path(hl_slice path) {
    return (path.n == 6 && !memcmp(path.p, "/admin", 6)) || (path.n > 6 && !memcmp(path.p, "/admin/", 7));
}

/* ------------------------------------------------------------------ parsing a key's fields */

static hl_err bad(char *param, size_t param_len, char *msg, size_t msg_len, const char *field, const char *fmt,
                  const char *detail) {
    snprintf(param, param_len, "%s", field);
    snprintf(msg, msg_len, fmt, detail);
    return HL_ERR_INVAL;
}

/* A string or null into buf (NULL *out for null). False when v is neither or too long. */
static bool take_str(json_t *v, char *buf, size_t cap, const char **out) {
    if (json_is_null(v)) {
        *out = NULL;
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap || memchr(json_string_value(v), 0, json_string_length(v)))
        return false;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    *out = buf;
    return true;
}

/* An array of names (or a comma-separated string, or null) into buf as "a,b". */
static bool take_list(json_t *v, char *buf, size_t cap, const char **out) {
    if (!json_is_array(v)) return take_str(v, buf, cap, out);
    size_t n = 0, i;
    json_t *e;
    buf[0] = '\0';
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return false;
        size_t l = json_string_length(e);
        const char *s = json_string_value(e);
        if (!l || memchr(s, ',', l) || memchr(s, 0, l) || n + l + 2 > cap) return false;
        if (n) buf[n++] = ',';
        memcpy(buf + n, s, l);
        n += l;
        buf[n] = '\0';
    }
    if (!n) return false; /* an empty list would allow nothing: null means any */
    *out = buf;
    return true;
}

static bool take_usd(json_t *v, double *out) {
    if (json_is_null(v)) {
        *out = -1;
        return true;
    }
    if (!json_is_number(v) || json_number_value(v) < 0) return false;
    *out = json_number_value(v);
    return true;
}

static bool take_count(json_t *v, long long *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (long long)json_integer_value(v);
    return true;
}

static bool take_time(json_t *v, long long *out) {
    if (json_is_null(v)) {
        *out = 0;
        return true;
    }
    return json_is_string(v) && hl_time_parse_ms(json_string_value(v), json_string_length(v), out) == HL_OK &&
           *out > 0;
}

hl_err hl_admin_parse_key(const char *body, size_t len, bool create, hl_key_record *r, char *param,
                          size_t param_len, char *msg, size_t msg_len) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return bad(param, param_len, msg, msg_len, "", "The body must be a JSON object%s.",
                   root ? "" : " (it is not valid JSON)");
    }
    hl_key_record w = *r; /* the result, written back only when all is well */
    hl_store_key *k = &w.k;
    const char *key;
    json_t *v;
    hl_err e = HL_OK;
    bool named = false;
    json_object_foreach(root, key, v) {
        bool ok;
        if (!strcmp(key, "name")) ok = json_is_string(v) && take_str(v, w.name, sizeof w.name, &k->name) && (named = true);
        else if (!strcmp(key, "tenant")) ok = take_str(v, w.tenant, sizeof w.tenant, &k->tenant);
        else if (!strcmp(key, "backends")) ok = take_list(v, w.backends, sizeof w.backends, &k->backends);
        else if (!strcmp(key, "models")) ok = take_list(v, w.models, sizeof w.models, &k->models);
        else if (!strcmp(key, "cloud_allowed")) ok = json_is_boolean(v) && ((k->cloud_allowed = json_is_true(v)), true);
        else if (!strcmp(key, "budget_day_usd")) ok = take_usd(v, &k->budget_day_usd);
        else if (!strcmp(key, "budget_month_usd")) ok = take_usd(v, &k->budget_month_usd);
        else if (!strcmp(key, "rpm")) ok = take_count(v, &k->rpm);
        else if (!strcmp(key, "tpm")) ok = take_count(v, &k->tpm);
        else if (!strcmp(key, "expires_at")) ok = take_time(v, &k->expires_at_ms);
        else {
            char field[48];
            snprintf(field, sizeof field, "%.40s", key);
            e = bad(param, param_len, msg, msg_len, field, "Unknown field '%s'.", field);
            break;
        }
        if (!ok) {
            char field[48];
            snprintf(field, sizeof field, "%s", key);
            static const char *const want[][2] = {
                {"name", "a string"}, {"tenant", "a string or null"},
                {"backends", "a non-empty array of backend names, or null for any"},
                {"models", "a non-empty array of model names, or null for any"}, {"cloud_allowed", "true or false"},
                {"budget_day_usd", "a number of USD >= 0, or null"}, {"budget_month_usd", "a number of USD >= 0, or null"},
                {"rpm", "an integer >= 0"}, {"tpm", "an integer >= 0"},
                {"expires_at", "an ISO 8601 time such as \"2027-01-01T00:00:00Z\", or null"}};
            const char *w8 = "a valid value";
            for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
                if (!strcmp(want[i][0], key)) w8 = want[i][1];
            snprintf(param, param_len, "%s", field);
            snprintf(msg, msg_len, "'%s' must be %s.", field, w8);
            e = HL_ERR_INVAL;
            break;
        }
    }
    json_decref(root);
    if (e) return e;
    if (create && !named) return bad(param, param_len, msg, msg_len, "name", "'name' is required.%s", "");
    const char *field = hl_keys_check(k, msg, msg_len);
    if (field) {
        snprintf(param, param_len, "%s", field);
        return HL_ERR_INVAL;
    }
    hl_key_record_set(r, k);
    return HL_OK;
}

/* ------------------------------------------------------------------ serving */

static void respond_json(hl_conn *c, int status, const char *rid, json_t *j) {
    char h[128];
    snprintf(h, sizeof h, "x-request-id: %s\r\n", rid);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) hl_conn_respond(c, status, h, "application/json", s, strlen(s));
    else hl_conn_respond(c, 500, h, "text/plain", "out of memory\n", 14);
    free(s);
    json_decref(j);
}

static void respond_err(hl_conn *c, const char *rid, int status, hl_api_error_kind kind, const char *param,
                        const char *code, const char *message) {
    hl_api_error err;
    hl_api_error_set(&err, status, kind, param && *param ? param : NULL, code, "%s", message);
    hl_exchange_respond_error(c, &hl_ingress_openai, rid, &err, NULL);
}

/* The key the request presents: 1 the admin key, -1 another, 0 none. */
static int presented_key(const hl_admin *a, const hl_http_req *req) {
    const hl_slice *v = hl_http_header_get(req, "authorization");
    const char *k = NULL;
    size_t n = 0;
    if (v && v->n > 7 && !strncasecmp(v->p, "Bearer ", 7)) {
        k = v->p + 7;
        n = v->n - 7;
    } else if ((v = hl_http_header_get(req, "x-api-key"))) {
        k = v->p;
        n = v->n;
    }
    if (!k) return 0;
    size_t kl = strlen(a->key);
    unsigned char diff = (unsigned char)(n != kl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)((i < n ? k[i] : 0) ^ a->key[i]);
    return diff == 0 ? 1 : -1;
}

static long long wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The store connection, opened on first use; NULL (answered 503) when it cannot be. */
static hl_store *conn(hl_admin *a, hl_conn *c, const char *rid) {
    if (a->conn) return a->conn;
    char err[600];
    if (!a->location) {
        respond_err(c, rid, 503, HL_AE_UNAVAILABLE, NULL, "no_store", "The gateway has no ledger store to keep keys in.");
        return NULL;
    }
    if (hl_store_open(&a->conn, a->location, err, sizeof err) != HL_OK) {
        hl_log(HL_LOG_WARN, "admin: cannot open the store: %s", err);
        respond_err(c, rid, 503, HL_AE_UNAVAILABLE, NULL, "store_unavailable", "The key store cannot be reached now.");
        return NULL;
    }
    return a->conn;
}

static hl_err list_into(void *ctx, const hl_store_key *k) {
    return json_array_append_new(ctx, hl_keys_to_json(k)) ? HL_ERR_NOMEM : HL_OK;
}

/* A store failure: the message goes to the log, a generic one to the client. */
static void store_failed(hl_admin *a, hl_conn *c, const char *rid, const char *doing) {
    hl_log(HL_LOG_WARN, "admin: %s: %s", doing, hl_store_errmsg(a->conn));
    respond_err(c, rid, 503, HL_AE_UNAVAILABLE, NULL, "store_error", "The key store failed; try again.");
}

/* After a change: this gateway's keys at once. */
static void reload(hl_admin *a) {
    if (a->keys && hl_keys_reload(a->keys, a->conn) != HL_OK)
        hl_log(HL_LOG_WARN, "admin: reloading the keys: %s", hl_store_errmsg(a->conn));
}

static void create(hl_admin *a, hl_conn *c, const char *rid, const char *body, size_t len) {
    hl_key_record r;
    hl_store_key d = {.name = "", .prefix = "", .hash = "", .cloud_allowed = true, .budget_day_usd = -1,
                      .budget_month_usd = -1};
    hl_key_record_set(&r, &d);
    char param[64], msg[256];
    if (hl_admin_parse_key(body, len, true, &r, param, sizeof param, msg, sizeof msg) != HL_OK) {
        respond_err(c, rid, 400, HL_AE_INVALID_REQUEST, param, "invalid_value", msg);
        return;
    }
    char secret[HL_KEY_LEN + 1];
    if (hl_keys_generate(secret, r.prefix, r.hash) != HL_OK) {
        respond_err(c, rid, 500, HL_AE_API, NULL, NULL, "No random bytes from the kernel.");
        return;
    }
    r.k.created_at_ms = wall_ms();
    hl_store *s = conn(a, c, rid);
    if (!s) return;
    hl_err e = hl_store_key_insert(s, &r.k, &r.k.id);
    if (e == HL_ERR_INVAL) {
        respond_err(c, rid, 400, HL_AE_INVALID_REQUEST, "name", "name_taken", "A key with this name already exists.");
    } else if (e) {
        store_failed(a, c, rid, "creating a key");
    } else {
        reload(a);
        hl_log(HL_LOG_INFO, "admin: key %lld '%s' (%s) created", r.k.id, r.k.name, r.k.prefix);
        json_t *j = hl_keys_to_json(&r.k);
        if (j) json_object_set_new(j, "key", json_string(secret));
        respond_json(c, 201, rid, j);
    }
    explicit_bzero(secret, sizeof secret);
}

/* /admin/keys/{id}[/rest]: the id, and rest ("" or "revoke"...). False when not that shape. */
static bool key_path(hl_slice path, long long *id, hl_slice *rest) {
    static const char pre[] = "/admin/keys/";
    size_t n = sizeof pre - 1;
    if (path.n <= n || memcmp(path.p, pre, n)) return false;
    size_t i = n;
    long long v = 0;
    while (i < path.n && path.p[i] >= '0' && path.p[i] <= '9' && v < 1000000000000LL) v = v * 10 + (path.p[i++] - '0');
    if (i == n || v <= 0) return false;
    *id = v;
    *rest = (hl_slice){path.p + i, path.n - i};
    return rest->n == 0 || rest->p[0] == '/';
}

static json_t *left(double budget, double spent) {
    if (budget < 0) return json_null();
    return json_real(budget > spent ? budget - spent : 0);
}

static json_t *spend_json(hl_admin *a, const hl_store_key *k) {
    double day = 0, month = 0;
    hl_key_budgets_spent(a->budgets, k->id, wall_ms(), &day, &month);
    return json_pack("{s:s, s:I, s:s, s:f, s:f, s:o, s:o, s:o, s:o, s:I, s:I}", "object", "api_key.spend", "id",
                     (json_int_t)k->id, "name", k->name, "day_usd", day, "month_usd", month, "budget_day_usd",
                     k->budget_day_usd >= 0 ? json_real(k->budget_day_usd) : json_null(), "remaining_day_usd",
                     left(k->budget_day_usd, day), "budget_month_usd",
                     k->budget_month_usd >= 0 ? json_real(k->budget_month_usd) : json_null(),
                     "remaining_month_usd", left(k->budget_month_usd, month), "rpm", (json_int_t)k->rpm, "tpm",
                     (json_int_t)k->tpm);
}

static bool is(hl_slice s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && !memcmp(s.p, lit, n);
}

void hl_admin_handle(hl_admin *a, hl_conn *c, const hl_http_req *req, const char *body, size_t len,
                     const char *rid) {
    struct sockaddr_storage peer;
    const struct sockaddr *sa = hl_conn_peer(c, &peer) == HL_OK ? (const struct sockaddr *)&peer : NULL;
    long long now = (long long)(uv_hrtime() / 1000000), wait_ms;
    int key = presented_key(a, req);
    if (key && !hl_authlimit_allow(a->limit, sa, now, &wait_ms)) {
        hl_api_error err;
        hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "too_many_wrong_keys",
                         "Too many wrong admin keys from this address: try again in %lld s.", (wait_ms + 999) / 1000);
        char extra[64];
        snprintf(extra, sizeof extra, "retry-after: %lld\r\n", (wait_ms + 999) / 1000);
        hl_exchange_respond_error(c, &hl_ingress_openai, rid, &err, extra);
        return;
    }
    if (key != 1) {
        if (key) hl_authlimit_failed(a->limit, sa, now);
        respond_err(c, rid, 401, HL_AE_AUTHENTICATION, NULL, "invalid_admin_key",
                    "Missing or incorrect admin key. Send it as 'Authorization: Bearer <admin key>'.");
        return;
    }
    hl_slice path = req->path;
    const char *q = memchr(path.p, '?', path.n);
    if (q) path.n = (size_t)(q - path.p);
    hl_slice m = req->method;
    pthread_mutex_lock(&a->mu);
    long long id;
    hl_slice rest;
    if (is(path, "/admin/keys") || is(path, "/admin/keys/")) {
        if (is(m, "POST")) {
            create(a, c, rid, body, len);
        } else if (is(m, "GET")) {
            hl_store *s = conn(a, c, rid);
            json_t *arr = json_array();
            if (s && arr && hl_store_keys_list(s, list_into, arr) == HL_OK)
                respond_json(c, 200, rid, json_pack("{s:s, s:o}", "object", "list", "data", arr));
            else {
                json_decref(arr);
                if (s) store_failed(a, c, rid, "listing keys");
            }
        } else {
            respond_err(c, rid, 405, HL_AE_INVALID_REQUEST, NULL, "method_not_allowed",
                        "Use GET or POST on /admin/keys.");
        }
    } else if (key_path(path, &id, &rest)) {
        bool revoke = (is(m, "POST") && is(rest, "/revoke")) || (is(m, "DELETE") && rest.n == 0);
        bool patch = is(m, "PATCH") && rest.n == 0, get = is(m, "GET") && rest.n == 0;
        bool spend = is(m, "GET") && is(rest, "/spend");
        hl_store *s = revoke || patch || get || spend ? conn(a, c, rid) : NULL;
        hl_key_record r;
        hl_err e = HL_OK;
        if (!revoke && !patch && !get && !spend) {
            respond_err(c, rid, 404, HL_AE_NOT_FOUND, NULL, "unknown_url", "Unknown admin request.");
        } else if (!s) {
            /* answered */
        } else if ((e = hl_keys_get(s, id, &r)) == HL_ERR_NOTFOUND) {
            respond_err(c, rid, 404, HL_AE_NOT_FOUND, NULL, "key_not_found", "No key with this id.");
        } else if (e) {
            store_failed(a, c, rid, "reading a key");
        } else if (get) {
            respond_json(c, 200, rid, hl_keys_to_json(&r.k));
        } else if (spend) {
            respond_json(c, 200, rid, spend_json(a, &r.k));
        } else {
            char param[64], msg[256];
            if (patch && hl_admin_parse_key(body, len, false, &r, param, sizeof param, msg, sizeof msg) != HL_OK) {
                respond_err(c, rid, 400, HL_AE_INVALID_REQUEST, param, "invalid_value", msg);
            } else {
                if (revoke) r.k.revoked = true;
                e = hl_store_key_update(s, &r.k);
                if (e == HL_ERR_INVAL) {
                    respond_err(c, rid, 400, HL_AE_INVALID_REQUEST, "name", "name_taken",
                                "A key with this name already exists.");
                } else if (e) {
                    store_failed(a, c, rid, "changing a key");
                } else {
                    reload(a);
                    hl_log(HL_LOG_INFO, "admin: key %lld '%s' %s", r.k.id, r.k.name, revoke ? "revoked" : "changed");
                    respond_json(c, 200, rid, hl_keys_to_json(&r.k));
                }
            }
        }
    } else {
        respond_err(c, rid, 404, HL_AE_NOT_FOUND, NULL, "unknown_url", "Unknown admin request.");
    }
    pthread_mutex_unlock(&a->mu);
}
