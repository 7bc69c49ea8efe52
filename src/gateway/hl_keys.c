/* hl_keys: virtual client keys in memory (see hl_keys.h). */
#include "hl_keys.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "hl_sha256.h"
#include "hl_time.h"
#include <jansson.h>

typedef struct key_entry {
    unsigned char hash[HL_SHA256_LEN];
    long long expires_at_ms;   /* 0: never */
    bool revoked;
    long long used_ms;         /* last accepted here, not yet written to the store; 0: none */
    hl_key_info info;
} key_entry;

struct hl_keys {
    pthread_mutex_t mu;
    key_entry *v;              /* owned */
    size_t n;
};

hl_keys *hl_keys_new(void) {
    hl_keys *ks = calloc(1, sizeof *ks);
    if (ks) pthread_mutex_init(&ks->mu, NULL);
    return ks;
}

void hl_keys_free(hl_keys *ks) {
    if (!ks) return;
    pthread_mutex_destroy(&ks->mu);
    if (ks->v) explicit_bzero(ks->v, ks->n * sizeof *ks->v);
    free(ks->v);
    free(ks);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

typedef struct loading {
    key_entry *v;
    size_t n, cap;
} loading;

static hl_err add_key(void *ctx, const hl_store_key *k) {
    loading *l = ctx;
    if (!k->hash || strlen(k->hash) != 2 * HL_SHA256_LEN) return HL_OK; /* not ours: never matches */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        key_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    key_entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    for (int i = 0; i < HL_SHA256_LEN; i++) {
        int hi = hexval(k->hash[2 * i]), lo = hexval(k->hash[2 * i + 1]);
        if (hi < 0 || lo < 0) return HL_OK;
        e->hash[i] = (unsigned char)(hi << 4 | lo);
    }
    e->expires_at_ms = k->expires_at_ms;
    e->revoked = k->revoked;
    hl_key_info *in = &e->info;
    in->id = k->id;
    snprintf(in->name, sizeof in->name, "%s", k->name);
    snprintf(in->tenant, sizeof in->tenant, "%s", k->tenant ? k->tenant : k->name);
    in->cloud_allowed = k->cloud_allowed;
    snprintf(in->backends, sizeof in->backends, "%s", k->backends ? k->backends : "");
    snprintf(in->models, sizeof in->models, "%s", k->models ? k->models : "");
    in->budget_day_usd = k->budget_day_usd;
    in->budget_month_usd = k->budget_month_usd;
    in->rpm = k->rpm;
    in->tpm = k->tpm;
    l->n++;
    return HL_OK;
}

hl_err hl_keys_reload(hl_keys *ks, hl_store *conn) {
    loading l = {0};
    hl_err e = hl_store_keys_list(conn, add_key, &l);
    if (e) {
        free(l.v);
        return e;
    }
    pthread_mutex_lock(&ks->mu);
    key_entry *old = ks->v;
    size_t old_n = ks->n;
    ks->v = l.v;
    ks->n = l.n;
    pthread_mutex_unlock(&ks->mu);
    if (old) explicit_bzero(old, old_n * sizeof *old);
    free(old);
    return HL_OK;
}

size_t hl_keys_total(hl_keys *ks) {
    if (!ks) return 0;
    pthread_mutex_lock(&ks->mu);
    size_t n = ks->n;
    pthread_mutex_unlock(&ks->mu);
    return n;
}

bool hl_keys_lookup(hl_keys *ks, const char *key, size_t len, long long now_ms, hl_key_info *out) {
    if (!ks) return false;
    unsigned char h[HL_SHA256_LEN];
    hl_sha256(key, len, h);
    bool found = false;
    pthread_mutex_lock(&ks->mu);
    for (size_t i = 0; i < ks->n; i++) {
        /* Every hash is compared in full, matched or not. */
        unsigned char diff = 0;
        for (int j = 0; j < HL_SHA256_LEN; j++) diff |= (unsigned char)(h[j] ^ ks->v[i].hash[j]);
        const key_entry *e = &ks->v[i];
        if (diff == 0 && !e->revoked && (!e->expires_at_ms || now_ms < e->expires_at_ms)) {
            *out = e->info;
            ks->v[i].used_ms = now_ms;
            found = true;
        }
    }
    pthread_mutex_unlock(&ks->mu);
    return found;
}

bool hl_keys_list_allows(const char *list, const char *name) {
    if (!list || !*list) return true;
    if (!name) return false;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && last[-1] == ' ') last--;
        if ((size_t)(last - p) == n && n && !memcmp(p, name, n)) return true;
        p = end;
    }
    return false;
}

hl_err hl_keys_generate(char *key, char *prefix, char *hash_hex) {
    unsigned char r[32];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k <= 0) return HL_ERR_IO;
        got += (size_t)k;
    }
    memcpy(key, "hl-", 3);
    for (int i = 0; i < 32; i++) {
        key[3 + 2 * i] = "0123456789abcdef"[r[i] >> 4];
        key[4 + 2 * i] = "0123456789abcdef"[r[i] & 15];
    }
    key[HL_KEY_LEN] = '\0';
    explicit_bzero(r, sizeof r);
    memcpy(prefix, key, HL_KEY_PREFIX_LEN);
    prefix[HL_KEY_PREFIX_LEN] = '\0';
    hl_sha256_hex(key, HL_KEY_LEN, hash_hex);
    return HL_OK;
}

void hl_key_record_set(hl_key_record *r, const hl_store_key *k) {
    hl_key_record tmp;
    tmp.k = *k;
    snprintf(tmp.name, sizeof tmp.name, "%s", k->name ? k->name : "");
    snprintf(tmp.prefix, sizeof tmp.prefix, "%s", k->prefix ? k->prefix : "");
    snprintf(tmp.hash, sizeof tmp.hash, "%s", k->hash ? k->hash : "");
    snprintf(tmp.tenant, sizeof tmp.tenant, "%s", k->tenant ? k->tenant : "");
    snprintf(tmp.backends, sizeof tmp.backends, "%s", k->backends ? k->backends : "");
    snprintf(tmp.models, sizeof tmp.models, "%s", k->models ? k->models : "");
    tmp.k.name = tmp.name;
    tmp.k.prefix = tmp.prefix;
    tmp.k.hash = tmp.hash;
    *r = tmp;
    r->k.name = r->name;
    r->k.prefix = r->prefix;
    r->k.hash = r->hash;
    r->k.tenant = k->tenant ? r->tenant : NULL;
    r->k.backends = k->backends ? r->backends : NULL;
    r->k.models = k->models ? r->models : NULL;
}

typedef struct getting {
    long long id;
    hl_key_record *out;
    bool found;
} getting;

static hl_err get_one(void *ctx, const hl_store_key *k) {
    getting *g = ctx;
    if (k->id != g->id) return HL_OK;
    hl_key_record_set(g->out, k);
    g->found = true;
    return HL_OK;
}

hl_err hl_keys_get(hl_store *s, long long id, hl_key_record *out) {
    getting g = {id, out, false};
    hl_err e = hl_store_keys_list(s, get_one, &g);
    if (e) return e;
    return g.found ? HL_OK : HL_ERR_NOTFOUND;
}

/* A name or tenant: 1..63 characters of [A-Za-z0-9._-]. */
static bool token_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

/* A comma-separated list of names without control characters, at most 255 bytes. */
static bool list_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 255) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '"') return false;
    return true;
}

const char *hl_keys_check(const hl_store_key *k, char *msg, size_t msg_len) {
    if (!k->name || !token_ok(k->name)) {
        snprintf(msg, msg_len, "'name' must be 1 to 63 characters of letters, digits, '.', '_' and '-'.");
        return "name";
    }
    if (k->tenant && !token_ok(k->tenant)) {
        snprintf(msg, msg_len, "'tenant' must be 1 to 63 characters of letters, digits, '.', '_' and '-'.");
        return "tenant";
    }
    if (k->backends && !list_ok(k->backends)) {
        snprintf(msg, msg_len, "'backends' must be a non-empty list of backend names (at most 255 bytes).");
        return "backends";
    }
    if (k->models && !list_ok(k->models)) {
        snprintf(msg, msg_len, "'models' must be a non-empty list of model names (at most 255 bytes).");
        return "models";
    }
    if (!(k->budget_day_usd < 0 || k->budget_day_usd <= 1e9) || k->budget_day_usd != k->budget_day_usd) {
        snprintf(msg, msg_len, "'budget_day_usd' must be a number of USD >= 0 (or null for none).");
        return "budget_day_usd";
    }
    if (!(k->budget_month_usd < 0 || k->budget_month_usd <= 1e9) || k->budget_month_usd != k->budget_month_usd) {
        snprintf(msg, msg_len, "'budget_month_usd' must be a number of USD >= 0 (or null for none).");
        return "budget_month_usd";
    }
    if (k->rpm < 0 || k->rpm > 1000000000) {
        snprintf(msg, msg_len, "'rpm' must be an integer from 0 (no limit) to 1e9.");
        return "rpm";
    }
    if (k->tpm < 0 || k->tpm > 1000000000000LL) {
        snprintf(msg, msg_len, "'tpm' must be an integer from 0 (no limit) to 1e12.");
        return "tpm";
    }
    if (k->expires_at_ms < 0) {
        snprintf(msg, msg_len, "'expires_at' must be a time (ISO 8601) or null.");
        return "expires_at";
    }
    return NULL;
}

static json_t *opt_str(const char *s) { return s ? json_string(s) : json_null(); }
static json_t *opt_usd(double v) { return v >= 0 ? json_real(v) : json_null(); }

static json_t *opt_time(long long ms) {
    if (!ms) return json_null();
    char t[32];
    hl_time_format_ms(ms, t, sizeof t);
    return json_string(t);
}

json_t *hl_keys_to_json(const hl_store_key *k) {
    return json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:b}",
                     "id", (json_int_t)k->id, "object", "api_key", "name", k->name, "prefix", k->prefix,
                     "tenant", json_string(k->tenant ? k->tenant : k->name), "backends", opt_str(k->backends),
                     "models", opt_str(k->models), "cloud_allowed", k->cloud_allowed, "budget_day_usd",
                     opt_usd(k->budget_day_usd), "budget_month_usd", opt_usd(k->budget_month_usd), "rpm",
                     (json_int_t)k->rpm, "tpm", (json_int_t)k->tpm, "expires_at", opt_time(k->expires_at_ms),
                     "created_at", opt_time(k->created_at_ms), "last_used_at", opt_time(k->last_used_at_ms),
                     "revoked", k->revoked);
}

hl_err hl_keys_flush_used(hl_keys *ks, hl_store *conn) {
    if (!ks) return HL_OK;
    long long ids[256], ms[256];
    size_t n = 0;
    pthread_mutex_lock(&ks->mu);
    for (size_t i = 0; i < ks->n && n < 256; i++) {
        if (!ks->v[i].used_ms) continue;
        ids[n] = ks->v[i].info.id;
        ms[n++] = ks->v[i].used_ms;
        ks->v[i].used_ms = 0;
    }
    pthread_mutex_unlock(&ks->mu);
    hl_err e = HL_OK;
    for (size_t i = 0; i < n && !e; i++) e = hl_store_key_touch(conn, ids[i], ms[i]);
    return e;
}
