/* hl_shadow: shadow comparisons, the measure of quality on the user's own traffic.
 *
 * A route with `shadow: {rate, to, compare, ...}` (hl_config.h) has a share of its requests,
 * drawn deterministically from the request id (hl_shadow_draw), asked again of other backends
 * once the client has its whole answer, and each shadow answer scored against the served one.
 * The client never waits for it and never sees it; the ledger gets one line per shadow call
 * (shadow: true, the score, its method, agree, reference "served", both answers' output
 * tokens, the local answer's confidence), never the texts.
 *
 * A shadow job's phases, one after the other, never by recursion (each step starts from a
 * callback or the scheduler's timer):
 *
 *   offered --(admitted: a free slot or room in the queue; else dropped_busy)--> QUEUED
 *   QUEUED --(a slot: the scheduler's timer)--> CALLING (one non-streamed provider call)
 *   CALLING --(answer)--> SCORING (hl_compare; or the embeddings call; or the judge, asked
 *                          twice with the answers swapped) --> RECORDED (the ledger line) --> freed
 *   any failure: the ledger line with its error, counted failed, freed.
 *
 * Off the critical path: the exchange offers its job after the last byte of the answer went
 * to the connection (its FINISHING phase), and the job starts on a later loop turn. Lowest
 * priority: each event loop runs at most shadow.max_concurrent shadow calls and queues at most
 * shadow.max_queue; past that a shadow is dropped and counted; a builtin backend is shadowed
 * only while it has an idle sequence (hl_builtin_idle); a backend whose own queue is full
 * drops it too. Privacy: a shadow (and a judge or embeddings call) to a cloud backend needs
 * the route's `cloud: true`, a request that is not sensitive (hl_privacy's verdict, which the
 * exchange hands over, a key kept local included) and a key allowed that backend; a cloud
 * shadow is skipped while a cloud budget or the key's budget is spent. Shadow spend is a
 * normal ledger line: the budgets count it.
 *
 * Counters (GET /metrics): hybridllm_shadow_total{result=compared|dropped_busy|
 * dropped_privacy|dropped_budget|failed|skipped_size}.
 *
 * Threads: a scheduler belongs to one event loop; everything here runs on it. */
#ifndef HL_SHADOW_H
#define HL_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include "hl_exchange.h"

/* What a shadow came to, for the counters. */
typedef enum hl_shadow_result {
    HL_SHADOW_COMPARED, HL_SHADOW_DROPPED_BUSY, HL_SHADOW_DROPPED_PRIVACY, HL_SHADOW_DROPPED_BUDGET,
    HL_SHADOW_FAILED, HL_SHADOW_SKIPPED_SIZE, HL_SHADOW_N_RESULTS
} hl_shadow_result;

const char *hl_shadow_result_name(hl_shadow_result r);

/* The draw: whether the request with this id is shadowed at rate in [0, 1]. Deterministic
 * (a hash of the id against the rate), so a replay draws the same requests; rate 0: never,
 * 1: always. */
bool hl_shadow_draw(const char *request_id, double rate);

/* The queue policy. A new shadow, with `running` calls in flight and `queued` waiting: RUN
 * (a slot is free and nobody waits), QUEUE (room in the queue), DROP (busy: counted). */
typedef enum hl_shadow_admit { HL_SHADOW_RUN, HL_SHADOW_QUEUE, HL_SHADOW_DROP } hl_shadow_admit;
hl_shadow_admit hl_shadow_admission(int running, int queued, int max_concurrent, int max_queue);

/* The served answer, captured for comparison while it streams (text and tool calls, up to a
 * size cap) or taken whole. Owned by the exchange until offered. */
typedef struct hl_shadow_capture {
    hl_chat_response resp;  /* text, tool_calls */
    size_t bytes;           /* captured so far */
    bool over;              /* passed the cap: nothing more kept, the shadow is skipped */
    json_t *logprobs;       /* a streamed answer's logprobs content entries (owned); NULL */
} hl_shadow_capture;

void hl_shadow_capture_init(hl_shadow_capture *c);
void hl_shadow_capture_release(hl_shadow_capture *c);
/* Adds a stream event (text, tool-call fragments, logprobs) to c; past cap bytes, c->over. */
void hl_shadow_capture_event(hl_shadow_capture *c, const hl_stream_event *ev, size_t cap);
/* Takes a whole answer's text and tool calls (moved out of resp; its logprobs stay). */
void hl_shadow_capture_take(hl_shadow_capture *c, hl_chat_response *resp, size_t cap);

/* Who the shadow is for: the served request's identity for the ledger line. Strings are
 * copied by hl_shadow_offer. */
typedef struct hl_shadow_served {
    const char *request_id, *client_id;   /* client_id NULL when none */
    const char *tenant, *route_reason, *task_type, *pii; /* NULL when none */
    bool task_inferred;
    const hl_key_info *key;
    bool sensitive;             /* hl_privacy's verdict (a key kept local included) */
    const hl_backend *backend;  /* that served */
    int attempts;               /* upstream calls the request made */
    long output_tokens;         /* the served answer's */
    double confidence;          /* the served answer's when local and known; < 0 unknown */
    bool signals;               /* confidence_margin and confidence_min known */
    double confidence_margin, confidence_min;
} hl_shadow_served;

/* One scheduler per event loop. NULL when out of memory. */
hl_shadow *hl_shadow_new(uv_loop_t *loop);
/* Cancels the calls in flight, drops the queue (nothing recorded) and frees the scheduler
 * once the loop has closed its timer. */
void hl_shadow_close(hl_shadow *sh);

/* Offers the shadows of rule (rule->n_shadow_to > 0) for a request whose client has its
 * answer: one job per target backend other than the one that served, each admitted, dropped
 * or skipped and counted. req and cap are taken (left released); the exchange must not
 * use them after. */
void hl_shadow_offer(hl_exchange_env *env, const hl_route_rule *rule, const hl_shadow_served *served,
                     hl_chat_request *req, hl_shadow_capture *cap);

/* The judge's verdict in a reply: +1 the second answer ("B") is better, -1 the first ("A"),
 * 0 a tie; HL_ERR_PARSE when the reply is none of A, B, TIE. */
hl_err hl_shadow_judge_verdict(const char *reply, int *out);

/* An upstream's embeddings answer for both answers (OpenAI's list: data[0] and data[1], each an
 * embedding of the same length, 1..HL_SHADOW_MAX_DIM numbers finite as floats) into *vecs (2 x *dim
 * floats, the caller frees) and *tokens (usage.prompt_tokens, -1 when absent). HL_ERR_PARSE
 * (nothing allocated) for anything else. */
#define HL_SHADOW_MAX_DIM 65536
hl_err hl_shadow_embeddings_parse(const char *body, size_t len, float **vecs, size_t *dim, long *tokens);

#endif
