/* hl_store: the queryable copy of the cost ledger.
 *
 * The JSONL journal written by hl_ledger stays the durable record: it is written before a
 * client gets its last byte, and nothing on the request path waits for a database. A store
 * is an index of that journal, built by tailing it: hl_store_index() reads from the last byte
 * offset it committed, parses complete lines only (a partial last line waits for the next
 * pass), inserts them in batches, and commits each batch together with the offset after its
 * last line. Records are keyed by (request_id, attempt) and inserted with "insert or
 * ignore", so a pass that died before its commit is simply replayed: no duplicates, no gaps.
 *
 * The journal's identity (device, inode, size, a hash of its first bytes) is kept with the
 * offset, so a journal that was rotated, truncated or replaced is detected and read again
 * from byte 0 (which the key makes harmless).
 *
 * The gateway runs the indexer on its own thread (hl_store_indexer_start) with its own
 * database connection, so event loops never block on the database.
 *
 * Backends: SQLite (hl_store_sqlite.c), a file path: one gateway's index; PostgreSQL
 * (hl_store_pg.c), a postgresql:// URI: one ledger for a fleet of gateways, each indexing its
 * own journal into it, and the budgets' shared running totals. Both have the same schema and
 * migration numbers. The journal tailing and parsing here are backend-neutral; a backend
 * implements the few operations in hl_store_int.h.
 *
 * Both keep, in the transaction that inserts records, the cloud spend per tenant and UTC day
 * (table cloud_spend, maintained by the database from the rows actually inserted, so a
 * replayed journal adds nothing twice): the figure budgets are checked against; and the
 * rollups `report` reads (hl_rollup.h), from the same inserted rows only.
 *
 * Threads: one hl_store is one connection, used by one thread at a time. The background
 * indexer opens a second connection of its own. */
#ifndef HL_STORE_H
#define HL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_err.h"
#include "hl_ledger.h"

typedef struct hl_store hl_store;

/* Time bounds meaning "no bound" for hl_store_scan() and the report. */
#define HL_STORE_TIME_MIN (-(1LL << 62))
#define HL_STORE_TIME_MAX (1LL << 62)

/* Ceiling on one journal line: the ledger formats a record into a 1 MiB buffer, so anything
 * longer is not a ledger record (it is skipped and counted as malformed). */
#define HL_STORE_MAX_LINE HL_LEDGER_MAX_LINE

/* Opens the store at location and applies any schema migrations it lacks: a SQLite file path
 * (created if needed), or a PostgreSQL URI "postgresql://[user@]host[:port]/dbname[?...]"
 * (the database must exist; a password belongs in PGPASSWORD or a passfile, not the URI).
 * On error returns non-zero, *out is NULL and errbuf holds one line naming the store (any
 * password masked) and the problem. Caller frees with hl_store_close(). */
hl_err hl_store_open(hl_store **out, const char *location, char *errbuf, size_t errbuf_len);
/* As hl_store_open, for a reader of a ledger that must already be there (`hybridllm report`):
 * a SQLite file that does not exist is not created (HL_ERR_IO), and one that is not a
 * hybridllm ledger (no schema_version table, or no table at all) is refused before anything
 * writes to it (HL_ERR_UNSUPPORTED). hl_store_open refuses another program's database too,
 * but creates a missing file and migrates an empty one. A PostgreSQL URI opens as with
 * hl_store_open. */
hl_err hl_store_open_existing(hl_store **out, const char *location, char *errbuf, size_t errbuf_len);
/* For a gateway that must start while its database is down: a handle on location that is not
 * connected. Only the indexer functions, hl_store_kind/shared and close work on it; the
 * indexer connects (and migrates) from its own thread, retrying every interval until it can,
 * and reports each failure in hl_store_indexer_stats_get(). HL_ERR_NOMEM only. */
hl_err hl_store_open_later(hl_store **out, const char *location);
/* True when location names a PostgreSQL database (a postgresql:// or postgres:// URI). */
bool hl_store_location_is_pg(const char *location);
/* Stops the background indexer if it runs (see hl_store_indexer_stop), closes, frees. NULL ok. */
void hl_store_close(hl_store *s);
/* The message of the last failed call on s; never NULL (borrowed, valid until the next call). */
const char *hl_store_errmsg(const hl_store *s);
/* The schema version the store is at (the highest migration applied). */
int hl_store_schema_version(hl_store *s);
/* location with any password in it replaced by "***", for messages and logs. */
void hl_store_redact(const char *location, char *out, size_t out_len);
/* "sqlite" or "postgresql". */
const char *hl_store_kind(const hl_store *s);
/* True when several gateways can share this store (PostgreSQL). */
bool hl_store_shared(const hl_store *s);

/* Receives one tenant's cloud spend (tenant "" for requests without one). */
typedef void (*hl_store_spend_fn)(void *ctx, const char *tenant, double day_usd, double month_usd);
/* Calls fn for every tenant with cloud spend in the current UTC month as of now_ms, with its
 * spend in the current UTC day and month, read in one statement (a consistent snapshot). */
hl_err hl_store_cloud_spend(hl_store *s, long long now_ms, hl_store_spend_fn fn, void *ctx);

/* ---- indexing the journal ---- */

typedef struct hl_store_index_stats {
    unsigned long long lines;      /* complete lines read in this pass */
    unsigned long long inserted;   /* new records */
    unsigned long long duplicates; /* lines whose record was already there (a replayed tail) */
    unsigned long long conflicts;  /* (request_id, attempt) already held by a different line
                                      (another timestamp): the first one is kept. The gateway
                                      accepts a client's x-request-id, so a client that reuses
                                      ids can cause this; each one is logged. */
    unsigned long long malformed;  /* lines skipped: not a ledger record (logged with offset) */
    unsigned long long bytes;      /* journal bytes consumed */
    long long offset;              /* committed offset after the pass */
    long long size;                /* the journal's size when the pass began */
    bool restarted;                /* the journal was rotated, truncated or replaced: it was
                                      read again from byte 0 */
} hl_store_index_stats;

/* Indexes journal_path from the last committed offset to its last complete line (as of the
 * call: what is appended meanwhile waits for the next call). stats may be
 * NULL; when given it is zeroed first. A journal that does not exist yet is HL_OK with nothing
 * read. HL_ERR_IO (errno set) when it cannot be read; a database failure returns its code
 * and hl_store_errmsg() says what failed. Batches committed before a failure stay committed. */
hl_err hl_store_index(hl_store *s, const char *journal_path, hl_store_index_stats *stats);

/* ---- the background indexer ---- */

typedef struct hl_store_indexer_stats {
    unsigned long long passes;     /* index passes run */
    unsigned long long inserted, duplicates, conflicts, malformed; /* totals over all passes */
    unsigned long long errors;     /* passes that failed */
    long long offset;              /* committed offset in the current journal */
    long long lag_bytes;           /* journal bytes not yet indexed at the end of the last pass */
    char last_error[512];          /* "" when the last pass succeeded */
} hl_store_indexer_stats;

/* Called on the indexer thread around every pass: before_pass just before it reads the
 * journal, after_pass after it committed, with the indexer's own connection (for
 * hl_store_cloud_spend). after_pass is not called when the pass failed. */
typedef struct hl_store_indexer_hooks {
    void (*before_pass)(void *ctx);
    void (*after_pass)(void *ctx, hl_store *conn);
    /* Called on the indexer thread with its connection when hl_store_indexer_poke woke it
     * (no pass runs then; passes keep their interval). NULL: pokes do nothing. */
    void (*poked)(void *ctx, hl_store *conn);
    void *ctx;
} hl_store_indexer_hooks;

/* Starts a thread that indexes journal_path every interval_ms (>= 1) milliseconds, on its own
 * connection to s's database (opened here, so a failure is reported now, unless s came from
 * hl_store_open_later: then the thread connects when it can). When the journal
 * file is replaced (rotation), the rest of the old file is indexed before the new one.
 * hooks may be NULL (copied). HL_ERR_INVAL if an indexer already runs on s. journal_path is
 * copied. */
hl_err hl_store_indexer_start(hl_store *s, const char *journal_path, long interval_ms,
                              const hl_store_indexer_hooks *hooks);
/* Asks for a pass now instead of at the next interval. Never blocks on the database. */
void hl_store_indexer_kick(hl_store *s);
/* Wakes the indexer thread to run hooks.poked soon (several pokes before it runs: one
 * call). Never blocks on the database. */
void hl_store_indexer_poke(hl_store *s);
/* Asks for a pass and waits until one that started after the call has finished, so every
 * line complete before the call is indexed (unless the pass failed: its error is returned and
 * hl_store_indexer_stats_get() has the message). HL_ERR_INVAL when no indexer runs. Blocks:
 * not for an event loop. */
hl_err hl_store_indexer_sync(hl_store *s);
/* Runs one last pass (so every line complete before the call is indexed), joins the thread
 * and closes its connection. No-op when no indexer runs. */
void hl_store_indexer_stop(hl_store *s);
/* Copies the indexer's counters (all zero when none runs). For /metrics: lag_bytes is the
 * ledger queue depth, errors the write errors. */
void hl_store_indexer_stats_get(hl_store *s, hl_store_indexer_stats *out);

/* ---- reading ---- */

/* What a scan groups by; each maps to one column (day: the UTC calendar day of timestamp). */
typedef enum hl_store_group {
    HL_STORE_GROUP_NONE,
    HL_STORE_GROUP_SOURCE,
    HL_STORE_GROUP_BACKEND,
    HL_STORE_GROUP_MODEL,
    HL_STORE_GROUP_TASK_TYPE,
    HL_STORE_GROUP_ROUTE_REASON,
    HL_STORE_GROUP_TENANT,
    HL_STORE_GROUP_KEY,        /* the client key's name (key_name) */
    HL_STORE_GROUP_DAY,
    HL_STORE_GROUP_PROMPT_LENGTH, /* input_tokens in buckets: "0-1k" (<= 1000), "1k-4k" (<= 4000),
                                     "4k-8k" (<= 8000), "8k+": the brief's "measure output
                                     quality at 1000, 4000 and 8000 tokens" */
    HL_STORE_GROUP_HOUR,       /* UTC "YYYY-MM-DDTHH" */
    HL_STORE_GROUP_WEEK,       /* the UTC week's Monday, "YYYY-MM-DD" */
    HL_STORE_GROUP_MONTH,      /* UTC "YYYY-MM" */
    HL_STORE_GROUP_STATUS,     /* ok | error | cancelled | escalated | other */
} hl_store_group;
#define HL_STORE_GROUP_LAST HL_STORE_GROUP_STATUS

/* Name of g as the CLI spells it ("source", "day"...). */
const char *hl_store_group_name(hl_store_group g);
/* Parses a --group-by value. HL_ERR_INVAL for an unknown name. */
hl_err hl_store_group_parse(const char *name, hl_store_group *out);

typedef enum hl_store_status {
    HL_STORE_STATUS_OK,
    HL_STORE_STATUS_ERROR,
    HL_STORE_STATUS_CANCELLED,
    HL_STORE_STATUS_ESCALATED,
    HL_STORE_STATUS_OTHER, /* a value this build does not know (no status at all is OK: the
                              brief's CostTracker lines have none, and every reader takes a
                              record without one as a served answer, see hl_ledger.h) */
} hl_store_status;

/* One record as a scan hands it out. */
typedef struct hl_store_row {
    const char *group;       /* the group's value, borrowed until the callback returns; NULL when
                                the record has none (no tenant, ...) or the scan is ungrouped */
    long long ts_ms;         /* Unix time in milliseconds (UTC) */
    bool cloud;
    long long input_tokens, output_tokens, cached_input_tokens, cache_write_tokens;
    double latency_ms;
    double ttft_ms;          /* < 0: none */
    double cost_usd;
    bool cost_known;         /* false: cost_usd was null (a cloud model without a price) */
    hl_store_status status;
    bool stream;
    /* Quality (hl_ledger.h "Quality"): */
    bool shadow;             /* compared only, never served: answered no client */
    bool scored;             /* compared: score and agree are set */
    double score;            /* 0..1; 0 when !scored */
    bool agree;              /* false when !scored */
    bool eval;               /* written by `hybridllm eval` (eval_run set): not gateway traffic */
    /* For counting requests (distinct request ids) without a hash set (hl_rollup.h, "Counting
     * requests": a request counts where its first attempt is, time included): */
    bool first_in_group;     /* no earlier attempt of this request (anywhere in the ledger) is
                                in the same group (hl_store_scan) or has the same values on
                                the query's `same` dimensions (hl_store_scan_query) */
    bool first_in_range;     /* no earlier attempt of this request at all (attempt 1), or none
                                that agrees on the query's `same_total` dimensions */
    /* Set by hl_store_scan_query only (NULL for none; borrowed like group): */
    const char *source, *backend, *model, *route_reason, *tenant, *key_name, *task_type;
    bool sensitive;
} hl_store_row;

/* Filters of a query: a record passes when it has every value given (NULL: any). */
typedef struct hl_store_filter {
    const char *tenant, *key_name, *backend, *model, *task_type, *source;
} hl_store_filter;

/* What hl_store_scan_query reads. */
typedef struct hl_store_query {
    long long from_ms, to_ms;    /* from <= ts < to */
    hl_store_filter filter;
    unsigned same;               /* HL_ROLLUP_SAME_* bits (hl_rollup.h): first_in_group is
                                    "no earlier attempt agrees on these" */
    unsigned same_total;         /* the same for first_in_range (0: no earlier attempt at all);
                                    a filter on source, backend or model puts its bits here */
} hl_store_query;

/* Returns HL_OK to go on; anything else stops the scan and is returned by hl_store_scan(). */
typedef hl_err (*hl_store_row_fn)(void *ctx, const hl_store_row *row);

/* Calls fn for every record with from_ms <= ts < to_ms (HL_STORE_TIME_MIN/MAX: unbounded), in
 * storage order. */
hl_err hl_store_scan(hl_store *s, hl_store_group g, long long from_ms, long long to_ms,
                     hl_store_row_fn fn, void *ctx);
/* Calls fn for every record of q, with every dimension set (group is NULL). */
hl_err hl_store_scan_query(hl_store *s, const hl_store_query *q, hl_store_row_fn fn, void *ctx);
/* The text of group g for row r into buf (day, hour, week, month, prompt_length, status are
 * computed; the others point into r): NULL when r has none. r must come from
 * hl_store_scan_query. */
const char *hl_store_group_value(hl_store_group g, const hl_store_row *r, char *buf, size_t len);
/* Number of records in the store. */
hl_err hl_store_count(hl_store *s, unsigned long long *out);

/* ---- client keys (table client_keys, migration 3) ----
 *
 * Virtual keys issued by an administrator (`hybridllm keys`, POST /admin/keys). The store
 * keeps a key's SHA-256 (hex), never the key; the gateway loads every key at start and again
 * after each indexer pass, so a revocation or change reaches every gateway on the store within
 * one ledger.index_interval_ms. */
typedef struct hl_store_key {
    long long id;               /* assigned by hl_store_key_insert */
    const char *name;           /* unique among keys; never NULL */
    const char *prefix;         /* "hl-" and the key's next 8 characters, for lists; never NULL */
    const char *hash;           /* 64 lower-case hex digits: SHA-256 of the key; never NULL */
    const char *tenant;         /* NULL: the key's name is the tenant */
    const char *backends;       /* comma-separated backend names the key may use; NULL: any */
    const char *models;         /* comma-separated model names the key may ask for; NULL: any */
    bool cloud_allowed;         /* false: the key's traffic stays local (as if sensitive) */
    double budget_day_usd, budget_month_usd; /* < 0: none */
    long long rpm, tpm;         /* requests / tokens per minute; 0: no limit */
    long long expires_at_ms;    /* 0: never */
    long long created_at_ms;
    long long last_used_at_ms;  /* 0: never */
    bool revoked;
} hl_store_key;

/* Receives one key; its strings are borrowed until the callback returns. HL_OK to go on. */
typedef hl_err (*hl_store_key_fn)(void *ctx, const hl_store_key *k);
/* Inserts k (its id ignored) and sets *id_out. A name already taken: HL_ERR_INVAL with the
 * store's message saying so. */
hl_err hl_store_key_insert(hl_store *s, const hl_store_key *k, long long *id_out);
/* Writes every field of k but id, hash, prefix and created_at to the key k->id.
 * HL_ERR_NOTFOUND when there is none; a name already taken: HL_ERR_INVAL. */
hl_err hl_store_key_update(hl_store *s, const hl_store_key *k);
/* Calls fn for every key (revoked ones too), in id order. */
hl_err hl_store_keys_list(hl_store *s, hl_store_key_fn fn, void *ctx);
/* Receives one key's cloud spend. */
typedef void (*hl_store_key_spend_fn)(void *ctx, long long key_id, double day_usd, double month_usd);
/* Calls fn for every key with cloud spend in the current UTC month as of now_ms (from the
 * ledger records indexed), with its spend in the current UTC day and month. */
hl_err hl_store_key_spend(hl_store *s, long long now_ms, hl_store_key_spend_fn fn, void *ctx);
/* Records that key id was used at ms (only ever moves forward). */
hl_err hl_store_key_touch(hl_store *s, long long id, long long ms);

/* ---- instances (table instances, migration 4) ----
 *
 * Each gateway records a heartbeat at every index pass, so the gateways on one store know how
 * many of them are live and divide the rate limits of keys and tenants among them. */

/* Records that instance id (non-empty, at most 128 bytes) was seen at now_ms (only ever moves
 * forward) and sets *live to the number of instances seen at or after since_ms, this one
 * included (>= 1). HL_ERR_INVAL for a bad id. */
hl_err hl_store_heartbeat(hl_store *s, const char *id, long long now_ms, long long since_ms, int *live);
/* The leases of the instances not seen since since_ms (other than id) are deleted too
 * (budget_leases above): their budget returns to the fleet. */

/* ---- budget leases (table budget_leases, migration 6) ----
 *
 * How a fleet of gateways on one PostgreSQL keeps the budgets of virtual keys and of their
 * tenants exact (src/gateway/hl_keybudget.h has the gateway's side). A subject ("key:ID" or
 * "tenant:NAME") has a spend (the ledger records indexed: a key's cloud records, a tenant's
 * cloud_spend) and one lease per instance: budget an instance has taken to admit requests
 * with, not yet spent. The invariant, for every subject with a budget:
 *
 *     spend + sum(leases of live instances) <= cap    (day and month caps alike)
 *
 * is kept by three operations: hl_store_lease_adjust takes budget (in a transaction that
 * locks the subject, so grants are serialized, and reads spend and leases in one statement,
 * so one snapshot) only when the invariant still holds after it, or gives budget back; the
 * indexer's insert of a batch of this instance's journal lines settles them (lowers this
 * instance's lease of each line's key and tenant by the line's cloud cost, never below 0) in
 * the transaction that inserts them, so a cost moves from lease to spend at once and is never
 * counted twice nor missed; and leases of instances whose heartbeat is older than the live
 * window are deleted (their budget returns) by every adjust and heartbeat. A request that
 * costs more than the lease held for it (a retry, an escalation) can pass the cap by that
 * excess; nothing else can. */

/* What hl_store_lease_adjust asks for. */
typedef struct hl_store_lease_ask {
    long long key_id;            /* the subject is key:key_id; 0: the subject is tenant */
    const char *tenant;          /* with key_id 0: the tenant (a non-empty name) */
    double cap_day, cap_month;   /* the subject's budgets in USD; < 0: none */
    double delta;                /* > 0: budget wanted (granted as far as the caps allow);
                                    < 0: budget given back (never below 0) */
    double extra;                /* with delta > 0 granted in full: headroom also wanted, granted
                                    up to (what the caps leave) / (2 * sharers) */
    int sharers;                 /* live instances (< 1: 1) */
} hl_store_lease_ask;

typedef struct hl_store_lease_result {
    double lease;                /* this instance's lease after the call */
    double granted;              /* the change applied: <= delta when delta > 0 */
    double spend_day, spend_month; /* the subject's spend as read under the lock */
    double others;               /* the other live instances' leases */
} hl_store_lease_result;

/* The lease arithmetic: how much of want (> 0) can be granted to an instance holding mine
 * when the subject has spent spend_day / spend_month and the other instances hold others:
 * min(want, min(cap_day - spend_day, cap_month - spend_month) - others - mine), at least 0
 * (a cap < 0 is none; no cap at all: want). */
double hl_store_lease_grant(double cap_day, double cap_month, double spend_day, double spend_month, double others,
                            double mine, double want);
/* The subject's name in budget_leases ("key:12", "tenant:team-a") into out. */
void hl_store_lease_subject(long long key_id, const char *tenant, char *out, size_t out_len);
/* The instance whose leases this connection takes and settles (hl_store_heartbeat's id; at
 * most 128 bytes). A store without one takes no leases (HL_ERR_INVAL) and its index passes
 * settle nothing (`hybridllm ledger index`). The background indexer's connection inherits
 * it (set it before hl_store_indexer_start). HL_ERR_INVAL for a bad id. */
hl_err hl_store_set_instance(hl_store *s, const char *id);
/* Takes or gives back budget of a subject for this instance, in one transaction: records
 * this instance's heartbeat at now_ms, deletes the leases of instances not seen since
 * live_since_ms, reads the spend in the UTC day and month of now_ms and the leases, and
 * applies hl_store_lease_grant (or the give-back). */
hl_err hl_store_lease_adjust(hl_store *s, const hl_store_lease_ask *a, long long now_ms, long long live_since_ms,
                             hl_store_lease_result *out);
/* Receives one lease of this instance. */
typedef void (*hl_store_lease_fn)(void *ctx, const char *subject, double amount);
/* Calls fn for every lease this instance holds. */
hl_err hl_store_leases_mine(hl_store *s, hl_store_lease_fn fn, void *ctx);

/* ---- time ---- */

/* hl_time_parse_ms (hl_time.h: the ledger's form "2024-05-01T12:00:00.250Z" and the shorter
 * forms a person types: "2024-05-01", "2024-05-01T12:00", "2024-05-01 12:00:00", with an
 * optional fraction and "Z" or "+HH:MM"/"-HH:MM" offset), kept for --from/--to. s need not be
 * terminated. HL_ERR_PARSE when it is none of these. */
hl_err hl_store_parse_time(const char *s, size_t n, long long *ms_out);
/* hl_time_format_ms: "YYYY-MM-DDTHH:MM:SS.mmmZ" (out: at least 25 bytes). */
void hl_store_format_time(long long ms, char *out, size_t out_len);

#endif
