/* Tests for hl_compare: each method on the cases a shadow comparison meets in practice and on
 * hostile ones (empty answers, fences, reordered keys, duplicate tool calls, invalid UTF-8,
 * very long texts), the method AUTO picks, and argument checks. */
#include <math.h>
#include <stdlib.h>
#include "hl_compare.h"
#include "hl_test.h"

static hl_chat_response resp(const char *text) {
    hl_chat_response r;
    hl_chat_response_init(&r);
    r.text = (char *)text; /* borrowed: never released in these tests */
    return r;
}

static hl_cmp_result cmp(const char *a, const char *b, const char *task, hl_cmp_method m, double th) {
    hl_chat_response ra = resp(a), rb = resp(b);
    hl_cmp_result r = {-1, HL_CMP_AUTO, false};
    if (hl_compare(&ra, &rb, task, m, th, &r) != HL_OK) r.score = -2;
    return r;
}

static double score(const char *a, const char *b, hl_cmp_method m) { return cmp(a, b, NULL, m, 0.5).score; }

HL_TEST(method_names_round_trip) {
    for (int m = HL_CMP_AUTO; m <= HL_CMP_ROUGE_L; m++) {
        hl_cmp_method back = (hl_cmp_method)99;
        HL_CHECK(hl_cmp_method_parse(hl_cmp_method_name((hl_cmp_method)m), &back));
        HL_CHECK_INT_EQ(back, m);
    }
    HL_CHECK_STR_EQ(hl_cmp_method_name(HL_CMP_TOKEN_F1), "token_f1");
    hl_cmp_method x = HL_CMP_EXACT;
    HL_CHECK(!hl_cmp_method_parse("ROUGE_L", &x));
    HL_CHECK(!hl_cmp_method_parse("", &x));
    HL_CHECK(!hl_cmp_method_parse(NULL, &x));
    HL_CHECK_INT_EQ(x, HL_CMP_EXACT);
    HL_CHECK(hl_cmp_method_name((hl_cmp_method)42) == NULL);
}

HL_TEST(exact_normalizes_labels) {
    HL_CHECK_NEAR(score("Positive", "positive", HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score("  positive.\n", "POSITIVE", HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score("\"Positive\".", "`positive`", HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score("'very   positive'!", "very positive", HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score("not\tspam", "not spam", HL_CMP_EXACT), 1, 0);
    /* Differences a user would call different labels. */
    HL_CHECK_NEAR(score("positive", "negative", HL_CMP_EXACT), 0, 0);
    HL_CHECK_NEAR(score("notspam", "not spam", HL_CMP_EXACT), 0, 0);
    HL_CHECK_NEAR(score("Label: positive", "positive", HL_CMP_EXACT), 0, 0); /* prefix kept */
    HL_CHECK_NEAR(score("\"positive", "positive", HL_CMP_EXACT), 0, 0);     /* unmatched quote */
    HL_CHECK_NEAR(score("Ünïcode", "ünïcode", HL_CMP_EXACT), 0, 0);          /* ASCII folding only */
    /* Empty answers: both empty agree, one empty does not. */
    HL_CHECK_NEAR(score("", "", HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score(" . ", "", HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score("", "positive", HL_CMP_EXACT), 0, 0);
    hl_cmp_result r = cmp("Positive", "positive.", NULL, HL_CMP_EXACT, 0);
    HL_CHECK(r.agree);
    HL_CHECK_INT_EQ(r.method, HL_CMP_EXACT);
}

HL_TEST(json_ignores_order_whitespace_case_and_fences) {
    const char *a = "{\"name\": \"Ada Lovelace\", \"year\": 1815, \"tags\": [\"math\", \"poetry\"]}";
    const char *b = "```json\n{ \"tags\":[\"MATH\",\"poetry \"],\n  \"year\":1815.0,\"name\":\"ada   lovelace\" }\n```";
    HL_CHECK_NEAR(score(a, b, HL_CMP_JSON), 1, 0);
    HL_CHECK(cmp(a, b, NULL, HL_CMP_JSON, 0).agree);
    HL_CHECK_NEAR(score("```\n[1,2]\n```", "[1, 2]", HL_CMP_JSON), 1, 0);
    /* One of four leaves differs. */
    const char *c = "{\"name\":\"Ada Lovelace\",\"year\":1816,\"tags\":[\"math\",\"poetry\"]}";
    HL_CHECK_NEAR(score(a, c, HL_CMP_JSON), 0.75, 1e-12);
    HL_CHECK(!cmp(a, c, NULL, HL_CMP_JSON, 0).agree);
    /* A key on one side only: union of 3 leaves, 2 match. */
    HL_CHECK_NEAR(score("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":2,\"c\":3}", HL_CMP_JSON), 2.0 / 3, 1e-12);
    /* Types differ: "1" is not 1; arrays keep their order. */
    HL_CHECK_NEAR(score("{\"a\":\"1\"}", "{\"a\":1}", HL_CMP_JSON), 0, 0);
    HL_CHECK_NEAR(score("[1,2]", "[2,1]", HL_CMP_JSON), 0, 0);
    /* Nested containers against scalars, empty containers. */
    HL_CHECK_NEAR(score("{\"a\":{\"x\":1,\"y\":2},\"b\":true}", "{\"a\":3,\"b\":true}", HL_CMP_JSON), 1.0 / 4, 1e-12);
    HL_CHECK_NEAR(score("{}", "{}", HL_CMP_JSON), 1, 0);
    HL_CHECK_NEAR(score("{\"a\":[]}", "{\"a\":[]}", HL_CMP_JSON), 1, 0);
    HL_CHECK_NEAR(score("{\"a\":null}", "{\"a\":false}", HL_CMP_JSON), 0, 0);
    /* Big integers compare exactly. */
    HL_CHECK_NEAR(score("9007199254740993", "9007199254740992", HL_CMP_JSON), 0, 0);
    HL_CHECK_NEAR(score("9007199254740993", "9007199254740992.0", HL_CMP_JSON), 0, 0);
    HL_CHECK_NEAR(score("[3, -0.0, 1e300]", "[3.0, 0, 1e300]", HL_CMP_JSON), 1, 0);
    HL_CHECK_NEAR(score("2.5", "2", HL_CMP_JSON), 0, 0);
    /* A side that is not JSON scores 0, including both empty. */
    HL_CHECK_NEAR(score(a, "Ada Lovelace, 1815", HL_CMP_JSON), 0, 0);
    HL_CHECK_NEAR(score("not json", a, HL_CMP_JSON), 0, 0);
    HL_CHECK_NEAR(score("", "", HL_CMP_JSON), 0, 0);
    HL_CHECK_NEAR(score("```json\n```", "{}", HL_CMP_JSON), 0, 0);
}

static hl_tool_call tc(const char *name, const char *args) { return (hl_tool_call){NULL, (char *)name, (char *)args}; }

static double tools(hl_tool_call *a, size_t na, hl_tool_call *b, size_t nb) {
    hl_chat_response ra = resp(""), rb = resp("");
    ra.tool_calls = a, ra.n_tool_calls = na;
    rb.tool_calls = b, rb.n_tool_calls = nb;
    hl_cmp_result r;
    if (hl_compare(&ra, &rb, "chat", HL_CMP_AUTO, 0.5, &r) != HL_OK) return -2;
    if (r.method != HL_CMP_TOOLS) return -3;
    return r.score;
}

HL_TEST(tools_multiset_of_name_and_arguments) {
    hl_tool_call a[] = {tc("get_weather", "{\"city\":\"Paris\",\"unit\":\"c\"}"), tc("get_time", "{}")};
    hl_tool_call b[] = {tc("get_time", ""), tc("get_weather", " {\"unit\": \"C\", \"city\": \"paris\"} ")};
    HL_CHECK_NEAR(tools(a, 2, b, 2), 1, 0);
    hl_tool_call c[] = {tc("get_weather", "{\"city\":\"Lyon\",\"unit\":\"c\"}"), tc("get_time", "{}")};
    HL_CHECK_NEAR(tools(a, 2, c, 2), 0.5, 1e-12);
    /* Duplicates: two equal calls on one side match one on the other once. */
    hl_tool_call d[] = {tc("get_time", "{}"), tc("get_time", "{}")};
    hl_tool_call e[] = {tc("get_time", "{}")};
    HL_CHECK_NEAR(tools(d, 2, e, 1), 0.5, 1e-12);
    HL_CHECK_NEAR(tools(e, 1, d, 2), 0.5, 1e-12);
    HL_CHECK_NEAR(tools(d, 2, d, 2), 1, 0);
    /* Name is exact; a call against none; unparsable arguments compared as text. */
    hl_tool_call f[] = {tc("Get_Time", "{}")};
    HL_CHECK_NEAR(tools(e, 1, f, 1), 0, 0);
    HL_CHECK_NEAR(tools(e, 1, NULL, 0), 0, 0);
    hl_tool_call g[] = {tc("run", "ls -la")}, h[] = {tc("run", "  LS -la ")}, k[] = {tc("run", "{\"cmd\":\"ls\"}")};
    HL_CHECK_NEAR(tools(g, 1, h, 1), 1, 0);
    HL_CHECK_NEAR(tools(g, 1, k, 1), 0, 0);
    /* Explicit TOOLS with no calls on either side: the same (no) calls. */
    HL_CHECK_NEAR(score("a", "b", HL_CMP_TOOLS), 1, 0);
}

HL_TEST(token_f1_and_rouge_l) {
    /* "the cat sat" vs "the cat ran": 2 common of 3 and 3. */
    HL_CHECK_NEAR(score("The cat sat.", "the CAT ran", HL_CMP_TOKEN_F1), 2.0 / 3, 1e-12);
    /* Bag vs order: same words reversed is F1 1, ROUGE-L 1/3 (LCS of length 1 over 3). */
    HL_CHECK_NEAR(score("a b c", "c b a", HL_CMP_TOKEN_F1), 1, 1e-12);
    HL_CHECK_NEAR(score("a b c", "c b a", HL_CMP_ROUGE_L), 1.0 / 3, 1e-12);
    /* LCS "a c d" of 4 and 5 tokens: F = 2*3/9. */
    HL_CHECK_NEAR(score("a b c d", "a x c y d", HL_CMP_ROUGE_L), 6.0 / 9, 1e-12);
    /* Repeated tokens count as often as they occur. */
    HL_CHECK_NEAR(score("yes yes yes", "yes", HL_CMP_TOKEN_F1), 0.5, 1e-12);
    /* UTF-8 letters are word bytes; punctuation splits. */
    HL_CHECK_NEAR(score("café au lait", "CAFÉ,au-lait", HL_CMP_TOKEN_F1), 2.0 / 3, 1e-12);
    HL_CHECK_NEAR(score("naïve", "naive", HL_CMP_ROUGE_L), 0, 0);
    /* Empty answers. */
    HL_CHECK_NEAR(score("", "", HL_CMP_ROUGE_L), 1, 0);
    HL_CHECK_NEAR(score("...", "!!", HL_CMP_TOKEN_F1), 1, 0);
    HL_CHECK_NEAR(score("", "some answer", HL_CMP_ROUGE_L), 0, 0);
    HL_CHECK_NEAR(score("some answer", "", HL_CMP_TOKEN_F1), 0, 0);
    /* agree follows the threshold. */
    HL_CHECK(cmp("a b c d", "a x c y d", NULL, HL_CMP_ROUGE_L, 0.6).agree);
    HL_CHECK(!cmp("a b c d", "a x c y d", NULL, HL_CMP_ROUGE_L, 0.7).agree);
}

HL_TEST(invalid_utf8_is_just_bytes) {
    const char a[] = "ok \xff\xfe broken \xc3 tail";
    const char b[] = "OK \xff\xfe broken \xc3 tail";
    HL_CHECK_NEAR(score(a, b, HL_CMP_ROUGE_L), 1, 0);
    HL_CHECK_NEAR(score(a, b, HL_CMP_EXACT), 1, 0);
    HL_CHECK_NEAR(score(a, "ok broken tail", HL_CMP_TOKEN_F1), 6.0 / 8, 1e-12);
    HL_CHECK_NEAR(score("{\"a\":\"\xff\"}", "{\"a\":\"\xff\"}", HL_CMP_JSON), 0, 0); /* not JSON */
}

static char *repeat_words(size_t n, const char *w1, const char *w2) {
    size_t l1 = strlen(w1), l2 = strlen(w2), len = 0;
    char *s = malloc(n * (l1 > l2 ? l1 : l2) + n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *w = i % 2 ? w2 : w1;
        memcpy(s + len, w, strlen(w));
        len += strlen(w);
        s[len++] = ' ';
    }
    s[len] = '\0';
    return s;
}

HL_TEST(very_long_texts_are_capped) {
    /* 200k tokens a side: ROUGE-L reads the first HL_CMP_MAX_LCS_TOKENS of each, so two
     * answers equal in that prefix score 1 whatever follows; F1 reads more. */
    size_t n = 200000;
    char *a = repeat_words(n, "alpha", "bravo");
    char *b = repeat_words(n, "alpha", "bravo");
    HL_REQUIRE(a && b);
    memcpy(b + (size_t)HL_CMP_MAX_LCS_TOKENS * 6, "gamma", 5); /* past the prefix: differs */
    HL_CHECK_NEAR(score(a, b, HL_CMP_ROUGE_L), 1, 0);
    HL_CHECK(score(a, b, HL_CMP_TOKEN_F1) < 1);
    HL_CHECK(score(a, b, HL_CMP_TOKEN_F1) > 0.99);
    b[0] = 'x';
    double r = score(a, b, HL_CMP_ROUGE_L);
    HL_CHECK_NEAR(r, (double)(HL_CMP_MAX_LCS_TOKENS - 1) / HL_CMP_MAX_LCS_TOKENS, 1e-12);
    HL_CHECK_NEAR(score(a, "", HL_CMP_ROUGE_L), 0, 0);
    HL_CHECK_NEAR(score(a, b, HL_CMP_EXACT), 0, 0);
    free(a);
    free(b);
}

HL_TEST(auto_picks_by_task_and_shape) {
    hl_chat_response j1 = resp("{\"a\":1}"), j2 = resp("```json\n[1]\n```"), t = resp("hello"), e = resp("");
    HL_CHECK_INT_EQ(hl_cmp_pick("classification", &t, &t), HL_CMP_EXACT);
    HL_CHECK_INT_EQ(hl_cmp_pick("extraction", &t, &t), HL_CMP_JSON);
    HL_CHECK_INT_EQ(hl_cmp_pick("chat", &j1, &j2), HL_CMP_JSON);
    HL_CHECK_INT_EQ(hl_cmp_pick(NULL, &j1, &t), HL_CMP_ROUGE_L);
    HL_CHECK_INT_EQ(hl_cmp_pick(NULL, NULL, NULL), HL_CMP_ROUGE_L);
    hl_chat_response s1 = resp("42"), s2 = resp("42");
    HL_CHECK_INT_EQ(hl_cmp_pick(NULL, &s1, &s2), HL_CMP_ROUGE_L); /* scalars are not objects */
    hl_tool_call c[] = {tc("f", "{}")};
    e.tool_calls = c, e.n_tool_calls = 1;
    HL_CHECK_INT_EQ(hl_cmp_pick("classification", &t, &e), HL_CMP_TOOLS);
    hl_cmp_result r;
    HL_REQUIRE(hl_compare(&t, &t, "summarization", HL_CMP_AUTO, 0.8, &r) == HL_OK);
    HL_CHECK_INT_EQ(r.method, HL_CMP_ROUGE_L);
    HL_CHECK(r.agree);
}

HL_TEST(bad_arguments) {
    hl_chat_response a = resp("x"), b = resp("x");
    hl_cmp_result r = {0.25, HL_CMP_EXACT, true};
    HL_CHECK_INT_EQ(hl_compare(&a, &b, NULL, (hl_cmp_method)17, 0.5, &r), HL_ERR_INVAL);
    HL_CHECK_INT_EQ(hl_compare(&a, &b, NULL, HL_CMP_ROUGE_L, 0, &r), HL_ERR_INVAL);
    HL_CHECK_INT_EQ(hl_compare(&a, &b, NULL, HL_CMP_TOKEN_F1, 1.5, &r), HL_ERR_INVAL);
    HL_CHECK_INT_EQ(hl_compare(&a, &b, NULL, HL_CMP_TOKEN_F1, NAN, &r), HL_ERR_INVAL);
    HL_CHECK_NEAR(r.score, 0.25, 0); /* untouched */
    /* The threshold matters only for the graded methods. */
    HL_CHECK_INT_EQ(hl_compare(&a, &b, NULL, HL_CMP_EXACT, 0, &r), HL_OK);
    HL_CHECK(r.agree);
    HL_CHECK_INT_EQ(hl_compare(&a, &b, NULL, HL_CMP_ROUGE_L, 1, &r), HL_OK);
    HL_CHECK(r.agree);
}

HL_TEST(cosine) {
    float a[] = {1, 0, 0}, b[] = {1, 1, 0}, z[] = {0, 0, 0}, n[] = {-1, 0, 0}, w[] = {NAN, 1, 0};
    HL_CHECK_NEAR(hl_cmp_cosine(a, b, 3), 1 / sqrt(2), 1e-7);
    HL_CHECK_NEAR(hl_cmp_cosine(a, a, 3), 1, 1e-12);
    HL_CHECK_NEAR(hl_cmp_cosine(a, z, 3), 0, 0);
    HL_CHECK_NEAR(hl_cmp_cosine(a, n, 3), 0, 0);
    HL_CHECK_NEAR(hl_cmp_cosine(a, w, 3), 0, 0);
    HL_CHECK_NEAR(hl_cmp_cosine(a, b, 0), 0, 0);
}

HL_TEST_MAIN()
