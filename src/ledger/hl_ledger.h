/* hl_ledger: the cost ledger, one JSON line per inference attempt: its writer, and the one
 * reader every consumer uses (the store's indexer, advise, simulate, the budgets' replay).
 *
 * Each record is formatted in memory and handed to the kernel with a single write() on an
 * O_APPEND descriptor before the client receives the last byte of its response, so a gateway
 * killed at any moment has lost no completed request (the page cache survives the process;
 * hl_ledger_close() fsyncs for machine crashes). O_APPEND keeps lines from several event-loop
 * threads whole without a lock.
 *
 * ---- The line ----
 *
 * UTF-8 text, one flat JSON object per line, ended by '\n', at most HL_LEDGER_MAX_LINE bytes.
 * A reader sees whole lines plus, at most, the start of one still being written at the end of
 * the file: an unterminated last line is not read (it is counted as partial). Keys may come in
 * any order and with any JSON whitespace; the writer puts timestamp first, which
 * hl_ledger_line_time() uses as a fast path (and falls back to a full parse otherwise). A
 * known key given twice makes the line malformed. Unknown keys are ignored (their values must
 * still be JSON). "null" and a missing key mean the same. Strings are UTF-8; "\u0000" is
 * refused. Field by field (R: required, else optional with the default shown):
 *
 *   timestamp      R  string, ISO 8601 as hl_time.h accepts it; no zone means UTC. When the
 *                     attempt started. The writer: "2025-03-01T12:00:00.250Z" (milliseconds,
 *                     rounded); the brief's CostTracker: "2025-03-01T12:00:00.250000".
 *                     Must not be before 1970.
 *   source         R  "cloud" or "local".
 *   input_tokens   R  integer >= 0: every prompt token, cached or not.
 *   output_tokens  R  integer >= 0.
 *   latency_ms     R  number: wall time of the attempt.
 *   cost_usd       R  number, or null: a cloud model with no configured price. The key itself
 *                     must be present.
 *   request_id        string, not empty; see "identity" below. The gateway writes its own
 *                     id ("req_" and 24 hex digits), never one a client chose.
 *   client_request_id string: the x-request-id the client sent (echoed to it), for
 *                     correlation only; absent when it sent none.
 *   attempt           integer 1..INT_MAX: 1 for the first upstream call of a request; required
 *                     when request_id is given, else 1.
 *   backend, model, route_reason, tenant, task_type, pii, error      string; null.
 *   status            string: ok | error | cancelled | escalated (a local answer below the
 *                     confidence threshold, held while the cloud was asked); null. Readers
 *                     that count served requests take a missing status as "ok" (the brief's
 *                     records have none).
 *   stream, usage_estimated, task_inferred, sensitive                boolean; false.
 *   ttft_ms           number; null (not streamed, or no token arrived).
 *   cached_input_tokens, cache_write_tokens                          integer >= 0; 0.
 *   confidence        number 0..1: of a local answer, the geometric mean of its token
 *                     probabilities; written when it was judged for escalation or is one side
 *                     of a comparison (score); null (not known).
 *   confidence_margin number 0..1: of the same answer, the first token's top-1 minus top-2
 *                     probability; null (not known). Given with confidence_min or not at all.
 *   confidence_min    number 0..1: of the same answer, its least likely token's probability;
 *                     null (not known).
 *   http_status       integer 0..999: what the upstream answered; 0.
 *   key_id            integer >= 1: the store's id of the client key the request came with;
 *                     absent when none (no key, or one from server.api_keys_env).
 *   key_name          string: that key's name, never the key; absent when none.
 *
 * Quality (shadow comparisons and `hybridllm eval`):
 *   shadow            boolean; false. The attempt ran after the client had its answer, only to
 *                     be compared with it: the client never saw it. Its cost is spent (budgets
 *                     count it) but it answered no request: readers that count served
 *                     requests, latency or errors skip it. It carries the request_id of the
 *                     request it shadows and an attempt number after the served ones.
 *   score             number 0..1: how far this answer agrees with its reference; null (not
 *                     compared).
 *   score_method      string, with score: exact | json | tools | token_f1 | rouge_l |
 *                     embedding | judge (how score was computed); null.
 *   agree             boolean, with score: whether score reached the comparison's threshold
 *                     (1.0 for exact, json and tools); null.
 *   reference         string, with score: what it was compared with: "served" (the answer the
 *                     client got), "expected" (an eval dataset's expected answer), or the name
 *                     of an eval's reference backend; null.
 *   ref_output_tokens integer >= 0, with score: the reference answer's output tokens; null.
 *   eval_run          string: the id of the `hybridllm eval` run that wrote the line (not
 *                     gateway traffic); null.
 *
 * Replicas. replica   string: the URL of the replica the attempt went to, for a backend whose
 *                     base_url lists replicas (`replicas: true`), credentials masked; absent
 *                     otherwise.
 *
 * Identity. A record is keyed by (request_id, attempt): a reader keeps the first line with a
 * key and skips later ones (the same line again: a duplicate; another timestamp: a conflict,
 * e.g. a client reusing x-request-id). The brief's CostTracker lines have no request id: their
 * key is derived from their content, request_id "ct-" and 32 hex digits of a 128-bit hash of
 * the six brief fields (timestamp to the microsecond, source, both token counts, latency_ms
 * and cost_usd as parsed), attempt 1. So the same line read twice (a journal concatenated with
 * itself) counts once, and two records differing in any of those fields count twice; two
 * records equal in all six (same microsecond, same tokens, latency and cost) are
 * indistinguishable and count once. */
#ifndef HL_LEDGER_H
#define HL_LEDGER_H

#include <stdatomic.h>
#include <stdbool.h>
#include "hl_buf.h"
#include "hl_chat.h"

/* Ceiling on one line: the writer formats a record into a 1 MiB buffer, so anything longer is
 * not a ledger record (readers skip it as malformed). */
#define HL_LEDGER_MAX_LINE (1u << 20)

typedef struct hl_ledger {
    int fd;
    char *path;
    atomic_ulong records;      /* lines written */
    atomic_ulong write_errors; /* lines that could not be written */
} hl_ledger;

typedef struct hl_ledger_record {
    double timestamp;          /* Unix time, seconds (start of the attempt) */
    const char *request_id;    /* the gateway's own id of the request, unique */
    const char *client_request_id; /* the client's x-request-id, NULL when it sent none */
    int attempt;               /* 1 for the first upstream call of a request */
    bool cloud;                /* source: "cloud" or "local" */
    const char *backend, *model, *route_reason;
    const char *status;        /* ok | error | cancelled | escalated (a local answer below the
                                  confidence threshold, held while the cloud was asked) */
    const char *tenant;        /* NULL when none */
    long long key_id;          /* the store's id of the client key used; 0: none (or a key
                                  from server.api_keys_env) */
    const char *key_name;      /* that key's name (never the key); NULL when none */
    const char *pii;           /* PII types the detector found ("email:1"), NULL when none */
    const char *task_type;     /* declared or inferred; NULL when neither */
    bool task_inferred;        /* task_type is the router's guess, not the client's */
    bool sensitive;
    bool stream;
    hl_usage usage;
    double latency_ms;
    double ttft_ms;            /* < 0: none (not streamed or no token arrived) */
    double confidence;         /* of a local answer: geometric mean of token probabilities;
                                  < 0: not known */
    bool signals;              /* the two below are known (both or neither: they come from
                                  the same token probabilities) */
    double confidence_margin;  /* its first token's top-1 minus top-2 probability */
    double confidence_min;     /* its least likely token's probability */
    double cost_usd;
    bool cost_known;           /* false: a cloud model with no configured price */
    int http_status;           /* status the upstream answered, 0 when none */
    const char *error;         /* NULL on success */
    /* Quality: see "Quality" above. */
    bool shadow;               /* compared only, never served */
    bool scored;               /* compared: score and the four below are set */
    double score;              /* 0..1 */
    const char *score_method;  /* with score: how it was computed */
    bool agree;                /* with score: it reached the comparison's threshold */
    const char *reference;     /* with score: "served", "expected" or a backend name */
    long long ref_output_tokens; /* with score: the reference answer's output tokens */
    const char *eval_run;      /* the eval run that wrote it; NULL: gateway traffic */
    const char *replica;       /* the replica's URL (credentials masked); NULL: none */
} hl_ledger_record;

/* Opens (creating, mode 0640) path for appending. HL_ERR_IO with errno set on failure. */
hl_err hl_ledger_open(hl_ledger *l, const char *path);
/* Formats rec into out (one line, '\n' included). */
hl_err hl_ledger_format(const hl_ledger_record *rec, hl_buf *out);
/* Formats and writes one line. HL_ERR_IO when the kernel refused it (counted). */
hl_err hl_ledger_append(hl_ledger *l, const hl_ledger_record *rec);
/* fsyncs and closes. */
void hl_ledger_close(hl_ledger *l);

/* Lines one thread collects and writes with one write() (group commit). An event loop adds
 * the lines of a loop turn and flushes them before the next byte goes to any client (the
 * server's before_send hook), so a line still reaches the file before its client has the
 * last byte, for one write per turn instead of one per line. Owned by one thread. */
typedef struct hl_ledger_batch {
    hl_ledger *l;              /* borrowed */
    hl_buf buf;                /* whole lines not yet written */
    unsigned long lines;
} hl_ledger_batch;

void hl_ledger_batch_init(hl_ledger_batch *b, hl_ledger *l);
/* Formats rec into the batch (written by the next flush; at once when the batch is large).
 * HL_ERR_IO only when such a flush failed. */
hl_err hl_ledger_batch_add(hl_ledger_batch *b, const hl_ledger_record *rec);
/* Writes the collected lines. HL_ERR_IO when the kernel refused them (counted, as lines, in
 * write_errors); the batch is empty after it either way. */
hl_err hl_ledger_batch_flush(hl_ledger_batch *b);
/* Flushes, then frees the buffer. */
void hl_ledger_batch_release(hl_ledger_batch *b);

/* Writeback: a thread of its own asks the kernel to start writing the journal's full pages
 * to disk as they fill (sync_file_range, SYNC_FILE_RANGE_WRITE: no wait, no fsync) once at
 * least HL_LEDGER_WRITEBACK_MIN bytes are new, checking every period_ms. Left to itself the
 * kernel writes a busy journal back about 30 s after it was written, hundreds of megabytes at
 * once, in worker threads that hold a core for up to a millisecond at a time: every request
 * on the machine then waits (perf sched: 0.5-1.3 ms, ~40 times a second). Started this way,
 * the same work runs in pieces of a MiB or two, in this thread. It keeps the normal priority
 * the kernel's workers have: allocating the journal's blocks takes locks of its inode that the
 * event loops' write()s need too, and a thread starved while holding them (SCHED_IDLE on busy
 * cores) would stall the loops behind it. Lines are written by write() and readable at once
 * either way: this changes when they reach the disk, not what a reader or a crash sees. */
#define HL_LEDGER_WRITEBACK_MIN (1u << 20)

typedef struct hl_ledger_writeback hl_ledger_writeback;

/* Starts the thread over l's file (l must outlive it). *out NULL and HL_ERR_NOMEM or
 * HL_ERR_IO (errno set) when it could not start; the journal works without it. */
hl_err hl_ledger_writeback_start(hl_ledger *l, long period_ms, hl_ledger_writeback **out);
/* Bytes from the start of the file up to which writeback has been started (a page multiple).
 * Starts at the file's size when the thread started, rounded down to a page. */
unsigned long long hl_ledger_writeback_done(const hl_ledger_writeback *w);
/* Stops and joins the thread, frees w (NULL: nothing). */
void hl_ledger_writeback_stop(hl_ledger_writeback *w);

/* ---- reading (hl_ledger_read.c) ---- */

/* One line, parsed and validated. rec holds the fields as the writer takes them, so
 * hl_ledger_format(&e.rec, ...) writes the record back (rec.timestamp is ts_us / 1e6). Its
 * strings are borrowed from the entry: valid until hl_ledger_entry_release(). */
typedef struct hl_ledger_entry {
    hl_ledger_record rec;
    long long ts_us;           /* timestamp, microseconds since 1970 (>= 0) */
    long long ts_ms;           /* the same in milliseconds, rounded down */
    bool id_derived;           /* the line had no request_id: rec.request_id is derived */
    char id_buf[40];           /* the derived id */
    void *doc;                 /* owned: the parsed line the strings point into */
} hl_ledger_entry;

/* Parses one line (line[0..len), no '\n'; need not be terminated) into *e. HL_OK, or
 * HL_ERR_PARSE with why (one short phrase, e.g. "latency_ms missing") in why[0..why_len) and
 * *e holding nothing to release. Blank lines are HL_ERR_PARSE too ("blank line"): callers that
 * skip them check first (hl_ledger_blank). Release a parsed entry with
 * hl_ledger_entry_release() (safe on a failed or zeroed one). */
hl_err hl_ledger_parse_line(const char *line, size_t len, hl_ledger_entry *e, char *why, size_t why_len);
void hl_ledger_entry_release(hl_ledger_entry *e);
/* True when line[0..len) is only spaces, tabs and '\r'. */
bool hl_ledger_blank(const char *line, size_t len);
/* The line's timestamp in milliseconds, cheaply when the line starts with {"timestamp":"...
 * (as the writer writes it), else by parsing the whole line. HL_ERR_PARSE when the line is not
 * a valid record (on the fast path: when its timestamp is not valid). */
hl_err hl_ledger_line_time(const char *line, size_t len, long long *ms_out);

/* What a read saw. Every complete line is one of: blank, malformed, duplicate, conflict, or a
 * record handed to the callback. */
typedef struct hl_ledger_read_stats {
    size_t lines;              /* complete lines read */
    size_t blank;
    size_t records;            /* valid and first with their key: handed to the callback */
    size_t malformed;          /* not a ledger record (or longer than HL_LEDGER_MAX_LINE) */
    size_t duplicates;         /* key and timestamp already read: the same record again */
    size_t conflicts;          /* key already read with another timestamp: the first is kept */
    bool partial;              /* the file ends with an unterminated line (not read) */
    long long end_offset;      /* file offset just past the last complete line */
    size_t first_bad_line;     /* 1-based line number of the first malformed line; 0: none */
    char first_bad[160];       /* why it is malformed */
} hl_ledger_read_stats;

/* Called once per record, in file order. line_no is 1-based (counting from offset). The entry
 * is valid during the call only. Return non-zero to stop the read with that error. */
typedef hl_err (*hl_ledger_entry_fn)(void *ctx, const hl_ledger_entry *e, size_t line_no);

/* Reads the journal at path from byte offset (0: the start; must be a line start) to its last
 * complete line, and calls fn for each valid record that is the first with its key, as the
 * store's indexer would keep it: the same lines, validated by hl_ledger_parse_line, deduplicated
 * by (request_id, attempt). Duplicates are told from conflicts as the indexer does. The set of
 * keys seen is held in memory (24 bytes a record: a 128-bit hash of the key and the timestamp).
 * st is zeroed first. HL_ERR_IO (errno set; errbuf names the file) when it cannot be opened or
 * read; HL_ERR_NOMEM; or fn's error. A missing file is HL_ERR_IO with errno ENOENT. */
hl_err hl_ledger_read(const char *path, long long offset, hl_ledger_entry_fn fn, void *ctx,
                      hl_ledger_read_stats *st, char *errbuf, size_t errbuf_len);

#endif
