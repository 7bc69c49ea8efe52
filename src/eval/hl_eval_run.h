/* hl_eval_run: the calls of `hybridllm eval`: every item of a dataset on every named backend.
 *
 * The gateway's provider layer (hl_provider.h) drives the calls, exactly as hl_exchange does
 * for a client's request: one libuv loop of the run's own with an hl_upstream (HTTP kinds)
 * and a builtin mailbox (the embedded engine), non-streamed calls, the backend's timeouts.
 * At most `concurrency` calls are in flight; items go out in dataset order, each to every
 * backend. Retries follow the backend's config (max_retries, retry_base_ms..retry_max_ms
 * backoff, or the upstream's retry-after up to a minute) on what the gateway retries:
 * connection errors, timeouts, 408, 409, 429 and 5xx, never a spend limit. The circuit
 * breakers are not consulted: an eval asks every backend about every item.
 *
 * Privacy as in the gateway: each item goes through hl_privacy_decide with the config's
 * detector (redacting when the config says so) before any call, and a sensitive item is
 * never sent to a cloud backend: that call is refused, not made, and counted as refused.
 *
 * Local backends of kind openai and builtin are asked for logprobs, so that the answer's
 * confidence is known. Threads: hl_eval_run blocks on its loop until every call is over. */
#ifndef HL_EVAL_RUN_H
#define HL_EVAL_RUN_H

#include "hl_backend.h"
#include "hl_chat.h"
#include "hl_eval_data.h"
#include "hl_pii.h"
#include "hl_privacy.h"

typedef enum hl_eval_call_status {
    HL_EVAL_PENDING = 0,
    HL_EVAL_OK,       /* answered: resp holds the answer */
    HL_EVAL_ERROR,    /* no answer: error says why */
    HL_EVAL_REFUSED,  /* not sent: a sensitive item and a cloud backend */
} hl_eval_call_status;

/* One attempt of one item on one backend (the last one, in hl_eval_results.calls). */
typedef struct hl_eval_call {
    hl_eval_call_status status;
    int attempt;              /* the ledger's attempt: backend index + 1 + n_backends x retry */
    int retries;              /* retries done before this attempt */
    double wall0;             /* start of the attempt, Unix seconds */
    double latency_ms;
    int http_status;          /* what the upstream answered, 0 when nothing */
    char error[256];          /* ERROR: why; "" otherwise */
    hl_chat_response resp;    /* OK: the answer (owned); usage estimated when not reported */
    hl_usage usage;           /* OK: resp.usage; ERROR: zero */
    double cost_usd;          /* as the gateway prices it (hl_pricing.h) */
    bool cost_known;          /* false: a cloud model with no price */
    double confidence;        /* local answers with logprobs; < 0 unknown */
    bool signals;             /* confidence_margin and confidence_min known */
    double confidence_margin, confidence_min;
} hl_eval_call;

typedef struct hl_eval_opts {
    hl_backend **backends;    /* borrowed: the backends to ask, in output order */
    size_t n_backends;
    const hl_config *cfg;     /* borrowed: prices, privacy */
    const hl_pii_detector *pii; /* borrowed; NULL: detection off */
    int concurrency;          /* calls in flight at most, >= 1 */
    long timeout_ms;          /* per attempt; 0: each backend's timeout_ms */
    /* Called on the loop thread after each item-backend pair is done (may be NULL). */
    void (*progress)(void *ud, size_t done, size_t total);
    /* Called for each failed attempt that is retried (its ledger line; may be NULL), with the
     * item's privacy verdict. */
    void (*retried)(void *ud, size_t item, size_t backend, const hl_privacy_verdict *pv, const hl_eval_call *c);
    void *ud;
} hl_eval_opts;

typedef struct hl_eval_results {
    size_t n_items, n_backends;
    hl_eval_call *calls;            /* owned: [item * n_backends + backend] */
    hl_privacy_verdict *privacy;    /* owned: [item] */
} hl_eval_results;

static inline hl_eval_call *hl_eval_at(const hl_eval_results *r, size_t item, size_t backend) {
    return &r->calls[item * r->n_backends + backend];
}

/* Runs every item of ds (whose requests it may redact in place) on every backend of o.
 * HL_OK once all are done (failed calls are results, not errors); HL_ERR_NOMEM, or HL_ERR_IO
 * when the loop cannot be set up. Caller frees res with hl_eval_results_release. */
hl_err hl_eval_run(hl_eval_dataset *ds, const hl_eval_opts *o, hl_eval_results *res);
void hl_eval_results_release(hl_eval_results *res);

#endif
