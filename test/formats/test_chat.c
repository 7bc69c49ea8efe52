/* Tests for hl_chat's confidence signals: the geometric mean, the first token's margin and the
 * least token probability, from the logprobs objects OpenAI-compatible servers and the builtin
 * engine return, and what each says when a part is missing. */
#include <math.h>
#include "hl_chat.h"
#include "hl_test.h"

static hl_conf_signals signals_of(const char *json) {
    json_error_t err;
    json_t *lp = json_loads(json, 0, &err);
    hl_conf_signals s = {-7, -7, -7};
    if (!lp) fprintf(stderr, "bad test json: %s\n", err.text);
    hl_confidence_signals(lp, &s);
    json_decref(lp);
    return s;
}

HL_TEST(all_three_signals) {
    /* Tokens with probabilities 0.9 and 0.4; the first token's alternatives 0.9, 0.05 and
     * 0.03 (not sorted): margin 0.85. */
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"content\":[{\"token\":\"A\",\"logprob\":%.17g,\"top_logprobs\":["
             "{\"token\":\"B\",\"logprob\":%.17g},{\"token\":\"A\",\"logprob\":%.17g},{\"token\":\"C\",\"logprob\":%.17g}]},"
             "{\"token\":\"!\",\"logprob\":%.17g,\"top_logprobs\":[]}]}",
             log(0.9), log(0.05), log(0.9), log(0.03), log(0.4));
    hl_conf_signals s = signals_of(buf);
    HL_CHECK_NEAR(s.geomean, sqrt(0.9 * 0.4), 1e-12);
    HL_CHECK_NEAR(s.margin, 0.85, 1e-12);
    HL_CHECK_NEAR(s.min, 0.4, 1e-12);
    /* hl_confidence is the geometric mean. */
    json_t *lp = json_loads(buf, 0, NULL);
    HL_CHECK_NEAR(hl_confidence(lp), s.geomean, 0);
    json_decref(lp);
}

HL_TEST(margin_needs_two_alternatives_of_the_first_token) {
    /* One alternative: margin unknown, the others known. */
    hl_conf_signals s = signals_of("{\"content\":[{\"logprob\":-0.1,\"top_logprobs\":[{\"logprob\":-0.1}]},"
                                   "{\"logprob\":-0.2,\"top_logprobs\":[{\"logprob\":-0.2},{\"logprob\":-3}]}]}");
    HL_CHECK_NEAR(s.margin, -1, 0);
    HL_CHECK_NEAR(s.min, exp(-0.2), 1e-12);
    HL_CHECK_NEAR(s.geomean, exp(-0.15), 1e-12);
    /* No top_logprobs at all (the client's default): margin unknown. */
    s = signals_of("{\"content\":[{\"logprob\":-0.5}]}");
    HL_CHECK_NEAR(s.margin, -1, 0);
    HL_CHECK_NEAR(s.min, exp(-0.5), 1e-12);
    /* Two equally likely alternatives: margin 0. Alternatives that are not numbers skipped. */
    s = signals_of("{\"content\":[{\"logprob\":-0.6931,\"top_logprobs\":[{\"logprob\":-0.6931},"
                   "{\"logprob\":null},{\"logprob\":-0.6931}]}]}");
    HL_CHECK_NEAR(s.margin, 0, 1e-12);
    /* The first token is the first with a logprob. */
    s = signals_of("{\"content\":[{\"token\":\"x\"},{\"logprob\":0,\"top_logprobs\":[{\"logprob\":0},"
                   "{\"logprob\":-20}]}]}");
    HL_CHECK_NEAR(s.margin, 1 - exp(-20), 1e-12);
}

HL_TEST(unknown_and_out_of_range) {
    hl_conf_signals s = {0, 0, 0};
    hl_confidence_signals(NULL, &s);
    HL_CHECK(s.geomean == -1 && s.margin == -1 && s.min == -1);
    s = signals_of("{\"content\":[]}");
    HL_CHECK(s.geomean == -1 && s.margin == -1 && s.min == -1);
    s = signals_of("{\"content\":\"nope\",\"refusal\":null}");
    HL_CHECK(s.geomean == -1 && s.margin == -1 && s.min == -1);
    /* A positive logprob counts as probability 1. */
    s = signals_of("{\"content\":[{\"logprob\":0.5,\"top_logprobs\":[{\"logprob\":0.5},{\"logprob\":-1e9}]}]}");
    HL_CHECK_NEAR(s.geomean, 1, 0);
    HL_CHECK_NEAR(s.min, 1, 0);
    HL_CHECK_NEAR(s.margin, 1, 0);
}

HL_TEST_MAIN()
