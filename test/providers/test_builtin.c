/* Tests of the builtin provider (src/providers/hl_builtin.c) on the real engine with the shared
 * stories260K model: the events of a streamed call, and backpressure: a paused call gets no
 * events and its sequence generates nothing until resumed, then ends with the same text as a
 * call that was never paused. Embeddings jobs: their vectors, alone and while a generation
 * runs (which ends with the same text as alone), and cancellation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "engine/test_models_dir.h"
#include "hl_builtin.h"
#include "hl_provider.h"
#include "hl_test.h"

typedef struct emb_run {
    bool done;
    hl_err err;
    size_t n, failed;
    uint32_t dim;
    float vecs[3 * 64];
    int n_tokens[3];
    int calls;
    const int *n_text; /* when set: the caller's text events so far, read when done */
    int done_at_text;
} emb_run;

static void on_embed(void *ud, const hl_builtin_embed_result *r) {
    emb_run *e = ud;
    e->calls++;
    e->done = true;
    if (e->n_text) e->done_at_text = *e->n_text;
    e->err = r->err;
    e->n = r->n;
    e->failed = r->failed;
    e->dim = r->dim;
    if (!r->err && r->n <= 3 && r->dim == 64) {
        memcpy(e->vecs, r->vecs, r->n * 64 * sizeof(float));
        memcpy(e->n_tokens, r->n_tokens, r->n * sizeof(int));
    }
}

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
    /* an embeddings job started at the first text event, on the same mailbox */
    const hl_builtin_input *embed_in; /* [3] */
    hl_provider_env *env;
    emb_run emb;
    int emb_started_at_text;
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
        if (r->embed_in && r->n_text == 1) {
            hl_builtin_embed *job;
            r->emb.n_text = &r->n_text;
            r->emb_started_at_text = r->n_text;
            HL_CHECK(hl_builtin_embed_start(r->b, r->env->mailbox, r->embed_in, 3, on_embed, &r->emb, &job) == HL_OK);
        }
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
    r->env = &env;
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
    while (!r->done || (r->embed_in && !r->emb.done)) uv_run(&loop, UV_RUN_ONCE);
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

static const char *const emb_texts[3] = {"Once upon a time", "The little dog ran to the park and played.",
                                         "Lily was happy"};

static void emb_inputs(hl_builtin_input *in) {
    for (int i = 0; i < 3; i++) in[i] = (hl_builtin_input){.text = emb_texts[i], .len = strlen(emb_texts[i])};
}

HL_TEST(embeddings_between_steps) {
    char path[4096];
    if (!hl_test_model_path(path, sizeof path, "stories260K.gguf")) return;
    hl_backend_cfg cfg = {.name = "embedded", .kind = HL_PROVIDER_BUILTIN, .location = HL_LOCATION_LOCAL,
                          .model_path = path, .threads = 1, .max_queue = 4, .max_sequences = 2};
    hl_backend be = {.cfg = &cfg};
    char err[256];
    HL_REQUIRE(hl_builtin_open(&be.builtin, &cfg, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(hl_builtin_dim(be.builtin), 64);
    hl_builtin_input in[3];
    emb_inputs(in);

    /* Alone. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    hl_builtin_mailbox *mb;
    HL_REQUIRE(hl_builtin_mailbox_new(&mb, &loop) == HL_OK);
    emb_run alone = {0};
    hl_builtin_embed *job;
    HL_REQUIRE(hl_builtin_embed_start(be.builtin, mb, in, 3, on_embed, &alone, &job) == HL_OK);
    while (!alone.done) uv_run(&loop, UV_RUN_ONCE);
    HL_CHECK_INT_EQ(alone.err, HL_OK);
    HL_CHECK_INT_EQ(alone.n, 3);
    HL_CHECK_INT_EQ(alone.n_tokens[0], 5); /* BOS + 4, as llama-server counts it */
    for (int i = 0; i < 3; i++) {
        double ss = 0;
        for (int k = 0; k < 64; k++) ss += (double)alone.vecs[i * 64 + k] * alone.vecs[i * 64 + k];
        HL_CHECK_NEAR(ss, 1.0, 1e-5);
    }

    /* Too long for the context (stories260K's 2048 tokens: 3000 words do not fit): the error
     * names the input. */
    size_t big_len = 3000 * 4;
    char *big = malloc(big_len + 1);
    HL_REQUIRE(big);
    for (size_t i = 0; i < big_len; i += 4) memcpy(big + i, "dog ", 4);
    big[big_len] = 0;
    hl_builtin_input two[2] = {in[0], {.text = big, .len = big_len}};
    emb_run toolong = {0};
    HL_REQUIRE(hl_builtin_embed_start(be.builtin, mb, two, 2, on_embed, &toolong, &job) == HL_OK);
    while (!toolong.done) uv_run(&loop, UV_RUN_ONCE);
    HL_CHECK_INT_EQ(toolong.err, HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(toolong.failed, 1);
    free(big);

    /* Cancelled at once: no callback. */
    emb_run gone = {0};
    HL_REQUIRE(hl_builtin_embed_start(be.builtin, mb, in, 3, on_embed, &gone, &job) == HL_OK);
    hl_builtin_embed_cancel(job);
    hl_builtin_mailbox_close(mb);
    uv_run(&loop, UV_RUN_DEFAULT);
    HL_CHECK(uv_loop_close(&loop) == 0);

    /* A generation alone, then the same one with embeddings jobs started while it streams. */
    run plain = {0};
    run_call(&be, &plain);
    HL_CHECK(plain.done && plain.err == HL_OK);
    run mixed = {.embed_in = in};
    run_call(&be, &mixed);
    HL_CHECK(mixed.done && mixed.err == HL_OK);
    HL_CHECK(mixed.emb.done && mixed.emb.err == HL_OK);
    HL_CHECK_INT_EQ(mixed.emb_started_at_text, 1); /* it started while the generation ran */
    HL_CHECK(mixed.emb.done_at_text < mixed.n_text); /* and ended before it */
    HL_CHECK(memcmp(mixed.emb.vecs, alone.vecs, sizeof alone.vecs) == 0);
    plain.text[plain.text_len] = '\0';
    mixed.text[mixed.text_len] = '\0';
    HL_CHECK_STR_EQ(mixed.text, plain.text);
    HL_CHECK_INT_EQ(gone.calls, 0);
    hl_builtin_free(be.builtin);
}

HL_TEST_MAIN()
