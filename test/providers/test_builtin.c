/* Tests of the builtin provider (src/providers/hl_builtin.c) on the real engine with the shared
 * stories260K model: the events of a streamed call, and backpressure: a paused call gets no
 * events and its sequence generates nothing until resumed, then ends with the same text as a
 * call that was never paused. */
#include <string.h>
#include <uv.h>
#include "engine/test_models_dir.h"
#include "hl_builtin.h"
#include "hl_provider.h"
#include "hl_test.h"

typedef struct run {
    uv_loop_t *loop;
    const hl_provider *prov;
    hl_provider_call *call;
    hl_builtin *b;
    bool pause_on_first;    /* pause at the first text event */
    bool pause_at_start;    /* pause right after start, before the engine has the call */
    bool paused;
    int events_while_paused;
    int n_text, n_finish, n_usage, n_done;
    hl_usage usage;
    char text[4096];
    size_t text_len;
    bool done;
    hl_err err;
    int status;
    unsigned long tokens_at[2]; /* engine tokens 300 ms and 600 ms after the pause */
    uv_timer_t timer;
    int ticks;
} run;

static void on_status(void *ud, int status) { ((run *)ud)->status = status; }

static int on_event(void *ud, const hl_stream_event *ev) {
    run *r = ud;
    if (r->paused) r->events_while_paused++;
    switch (ev->type) {
    case HL_EV_TEXT:
        if (r->text_len + ev->text_len < sizeof r->text) {
            memcpy(r->text + r->text_len, ev->text, ev->text_len);
            r->text_len += ev->text_len;
        }
        r->n_text++;
        if (r->pause_on_first && r->n_text == 1) {
            r->prov->pause(r->call);
            r->paused = true;
        }
        break;
    case HL_EV_FINISH: r->n_finish++; break;
    case HL_EV_USAGE: r->n_usage++; r->usage = ev->usage; break;
    case HL_EV_DONE: r->n_done++; break;
    default: break;
    }
    return HL_PROVIDER_CONTINUE;
}

static void on_done(void *ud, hl_provider_result *res) {
    run *r = ud;
    r->done = true;
    r->err = res->err;
    r->call = NULL;
    if (r->timer.data) uv_close((uv_handle_t *)&r->timer, NULL);
}

static const hl_provider_events events = {on_status, on_event, NULL, on_done};

/* 300 ms after the pause, then 600 ms: read the engine's count; then resume. */
static void on_tick(uv_timer_t *t) {
    run *r = t->data;
    if (!r->paused) return;
    r->tokens_at[r->ticks++] = hl_builtin_tokens(r->b);
    if (r->ticks == 2) {
        uv_timer_stop(t);
        r->paused = false;
        r->prov->resume(r->call);
    }
}

static void request(hl_chat_request *req) {
    hl_chat_request_init(req);
    req->messages = calloc(1, sizeof *req->messages);
    req->messages[0].role = HL_ROLE_USER;
    req->messages[0].text = strdup("Once upon a time");
    req->n_messages = 1;
    req->text_bytes = strlen(req->messages[0].text);
    req->max_tokens = 400; /* long enough that a pause lands before the end */
    req->has_temperature = true;
    req->temperature = 0;
}

/* Runs one streamed call to its end on a fresh loop and mailbox. */
static void run_call(hl_backend *be, run *r) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    hl_provider_env env = {0};
    HL_REQUIRE(hl_builtin_mailbox_new(&env.mailbox, &loop) == HL_OK);
    hl_chat_request req;
    request(&req);
    r->loop = &loop;
    r->b = be->builtin;
    r->prov = hl_provider_for(HL_PROVIDER_BUILTIN);
    hl_provider_spec spec = {.backend = be, .req = &req, .model = "stories", .stream = true};
    if (r->pause_on_first || r->pause_at_start) {
        uv_timer_init(&loop, &r->timer);
        r->timer.data = r;
        uv_timer_start(&r->timer, on_tick, 300, 300);
    }
    HL_CHECK(r->prov->start(&env, &spec, &events, r, &r->call) == HL_OK);
    if (r->pause_at_start) {
        r->prov->pause(r->call);
        r->paused = true;
    }
    hl_chat_request_release(&req);
    while (!r->done) uv_run(&loop, UV_RUN_ONCE);
    hl_builtin_mailbox_close(env.mailbox);
    uv_run(&loop, UV_RUN_DEFAULT);
    HL_CHECK(uv_loop_close(&loop) == 0);
}

HL_TEST(pause_holds_the_sequence) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_backend_cfg cfg = {.name = "embedded", .kind = HL_PROVIDER_BUILTIN, .location = HL_LOCATION_LOCAL,
                          .model_path = path, .threads = 1, .max_queue = 4, .max_sequences = 2};
    hl_backend be = {.cfg = &cfg};
    char err[256];
    HL_REQUIRE(hl_builtin_open(&be.builtin, &cfg, err, sizeof err) == HL_OK);

    run plain = {0};
    run_call(&be, &plain);
    HL_CHECK(plain.done && plain.err == HL_OK && plain.status == 200);
    HL_CHECK_INT_EQ(plain.n_finish, 1);
    HL_CHECK_INT_EQ(plain.n_usage, 1);
    HL_CHECK_INT_EQ(plain.n_done, 1);
    HL_CHECK(plain.usage.known);
    unsigned long n = (unsigned long)plain.usage.output_tokens; /* 400, or fewer at an end of text */
    HL_CHECK(n > 100 && n <= 400);
    HL_CHECK(plain.text_len > 0);

    run held = {.pause_on_first = true};
    run_call(&be, &held);
    HL_CHECK(held.done && held.err == HL_OK);
    HL_CHECK_INT_EQ(held.ticks, 2);
    /* Held: nothing delivered, nothing generated, between the two readings. */
    HL_CHECK_INT_EQ(held.events_while_paused, 0);
    HL_CHECK_INT_EQ(held.tokens_at[1], held.tokens_at[0]);
    HL_CHECK_INT_EQ(held.usage.output_tokens, n);
    held.text[held.text_len] = '\0';
    plain.text[plain.text_len] = '\0';
    HL_CHECK_STR_EQ(held.text, plain.text);
    HL_CHECK_INT_EQ(hl_builtin_tokens(be.builtin), 2 * n);

    /* Paused right after start: the engine holds the sequence long before its end, generates
     * nothing while held, and finishes it after resume. */
    run early = {.pause_at_start = true};
    run_call(&be, &early);
    HL_CHECK(early.done && early.err == HL_OK);
    HL_CHECK_INT_EQ(early.events_while_paused, 0);
    printf("  paused at start: held after %lu of %lu tokens\n", early.tokens_at[0] - 2 * n, n);
    HL_CHECK(early.tokens_at[0] < 3 * n);
    HL_CHECK_INT_EQ(early.tokens_at[1], early.tokens_at[0]);
    HL_CHECK_INT_EQ(early.usage.output_tokens, n);
    early.text[early.text_len] = '\0';
    HL_CHECK_STR_EQ(early.text, plain.text);
    HL_CHECK_INT_EQ(hl_builtin_tokens(be.builtin), 3 * n);
    hl_builtin_free(be.builtin);
}

HL_TEST_MAIN()
