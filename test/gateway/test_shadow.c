/* Tests of the pieces of the shadow scheduler that stand alone (src/gateway/hl_shadow.c): the
 * draw from the request id, the queue policy, the capture of a streamed answer and the judge's
 * verdicts. The calls themselves run in test/integration/shadow.test.mjs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_shadow.h"
#include "hl_test.h"

/* Deterministic, the bounds exact, and the share drawn close to the rate. */
HL_TEST(draw) {
    char id[64];
    int hits[3] = {0};
    const double rates[3] = {0.1, 0.5, 0.9};
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "req_%016x%08x", i * 2654435761u, i);
        HL_CHECK(!hl_shadow_draw(id, 0));
        HL_CHECK(hl_shadow_draw(id, 1));
        for (int k = 0; k < 3; k++) {
            bool d = hl_shadow_draw(id, rates[k]);
            HL_CHECK(d == hl_shadow_draw(id, rates[k])); /* the same id, the same draw */
            hits[k] += d;
            if (k && hits[k - 1] > hits[k]) HL_FAIL_("a higher rate drew fewer (%d > %d)", hits[k - 1], hits[k]);
        }
    }
    for (int k = 0; k < 3; k++) {
        /* Binomial: 5 standard deviations (at most 0.8 percentage points here). */
        double p = rates[k], got = (double)hits[k] / n, sd = __builtin_sqrt(p * (1 - p) / n);
        if (got < p - 5 * sd || got > p + 5 * sd) HL_FAIL_("rate %.1f drew %.4f", p, got);
    }
    /* Ids that differ in their last character only are drawn independently. */
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "req_abc%04d0", i);
        snprintf(b, sizeof b, "req_abc%04d1", i);
        same += hl_shadow_draw(a, 0.5) == hl_shadow_draw(b, 0.5);
    }
    HL_CHECK(same > 400 && same < 600);
}

/* Run while a slot is free and nobody waits; queue while there is room; else drop. */
HL_TEST(admission) {
    HL_CHECK_INT_EQ(hl_shadow_admission(0, 0, 2, 4), HL_SHADOW_RUN);
    HL_CHECK_INT_EQ(hl_shadow_admission(1, 0, 2, 4), HL_SHADOW_RUN);
    HL_CHECK_INT_EQ(hl_shadow_admission(2, 0, 2, 4), HL_SHADOW_QUEUE);
    HL_CHECK_INT_EQ(hl_shadow_admission(1, 1, 2, 4), HL_SHADOW_QUEUE); /* first come, first served */
    HL_CHECK_INT_EQ(hl_shadow_admission(2, 3, 2, 4), HL_SHADOW_QUEUE);
    HL_CHECK_INT_EQ(hl_shadow_admission(2, 4, 2, 4), HL_SHADOW_DROP);
    /* No queue: busy is dropped at once. */
    HL_CHECK_INT_EQ(hl_shadow_admission(0, 0, 1, 0), HL_SHADOW_RUN);
    HL_CHECK_INT_EQ(hl_shadow_admission(1, 0, 1, 0), HL_SHADOW_DROP);
}

static void feed_text(hl_shadow_capture *c, const char *s, size_t cap) {
    hl_stream_event ev = {.type = HL_EV_TEXT, .text = s, .text_len = strlen(s)};
    hl_shadow_capture_event(c, &ev, cap);
}

/* A streamed answer is put back together: text, tool calls by index, logprobs, the finish. */
HL_TEST(capture) {
    hl_shadow_capture c;
    hl_shadow_capture_init(&c);
    feed_text(&c, "Hello", 1000);
    feed_text(&c, ", world", 1000);
    hl_stream_event t0 = {.type = HL_EV_TOOL_CALL, .index = 0, .tool_id = "call_1", .tool_name = "get",
                          .text = "{\"a\":", .text_len = 5};
    hl_stream_event t1 = {.type = HL_EV_TOOL_CALL, .index = 1, .tool_id = "call_2", .tool_name = "put",
                          .text = "{}", .text_len = 2};
    hl_stream_event t0b = {.type = HL_EV_TOOL_CALL, .index = 0, .text = "1}", .text_len = 2};
    hl_shadow_capture_event(&c, &t0, 1000);
    hl_shadow_capture_event(&c, &t1, 1000);
    hl_shadow_capture_event(&c, &t0b, 1000);
    json_t *lp = json_pack("[{s:f}]", "logprob", -0.5);
    hl_stream_event l = {.type = HL_EV_LOGPROBS, .logprobs = lp};
    hl_shadow_capture_event(&c, &l, 1000);
    hl_shadow_capture_event(&c, &l, 1000);
    hl_stream_event f = {.type = HL_EV_FINISH, .finish = HL_FINISH_TOOL_CALLS};
    hl_shadow_capture_event(&c, &f, 1000);
    json_decref(lp);
    HL_CHECK(!c.over);
    HL_CHECK_STR_EQ(c.resp.text, "Hello, world");
    HL_REQUIRE(c.resp.n_tool_calls == 2);
    HL_CHECK_STR_EQ(c.resp.tool_calls[0].name, "get");
    HL_CHECK_STR_EQ(c.resp.tool_calls[0].id, "call_1");
    HL_CHECK_STR_EQ(c.resp.tool_calls[0].arguments, "{\"a\":1}");
    HL_CHECK_STR_EQ(c.resp.tool_calls[1].arguments, "{}");
    HL_CHECK_INT_EQ((int)json_array_size(c.logprobs), 2);
    HL_CHECK_INT_EQ(c.resp.finish, HL_FINISH_TOOL_CALLS);
    hl_shadow_capture_release(&c);
    HL_CHECK(c.resp.text == NULL && c.logprobs == NULL);
}

/* Past the cap nothing is kept and the capture says so (the shadow is skipped, counted). */
HL_TEST(capture_cap) {
    hl_shadow_capture c;
    hl_shadow_capture_init(&c);
    feed_text(&c, "0123456789", 16);
    HL_CHECK(!c.over);
    feed_text(&c, "0123456789", 16);
    HL_CHECK(c.over);
    HL_CHECK(c.resp.text == NULL);
    feed_text(&c, "x", 16);
    HL_CHECK(c.over && c.resp.text == NULL);
    hl_shadow_capture_release(&c);
    /* A whole answer: taken (moved out), or refused over the cap. */
    hl_chat_response r;
    hl_chat_response_init(&r);
    r.text = strdup("a short answer");
    hl_shadow_capture_init(&c);
    hl_shadow_capture_take(&c, &r, 100);
    HL_CHECK(!c.over && r.text == NULL);
    HL_CHECK_STR_EQ(c.resp.text, "a short answer");
    hl_shadow_capture_release(&c);
    r.text = strdup("a longer answer than the cap allows");
    hl_shadow_capture_init(&c);
    hl_shadow_capture_take(&c, &r, 10);
    HL_CHECK(c.over && c.resp.text == NULL);
    hl_shadow_capture_release(&c);
    hl_chat_response_release(&r);
}

HL_TEST(judge_verdict) {
    static const struct { const char *reply; hl_err err; int v; } cases[] = {
        {"A", HL_OK, -1}, {"B", HL_OK, 1}, {"TIE", HL_OK, 0}, {" tie.", HL_OK, 0}, {"**B**", HL_OK, 1},
        {"\"A\"", HL_OK, -1}, {"B\n", HL_OK, 1}, {"A.", HL_OK, -1}, {"(B)", HL_OK, 1},
        {"Answer", HL_ERR_PARSE, 0}, {"Both", HL_ERR_PARSE, 0}, {"", HL_ERR_PARSE, 0},
        {"C", HL_ERR_PARSE, 0}, {"tied", HL_ERR_PARSE, 0}, {"A1", HL_ERR_PARSE, 0}, {NULL, HL_ERR_PARSE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int v = 99;
        hl_err e = hl_shadow_judge_verdict(cases[i].reply, &v);
        if (e != cases[i].err || (e == HL_OK && v != cases[i].v))
            HL_FAIL_("reply '%s': err %d verdict %d", cases[i].reply ? cases[i].reply : "(null)", e, v);
    }
}

/* Two vectors of one length, or nothing. */
HL_TEST(embeddings_parse) {
    float *v = NULL;
    size_t dim = 0;
    long tokens = 0;
    const char *ok = "{\"data\":[{\"embedding\":[1,0,0.5]},{\"embedding\":[0,1,-0.5]}],\"usage\":{\"prompt_tokens\":9}}";
    HL_REQUIRE(hl_shadow_embeddings_parse(ok, strlen(ok), &v, &dim, &tokens) == HL_OK);
    HL_CHECK_INT_EQ((int)dim, 3);
    HL_CHECK_INT_EQ((int)tokens, 9);
    HL_CHECK(v[2] == 0.5f && v[3] == 0 && v[5] == -0.5f);
    free(v);
    static const char *const bad[] = {
        "", "{}", "{\"data\":[]}", "{\"data\":[{\"embedding\":[1]}]}",
        "{\"data\":[{\"embedding\":[1,2]},{\"embedding\":[1]}]}",
        "{\"data\":[{\"embedding\":[1,\"x\"]},{\"embedding\":[1,2]}]}",
        "{\"data\":[{\"embedding\":[1e39]},{\"embedding\":[1]}]}",
        "{\"data\":[{\"embedding\":[]},{\"embedding\":[]}]}",
        "{\"data\":[{\"embedding\":[1]},{\"embedding\":[1]},{\"embedding\":[1]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = (float *)1;
        if (hl_shadow_embeddings_parse(bad[i], strlen(bad[i]), &v, &dim, &tokens) != HL_ERR_PARSE || v)
            HL_FAIL_("accepted: %s", bad[i]);
    }
}

HL_TEST(result_names) {
    HL_CHECK_STR_EQ(hl_shadow_result_name(HL_SHADOW_COMPARED), "compared");
    HL_CHECK_STR_EQ(hl_shadow_result_name(HL_SHADOW_DROPPED_BUSY), "dropped_busy");
    HL_CHECK_STR_EQ(hl_shadow_result_name(HL_SHADOW_DROPPED_PRIVACY), "dropped_privacy");
    HL_CHECK_STR_EQ(hl_shadow_result_name(HL_SHADOW_DROPPED_BUDGET), "dropped_budget");
    HL_CHECK_STR_EQ(hl_shadow_result_name(HL_SHADOW_FAILED), "failed");
    HL_CHECK_STR_EQ(hl_shadow_result_name(HL_SHADOW_SKIPPED_SIZE), "skipped_size");
    HL_CHECK_INT_EQ(HL_SHADOW_N_RESULTS, HL_METRICS_SHADOW_RESULTS);
}

HL_TEST_MAIN()
