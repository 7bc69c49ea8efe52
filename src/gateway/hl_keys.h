/* hl_keys: the gateway's virtual client keys, as the store holds them (hl_store.h,
 * hl_store_key), kept in memory for lookups on the request path.
 *
 * Why: a key per person, team or application, issued and revoked without a restart. The
 * gateway loads the store's keys at start and again after every indexer pass (on the
 * indexer's thread and connection), so a revocation or change made by any gateway or by
 * `hybridllm keys` reaches every gateway on the store within one ledger.index_interval_ms.
 *
 * A key is "hl-" and 64 hex digits (256 random bits from getrandom); the store keeps its
 * SHA-256 only. A lookup hashes the presented key and compares it with every active key's
 * hash in constant time.
 *
 * Threads: hl_keys_reload runs on the indexer thread, lookups on the event loops; the table
 * is swapped under a lock, and a lookup copies what it needs (hl_key_info) before releasing
 * it. */
#ifndef HL_KEYS_H
#define HL_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_err.h"
#include "hl_store.h"

#define HL_KEY_LEN 67          /* "hl-" + 64 hex digits */
#define HL_KEY_PREFIX_LEN 11   /* "hl-" + 8: what lists show */

/* What a request carries from the key it came with (a copy: no lifetime to manage). */
typedef struct hl_key_info {
    long long id;              /* the store's id; 0: a key from server.api_keys_env */
    char name[64];             /* the key's name ("" for an unnamed api_keys_env entry) */
    char tenant[64];           /* the tenant it decides ("" none) */
    bool cloud_allowed;        /* false: its traffic stays local (enforced like sensitive) */
    char backends[256];        /* comma-separated backend names it may use; "": any */
    char models[256];          /* comma-separated model names it may ask for; "": any */
    double budget_day_usd, budget_month_usd; /* < 0: none */
    long long rpm, tpm;        /* 0: no limit */
} hl_key_info;

typedef struct hl_keys hl_keys;

/* An empty set. NULL when out of memory. Free with hl_keys_free. */
hl_keys *hl_keys_new(void);
void hl_keys_free(hl_keys *ks);
/* Replaces the set with the store's keys as of now (conn: a connected store, used by the
 * calling thread only). On error the old set stays and the store's message says why. */
hl_err hl_keys_reload(hl_keys *ks, hl_store *conn);
/* Keys the store holds, revoked and expired ones included: when non-zero, every request
 * needs a key (revoking the last key never opens the gateway). */
size_t hl_keys_total(hl_keys *ks);
/* True when key[0..len) is an active key (not revoked, not expired at now_ms); *out is then
 * filled. Time does not depend on which key matched or where a wrong one differs. */
bool hl_keys_lookup(hl_keys *ks, const char *key, size_t len, long long now_ms, hl_key_info *out);
/* Writes the last-used times of the keys accepted since the last call to the store (conn,
 * the calling thread's), at most 256 keys a call (the rest at the next). Call before
 * hl_keys_reload. */
hl_err hl_keys_flush_used(hl_keys *ks, hl_store *conn);
/* True when name is in the comma-separated list (an empty list allows everything). */
bool hl_keys_list_allows(const char *list, const char *name);

/* ---- administration (`hybridllm keys`, /admin/keys) ---- */

/* One key with its strings held in place (no allocation); k's pointers point into it. */
typedef struct hl_key_record {
    hl_store_key k;
    char name[64], prefix[16], hash[65], tenant[64], backends[256], models[256];
} hl_key_record;

/* Copies k into r (strings longer than r's fields are cut: hl_keys_check refuses them
 * before they reach the store). */
void hl_key_record_set(hl_key_record *r, const hl_store_key *k);
/* The key id from the store. HL_ERR_NOTFOUND when there is none (the store's message says so). */
hl_err hl_keys_get(hl_store *s, long long id, hl_key_record *out);
/* Checks the fields an administrator sets. NULL when k is acceptable; else the field at
 * fault ("name", "budget_day_usd"...) with a sentence in msg. */
const char *hl_keys_check(const hl_store_key *k, char *msg, size_t msg_len);

/* k as the admin API and `keys list --json` show it: every field but the hash. New
 * reference (jansson's json_t *), NULL when out of memory. */
struct json_t;
struct json_t *hl_keys_to_json(const hl_store_key *k);

/* A new key: key (HL_KEY_LEN + 1 bytes) "hl-" + 64 hex digits, its prefix
 * (HL_KEY_PREFIX_LEN + 1) and its SHA-256 in hex (65). HL_ERR_IO when getrandom fails. */
hl_err hl_keys_generate(char *key, char *prefix, char *hash_hex);

#endif
