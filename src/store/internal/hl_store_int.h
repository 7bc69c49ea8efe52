/* hl_store_int: what a store backend implements, private to src/store/.
 *
 * hl_store.c owns everything that does not depend on the database: reading and parsing the
 * journal, detecting rotation, batching, the indexer thread. A backend (hl_store_sqlite.c,
 * hl_store_pg.c) provides the operations below over one connection. The indexer calls them
 * in this shape, which is what makes a crashed pass replayable:
 *
 *     begin; insert(batch)...; save_state(offset after the last inserted line); commit
 *
 * so the offset is durable exactly when the records before it are. */
#ifndef HL_STORE_INT_H
#define HL_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "hl_rollup.h"
#include "hl_store.h"

/* One ledger line, parsed. Strings are borrowed from the parsed line; NULL means null. */
typedef struct hl_store_record {
    long long ts_ms;
    bool cloud;
    long long input_tokens, output_tokens;
    double latency_ms;
    double cost_usd;
    bool cost_known;          /* false: cost_usd was null */
    const char *request_id;   /* never NULL */
    long long attempt;        /* >= 1 */
    const char *backend, *model, *route_reason, *status;
    bool stream;
    double ttft_ms;           /* < 0: null */
    long long cached_input_tokens, cache_write_tokens;
    bool usage_estimated;
    const char *tenant, *task_type;
    long long key_id;         /* 0: null */
    const char *key_name;
    bool task_inferred, sensitive;
    double confidence;        /* < 0: null */
    long long http_status;
    const char *error;
    /* Quality (hl_ledger.h): */
    bool signals;             /* confidence_margin and confidence_min known */
    double confidence_margin, confidence_min;
    bool shadow;
    bool scored;              /* score and the four after it are set */
    double score;
    const char *score_method;
    bool agree;
    const char *reference;
    long long ref_output_tokens;
    const char *eval_run;
    const char *replica;      /* the replica's URL (hl_ledger.h "Replicas"); NULL */
} hl_store_record;

typedef enum hl_store_insert_result {
    HL_STORE_INSERTED,
    HL_STORE_DUPLICATE, /* same (request_id, attempt) and timestamp: the same line again */
    HL_STORE_CONFLICT,  /* same (request_id, attempt), another timestamp: another line */
} hl_store_insert_result;

/* Where the indexer is in one journal. */
typedef struct hl_store_journal_state {
    long long dev, ino;       /* identity of the file the offset belongs to */
    long long offset;         /* bytes indexed: always just after a '\n' (or 0) */
    long long size;           /* file size when the state was saved */
    long long head_len;       /* bytes hashed at the start of the file (<= HEAD_MAX) */
    uint64_t head_hash;       /* FNV-1a of those bytes: tells a replaced file from a grown one */
} hl_store_journal_state;

/* One cell of the rollups being built (hl_rollup.h), owned by the aggregator in hl_rollup.c.
 * Strings are never NULL ("" for none); status is "ok", "error", "cancelled", "escalated" or
 * "other". Histograms are entry lists (hl_rollup.h), ascending by bucket. */
typedef struct hl_rollup_cell {
    long long hour;
    const char *source, *backend, *model, *route_reason, *tenant, *key_name, *task_type, *status;
    unsigned flags, firsts;
    long long attempts, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, plain_input_tokens;
    double cost_usd;
    long long unpriced, scored, agreed;
    double score_sum, latency_sum_ms;
    uint64_t *lat, *ttft;
    size_t lat_n, lat_cap, ttft_n, ttft_cap;
} hl_rollup_cell;

/* An earlier attempt's varying dimensions (NULL: none), for hl_rollup_firsts. */
typedef struct hl_rollup_dims {
    const char *source, *backend, *model, *route_reason;
} hl_rollup_dims;
typedef void (*hl_store_prior_fn)(void *ctx, const hl_rollup_dims *d);
/* Receives one stored record (strings borrowed until it returns). */
typedef hl_err (*hl_store_record_fn)(void *ctx, const hl_store_record *r);

/* The firsts mask of a line with dimensions self whose request has the earlier attempts
 * e[0..n) (hl_rollup.h: bit V set when none of them agrees with self on all of V). */
unsigned hl_rollup_firsts(const hl_rollup_dims *self, const hl_rollup_dims *e, size_t n);
/* The rollups of the records a transaction inserts, collected across its batches: a cell
 * takes one upsert per transaction instead of one per batch. Owned by one pass. */
typedef struct hl_rollup_acc hl_rollup_acc;
hl_rollup_acc *hl_rollup_acc_new(void); /* NULL: out of memory */
/* Adds the records of a batch that were inserted (res[i] INSERTED); may flush (below). */
hl_err hl_rollup_acc_add(hl_rollup_acc *x, hl_store *s, const hl_store_record *r, const hl_store_insert_result *res,
                         size_t n);
/* Adds the collected cells to the rollup tables, in the open transaction, and empties x. */
hl_err hl_rollup_acc_flush(hl_rollup_acc *x, hl_store *s);
/* Forgets the collected cells (the transaction rolled back). */
void hl_rollup_acc_drop(hl_rollup_acc *x);
void hl_rollup_acc_free(hl_rollup_acc *x);
/* Builds the rollups of every stored record (migration 7), in the open transaction. */
hl_err hl_rollup_backfill(hl_store *s);
/* Merges two encoded histograms (entry lists) into out (capacity na + nb); returns its length. */
size_t hl_hist_merge(const uint64_t *a, size_t na, const uint64_t *b, size_t nb, uint64_t *out);

typedef struct hl_store_ops {
    const char *name;
    /* Connects to location and migrates (see s->must_exist). Sets s->impl. On error fills
     * errbuf. */
    hl_err (*open)(hl_store *s, const char *location, char *errbuf, size_t errbuf_len);
    void (*close)(hl_store *s);
    int (*schema_version)(hl_store *s);
    /* *found false when the journal was never indexed. */
    hl_err (*load_state)(hl_store *s, const char *journal, hl_store_journal_state *st, bool *found);
    hl_err (*begin)(hl_store *s);
    /* Inserts r[0..n) (n <= batch), setting res[i] for each. Records with the same key may
     * occur within one call; the first one wins, as if they had come in separate calls. */
    hl_err (*insert)(hl_store *s, const hl_store_record *r, size_t n, hl_store_insert_result *res);
    size_t batch;
    hl_err (*save_state)(hl_store *s, const char *journal, const hl_store_journal_state *st);
    hl_err (*commit)(hl_store *s);
    void (*rollback)(hl_store *s);
    /* The records of q (hl_store_scan_query), every dimension set. */
    hl_err (*scan)(hl_store *s, const hl_store_query *q, hl_store_row_fn fn, void *ctx);
    /* Rollups (hl_rollup.h). prior: calls fn with every attempt of request_id below attempt.
     * each_record: every stored record, ordered by (request_id, attempt). rollup_merge: adds
     * cells c[0..n) (distinct keys) to the rollups, in the open transaction. */
    hl_err (*prior)(hl_store *s, const char *request_id, long long attempt, hl_store_prior_fn fn, void *ctx);
    hl_err (*each_record)(hl_store *s, hl_store_record_fn fn, void *ctx);
    /* rollup_merge: into rollups_day when day (c's hours are days' first hours). */
    hl_err (*rollup_merge)(hl_store *s, bool day, const hl_rollup_cell *c, size_t n);
    /* day: table rollups_day (cells per UTC day), else rollups (per hour). */
    hl_err (*rollup_scan)(hl_store *s, bool day, long long from_hour, long long to_hour, const hl_store_filter *f,
                          hl_rollup_row_fn fn, void *ctx);
    hl_err (*count)(hl_store *s, unsigned long long *out);
    /* Cloud spend per tenant since day and since month_day (UTC days since 1970). */
    hl_err (*cloud_spend)(hl_store *s, long long day, long long month_day, hl_store_spend_fn fn, void *ctx);
    /* Client keys (hl_store.h); see there. */
    hl_err (*key_insert)(hl_store *s, const hl_store_key *k, long long *id_out);
    hl_err (*key_update)(hl_store *s, const hl_store_key *k);
    hl_err (*keys_list)(hl_store *s, hl_store_key_fn fn, void *ctx);
    hl_err (*key_touch)(hl_store *s, long long id, long long ms);
    /* Cloud spend per key since day and since month_day (UTC days since 1970). */
    hl_err (*key_spend)(hl_store *s, long long day, long long month_day, hl_store_key_spend_fn fn, void *ctx);
    /* Instances' heartbeats (hl_store.h: hl_store_heartbeat). */
    hl_err (*heartbeat)(hl_store *s, const char *id, long long now_ms, long long since_ms, int *live);
    /* Budget leases (hl_store.h), inside begin/commit. lease_read takes the subject's lock
     * (PostgreSQL: an advisory transaction lock; SQLite: BEGIN IMMEDIATE holds the write
     * lock already), records this instance as seen at now_ms, deletes the subject's leases of
     * other instances not seen since live_since_ms (only this subject's rows: a transaction
     * holding one subject's lock never waits for rows another one holds), then
     * reads in one statement the subject's spend since day / month_day (UTC days) and the
     * leases (this instance's: *mine; the others': *others). lease_add sets this instance's
     * lease to max(0, lease + delta), creating the row only when delta > 0. */
    hl_err (*lease_read)(hl_store *s, const char *subject, const hl_store_lease_ask *a, long long day,
                         long long month_day, long long now_ms, long long live_since_ms,
                         hl_store_lease_result *out, double *mine);
    hl_err (*lease_add)(hl_store *s, const char *subject, double delta, long long now_ms);
    hl_err (*leases_list)(hl_store *s, hl_store_lease_fn fn, void *ctx);
    bool shared;              /* several gateways can use one store at once */
} hl_store_ops;

typedef struct hl_store_indexer hl_store_indexer;

struct hl_store {
    const hl_store_ops *ops;
    void *impl;               /* the backend's connection state (owned by the backend); NULL:
                                 opened with hl_store_open_later, not connected */
    char *location;           /* owned copy: the indexer thread opens its own connection */
    bool must_exist;          /* hl_store_open_existing: open a hybridllm ledger, create nothing */
    char errmsg[512];
    char instance[129];       /* hl_store_set_instance; "": takes and settles no leases */
    hl_store_indexer *indexer; /* owned; NULL when no background indexer runs */
};

/* Formats the store's error message (what hl_store_errmsg returns). */
void hl_store_set_error(hl_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A record's status column as the scan reports it (NULL, none: HL_STORE_STATUS_OK). */
hl_store_status hl_store_status_parse(const char *s);

extern const hl_store_ops hl_store_sqlite_ops;
extern const hl_store_ops hl_store_pg_ops;


#endif
