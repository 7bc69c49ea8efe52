/* hl_ledger: the cost ledger, one JSON line per inference attempt.
 *
 * Each record is formatted in memory and handed to the kernel with a single write() on an
 * O_APPEND descriptor before the client receives the last byte of its response, so a gateway
 * killed at any moment has lost no completed request (the page cache survives the process;
 * hl_ledger_close() fsyncs for machine crashes). O_APPEND keeps lines from several event-loop
 * threads whole without a lock.
 *
 * Fields: the brief's (timestamp, source, input_tokens, output_tokens, latency_ms, cost_usd)
 * plus request_id, attempt, backend, model, route_reason, status, stream, ttft_ms,
 * cached_input_tokens, cache_write_tokens, usage_estimated, tenant, task_type, task_inferred,
 * sensitive, pii, confidence, http_status and error. */
#ifndef HL_LEDGER_H
#define HL_LEDGER_H

#include <stdatomic.h>
#include <stdbool.h>
#include "hl_buf.h"
#include "hl_chat.h"

typedef struct hl_ledger {
    int fd;
    char *path;
    atomic_ulong records;      /* lines written */
    atomic_ulong write_errors; /* lines that could not be written */
} hl_ledger;

typedef struct hl_ledger_record {
    double timestamp;          /* Unix time, seconds (start of the attempt) */
    const char *request_id;
    int attempt;               /* 1 for the first upstream call of a request */
    bool cloud;                /* source: "cloud" or "local" */
    const char *backend, *model, *route_reason;
    const char *status;        /* ok | error | cancelled | escalated (a local answer below the
                                  confidence threshold, held while the cloud was asked) */
    const char *tenant;        /* NULL when none */
    const char *pii;           /* PII types the detector found ("email:1"), NULL when none */
    const char *task_type;     /* declared or inferred; NULL when neither */
    bool task_inferred;        /* task_type is the router's guess, not the client's */
    bool sensitive;
    bool stream;
    hl_usage usage;
    double latency_ms;
    double ttft_ms;            /* < 0: none (not streamed or no token arrived) */
    double confidence;         /* of a local answer judged for escalation; < 0: not judged */
    double cost_usd;
    bool cost_known;           /* false: a cloud model with no configured price */
    int http_status;           /* status the upstream answered, 0 when none */
    const char *error;         /* NULL on success */
} hl_ledger_record;

/* Opens (creating, mode 0640) path for appending. HL_ERR_IO with errno set on failure. */
hl_err hl_ledger_open(hl_ledger *l, const char *path);
/* Formats rec into out (one line, '\n' included). */
hl_err hl_ledger_format(const hl_ledger_record *rec, hl_buf *out);
/* Formats and writes one line. HL_ERR_IO when the kernel refused it (counted). */
hl_err hl_ledger_append(hl_ledger *l, const hl_ledger_record *rec);
/* fsyncs and closes. */
void hl_ledger_close(hl_ledger *l);

#endif
