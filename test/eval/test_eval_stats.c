/* Tests for hl_eval_stats: nearest-rank
 * percentiles, the prompt-length buckets' edges, and a row's accumulation (errors and refusals
 * outside n, unknown costs flagged). */
#include <math.h>
#include "hl_eval_stats.h"
#include "hl_report.h"
#include "hl_test.h"

HL_TEST(percentiles_are_nearest_rank) {
    double v[] = {50, 10, 40, 20, 30};
    HL_CHECK(hl_eval_percentile(v, 5, 50) == 30);
    HL_CHECK(hl_eval_percentile(v, 5, 95) == 50);
    HL_CHECK(hl_eval_percentile(v, 5, 20) == 10);
    HL_CHECK(hl_eval_percentile(v, 5, 40) == 20); /* rank exactly 2, no rounding up */
    double w[20];
    for (int i = 0; i < 20; i++) w[i] = 20 - i; /* 1..20 reversed */
    HL_CHECK(hl_eval_percentile(w, 20, 95) == 19);
    HL_CHECK(hl_eval_percentile(w, 20, 50) == 10);
    HL_CHECK(hl_eval_percentile(w, 20, 100) == 20);
    double one = 7;
    HL_CHECK(hl_eval_percentile(&one, 1, 50) == 7);
    HL_CHECK(hl_eval_percentile(NULL, 0, 50) == -1);
}

HL_TEST(buckets_have_the_briefs_edges) {
    HL_CHECK_INT_EQ(hl_eval_bucket(0), HL_EVAL_BUCKET_1K);
    HL_CHECK_INT_EQ(hl_eval_bucket(1000), HL_EVAL_BUCKET_1K);
    HL_CHECK_INT_EQ(hl_eval_bucket(1001), HL_EVAL_BUCKET_4K);
    HL_CHECK_INT_EQ(hl_eval_bucket(4000), HL_EVAL_BUCKET_4K);
    HL_CHECK_INT_EQ(hl_eval_bucket(4001), HL_EVAL_BUCKET_8K);
    HL_CHECK_INT_EQ(hl_eval_bucket(8000), HL_EVAL_BUCKET_8K);
    HL_CHECK_INT_EQ(hl_eval_bucket(8001), HL_EVAL_BUCKET_MORE);
    HL_CHECK_STR_EQ(hl_eval_bucket_name(HL_EVAL_BUCKET_1K), "<=1k");
    HL_CHECK_STR_EQ(hl_eval_bucket_name(HL_EVAL_BUCKET_4K), "1k-4k");
    HL_CHECK_STR_EQ(hl_eval_bucket_name(HL_EVAL_BUCKET_8K), "4k-8k");
    HL_CHECK_STR_EQ(hl_eval_bucket_name(HL_EVAL_BUCKET_MORE), ">8k");
}

HL_TEST(a_row_counts_answers_errors_and_refusals) {
    hl_eval_acc a = {0};
    for (int i = 0; i < 40; i++) {
        hl_eval_obs o = {.ok = true, .scored = true, .agree = i < 30, .score = i < 30 ? 1 : 0.25,
                         .latency_ms = (double)(i + 1), .input_tokens = 10, .output_tokens = 2,
                         .cost_usd = 0.001, .cost_known = true};
        HL_REQUIRE(hl_eval_acc_add(&a, &o) == HL_OK);
    }
    hl_eval_obs err = {.ok = false, .latency_ms = 5000, .cost_usd = 0, .cost_known = true};
    hl_eval_obs refused = {.refused = true};
    hl_eval_obs unscored = {.ok = true, .latency_ms = 1000, .cost_known = false};
    HL_REQUIRE(hl_eval_acc_add(&a, &err) == HL_OK && hl_eval_acc_add(&a, &refused) == HL_OK &&
               hl_eval_acc_add(&a, &unscored) == HL_OK);
    hl_eval_summary s;
    hl_eval_acc_summary(&a, &s);
    HL_CHECK_INT_EQ(s.calls, 42);
    HL_CHECK_INT_EQ(s.errors, 1);
    HL_CHECK_INT_EQ(s.refused, 1);
    HL_CHECK_INT_EQ(s.n, 40);
    HL_CHECK_INT_EQ(s.agree, 30);
    HL_CHECK_NEAR(s.accuracy, 0.75, 1e-12);
    HL_CHECK_NEAR(s.mean_score, (30 + 10 * 0.25) / 40.0, 1e-12);
    double lo, hi;
    hl_report_wilson(30, 40, &lo, &hi);
    HL_CHECK(s.ci_lo == lo && s.ci_hi == hi);
    /* latencies of the 41 answers (1..40 and 1000); the failed call's 5000 is not one */
    HL_CHECK(s.p50_ms == 21);
    HL_CHECK(s.p95_ms == 39);
    HL_CHECK_INT_EQ(s.input_tokens, 400);
    HL_CHECK_INT_EQ(s.output_tokens, 80);
    HL_CHECK_NEAR(s.cost_usd, 0.04, 1e-12);
    HL_CHECK(s.cost_unknown);
    hl_eval_acc_release(&a);
    hl_eval_acc empty = {0};
    hl_eval_acc_summary(&empty, &s);
    HL_CHECK(s.accuracy == -1 && s.mean_score == -1 && s.p50_ms == -1 && s.ci_lo == 0 && s.ci_hi == 1);
}

HL_TEST_MAIN()
