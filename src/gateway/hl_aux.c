/* hl_aux: embeddings and token counting (see hl_aux.h).
 *
 * One request's life: ROUTING (parse, privacy, route, budget; synchronous), then one upstream
 * call at a time on the route's candidates (retry with backoff on the same backend, then the
 * next one), then the answer. The connection points at the request while a call is in flight
 * or a retry is waiting, so that a client going away cancels it (hl_aux_abort). */
#include "hl_aux.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hl_anthropic.h"
#include "hl_builtin.h"
#include "hl_log.h"
#include "hl_pricing.h"
#include "hl_privacy.h"
#include "hl_upstream.h"

#define AUX_MAGIC 0x41555821u /* an hl_exchange starts with its phase, a small enum */
#define MAX_EMBED_INPUTS 2048
#define MAX_AUX_BODY (64u << 20)

struct hl_aux {
    uint32_t magic;            /* AUX_MAGIC: first, see hl_aux_owns */
    hl_aux_kind kind;
    hl_exchange_env *env;
    hl_conn *conn;
    const hl_ingress *ing;     /* the error shape: OpenAI (embeddings) or Anthropic (count) */
    char request_id[64], client_id[64], tenant[64];
    long long key_id;          /* the client key's store id, 0: none */
    char key_name[64];         /* its name, "" none */
    hl_key_info key;           /* the client key (its budgets: embeddings reserve too) */
    double key_est, key_reserved; /* USD to reserve / reserved, released at the end */
    hl_kb_ticket key_ticket;   /* its place in the line for a fleet lease */
    bool budget_wait;          /* the timer polls admission, not a retry */
    double budget_wait_until;
    hl_chat_request req;       /* for privacy, routing and counting */
    hl_embed_request er;       /* embeddings */
    json_t *count_body;        /* count_tokens: the client's body (owned) */
    hl_privacy_verdict privacy;
    hl_route route;
    int cand, retries, n_attempt;
    double deadline;
    hl_api_error last_err;     /* why the last candidate failed; status 0: none yet */
    /* the call in flight */
    hl_backend *backend;
    const char *model;
    bool probe;
    bool tokenize;             /* a local server's POST /tokenize (count_tokens) */
    double t0, wall0;
    int status;
    double retry_after_ms;
    hl_upstream_call *up;
    hl_builtin_embed *job;     /* a builtin backend's embeddings job in flight */
    hl_buf body;
    uv_timer_t timer;
    bool timer_inited;
};

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool hl_aux_owns(const void *conn_data) {
    return conn_data && *(const uint32_t *)conn_data == AUX_MAGIC;
}

/* ------------------------------------------------------------------ parsing */

static hl_err bad(hl_api_error *err, const char *param, const char *msg) {
    return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, param, NULL, "%s", msg);
}

void hl_embed_request_release(hl_embed_request *er) {
    free(er->model);
    for (size_t i = 0; i < er->n_inputs; i++) free(er->inputs[i]);
    free(er->inputs);
    json_decref(er->body);
    memset(er, 0, sizeof *er);
}

static bool is_token_array(const json_t *v) {
    if (!json_is_array(v) || !json_array_size(v)) return false;
    size_t i;
    const json_t *t;
    json_array_foreach(v, i, t) if (!json_is_integer(t) || json_integer_value(t) < 0) return false;
    return true;
}

hl_err hl_embed_parse(const char *body, size_t len, hl_embed_request *er, hl_api_error *err) {
    json_error_t jerr;
    memset(er, 0, sizeof *er);
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, NULL, NULL,
                                "We could not parse the JSON body of your request: %s (at byte %d).", jerr.text,
                                jerr.position);
    er->body = root;
    if (!json_is_object(root)) return bad(err, NULL, "The request body must be a JSON object.");
    const json_t *v = json_object_get(root, "model");
    if (!json_is_string(v) || !json_string_length(v))
        return bad(err, "model", v ? "Invalid type for 'model': expected a non-empty string."
                                   : "Missing required parameter: 'model'.");
    HL_TRY(hl_strdup(&er->model, json_string_value(v)));
    const json_t *in = json_object_get(root, "input");
    if (!in) return bad(err, "input", "Missing required parameter: 'input'.");
    size_t n = json_is_string(in) || is_token_array(in) ? 1 : json_is_array(in) ? json_array_size(in) : 0;
    if (!n) return bad(err, "input", "Invalid 'input': expected a non-empty string, array of strings, array of "
                                     "token ids or array of token-id arrays.");
    if (n > MAX_EMBED_INPUTS) return bad(err, "input", "Invalid 'input': at most 2048 inputs per request.");
    if (!(er->inputs = calloc(n, sizeof *er->inputs))) return HL_ERR_NOMEM;
    er->n_inputs = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_is_string(in) || is_token_array(in) ? in : json_array_get(in, i);
        if (json_is_string(x)) {
            if (!json_string_length(x)) return bad(err, "input", "Invalid 'input': an input is an empty string.");
            HL_TRY(hl_strdup(&er->inputs[i], json_string_value(x)));
        } else if (is_token_array(x)) {
            er->tokens = true;
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "Invalid 'input[%zu]': expected a non-empty string or an array of token ids.", i);
            return bad(err, "input", msg);
        }
    }
    if (er->tokens)
        for (size_t i = 0; i < n; i++)
            if (er->inputs[i]) return bad(err, "input", "Invalid 'input': mixes strings and token arrays.");
    v = json_object_get(root, "encoding_format");
    if (v && !json_is_null(v)) {
        const char *f = json_string_value(v);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64")))
            return bad(err, "encoding_format", "Invalid 'encoding_format': expected 'float' or 'base64'.");
        er->base64 = !strcmp(f, "base64");
    }
    v = json_object_get(root, "dimensions");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
            return bad(err, "dimensions", "Invalid 'dimensions': expected an integer >= 1.");
        er->dimensions = (long)json_integer_value(v);
    }
    v = json_object_get(root, "user");
    if (v && !json_is_null(v) && !json_is_string(v)) return bad(err, "user", "Invalid type for 'user': expected a string.");
    return HL_OK;
}

hl_err hl_count_parse(const char *body, size_t len, hl_chat_request *req, hl_api_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, NULL, NULL,
                                root ? "The request body must be a JSON object."
                                     : "The request body is not valid JSON: %s (at byte %d).",
                                jerr.text, jerr.position);
    }
    hl_err rc = HL_OK;
    const json_t *th = json_object_get(root, "thinking");
    static const char *const not_here[] = {"max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k"};
    for (size_t i = 0; i < sizeof not_here / sizeof *not_here && !rc; i++)
        if (json_object_get(root, not_here[i]))
            rc = hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, not_here[i], NULL,
                                  "%s: Extra inputs are not permitted (count_tokens takes model, messages, system, "
                                  "tools, tool_choice and thinking).", not_here[i]);
    if (!rc && th && !json_is_object(th)) rc = hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "thinking", NULL,
                                                                "thinking: Input should be an object");
    /* The Messages parser wants max_tokens and knows no `thinking`: neither is counted. */
    json_t *copy = rc ? NULL : json_copy(root);
    if (!rc && !copy) rc = HL_ERR_NOMEM;
    if (!rc && (json_object_del(copy, "thinking"), json_object_set_new(copy, "max_tokens", json_integer(1))))
        rc = HL_ERR_NOMEM;
    char *s = rc ? NULL : json_dumps(copy, JSON_COMPACT);
    if (!rc && !s) rc = HL_ERR_NOMEM;
    if (!rc) rc = hl_anthropic_parse_request(s, strlen(s), req, err);
    free(s);
    json_decref(copy);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ rendering */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static hl_err put_base64(hl_buf *out, const unsigned char *p, size_t n) {
    HL_TRY(hl_buf_puts(out, "\""));
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = b64[v >> 18 & 63];
        q[1] = b64[v >> 12 & 63];
        q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        HL_TRY(hl_buf_append(out, q, 4));
    }
    return hl_buf_puts(out, "\"");
}

hl_err hl_embed_render(const char *up, size_t up_len, bool base64, const char *model, hl_buf *out,
                       long *prompt_tokens) {
    *prompt_tokens = -1;
    json_t *root = json_loadb(up, up_len, 0, NULL);
    const json_t *data = json_object_get(root, "data");
    hl_err rc = HL_ERR_PARSE;
    unsigned char *bytes = NULL;
    if (!json_is_array(data) || !json_array_size(data)) goto out;
    rc = hl_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    size_t i;
    const json_t *d;
    json_array_foreach(data, i, d) {
        const json_t *emb = json_object_get(d, "embedding");
        const json_t *idx = json_object_get(d, "index");
        if (rc || !json_is_array(emb) || !json_array_size(emb)) {
            rc = rc ? rc : HL_ERR_PARSE;
            goto out;
        }
        rc = hl_buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%lld,\"embedding\":", i ? "," : "",
                           json_is_integer(idx) ? (long long)json_integer_value(idx) : (long long)i);
        size_t dims = json_array_size(emb);
        free(bytes);
        bytes = base64 ? malloc(dims * 4) : NULL;
        if (!rc && base64 && !bytes) rc = HL_ERR_NOMEM;
        if (!rc && !base64) rc = hl_buf_puts(out, "[");
        for (size_t k = 0; k < dims && !rc; k++) {
            const json_t *x = json_array_get(emb, k);
            if (!json_is_number(x)) {
                rc = HL_ERR_PARSE;
                break;
            }
            double val = json_number_value(x);
            float f = (float)val;
            if (base64) {
                uint32_t u;
                memcpy(&u, &f, 4);
                for (int b = 0; b < 4; b++) bytes[4 * k + (size_t)b] = (unsigned char)(u >> (8 * b)); /* LE */
            } else {
                /* the upstream's value, unchanged (shortest round-trip form) */
                rc = k ? hl_buf_puts(out, ",") : HL_OK;
                if (!rc) rc = hl_buf_double(out, val);
            }
        }
        if (!rc) rc = base64 ? put_base64(out, bytes, dims * 4) : hl_buf_puts(out, "]");
        if (!rc) rc = hl_buf_puts(out, "}");
        if (rc) goto out;
    }
    const json_t *u = json_object_get(root, "usage");
    const json_t *pt = json_object_get(u, "prompt_tokens");
    if (json_is_integer(pt)) *prompt_tokens = (long)json_integer_value(pt);
    long p = *prompt_tokens < 0 ? 0 : *prompt_tokens;
    rc = hl_buf_puts(out, "],\"model\":");
    if (!rc) rc = hl_json_put_str(out, model);
    if (!rc) rc = hl_buf_printf(out, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", p, p);
out:
    free(bytes);
    json_decref(root);
    return rc;
}

/* A float in the shortest form that reads back as the same float. */
static hl_err put_float(hl_buf *out, float f) {
    char tmp[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
        if (strtof(tmp, NULL) == f) break;
    }
    return hl_buf_puts(out, tmp);
}

hl_err hl_embed_render_vectors(const float *vecs, size_t n, uint32_t dim, bool base64, const char *model,
                               long prompt_tokens, hl_buf *out) {
    unsigned char *bytes = base64 ? malloc((size_t)dim * 4 + 1) : NULL;
    hl_err rc = base64 && !bytes ? HL_ERR_NOMEM : hl_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n && !rc; i++) {
        const float *v = vecs + i * dim;
        rc = hl_buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (base64) {
            for (uint32_t k = 0; k < dim; k++) {
                uint32_t u;
                memcpy(&u, &v[k], 4);
                for (int b = 0; b < 4; b++) bytes[4 * (size_t)k + (size_t)b] = (unsigned char)(u >> (8 * b)); /* LE */
            }
            if (!rc) rc = put_base64(out, bytes, (size_t)dim * 4);
        } else {
            if (!rc) rc = hl_buf_puts(out, "[");
            for (uint32_t k = 0; k < dim && !rc; k++) {
                rc = k ? hl_buf_puts(out, ",") : HL_OK;
                if (!rc) rc = put_float(out, v[k]);
            }
            if (!rc) rc = hl_buf_puts(out, "]");
        }
        if (!rc) rc = hl_buf_puts(out, "}");
    }
    if (!rc) rc = hl_buf_puts(out, "],\"model\":");
    if (!rc) rc = hl_json_put_str(out, model);
    if (!rc) rc = hl_buf_printf(out, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", prompt_tokens,
                                prompt_tokens);
    free(bytes);
    return rc;
}

/* ------------------------------------------------------------------ ending */

static void aux_closed(uv_handle_t *h) { free(h->data); }

static void aux_free(hl_aux *a) {
    if (a->key_reserved > 0) hl_key_budgets_release(a->env->key_budgets, &a->key, a->key_reserved);
    a->key_reserved = 0;
    if (a->up) hl_upstream_cancel(a->up);
    if (a->job) hl_builtin_embed_cancel(a->job);
    hl_chat_request_release(&a->req);
    hl_embed_request_release(&a->er);
    json_decref(a->count_body);
    hl_buf_release(&a->body);
    a->magic = 0;
    if (a->timer_inited) {
        a->timer.data = a;
        uv_close((uv_handle_t *)&a->timer, aux_closed);
    } else {
        free(a);
    }
}

static const char *echo_id(const hl_aux *a) { return a->client_id[0] ? a->client_id : a->request_id; }

static void base_headers(const hl_aux *a, hl_buf *h) {
    hl_exchange_id_headers(a->ing, echo_id(a), h);
    hl_buf_header(h, "x-hybridllm-request-id", a->request_id);
    if (a->route.reason[0]) hl_buf_header(h, "x-hybridllm-route-reason", a->route.reason);
    if (a->privacy.pii[0]) hl_buf_header(h, "x-hybridllm-pii-detected", a->privacy.pii);
}

static void finish_error(hl_aux *a, const hl_api_error *err) {
    hl_buf h;
    hl_buf_init(&h, 0);
    base_headers(a, &h);
    hl_conn_set_data(a->conn, NULL);
    hl_exchange_respond_error(a->conn, a->ing, echo_id(a), err, h.data);
    hl_buf_release(&h);
    aux_free(a);
}

/* Sends body (200) with the route's headers and extra lines. */
static void finish_ok(hl_aux *a, const hl_buf *body, const char *extra) {
    hl_buf h;
    hl_buf_init(&h, 0);
    base_headers(a, &h);
    if (a->backend) hl_buf_header(&h, "x-hybridllm-backend", a->backend->cfg->name);
    if (a->model) hl_buf_header(&h, "x-hybridllm-model", a->model);
    if (extra) hl_buf_puts(&h, extra);
    hl_conn_set_data(a->conn, NULL);
    hl_conn_respond(a->conn, 200, h.data, "application/json", body->data ? body->data : "", body->len);
    hl_buf_release(&h);
    aux_free(a);
}

static void answer_count(hl_aux *a, long n, const char *method) {
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_buf_printf(&b, "{\"input_tokens\":%ld}", n);
    char extra[80];
    snprintf(extra, sizeof extra, "x-hybridllm-token-count: %s\r\n", method);
    if (!strcmp(method, "estimate")) a->backend = NULL, a->model = NULL;
    finish_ok(a, &b, extra);
    hl_buf_release(&b);
}

/* The ledger line of an embeddings attempt; returns its cost. */
static double record(hl_aux *a, const char *status, long input_tokens, bool estimated, const char *error) {
    hl_exchange_env *env = a->env;
    double latency = now_ms() - a->t0;
    hl_usage u = {.input_tokens = input_tokens, .known = !estimated, .estimated = estimated};
    hl_ledger_record r = {
        .timestamp = a->wall0, .request_id = a->request_id,
        .client_request_id = a->client_id[0] ? a->client_id : NULL, .attempt = a->n_attempt,
        .cloud = hl_backend_is_cloud(a->backend), .backend = a->backend->cfg->name, .model = a->model,
        .route_reason = a->route.reason, .status = status, .tenant = a->tenant[0] ? a->tenant : NULL,
        .key_id = a->key_id, .key_name = a->key_name[0] ? a->key_name : NULL,
        .pii = a->privacy.pii[0] ? a->privacy.pii : NULL, .task_type = a->req.task_type,
        .sensitive = a->privacy.sensitive, .usage = u, .latency_ms = latency, .ttft_ms = -1, .confidence = -1,
        .http_status = a->status, .error = error,
    };
    if (r.cloud) {
        const hl_price *p = hl_config_price(env->cfg, a->model);
        r.cost_known = p != NULL;
        r.cost_usd = p ? hl_pricing_cloud(p, &u) : 0;
    } else {
        r.cost_known = true;
        r.cost_usd = hl_pricing_local(a->backend->cfg->hourly_cost_usd, latency);
    }
    hl_metrics_attempt(env->metrics, (size_t)(a->backend - env->bs->v), hl_metrics_status_of(status), input_tokens, 0,
                       r.cost_usd, latency, -1);
    if (r.cloud && r.cost_known) hl_budgets_add(env->budgets, r.tenant, r.cost_usd, (time_t)wall_now());
    if (hl_exchange_ledger_add(env, &r) != HL_OK) hl_log(HL_LOG_ERROR, "ledger write failed for %s", a->request_id);
    /* After the line: the indexer settles a fleet lease by the lines it finds. */
    if (r.cloud && r.cost_known) hl_key_budgets_add(env->key_budgets, &a->key, r.cost_usd, (long long)(wall_now() * 1000));
    return r.cost_usd;
}

/* ------------------------------------------------------------------ upstream calls */

static void run(hl_aux *a);

static void schedule(hl_aux *a, double delay_ms);

/* Admission of an embeddings request against its key's (and tenant's) budgets with
 * a->key_est: true admitted; false answered (refused) or waiting (a fleet lease: the timer
 * asks again). */
static bool key_budget_poll(hl_aux *a) {
    hl_kb_refusal why = {0};
    hl_kb_verdict v = hl_key_budgets_admit(a->env->key_budgets, &a->key, a->key_est, (long long)(wall_now() * 1000),
                                           &a->key_ticket, &why);
    a->budget_wait = false;
    if (v == HL_KB_ADMIT) {
        a->key_reserved = a->key_est;
        return true;
    }
    hl_api_error err;
    if (v == HL_KB_WAIT && now_ms() < a->budget_wait_until) {
        a->budget_wait = true;
        hl_conn_set_data(a->conn, a);
        schedule(a, HL_KB_POLL_MS);
        return false;
    }
    if (v == HL_KB_WAIT)
        hl_api_error_set(&err, 503, HL_AE_UNAVAILABLE, NULL, "budget_unavailable",
                         "The budget of this API key could not be reserved: the ledger store did not answer "
                         "in time. Retry later.");
    else
        hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "budget_exceeded",
                         "The %s budget of this API key%s is spent or reserved ($%.4f of $%.2f, this request may "
                         "cost up to $%.4f); requests that need the cloud are refused until it resets.",
                         why.month ? "monthly" : "daily", why.tenant ? "'s tenant" : "", why.spent, why.limit,
                         a->key_est);
    finish_error(a, &err);
    return false;
}

static void on_timer(uv_timer_t *t) {
    hl_aux *a = t->data;
    if (a->budget_wait && !key_budget_poll(a)) return;
    run(a);
}

static void schedule(hl_aux *a, double delay_ms) {
    if (!a->timer_inited) {
        uv_timer_init(hl_worker_loop(hl_conn_worker(a->conn)), &a->timer);
        a->timer_inited = true;
    }
    a->timer.data = a;
    uv_timer_start(&a->timer, on_timer, (uint64_t)delay_ms, 0);
}

static void up_status(void *ud, int status, const char *content_type) {
    (void)content_type;
    ((hl_aux *)ud)->status = status;
}

static int up_data(void *ud, const char *data, size_t len) {
    hl_aux *a = ud;
    return hl_buf_append(&a->body, data, len) ? HL_UPSTREAM_ABORT : HL_UPSTREAM_CONTINUE;
}

static void up_header(void *ud, const char *name, size_t nlen, const char *value, size_t vlen) {
    hl_aux *a = ud;
    char v[32];
    if (vlen >= sizeof v) return;
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    if (nlen == 14 && !strncasecmp(name, "retry-after-ms", 14)) a->retry_after_ms = atof(v);
    else if (nlen == 11 && !strncasecmp(name, "retry-after", 11) && a->retry_after_ms < 0) a->retry_after_ms = atof(v) * 1000;
}

/* The current candidate failed (why in err): a retry on it, the next one, or the end. */
static void failed(hl_aux *a, const hl_api_error *err, bool retryable) {
    hl_backend_report(a->backend, !retryable, a->probe, now_ms());
    a->probe = false;
    a->last_err = *err;
    const hl_backend_cfg *c = a->backend->cfg;
    if (retryable && a->retries < c->max_retries) {
        double d = (double)c->retry_base_ms;
        for (int i = 0; i < a->retries && d < (double)c->retry_max_ms; i++) d *= 2;
        if (d > (double)c->retry_max_ms) d = (double)c->retry_max_ms;
        if (a->retry_after_ms >= 0 && a->retry_after_ms <= 60000) d = a->retry_after_ms;
        if (now_ms() + d < a->deadline) {
            a->retries++;
            schedule(a, d);
            return;
        }
    }
    a->cand++;
    a->retries = 0;
    schedule(a, 0);
}

static void up_done(void *ud, hl_err err, const char *errmsg) {
    hl_aux *a = ud;
    a->up = NULL;
    hl_api_error e = {0};
    if (err != HL_OK) {
        hl_api_error_set(&e, err == HL_ERR_TIMEOUT ? 504 : 502, err == HL_ERR_TIMEOUT ? HL_AE_TIMEOUT : HL_AE_API, NULL,
                         "upstream_error", "Backend '%s': %s.", a->backend->cfg->name, errmsg ? errmsg : "failed");
        if (a->kind == HL_AUX_EMBEDDINGS) record(a, "error", 0, false, e.message);
        failed(a, &e, true);
        return;
    }
    if (a->status / 100 != 2) {
        char msg[300], type[64];
        hl_upstream_error_parse(a->body.data, a->body.len, msg, sizeof msg, type, sizeof type);
        int st = a->status;
        bool client_fault = st == 400 || st == 422 || st == 413;
        hl_api_error_set(&e, client_fault ? 400 : st == 429 ? 429 : 502,
                         client_fault ? HL_AE_INVALID_REQUEST : st == 429 ? HL_AE_RATE_LIMIT : HL_AE_API, NULL,
                         "upstream_error", "Backend '%s' answered %d: %s", a->backend->cfg->name, st, msg);
        if (a->kind == HL_AUX_EMBEDDINGS) record(a, "error", 0, false, e.message);
        if (client_fault && a->kind == HL_AUX_EMBEDDINGS) { /* another backend would refuse it too */
            hl_backend_report(a->backend, true, a->probe, now_ms());
            finish_error(a, &e);
            return;
        }
        /* 404/501: the backend serves no such endpoint (llama-server without --embeddings). */
        bool retryable = st == 408 || st == 409 || st == 429 || st >= 500;
        if (st == 501) retryable = false;
        failed(a, &e, retryable);
        return;
    }
    hl_backend_report(a->backend, true, a->probe, now_ms());
    a->probe = false;
    if (a->kind == HL_AUX_COUNT_TOKENS) {
        json_t *j = json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, NULL);
        long n = -1;
        if (a->tokenize) {
            const json_t *tokens = json_object_get(j, "tokens");
            if (json_is_integer(json_object_get(j, "count"))) n = (long)json_integer_value(json_object_get(j, "count"));
            else if (json_is_array(tokens)) n = (long)json_array_size(tokens);
            if (n >= 0) n += hl_chat_input_estimate(&a->req) - hl_tokens_estimate(a->req.text_bytes);
        } else if (json_is_integer(json_object_get(j, "input_tokens"))) {
            n = (long)json_integer_value(json_object_get(j, "input_tokens"));
        }
        json_decref(j);
        if (n < 0) {
            hl_api_error_set(&e, 502, HL_AE_API, NULL, "upstream_error", "Backend '%s' gave no token count.",
                             a->backend->cfg->name);
            failed(a, &e, false);
            return;
        }
        answer_count(a, n, a->tokenize ? "tokenizer" : "upstream");
        return;
    }
    hl_buf out;
    hl_buf_init(&out, 0);
    long pt;
    hl_err rc = hl_embed_render(a->body.data ? a->body.data : "", a->body.len, a->er.base64, a->model, &out, &pt);
    if (rc) {
        hl_buf_release(&out);
        hl_api_error_set(&e, 502, HL_AE_API, NULL, "upstream_error", "Backend '%s' answered with no embeddings list.",
                         a->backend->cfg->name);
        record(a, "error", 0, false, e.message);
        failed(a, &e, false);
        return;
    }
    bool est = pt < 0;
    double cost = record(a, "ok", est ? hl_tokens_estimate(a->req.text_bytes) : pt, est, NULL);
    char extra[96];
    snprintf(extra, sizeof extra, "x-hybridllm-cost-usd: %.10f\r\n", cost);
    finish_ok(a, &out, extra);
    hl_buf_release(&out);
}

static const hl_upstream_handlers handlers = {up_status, up_data, up_header, up_done};

static hl_err add_auth(hl_buf *h, const hl_backend *b) {
    if (!b->api_key) return HL_OK;
    if (b->cfg->kind == HL_PROVIDER_ANTHROPIC) return hl_provider_header_add(h, "x-api-key", b->api_key);
    return hl_provider_bearer_add(h, b->api_key);
}

/* The body for the current candidate: the client's, with the route's model (and for
 * embeddings, the inputs as privacy left them, floats asked for). */
static hl_err build_body(hl_aux *a, hl_buf *url, hl_buf *body) {
    hl_backend *b = a->backend;
    json_t *j = NULL;
    if (a->kind == HL_AUX_EMBEDDINGS) {
        HL_TRY(hl_buf_printf(url, "%s/embeddings", hl_backend_base_url(b)));
        j = json_copy(a->er.body);
        if (!j) return HL_ERR_NOMEM;
        json_object_del(j, "encoding_format");
        json_object_del(j, "metadata");
        if (!a->er.tokens) {
            json_t *in = a->req.n_messages == 1 && json_is_string(json_object_get(a->er.body, "input"))
                             ? json_string(a->req.messages[0].text) : json_array();
            for (size_t i = 0; in && json_is_array(in) && i < a->req.n_messages; i++)
                json_array_append_new(in, json_string(a->req.messages[i].text));
            json_object_set_new(j, "input", in);
        }
    } else if (a->tokenize) {
        char root[1024];
        hl_backend_server_root(hl_backend_base_url(b), root, sizeof root);
        HL_TRY(hl_buf_printf(url, "%s/tokenize", root));
        hl_buf text;
        hl_buf_init(&text, 0);
        for (size_t i = 0; i < a->req.n_messages; i++)
            hl_buf_printf(&text, "%s%s", i ? "\n" : "", a->req.messages[i].text ? a->req.messages[i].text : "");
        bool vllm = atomic_load(&b->tokenizer) == HL_TOKENIZE_VLLM;
        j = vllm ? json_pack("{s:s, s:s#}", "model", a->model, "prompt", text.data ? text.data : "", text.len)
                 : json_pack("{s:s#}", "content", text.data ? text.data : "", text.len);
        hl_buf_release(&text);
    } else {
        HL_TRY(hl_buf_printf(url, "%s/v1/messages/count_tokens", hl_backend_base_url(b)));
        j = json_copy(a->count_body);
    }
    if (!j) return HL_ERR_NOMEM;
    if (!a->tokenize) json_object_set_new(j, "model", json_string(a->model));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return HL_ERR_NOMEM;
    hl_err e = hl_buf_puts(body, s);
    free(s);
    return e;
}

static hl_err start_call(hl_aux *a) {
    hl_backend *b = a->backend;
    hl_buf url, body, headers;
    hl_buf_init(&url, 4096);
    hl_buf_init(&body, 0);
    hl_buf_init(&headers, 0);
    hl_err e = build_body(a, &url, &body);
    if (!e) e = hl_provider_header_add(&headers, "Content-Type", "application/json");
    if (!e) e = hl_provider_header_add(&headers, "Accept", "application/json");
    if (!e) e = hl_provider_header_add(&headers, "Expect", "");
    if (!e && b->cfg->kind == HL_PROVIDER_ANTHROPIC) {
        e = hl_provider_header_add(&headers, "anthropic-version", HL_ANTHROPIC_VERSION);
        if (!e && a->req.anthropic_beta) e = hl_provider_header_add(&headers, "anthropic-beta", a->req.anthropic_beta);
    }
    if (!e) e = add_auth(&headers, b);
    if (!e) {
        double left = a->deadline - now_ms();
        long t = b->cfg->timeout_ms;
        if (left < (double)t) t = left < 1 ? 1 : (long)left;
        hl_upstream_opts o = {.url = url.data, .headers_len = headers.len, .body_len = body.len, .timeout_ms = t,
                              .connect_timeout_ms = b->cfg->connect_timeout_ms, .ca_file = b->cfg->ca_file};
        o.headers = hl_buf_steal(&headers);
        o.body = hl_buf_steal(&body);
        hl_buf_reset(&a->body);
        a->status = 0;
        a->retry_after_ms = -1;
        e = hl_upstream_start(a->env->prov.up, &o, &handlers, a, &a->up);
    }
    if (headers.data) explicit_bzero(headers.data, headers.len);
    hl_buf_release(&headers);
    hl_buf_release(&url);
    hl_buf_release(&body);
    return e;
}

/* A builtin backend's embeddings are back (on this loop, from its engine's thread). */
static void builtin_embedded(void *ud, const hl_builtin_embed_result *r) {
    hl_aux *a = ud;
    a->job = NULL;
    hl_api_error e = {0};
    long tokens = 0;
    for (size_t i = 0; i < r->n; i++) tokens += r->n_tokens[i];
    if (r->err) {
        if (r->err == HL_ERR_LIMIT) {
            a->status = 400;
            hl_api_error_set(&e, 400, HL_AE_INVALID_REQUEST, "input", "context_length_exceeded",
                             "Input %zu is longer than the context window of backend '%s' (the builtin engine).",
                             r->failed, a->backend->cfg->name);
        } else if (r->err == HL_ERR_INVAL) {
            a->status = 400;
            hl_api_error_set(&e, 400, HL_AE_INVALID_REQUEST, "input", NULL,
                             "Input %zu is empty or holds a token id outside the vocabulary of backend '%s'.",
                             r->failed, a->backend->cfg->name);
        } else {
            a->status = 500;
            hl_api_error_set(&e, 500, HL_AE_API, NULL, NULL, "Backend '%s' (the builtin engine) failed: %s.",
                             a->backend->cfg->name, hl_err_str(r->err));
        }
        record(a, "error", 0, false, e.message);
        /* The input's fault, not the backend's: another candidate (a longer context) may serve it. */
        hl_backend_report(a->backend, a->status == 400, a->probe, now_ms());
        a->probe = false;
        a->last_err = e;
        a->cand++;
        a->retries = 0;
        schedule(a, 0);
        return;
    }
    a->status = 200;
    hl_backend_report(a->backend, true, a->probe, now_ms());
    a->probe = false;
    hl_buf out;
    hl_buf_init(&out, 0);
    if (hl_embed_render_vectors(r->vecs, r->n, r->dim, a->er.base64, a->model, tokens, &out) != HL_OK) {
        hl_buf_release(&out);
        hl_api_error_set(&e, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        record(a, "error", tokens, false, e.message);
        finish_error(a, &e);
        return;
    }
    double cost = record(a, "ok", tokens, false, NULL);
    char extra[96];
    snprintf(extra, sizeof extra, "x-hybridllm-cost-usd: %.10f\r\n", cost);
    finish_ok(a, &out, extra);
    hl_buf_release(&out);
}

/* Queues the inputs (as privacy left them; token arrays as sent) on the builtin backend b. */
static hl_err start_builtin_embed(hl_aux *a, hl_backend *b) {
    size_t n = a->er.n_inputs;
    hl_builtin_input *in = calloc(n, sizeof *in);
    int32_t **ids = a->er.tokens ? calloc(n, sizeof *ids) : NULL;
    hl_err e = !in || (a->er.tokens && !ids) ? HL_ERR_NOMEM : HL_OK;
    const json_t *input = json_object_get(a->er.body, "input");
    bool single = a->er.tokens && json_is_array(input) && json_is_integer(json_array_get(input, 0));
    for (size_t i = 0; !e && i < n; i++) {
        if (!a->er.tokens) {
            const char *t = a->req.messages[i].text ? a->req.messages[i].text : "";
            in[i] = (hl_builtin_input){.text = t, .len = strlen(t)};
            continue;
        }
        const json_t *arr = single ? input : json_array_get(input, i);
        size_t k = json_array_size(arr);
        if (!(ids[i] = malloc((k ? k : 1) * sizeof **ids))) {
            e = HL_ERR_NOMEM;
            break;
        }
        for (size_t j = 0; j < k; j++) {
            json_int_t v = json_integer_value(json_array_get(arr, j));
            ids[i][j] = v > INT32_MAX ? INT32_MAX : (int32_t)v; /* too big: refused by the engine */
        }
        in[i] = (hl_builtin_input){.ids = ids[i], .n_ids = k};
    }
    hl_builtin_mailbox *mb = a->env->prov.mailbox;
    if (!e) e = hl_builtin_embed_start(b->builtin, mb, in, n, builtin_embedded, a, &a->job);
    for (size_t i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(in);
    return e;
}

/* Starts the call on the current candidate or the next usable one; answers when none is. */
static void run(hl_aux *a) {
    hl_api_error skip = {0};
    for (; a->cand < a->route.n; a->cand++, a->retries = 0) {
        hl_backend *b = a->route.candidates[a->cand];
        bool cloud = hl_backend_is_cloud(b);
        if (a->privacy.sensitive && cloud) continue;
        hl_provider_kind k = b->cfg->kind;
        if (a->kind == HL_AUX_EMBEDDINGS && k == HL_PROVIDER_ANTHROPIC) {
            if (!skip.status)
                hl_api_error_set(&skip, 400, HL_AE_INVALID_REQUEST, "model", "unsupported_endpoint",
                                 "Backend '%s' (Anthropic) serves no embeddings.", b->cfg->name);
            continue;
        }
        if (a->kind == HL_AUX_EMBEDDINGS && k == HL_PROVIDER_BUILTIN) {
            if (!b->builtin) {
                hl_api_error_set(&skip, 503, HL_AE_UNAVAILABLE, NULL, "backend_not_ready",
                                 "Backend '%s' (the builtin engine) has no model loaded.", b->cfg->name);
                continue;
            }
            uint32_t dim = hl_builtin_dim(b->builtin);
            if (a->er.dimensions && (uint32_t)a->er.dimensions != dim) {
                hl_api_error_set(&skip, 400, HL_AE_INVALID_REQUEST, "dimensions", "unsupported_value",
                                 "Backend '%s' (the builtin engine) gives %u-dimensional embeddings; "
                                 "'dimensions' cannot change that.", b->cfg->name, dim);
                continue;
            }
        }
        a->backend = b;
        a->model = a->route.models[a->cand];
        if (a->kind == HL_AUX_COUNT_TOKENS && k == HL_PROVIDER_BUILTIN) {
            long n;
            if (b->builtin && hl_builtin_count_tokens(b->builtin, &a->req, &n) == HL_OK) {
                answer_count(a, n, "tokenizer");
                return;
            }
            continue;
        }
        a->tokenize = a->kind == HL_AUX_COUNT_TOKENS && k == HL_PROVIDER_OPENAI;
        if (a->tokenize && (cloud || atomic_load(&b->tokenizer) == HL_TOKENIZE_NONE)) break; /* estimate */
        bool probe = false;
        if (!hl_backend_admit(b, now_ms(), &probe)) {
            hl_api_error_set(&skip, 503, HL_AE_UNAVAILABLE, NULL, "circuit_open",
                             "Backend '%s' is failing (circuit breaker open).", b->cfg->name);
            continue;
        }
        a->probe = probe;
        a->n_attempt++;
        a->t0 = now_ms();
        a->wall0 = wall_now();
        atomic_store(&b->last_used_ms, a->t0);
        if (a->kind == HL_AUX_EMBEDDINGS && k == HL_PROVIDER_BUILTIN) {
            a->status = 0;
            hl_err e = start_builtin_embed(a, b);
            if (e == HL_OK) {
                hl_conn_set_data(a->conn, a);
                return;
            }
            hl_backend_probe_abandoned(b, now_ms());
            if (e == HL_ERR_LIMIT) {
                hl_api_error_set(&skip, 503, HL_AE_UNAVAILABLE, NULL, "queue_full",
                                 "Backend '%s' (the builtin engine) has too many requests waiting.", b->cfg->name);
                continue;
            }
            hl_api_error_set(&skip, 500, HL_AE_API, NULL, NULL, "Out of memory.");
            continue;
        }
        if (start_call(a) == HL_OK) {
            hl_conn_set_data(a->conn, a);
            return;
        }
        hl_backend_probe_abandoned(b, now_ms());
        hl_api_error_set(&skip, 500, HL_AE_API, NULL, NULL, "Could not start the upstream call.");
    }
    if (a->kind == HL_AUX_COUNT_TOKENS) {
        answer_count(a, hl_chat_input_estimate(&a->req), "estimate");
        return;
    }
    if (a->last_err.status) skip = a->last_err;
    if (!skip.status)
        hl_api_error_set(&skip, a->privacy.sensitive ? 403 : 503, a->privacy.sensitive ? HL_AE_PERMISSION : HL_AE_UNAVAILABLE,
                         NULL, "no_backend",
                         a->privacy.sensitive ? "The input is sensitive and no local backend serves embeddings."
                                              : "No backend can serve this embeddings request.");
    finish_error(a, &skip);
}

void hl_aux_abort(hl_aux *a) {
    if (a->job) {
        hl_builtin_embed_cancel(a->job);
        a->job = NULL;
        record(a, "cancelled", 0, true, "client disconnected");
        if (a->probe) hl_backend_probe_abandoned(a->backend, now_ms());
    }
    if (a->up) {
        hl_upstream_cancel(a->up);
        a->up = NULL;
        if (a->kind == HL_AUX_EMBEDDINGS) record(a, "cancelled", 0, true, "client disconnected");
        if (a->probe) hl_backend_probe_abandoned(a->backend, now_ms());
    }
    aux_free(a);
}

/* ------------------------------------------------------------------ routing */

/* The request as privacy and the router see it: one user message per text input. */
static hl_err embed_as_chat(hl_aux *a) {
    hl_chat_request *r = &a->req;
    HL_TRY(hl_strdup(&r->model, a->er.model));
    if (a->er.tokens) {
        r->pii = true; /* token ids cannot be inspected: kept local */
        return HL_OK;
    }
    if (!(r->messages = calloc(a->er.n_inputs, sizeof *r->messages))) return HL_ERR_NOMEM;
    for (size_t i = 0; i < a->er.n_inputs; i++) {
        r->messages[i].role = HL_ROLE_USER;
        HL_TRY(hl_strdup(&r->messages[i].text, a->er.inputs[i]));
        r->n_messages = i + 1;
        r->text_bytes += strlen(a->er.inputs[i]);
    }
    r->raw_prompt = true; /* no template in the token estimate */
    return HL_OK;
}

void hl_aux_start(hl_exchange_env *env, hl_conn *c, const hl_http_req *hreq, const char *body, size_t len,
                  const char *request_id, const char *client_id, const hl_key_info *key, hl_aux_kind kind) {
    const hl_ingress *ing = kind == HL_AUX_EMBEDDINGS ? &hl_ingress_openai : &hl_ingress_anthropic;
    hl_aux *a = calloc(1, sizeof *a);
    hl_api_error err = {0};
    if (!a) {
        hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        hl_exchange_respond_error(c, ing, client_id[0] ? client_id : request_id, &err, NULL);
        return;
    }
    a->magic = AUX_MAGIC;
    a->kind = kind;
    a->env = env;
    a->conn = c;
    a->ing = ing;
    snprintf(a->request_id, sizeof a->request_id, "%s", request_id);
    snprintf(a->client_id, sizeof a->client_id, "%s", client_id);
    hl_chat_request_init(&a->req);
    hl_buf_init(&a->body, MAX_AUX_BODY);
    hl_err rc;
    if (kind == HL_AUX_EMBEDDINGS) {
        rc = hl_embed_parse(body, len, &a->er, &err);
        if (!rc) rc = embed_as_chat(a);
    } else {
        rc = hl_count_parse(body, len, &a->req, &err);
        if (!rc && !(a->count_body = json_loadb(body, len, 0, NULL))) rc = HL_ERR_NOMEM;
        const hl_slice *beta = hl_http_header_get(hreq, "anthropic-beta");
        if (!rc && beta && beta->n && beta->n < 1024 && !memchr(beta->p, '\r', beta->n) &&
            !memchr(beta->p, '\n', beta->n) && !(a->req.anthropic_beta = strndup(beta->p, beta->n)))
            rc = HL_ERR_NOMEM;
    }
    if (rc) {
        if (!err.status) hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        finish_error(a, &err);
        return;
    }
    hl_exchange_read_hints(&a->req, hreq);
    if (kind == HL_AUX_EMBEDDINGS && !a->req.task_type && !(a->req.task_type = strdup("embedding"))) {
        hl_api_error_set(&err, 500, HL_AE_API, NULL, NULL, "Out of memory.");
        finish_error(a, &err);
        return;
    }
    hl_privacy_decide(env->pii, env->cfg->privacy.redact, &a->req, &a->privacy);
    /* A count is forwarded as the client wrote it: redaction cannot reach that body. */
    if (kind == HL_AUX_COUNT_TOKENS && a->privacy.pii[0]) a->privacy.sensitive = true;
    if (!key->cloud_allowed) a->privacy.sensitive = true; /* the key's traffic stays local */
    a->key_id = key->id;
    a->key = *key;
    snprintf(a->key_name, sizeof a->key_name, "%s", key->id ? key->name : "");
    hl_route_input in;
    hl_exchange_route_input(&a->req, hreq, key->tenant[0] ? key->tenant : NULL, !env->keys_decide_tenant && !key->id,
                            a->request_id, a->privacy.sensitive,
                            a->tenant, sizeof a->tenant, &in);
    /* A key's rate limits hold for embeddings too (counting tokens is free). */
    hl_key_rate rate;
    if (kind == HL_AUX_EMBEDDINGS &&
        !hl_key_budgets_rate(env->key_budgets, key, in.prompt_tokens, (long long)(wall_now() * 1000), &rate)) {
        char rh[768];
        hl_exchange_rate_headers(&rate, rh, sizeof rh);
        hl_buf h;
        hl_buf_init(&h, 0);
        base_headers(a, &h);
        hl_buf_puts(&h, rh);
        hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "rate_limit_exceeded",
                         "Rate limit of this API key reached; retry in %.1f s.", rate.retry_after_s);
        hl_conn_set_data(a->conn, NULL);
        hl_exchange_respond_error(a->conn, a->ing, echo_id(a), &err, h.data);
        hl_buf_release(&h);
        aux_free(a);
        return;
    }
    double spent, limit;
    const hl_budget_cfg *over = kind == HL_AUX_EMBEDDINGS
                                    ? hl_budgets_exceeded(env->budgets, in.tenant, (time_t)wall_now(), &spent, &limit)
                                    : NULL;
    if (over && over->action == HL_BUDGET_LOCAL) in.budget_local = over->name;
    in.max_tokens = 0;
    if (hl_router_route(env->cfg, env->bs, &in, &a->route, &err, NULL) != HL_OK) {
        if (kind == HL_AUX_COUNT_TOKENS && err.status != 404) {
            /* Counting needs no backend: estimate. */
            answer_count(a, hl_chat_input_estimate(&a->req), "estimate");
            return;
        }
        finish_error(a, &err);
        return;
    }
    if (!hl_exchange_key_permits(key, a->req.model, &a->route, &err)) {
        finish_error(a, &err);
        return;
    }
    if (over && over->action == HL_BUDGET_REJECT && hl_backend_is_cloud(a->route.candidates[0])) {
        hl_api_error_set(&err, 429, HL_AE_RATE_LIMIT, NULL, "budget_exceeded",
                         "The cloud budget '%s' is spent ($%.2f of $%.2f); requests that need the cloud are "
                         "refused until it resets.", over->name, spent, limit);
        finish_error(a, &err);
        return;
    }
    a->deadline = now_ms() + (double)env->cfg->request_timeout_ms;
    /* Embeddings reserve as chat does: the input's estimated tokens at the dearest cloud
     * candidate's input price (there is no output to bound). */
    if (kind == HL_AUX_EMBEDDINGS && key->id) {
        for (int i = 0; i < a->route.n; i++) {
            if (!hl_backend_is_cloud(a->route.candidates[i]) || a->privacy.sensitive) continue;
            const hl_price *p = hl_config_price(env->cfg, a->route.models[i]);
            double usd = p ? (double)in.prompt_tokens * p->input_per_mtok / 1e6 : 0;
            if (usd > a->key_est) a->key_est = usd;
        }
        a->budget_wait_until = now_ms() + HL_KB_WAIT_MS;
        if (a->key_est > 0 && !key_budget_poll(a)) return;
    }
    run(a);
}
