/* hl_keys: virtual client keys in memory (see hl_keys.h). */
#include "hl_keys.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "hl_sha256.h"

typedef struct key_entry {
    unsigned char hash[HL_SHA256_LEN];
    long long expires_at_ms;   /* 0: never */
    bool revoked;
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
