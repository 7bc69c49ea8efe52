/* Tests for hl_advise: the break-even arithmetic pinned on the product brief's numbers (and on
 * the brief's headline totals that do not follow from them), the decision matrix, prices from
 * a config before the built-in table, and ledger figures against a hand-computed fixture:
 * the records `report` counts (valid, deduplicated, the brief's CostTracker lines included). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "hl_advise.h"
#include "hl_pricing.h"
#include "hl_ledger.h"
#include "hl_store.h"
#include "hl_test.h"

/* Writes n bytes of text to a fresh temporary file; its path goes into path (caller unlinks). */
static void write_temp_n(const char *text, size_t n, char *path, size_t len) {
    snprintf(path, len, "/tmp/hl_test_advise_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) exit(1);
    if (write(fd, text, n) != (ssize_t)n) exit(1);
    close(fd);
}

static void write_temp(const char *text, char *path, size_t len) { write_temp_n(text, strlen(text), path, len); }

static bool contains(const hl_buf *b, const char *s) { return b->data && strstr(b->data, s); }

/* 10M tokens a month on GPT-4o at the brief's $5/$15 (the built-in table keeps that price
 * under the snapshot it belongs to, gpt-4o-2024-05-13) with a 70/30 split: 7M x $5 + 3M x
 * $15 per 1M = $35 + $45 = $80. The brief says ~$1,800. */
HL_TEST(brief_scenario_gpt4o_costs_80_not_1800) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.cloud_model = "gpt-4o-2024-05-13";
    hl_advise_result r;
    char err[256];
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(r.price.input_per_mtok, 5.0, 0);
    HL_CHECK_NEAR(r.price.output_per_mtok, 15.0, 0);
    HL_CHECK_NEAR(r.input_tokens, 7e6, 1e-6);
    HL_CHECK_NEAR(r.output_tokens, 3e6, 1e-6);
    HL_CHECK_NEAR(r.cloud_input_usd, 35.0, 1e-9);
    HL_CHECK_NEAR(r.cloud_output_usd, 45.0, 1e-9);
    HL_CHECK_NEAR(r.cloud_usd, 80.0, 1e-9);
    HL_CHECK_NEAR(r.blended_per_mtok, 8.0, 1e-12);
    HL_CHECK(r.brief_note);
    /* The discrepancy: no split of 10M tokens at $5/$15 reaches the brief's $1,800. */
    double headline, pin, pout;
    HL_REQUIRE(hl_advise_brief_headline("gpt-4o", &headline, &pin, &pout));
    HL_CHECK_NEAR(headline, 1800.0, 0);
    HL_CHECK_NEAR(10 * pin, 50.0, 1e-12);   /* all input */
    HL_CHECK_NEAR(10 * pout, 150.0, 1e-12); /* all output: the most any split costs */
    HL_CHECK(headline > 10 * pout);
    HL_CHECK_NEAR(headline / r.cloud_usd, 22.5, 1e-9);
    HL_CHECK_NEAR(headline, pin * 10 * 36, 1e-9); /* = 36 months of input tokens */
    HL_CHECK(hl_advise_brief_headline("gpt-4o-2024-05-13", NULL, NULL, NULL));
    HL_CHECK(!hl_advise_brief_headline("gpt-4o-mini", NULL, NULL, NULL));
}

/* Claude 3.5 Sonnet $3/$15: 7M x $3 + 3M x $15 per 1M = $21 + $45 = $66 (the brief: ~$1,080).
 * Local: $550 / 36 months = $15.28 + $10 power = $25.28; recovered in 550 / (66 - 10) = 9.82
 * months, not the brief's "within 6 months". */
HL_TEST(brief_scenario_claude_break_even) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    hl_advise_result r;
    char err[256];
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(r.price.model, "claude-3-5-sonnet");
    HL_CHECK_NEAR(r.cloud_input_usd, 21.0, 1e-9);
    HL_CHECK_NEAR(r.cloud_output_usd, 45.0, 1e-9);
    HL_CHECK_NEAR(r.cloud_usd, 66.0, 1e-9);
    HL_CHECK_NEAR(r.hardware_month_usd, 550.0 / 36.0, 1e-12);
    HL_CHECK_NEAR(r.hardware_month_usd, 15.2777777778, 1e-9);
    HL_CHECK_NEAR(r.local_usd, 550.0 / 36.0 + 10.0, 1e-12);
    HL_CHECK_NEAR(r.saving_usd, 66.0 - (550.0 / 36.0 + 10.0), 1e-9);
    HL_CHECK_NEAR(r.months_to_recover, 550.0 / 56.0, 1e-12);
    HL_CHECK_NEAR(r.months_to_recover, 9.8214285714, 1e-9);
    HL_CHECK_NEAR(r.break_even_tokens, (550.0 / 36.0 + 10.0) / 6.6 * 1e6, 1e-3);
    HL_CHECK_NEAR(r.six_month_tokens, (550.0 / 6.0 + 10.0) / 6.6 * 1e6, 1e-3);
    /* busy-time view: 10M / 650 tokens x 1,800 ms = 7.69 h x $0.05 */
    HL_CHECK_NEAR(r.busy_hours, 10e6 / 650.0 * 1.8 / 3600.0, 1e-9);
    HL_CHECK_NEAR(r.busy_usd, 10e6 / 650.0 * 1.8 / 3600.0 * 0.05, 1e-12);
    HL_CHECK_NEAR(r.cover_hours, (550.0 / 36.0 + 10.0) / 0.05, 1e-9);
    HL_CHECK_STR_EQ(r.tier, "5M+");
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_HYBRID);
    HL_CHECK(strstr(r.matrix[0][1], "does not hold") != NULL);
    HL_CHECK(strstr(r.matrix[0][1], "9.8 months") != NULL);
    HL_CHECK(r.brief_note);

    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    static const char *const lines[] = {
        "= 10,000,000 x 0.700",
        "= 7,000,000 / 1M x $3.00",
        "= 3,000,000 / 1M x $15.00",
        "cloud per month          $66.00",
        "= $21.00 + $45.00",
        "hardware                 $15.28",
        "= $550.00 / 36 months",
        "local per month          $25.28",
        "9.8 months",
        "= $550.00 / ($66.00 cloud - $10.00 power)",
        "Recommendation: hybrid",
        "Note: the brief's headline figures do not follow from its own prices",
        "$50.00 all input .. $150.00 all output; $80.00 at 70/30",
        "$30.00 all input .. $150.00 all output; $66.00 at 70/30",
        "~$1,800 is 12.0x and ~$1,080 is 7.2x the most any split costs",
        "$5.00 x 10 x 36 = $1,800; $3.00 x 10 x 36 = $1,080",
        "never from the brief's totals",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!contains(&b, lines[i])) HL_FAIL_("text lacks: %s", lines[i]);
    hl_buf_release(&b);
}

HL_TEST(json_report_carries_the_numbers) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    hl_advise_result r;
    char err[256];
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_json(&in, &r, &b) == HL_OK);
    json_t *j = json_loads(b.data, 0, NULL);
    HL_REQUIRE(j);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_object_get(j, "cloud"), "usd_per_month")), 66.0, 1e-9);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_object_get(j, "break_even"), "months_to_recover")),
                  550.0 / 56.0, 1e-9);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "decision"), "advice")), "hybrid");
    json_t *note = json_object_get(j, "brief_discrepancy");
    HL_CHECK_INT_EQ(json_array_size(note), 2);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_array_get(note, 0), "brief_usd_per_month")), 1800, 0);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_array_get(note, 0), "at_input_share_usd")), 80, 1e-9);
    HL_CHECK(json_array_size(json_object_get(j, "arithmetic")) > 10);
    json_decref(j);
    hl_buf_release(&b);
}

/* The note is about the brief's scenario: another volume does not print it. */
HL_TEST(no_brief_note_off_the_brief_scenario) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.tokens_per_month = 2e6;
    in.brief_scenario = false;
    hl_advise_result r;
    char err[256];
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK(!r.brief_note);
    in.tokens_per_month = 10e6; /* the brief's volume on one of its models: the note */
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK(r.brief_note);
}

static const char config_text[] =
    "backends:\n"
    "  - {name: gpt, kind: openai, location: cloud, base_url: http://127.0.0.1:1/v1, model: gpt-4o}\n"
    "routes:\n"
    "  - {name: all, to: [gpt]}\n"
    "prices:\n"
    "  - {model: gpt-4o, input_per_mtok: 2.50, output_per_mtok: 10.00}\n";

/* A config's prices come before the built-in table: gpt-4o at today's $2.50/$10 gives
 * 7M x 2.5 + 3M x 10 = $17.50 + $30 = $47.50. */
HL_TEST(config_prices_come_first) {
    hl_config *cfg;
    char err[256];
    HL_REQUIRE(hl_config_parse("prices.yaml", config_text, sizeof config_text - 1, &cfg, err, sizeof err) == HL_OK);
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.cloud_model = "gpt-4o-2024-08-06";
    in.prices = cfg;
    hl_advise_result r;
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(r.cloud_usd, 47.5, 1e-9);
    HL_CHECK_STR_EQ(r.price_source, "prices.yaml");
    /* a model the config lacks falls back to the built-in table */
    in.cloud_model = "claude-3-5-sonnet-20241022";
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(r.cloud_usd, 66.0, 1e-9);
    HL_CHECK(!strncmp(r.price_source, "built-in", 8));
    /* neither: an error that says what to do */
    in.cloud_model = "mystery-model";
    HL_CHECK_INT_EQ(hl_advise_compute(&in, &r, err, sizeof err), HL_ERR_NOTFOUND);
    HL_CHECK(strstr(err, "mystery-model") != NULL);
    hl_config_free(cfg);
}

HL_TEST(builtin_prices_do_not_bill_mini_as_gpt4o) {
    const char *src;
    const hl_price *p = hl_advise_price(NULL, "gpt-4o-mini-2024-07-18", &src);
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 0.15, 0);
    p = hl_advise_price(NULL, "gpt-4o-2024-05-13", &src);
    HL_REQUIRE(p);
    HL_CHECK_NEAR(p->input_per_mtok, 5.0, 0);
    HL_CHECK(hl_advise_price(NULL, "gpt-4", &src) == NULL);
}

/* One price table: the built-in one (hl_pricing.c), which report and advise both read, says
 * what the shipped config's `prices` say for every model both have, so a ledger's cost
 * (billed by the config) and the all-cloud counterfactual use the same rates. gpt-4o is
 * $2.50/$10; the brief's $5/$15 belongs to gpt-4o-2024-05-13. */
HL_TEST(builtin_prices_agree_with_the_shipped_config) {
    const char *dir = getenv("HL_SRC_DIR");
    if (!dir) HL_SKIP("HL_SRC_DIR not set");
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/config/hybridllm.yaml", dir);
    hl_config *cfg = NULL;
    HL_REQUIRE(hl_config_load(path, &cfg, err, sizeof err) == HL_OK);
    const char *models[] = {"gpt-4o", "gpt-4o-2024-05-13", "gpt-4o-2024-08-06", "gpt-4o-mini", "claude-3-5-sonnet-20241022"};
    int compared = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        const hl_price *c = hl_config_price(cfg, models[i]), *b = hl_pricing_builtin(models[i], NULL);
        HL_REQUIRE(b);
        if (!c) continue;
        compared++;
        HL_CHECK_NEAR(b->input_per_mtok, c->input_per_mtok, 0);
        HL_CHECK_NEAR(b->output_per_mtok, c->output_per_mtok, 0);
        HL_CHECK_NEAR(b->cached_input_per_mtok, c->cached_input_per_mtok, 0);
    }
    HL_CHECK(compared >= 4);
    const hl_price *g = hl_pricing_builtin("gpt-4o", NULL);
    HL_CHECK_NEAR(g->input_per_mtok, 2.50, 0);
    HL_CHECK_NEAR(g->output_per_mtok, 10.0, 0);
    /* advise prices through the same table */
    HL_CHECK(hl_advise_price(NULL, "gpt-4o", NULL) == g);
    hl_config_free(cfg);
}

typedef struct matrix_case {
    double tokens;
    const char *model;
    hl_advise_privacy privacy;
    hl_advise_accuracy accuracy;
    hl_advice advice;
    const char *tier;
} matrix_case;

HL_TEST(decision_matrix) {
    static const matrix_case cases[] = {
        /* volume alone */
        {100e3, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSET, HL_ADVICE_CLOUD, "under 500K"},
        {499999, NULL, HL_PRIVACY_NO, HL_ACCURACY_UNSURE, HL_ADVICE_CLOUD, "under 500K"},
        /* 500K-5M: the arithmetic says which side wins; where local would, measure first */
        {500e3, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSET, HL_ADVICE_CLOUD, "500K-5M"},   /* $3.30 < $25.28 */
        {3e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSURE, HL_ADVICE_CLOUD, "500K-5M"},    /* $19.80 */
        {4.5e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSURE, HL_ADVICE_MEASURE, "500K-5M"}, /* $29.70 */
        {10e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSURE, HL_ADVICE_MEASURE, "5M+"},
        {5e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSET, HL_ADVICE_HYBRID, "5M+"},
        /* privacy: local, no debate, whatever the volume or the accuracy */
        {100e3, NULL, HL_PRIVACY_REQUIRED, HL_ACCURACY_UNSET, HL_ADVICE_LOCAL, "under 500K"},
        {10e6, NULL, HL_PRIVACY_REQUIRED, HL_ACCURACY_REASONING, HL_ADVICE_LOCAL, "5M+"},
        /* reasoning/code: cloud */
        {10e6, NULL, HL_PRIVACY_NO, HL_ACCURACY_REASONING, HL_ADVICE_CLOUD, "5M+"},
        /* classification: local when the arithmetic says it pays */
        {2e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_CLASSIFICATION, HL_ADVICE_CLOUD, "500K-5M"}, /* $13.20 < $25.28 */
        {4.5e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_CLASSIFICATION, HL_ADVICE_LOCAL, "500K-5M"}, /* $29.70 */
        {20e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_CLASSIFICATION, HL_ADVICE_LOCAL, "5M+"},
        /* 5M+ assumes local is cheaper: not with gpt-4o-mini ($2.85 a month for 10M) */
        {10e6, "gpt-4o-mini", HL_PRIVACY_UNSET, HL_ACCURACY_UNSET, HL_ADVICE_CLOUD, "5M+"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const matrix_case *c = &cases[i];
        hl_advise_input in;
        hl_advise_input_defaults(&in);
        in.brief_scenario = false;
        in.tokens_per_month = c->tokens;
        if (c->model) in.cloud_model = c->model;
        in.privacy = c->privacy;
        in.accuracy = c->accuracy;
        hl_advise_result r;
        char err[256];
        if (hl_advise_compute(&in, &r, err, sizeof err) != HL_OK) {
            HL_FAIL_("case %zu: %s", i, err);
            continue;
        }
        if (r.advice != c->advice)
            HL_FAIL_("case %zu: advice %s, expected %s", i, hl_advice_name(r.advice), hl_advice_name(c->advice));
        HL_CHECK_STR_EQ(r.tier, c->tier);
        HL_CHECK(r.n_reasons >= 1);
    }
}

/* ---- the conclusions (issue 13): each pinned where the old advisor went wrong ---- */

static void compute_at(double tokens, const char *model, hl_advise_accuracy acc, hl_advise_result *r) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.brief_scenario = false;
    in.tokens_per_month = tokens;
    if (model) in.cloud_model = model;
    in.accuracy = acc;
    char err[256];
    if (hl_advise_compute(&in, r, err, sizeof err) != HL_OK) abort();
}

static bool has_reason(const hl_advise_result *r, const char *s) {
    for (int i = 0; i < r->n_reasons; i++)
        if (strstr(r->reasons[i], s)) return true;
    return false;
}

/* 500K-5M was "break-even zone" where the figures show the cloud 7.7x cheaper (500K: $3.30
 * against $25.28): say which side wins and by how much. */
HL_TEST(break_even_zone_says_which_side_wins_and_by_how_much) {
    hl_advise_result r;
    compute_at(500e3, NULL, HL_ACCURACY_UNSET, &r);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_CLOUD);
    HL_CHECK(strstr(r.matrix[0][1], "the cloud wins, $3.30 vs local $25.28 per month (local costs 7.7x as much)"));
    HL_CHECK(has_reason(&r, "the cloud wins at these prices, $3.30 a month against $25.28"));
    HL_CHECK(has_reason(&r, "Local wins from 3,829,966 tokens a month"));
    compute_at(3.8e6, NULL, HL_ACCURACY_UNSET, &r); /* $25.08: the cloud, barely */
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_CLOUD);
    HL_CHECK(strstr(r.matrix[0][1], "(local costs 1.0x as much)"));
    compute_at(4.5e6, NULL, HL_ACCURACY_UNSET, &r); /* $29.70: local wins by $4.42 */
    HL_CHECK(strstr(r.matrix[0][1], "local wins on price: $25.28 vs cloud $29.70 per month ($4.42 saved"));
    for (int i = 0; i < 3; i++) HL_CHECK(!strstr(r.matrix[0][1], "Break-even zone:"));
}

/* --accuracy unsure at 10M gave "hybrid"; the brief says "start with cloud, measure": the
 * advice is the shadow set-up that measures it, with its route config. */
HL_TEST(unsure_means_measure_with_a_shadow_share) {
    hl_advise_result r;
    compute_at(10e6, NULL, HL_ACCURACY_UNSURE, &r);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_MEASURE);
    HL_CHECK(strstr(r.snippet, "shadow: {rate: 0.1, to: [local]}") != NULL);
    HL_CHECK(strstr(r.snippet, "to: [cloud]") != NULL);
    HL_CHECK(strstr(r.snippet, "when: {sensitive: true}, to: [local]") != NULL);
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.accuracy = HL_ACCURACY_UNSURE;
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    HL_CHECK(contains(&b, "Recommendation: measure"));
    HL_CHECK(contains(&b, "Route config to measure with"));
    HL_CHECK(contains(&b, "shadow: {rate: 0.1, to: [local]}"));
    hl_buf_reset(&b);
    HL_REQUIRE(hl_advise_render_json(&in, &r, &b) == HL_OK);
    json_t *j = json_loads(b.data, 0, NULL);
    HL_REQUIRE(j);
    HL_CHECK(strstr(json_string_value(json_object_get(json_object_get(j, "decision"), "config_snippet")),
                    "shadow: {rate: 0.1") != NULL);
    json_decref(j);
    hl_buf_release(&b);
    /* Not given at all, 5M+: still the hybrid (the brief's router) */
    compute_at(10e6, NULL, HL_ACCURACY_UNSET, &r);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_HYBRID);
    HL_CHECK(!r.snippet[0]);
}

/* A payback longer than the 36-month hardware life is no payback: 2M tokens on Claude
 * ($13.20) recover $550 at $3.20 a month in 171.9 months; gpt-4o-mini at 50M ($14.25) in
 * 129.4. */
HL_TEST(payback_past_the_hardware_life_never_pays_back) {
    hl_advise_result r;
    compute_at(2e6, NULL, HL_ACCURACY_UNSET, &r);
    HL_CHECK_NEAR(r.months_to_recover, 550.0 / 3.2, 1e-9);
    HL_CHECK(!r.pays_back);
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    HL_CHECK(contains(&b, "hardware recovered in    never"));
    HL_CHECK(contains(&b, "171.9 months, longer than the hardware's 36-month life: it never pays back"));
    HL_CHECK(has_reason(&r, "never pays back (171.9 months"));
    hl_buf_release(&b);
    compute_at(50e6, "gpt-4o-mini", HL_ACCURACY_UNSET, &r);
    HL_CHECK(!r.pays_back);
    HL_CHECK(strstr(r.matrix[0][1], "the hardware never pays back (129.4 months") != NULL);
    compute_at(10e6, NULL, HL_ACCURACY_UNSET, &r); /* 9.8 months: pays back */
    HL_CHECK(r.pays_back);
}

/* 10G tokens a month is 3G output tokens: at the brief's 200 tokens in 1.8 s (111.1/s) that is
 * 7,500 busy hours, 11 machines of 720 hours, each charged. */
HL_TEST(capacity_model_charges_the_machines_the_volume_needs) {
    hl_advise_result r;
    compute_at(10e9, NULL, HL_ACCURACY_UNSET, &r);
    HL_CHECK_NEAR(r.throughput_tps, 200.0 / 1.8, 1e-9);
    HL_CHECK_NEAR(r.gpu_hours, 3e9 / (200.0 / 1.8) / 3600.0, 1e-6);
    HL_CHECK_NEAR(r.gpu_hours, 7500, 1e-6);
    HL_CHECK_INT_EQ(r.machines, 11);
    HL_CHECK_NEAR(r.local_usd, 11 * (550.0 / 36.0 + 10.0), 1e-9);
    HL_CHECK_NEAR(r.months_to_recover, 11 * 550.0 / (66000.0 - 110.0), 1e-9);
    /* A stated throughput: 1,000 tokens/s needs 834 hours, 2 machines. */
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.brief_scenario = false;
    in.tokens_per_month = 10e9;
    in.throughput_tps = 1000;
    char err[256];
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(r.machines, 2);
    HL_CHECK_NEAR(r.local_usd, 2 * (550.0 / 36.0 + 10.0), 1e-9);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    HL_CHECK(contains(&b, "machines needed          2"));
    HL_CHECK(contains(&b, "= 2 machines x $550.00 / 36 months"));
    hl_buf_release(&b);
    in.throughput_tps = -1;
    HL_CHECK_INT_EQ(hl_advise_compute(&in, &r, err, sizeof err), HL_ERR_INVAL);
    /* The brief's 10M is one machine, busy 7.5 hours. */
    compute_at(10e6, NULL, HL_ACCURACY_UNSET, &r);
    HL_CHECK_INT_EQ(r.machines, 1);
}

/* "the hybrid saves less, in proportion to its local share" is wrong with fixed hardware: at
 * 10M on Claude the hardware ($25.28) pays only above 25.28 / 66 = 38.3% of the tokens local. */
HL_TEST(hybrid_needs_a_break_even_local_share) {
    hl_advise_result r;
    compute_at(10e6, NULL, HL_ACCURACY_UNSET, &r);
    HL_CHECK_NEAR(r.break_even_share, (550.0 / 36.0 + 10.0) / 66.0, 1e-12);
    HL_CHECK(has_reason(&r, "A hybrid pays only above 38.3% of the tokens local"));
    for (int i = 0; i < r.n_reasons; i++) HL_CHECK(!strstr(r.reasons[i], "in proportion to its local share"));
    compute_at(1e6, NULL, HL_ACCURACY_UNSET, &r); /* all-local costs more than all-cloud: no share pays */
    HL_CHECK(r.break_even_share < 0);
}

/* ---- measured agreement from a ledger ---- */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double unit(uint64_t i) { return (double)(mix64(0x5eed ^ mix64(i)) >> 11) * 0x1p-53; }

typedef struct planted {
    const char *task;
    int n;
    double p;
} planted;

/* Planted rates: classification 96% on 1,200 shadows, extraction 99% on 800, free text 60%
 * on 600, summarization 100% but only 50 (short of the 100 samples); every request served by
 * the cloud (5,000 in + 500 out at $3/$15 = $0.0225) over exactly 30 days, and shadowed by a
 * local answer of 100 tokens in 2 s (50 tokens/s). Eval lines: 5 local translation lines
 * (they count: they measure a local answer) and 30 cloud free-text ones (they do not). */
static const planted planted_tasks[] = {
    {"classification", 1200, 0.96}, {"extraction", 800, 0.99}, {"free_text", 600, 0.60}, {"summarization", 50, 1.0}};

static void write_planted_ledger(char *path, size_t len) {
    hl_buf all, b;
    hl_buf_init(&all, 0);
    hl_buf_init(&b, 0);
    int total = 0, k = 0;
    for (size_t t = 0; t < 4; t++) total += planted_tasks[t].n;
    for (size_t t = 0; t < 4; t++) {
        for (int i = 0; i < planted_tasks[t].n; i++, k++) {
            char id[32];
            snprintf(id, sizeof id, "p%d", k);
            hl_ledger_record r = {0};
            r.timestamp = 1740787200.0 + 30 * 86400.0 * k / (total - 1);
            r.request_id = id;
            r.attempt = 1;
            r.cloud = true;
            r.backend = "cloud";
            r.model = "claude-3-5-sonnet-20241022";
            r.route_reason = "rule:default";
            r.status = "ok";
            r.task_type = planted_tasks[t].task;
            r.usage = (hl_usage){.input_tokens = 5000, .output_tokens = 500, .known = true};
            r.latency_ms = 800;
            r.ttft_ms = -1;
            r.confidence = -1;
            r.cost_known = true;
            r.cost_usd = 0.0225;
            r.http_status = 200;
            hl_buf_reset(&b);
            if (hl_ledger_format(&r, &b) || hl_buf_append(&all, b.data, b.len)) abort();
            r.attempt = 2;
            r.cloud = false;
            r.backend = "local";
            r.model = "mistral-7b";
            r.shadow = r.scored = true;
            r.usage.output_tokens = 100;
            r.latency_ms = 2000;
            r.cost_usd = 0.00003;
            r.score = 1;
            r.score_method = "exact";
            r.agree = unit((uint64_t)k) < planted_tasks[t].p;
            r.score = r.agree ? 1 : 0;
            r.reference = "served";
            hl_buf_reset(&b);
            if (hl_ledger_format(&r, &b) || hl_buf_append(&all, b.data, b.len)) abort();
        }
    }
    for (int i = 0; i < 35; i++) {
        char id[32];
        snprintf(id, sizeof id, "ev%d", i);
        hl_ledger_record r = {0};
        r.timestamp = 1740787200.0 + 40 * 86400.0; /* outside the period: eval lines do not set it */
        r.request_id = id;
        r.attempt = 1;
        r.cloud = i >= 5;
        r.backend = r.cloud ? "cloud" : "local";
        r.model = "m";
        r.route_reason = "eval";
        r.status = "ok";
        r.task_type = r.cloud ? "free_text" : "translation";
        r.usage = (hl_usage){.input_tokens = 100000, .output_tokens = 100, .known = true};
        r.latency_ms = 100;
        r.ttft_ms = -1;
        r.confidence = -1;
        r.cost_known = true;
        r.http_status = 200;
        r.scored = true;
        r.score = 0;
        r.agree = false;
        r.score_method = "exact";
        r.reference = "expected";
        r.eval_run = "ev-1";
        hl_buf_reset(&b);
        if (hl_ledger_format(&r, &b) || hl_buf_append(&all, b.data, b.len)) abort();
    }
    write_temp_n(all.data, all.len, path, len);
    hl_buf_release(&all);
    hl_buf_release(&b);
}

static const hl_advise_verdict *verdict(const hl_advise_result *r, const char *task) {
    for (int i = 0; i < r->n_verdicts; i++)
        if (!strcmp(r->verdicts[i].task, task)) return &r->verdicts[i];
    return NULL;
}

HL_TEST(measured_agreement_recommends_exactly_the_planted_good_task_types) {
    char path[64], err[256];
    write_planted_ledger(path, sizeof path);
    hl_advise_measured m;
    HL_REQUIRE(hl_advise_measure(path, 0, &m, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(m.requests, 2650);      /* shadows and eval lines are not served requests */
    HL_CHECK_INT_EQ(m.shadow_lines, 2650);
    HL_CHECK_INT_EQ(m.eval_lines, 35);
    HL_CHECK_INT_EQ(m.scored, 2650 + 5);    /* the cloud eval lines measure the cloud */
    HL_CHECK_NEAR(m.period_days, 30, 1e-6);
    HL_CHECK_NEAR(m.shadow_cost_usd, 2650 * 0.00003, 1e-9);

    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.measured = &m;
    in.brief_scenario = false;
    in.accuracy = HL_ACCURACY_REASONING; /* measured agreement replaces it */
    in.target = 0.93;
    hl_advise_result r;
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK(r.measured_agreement);
    HL_CHECK_NEAR(r.throughput_tps, 50, 1e-9); /* 100 tokens in 2 s */
    for (size_t t = 0; t < 3; t++) {
        const hl_advise_verdict *v = verdict(&r, planted_tasks[t].task);
        HL_REQUIRE(v);
        HL_CHECK_INT_EQ(v->n, planted_tasks[t].n);
        if (!(v->lo <= planted_tasks[t].p && planted_tasks[t].p <= v->hi))
            HL_FAIL_("%s: planted %.2f outside [%.4f, %.4f]", v->task, planted_tasks[t].p, v->lo, v->hi);
    }
    HL_CHECK_INT_EQ(verdict(&r, "classification")->kind, HL_VERDICT_LOCAL);
    HL_CHECK_INT_EQ(verdict(&r, "extraction")->kind, HL_VERDICT_LOCAL);
    HL_CHECK_INT_EQ(verdict(&r, "free_text")->kind, HL_VERDICT_CLOUD);
    HL_CHECK_INT_EQ(verdict(&r, "summarization")->kind, HL_VERDICT_MEASURING);
    HL_REQUIRE(verdict(&r, "translation"));
    HL_CHECK_INT_EQ(verdict(&r, "translation")->n, 5);
    HL_CHECK_INT_EQ(verdict(&r, "translation")->kind, HL_VERDICT_MEASURING);
    HL_CHECK_NEAR(r.cloud_usd, 2650 * 0.0225, 1e-9);
    HL_CHECK_NEAR(r.local_share, 2000.0 / 2650.0, 1e-12);
    HL_CHECK_NEAR(r.hybrid_usd, 650 * 0.0225 + (550.0 / 36.0 + 10.0), 1e-9);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_HYBRID);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    char want[200];
    const hl_advise_verdict *c = verdict(&r, "classification");
    snprintf(want, sizeof want, "route classification to local: %.1f%% agreement (95%% interval %.1f%%-%.1f%%) on 1,200 "
                                "samples, saves $27.00 a month", c->rate * 100, c->lo * 100, c->hi * 100);
    HL_CHECK(contains(&b, want));
    HL_CHECK(contains(&b, "keep free_text in the cloud: "));
    HL_CHECK(contains(&b, "keep summarization in the cloud: measurement still running, 50 of 100 samples"));
    HL_CHECK(contains(&b, "Recommendation: hybrid"));
    hl_buf_reset(&b);
    HL_REQUIRE(hl_advise_render_json(&in, &r, &b) == HL_OK);
    json_t *j = json_loads(b.data, 0, NULL);
    HL_REQUIRE(j);
    json_t *ma = json_object_get(j, "measured_agreement");
    HL_CHECK_NEAR(json_number_value(json_object_get(ma, "target")), 0.93, 1e-12);
    HL_CHECK_INT_EQ(json_array_size(json_object_get(ma, "task_types")), 5);
    json_decref(j);
    hl_buf_release(&b);

    /* Target 0.97: extraction alone reaches it, and its $18 of cloud spend does not pay for a
     * machine ($25.28): the cloud. */
    in.target = 0.97;
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(verdict(&r, "extraction")->kind, HL_VERDICT_LOCAL);
    HL_CHECK_INT_EQ(verdict(&r, "classification")->kind, HL_VERDICT_CLOUD);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_CLOUD);
    HL_CHECK(has_reason(&r, "less than the 1 local machine(s) they need"));
    /* Too few samples everywhere: measurement still running, keep the cloud and the shadow. */
    in.target = 0.93;
    in.min_samples = 5000;
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_MEASURE);
    HL_CHECK(strstr(r.snippet, "shadow: {rate: 0.1") != NULL);
    unlink(path);
}

/* Cloud cheaper than the power bill: the hardware is never recovered. 1M tokens on Claude at
 * 70/30 = $6.60 < $10. */
HL_TEST(never_recovered_when_the_cloud_costs_less_than_power) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.brief_scenario = false;
    in.tokens_per_month = 1e6;
    hl_advise_result r;
    char err[256];
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(r.cloud_usd, 6.6, 1e-12);
    HL_CHECK(r.months_to_recover < 0);
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    HL_CHECK(contains(&b, "hardware recovered in    never"));
    hl_buf_release(&b);
}

HL_TEST(bad_inputs_are_refused) {
    hl_advise_input in;
    hl_advise_result r;
    char err[256];
    hl_advise_input_defaults(&in);
    in.input_share = 1.5;
    HL_CHECK_INT_EQ(hl_advise_compute(&in, &r, err, sizeof err), HL_ERR_INVAL);
    hl_advise_input_defaults(&in);
    in.amortize_months = 0;
    HL_CHECK_INT_EQ(hl_advise_compute(&in, &r, err, sizeof err), HL_ERR_INVAL);
    hl_advise_input_defaults(&in);
    in.tokens_per_month = NAN;
    HL_CHECK_INT_EQ(hl_advise_compute(&in, &r, err, sizeof err), HL_ERR_INVAL);
}

/* Two days of a gateway's ledger, by hand:
 *   r1 local ok  classification  400 + 100   1,800 ms  $0.000025
 *   r2 cloud ok  code_generation 700 + 300     850 ms  $0.0066   (700 x $3 + 300 x $15 per 1M)
 *   r3 local escalated (0.55)    600 + 200   3,600 ms  $0.00005
 *   r3 cloud ok  summarization   600 + 200     900 ms  $0.0048
 *   r4 cloud error                 0 +   0     100 ms  $0
 *   r4 local ok  extraction, sensitive 300 + 50  720 ms $0.00001
 *   (a line that is not JSON)
 *   r5 local ok  (no task type)  300 + 150   1,080 ms  cost null (the brief's minimal fields)
 * Served: 5 requests, 3 local and 2 cloud; 2,300 input + 800 output = 3,100 tokens; 2 days, so
 * x15 to a month: 46,500 tokens, 74.19% input. Spend: cloud $0.0114 + local $0.000085. */
static const char fixture[] =
    "{\"timestamp\":\"2025-03-01T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":400,\"output_tokens\":100,"
    "\"latency_ms\":1800,\"cost_usd\":0.000025,\"request_id\":\"r1\",\"attempt\":1,\"backend\":\"local\","
    "\"model\":\"mistral-7b\",\"status\":\"ok\",\"task_type\":\"classification\",\"sensitive\":false,\"confidence\":null}\n"
    "{\"timestamp\":\"2025-03-01T12:00:00.000Z\",\"source\":\"cloud\",\"input_tokens\":700,\"output_tokens\":300,"
    "\"latency_ms\":850,\"cost_usd\":0.0066,\"request_id\":\"r2\",\"attempt\":1,\"status\":\"ok\","
    "\"task_type\":\"code_generation\",\"sensitive\":false}\n"
    "{\"timestamp\":\"2025-03-02T00:00:00.000Z\",\"source\":\"local\",\"input_tokens\":600,\"output_tokens\":200,"
    "\"latency_ms\":3600,\"cost_usd\":0.00005,\"request_id\":\"r3\",\"attempt\":1,\"status\":\"escalated\","
    "\"task_type\":\"summarization\",\"confidence\":0.55}\n"
    "{\"timestamp\":\"2025-03-02T00:00:04.000Z\",\"source\":\"cloud\",\"input_tokens\":600,\"output_tokens\":200,"
    "\"latency_ms\":900,\"cost_usd\":0.0048,\"request_id\":\"r3\",\"attempt\":2,\"status\":\"ok\","
    "\"task_type\":\"summarization\"}\n"
    "\n"
    "{\"timestamp\":\"2025-03-02T06:00:00.000Z\",\"source\":\"cloud\",\"input_tokens\":0,\"output_tokens\":0,"
    "\"latency_ms\":100,\"cost_usd\":0,\"request_id\":\"r4\",\"attempt\":1,\"status\":\"error\",\"error\":\"503\"}\n"
    "{\"timestamp\":\"2025-03-02T06:00:01.000Z\",\"source\":\"local\",\"input_tokens\":300,\"output_tokens\":50,"
    "\"latency_ms\":720,\"cost_usd\":0.00001,\"request_id\":\"r4\",\"attempt\":2,\"status\":\"ok\","
    "\"task_type\":\"extraction\",\"sensitive\":true}\n"
    "this is not json\n"
    "{\"timestamp\":\"2025-03-03T00:00:00\",\"source\":\"local\",\"input_tokens\":300,\"output_tokens\":150,"
    "\"latency_ms\":1080,\"cost_usd\":null}\n";

HL_TEST(ledger_figures_match_the_hand_computed_fixture) {
    char path[64], err[256];
    write_temp(fixture, path, sizeof path);
    hl_advise_measured m;
    HL_REQUIRE(hl_advise_measure(path, 0, &m, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(m.lines, 7);
    HL_CHECK_INT_EQ(m.bad_lines, 1);
    HL_CHECK(strstr(err, ":8: not a ledger record: not JSON") != NULL);
    HL_CHECK_INT_EQ(m.duplicate_lines, 0);
    HL_CHECK_INT_EQ(m.requests, 5);
    HL_CHECK_INT_EQ(m.local_requests, 3);
    HL_CHECK_INT_EQ(m.cloud_requests, 2);
    HL_CHECK_INT_EQ(m.escalated, 1);
    HL_CHECK_INT_EQ(m.failed, 1);
    HL_CHECK_INT_EQ(m.sensitive, 1);
    HL_CHECK_INT_EQ(m.simple_tasks, 2);
    HL_CHECK_INT_EQ(m.complex_tasks, 1);
    HL_CHECK_INT_EQ(m.input_tokens, 2300);
    HL_CHECK_INT_EQ(m.output_tokens, 800);
    HL_CHECK_INT_EQ(m.local_tokens, 500 + 800 + 350 + 450);
    HL_CHECK_INT_EQ(m.unknown_cost, 1);
    HL_CHECK_NEAR(m.cloud_cost_usd, 0.0114, 1e-12);
    HL_CHECK_NEAR(m.local_cost_usd, 0.000085, 1e-12);
    HL_CHECK_NEAR(m.local_busy_ms, 7200, 1e-9);
    HL_CHECK_NEAR(m.period_days, 2.0, 1e-12);
    HL_CHECK_NEAR(m.month_factor, 15.0, 1e-12);

    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.measured = &m;
    in.brief_scenario = false;
    hl_advise_result r;
    HL_REQUIRE(hl_advise_compute(&in, &r, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(r.tokens_per_month, 46500, 1e-6);
    HL_CHECK_NEAR(r.input_share, 2300.0 / 3100.0, 1e-12);
    HL_CHECK_NEAR(r.input_tokens, 34500, 1e-6);
    HL_CHECK_NEAR(r.output_tokens, 12000, 1e-6);
    HL_CHECK_NEAR(r.cloud_usd, 34500 * 3e-6 + 12000 * 15e-6, 1e-12); /* $0.2835 */
    HL_CHECK_NEAR(r.cloud_usd, 0.2835, 1e-12);
    HL_CHECK_NEAR(r.busy_ms_per_token, 7200.0 / 2100.0, 1e-12);
    HL_CHECK(r.busy_measured);
    HL_CHECK(r.months_to_recover < 0);
    HL_CHECK_INT_EQ(r.advice, HL_ADVICE_CLOUD);
    HL_CHECK(!r.brief_note);
    HL_CHECK(strstr(r.matrix[1][1], "1 sensitive requests") != NULL);

    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_advise_render_text(&in, &r, &b) == HL_OK);
    static const char *const lines[] = {
        "2025-03-01T00:00:00Z to 2025-03-03T00:00:00Z",
        "= 30 days / 2.00 days",
        "= 3,100 x 15.000",
        "= 2,300 input + 800 output",
        "74.2%",
        "= $0.0114 cloud + $0.000085 local",
        "cloud per month          $0.2835",
        /* all-cloud for the period: 2,300 x $3 + 800 x $15 per 1M = $0.0189, against $0.011485
         * spent: $0.007415 saved, x15 a month */
        "all-cloud, the period    $0.0189",
        "saved against all-cloud  $0.007415",
        "$0.1112 per month",
        "Recommendation: cloud",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!contains(&b, lines[i])) HL_FAIL_("text lacks: %s", lines[i]);
    hl_buf_release(&b);
    unlink(path);
}

HL_TEST(ledger_without_a_time_span_needs_period_days) {
    char path[64], err[256];
    write_temp("{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":700,\"output_tokens\":300,"
               "\"latency_ms\":850,\"cost_usd\":0.0066}\n",
               path, sizeof path);
    hl_advise_measured m;
    HL_CHECK_INT_EQ(hl_advise_measure(path, 0, &m, err, sizeof err), HL_ERR_INVAL);
    HL_CHECK(strstr(err, "--period-days") != NULL);
    HL_REQUIRE(hl_advise_measure(path, 0.5, &m, err, sizeof err) == HL_OK);
    HL_CHECK_NEAR(m.month_factor, 60.0, 1e-12);
    unlink(path);
    HL_CHECK_INT_EQ(hl_advise_measure("/nonexistent/ledger.jsonl", 0, &m, err, sizeof err), HL_ERR_IO);
    HL_CHECK(strstr(err, "/nonexistent/ledger.jsonl") != NULL);
}

HL_TEST(ledger_line_over_the_ceiling_is_skipped) {
    /* As the store's indexer: a line longer than any ledger line is one malformed line. */
    char path[64], err[256];
    size_t n = HL_LEDGER_MAX_LINE + 16, f = sizeof fixture - 1;
    char *big = malloc(n + 1 + f);
    HL_REQUIRE(big);
    memset(big, 'x', n);
    big[n] = '\n';
    memcpy(big + n + 1, fixture, f);
    write_temp_n(big, n + 1 + f, path, sizeof path);
    free(big);
    hl_advise_measured m;
    HL_REQUIRE(hl_advise_measure(path, 0, &m, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(m.lines, 7);
    HL_CHECK_INT_EQ(m.bad_lines, 2);
    HL_CHECK(strstr(err, ":1: not a ledger record: line longer than 1 MiB") != NULL);
    HL_CHECK_INT_EQ(m.requests, 5);
    unlink(path);
}

/* Every figure of two measurements, side by side. */
static void check_same_measure(const hl_advise_measured *a, const hl_advise_measured *b) {
    HL_CHECK_INT_EQ(a->lines, b->lines);
    HL_CHECK_INT_EQ(a->requests, b->requests);
    HL_CHECK_INT_EQ(a->local_requests, b->local_requests);
    HL_CHECK_INT_EQ(a->cloud_requests, b->cloud_requests);
    HL_CHECK_INT_EQ(a->escalated, b->escalated);
    HL_CHECK_INT_EQ(a->failed, b->failed);
    HL_CHECK_INT_EQ(a->sensitive, b->sensitive);
    HL_CHECK_INT_EQ(a->simple_tasks, b->simple_tasks);
    HL_CHECK_INT_EQ(a->complex_tasks, b->complex_tasks);
    HL_CHECK_INT_EQ(a->input_tokens, b->input_tokens);
    HL_CHECK_INT_EQ(a->output_tokens, b->output_tokens);
    HL_CHECK_INT_EQ(a->local_tokens, b->local_tokens);
    HL_CHECK_INT_EQ(a->unknown_cost, b->unknown_cost);
    HL_CHECK_NEAR(a->cloud_cost_usd, b->cloud_cost_usd, 1e-9);
    HL_CHECK_NEAR(a->local_cost_usd, b->local_cost_usd, 1e-9);
    HL_CHECK_NEAR(a->local_busy_ms, b->local_busy_ms, 1e-3 * (double)(a->lines + 1));
    HL_CHECK_NEAR(a->first_ts, b->first_ts, 1e-3);
    HL_CHECK_NEAR(a->last_ts, b->last_ts, 1e-3);
    HL_CHECK_NEAR(a->month_factor, b->month_factor, 1e-6 * a->month_factor);
}

HL_TEST(a_journal_concatenated_twice_counts_once) {
    char one[64], two[64], err[256];
    size_t f = sizeof fixture - 1;
    char *text = malloc(2 * f);
    HL_REQUIRE(text);
    memcpy(text, fixture, f);
    memcpy(text + f, fixture, f);
    write_temp(fixture, one, sizeof one);
    write_temp_n(text, 2 * f, two, sizeof two);
    free(text);
    hl_advise_measured a, b;
    HL_REQUIRE(hl_advise_measure(one, 0, &a, err, sizeof err) == HL_OK);
    HL_REQUIRE(hl_advise_measure(two, 0, &b, err, sizeof err) == HL_OK);
    check_same_measure(&a, &b);
    HL_CHECK_INT_EQ(a.duplicate_lines, 0);
    HL_CHECK_INT_EQ(b.duplicate_lines, 7);
    HL_CHECK_INT_EQ(b.bad_lines, 2);
    HL_CHECK_INT_EQ(b.requests, 5);
    unlink(one);
    unlink(two);
}

/* The brief's CostTracker writes json.dumps() of {timestamp: utcnow().isoformat(), source,
 * input_tokens, output_tokens, latency_ms, cost_usd}: no request id, ", " separators,
 * microseconds and no zone. 4 requests over exactly 2 days. */
static const char cost_tracker[] =
    "{\"timestamp\": \"2025-03-01T12:00:00.123456\", \"source\": \"cloud\", \"input_tokens\": 450, "
    "\"output_tokens\": 200, \"latency_ms\": 850, \"cost_usd\": 0.00435}\n"
    "{\"timestamp\": \"2025-03-01T12:00:01.654321\", \"source\": \"local\", \"input_tokens\": 450, "
    "\"output_tokens\": 200, \"latency_ms\": 1800, \"cost_usd\": 2.5e-05}\n"
    "{\"timestamp\": \"2025-03-02T12:00:00\", \"source\": \"local\", \"input_tokens\": 300, "
    "\"output_tokens\": 100, \"latency_ms\": 900.5, \"cost_usd\": 1.3e-05}\n"
    "{\"timestamp\": \"2025-03-03T12:00:00.123456\", \"source\": \"cloud\", \"input_tokens\": 450, "
    "\"output_tokens\": 200, \"latency_ms\": 850, \"cost_usd\": 0.00435}\n";

static hl_err count_ok(void *ctx, const hl_store_row *row) {
    *(size_t *)ctx += row->status == HL_STORE_STATUS_OK;
    return HL_OK;
}

HL_TEST(cost_tracker_lines_count_as_report_counts_them) {
    char one[64], two[64], db[80], err[256];
    size_t f = sizeof cost_tracker - 1;
    char text[2 * sizeof cost_tracker];
    memcpy(text, cost_tracker, f);
    memcpy(text + f, cost_tracker, f);
    write_temp(cost_tracker, one, sizeof one);
    write_temp_n(text, 2 * f, two, sizeof two);
    hl_advise_measured a, b;
    HL_REQUIRE(hl_advise_measure(one, 0, &a, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(err, "");
    HL_CHECK_INT_EQ(a.lines, 4);
    HL_CHECK_INT_EQ(a.requests, 4);
    HL_CHECK_INT_EQ(a.cloud_requests, 2);
    HL_CHECK_INT_EQ(a.local_requests, 2);
    HL_CHECK_INT_EQ(a.input_tokens, 1650);
    HL_CHECK_INT_EQ(a.output_tokens, 700);
    HL_CHECK_NEAR(a.cloud_cost_usd, 0.0087, 1e-12);
    HL_CHECK_NEAR(a.local_cost_usd, 0.000038, 1e-12);
    HL_CHECK_NEAR(a.local_busy_ms, 2700.5, 1e-9);
    HL_CHECK_NEAR(a.period_days, 2.0, 1e-9);
    HL_REQUIRE(hl_advise_measure(two, 0, &b, err, sizeof err) == HL_OK);
    check_same_measure(&a, &b);
    HL_CHECK_INT_EQ(b.duplicate_lines, 4);
    /* The store's indexer takes the same 4 records from the doubled journal. */
    snprintf(db, sizeof db, "%s.db", two);
    hl_store *s;
    HL_REQUIRE(hl_store_open(&s, db, err, sizeof err) == HL_OK);
    hl_store_index_stats ist;
    HL_CHECK_INT_EQ(hl_store_index(s, two, &ist), HL_OK);
    HL_CHECK_INT_EQ(ist.inserted, 4);
    HL_CHECK_INT_EQ(ist.duplicates, 4);
    HL_CHECK_INT_EQ(ist.malformed, 0);
    unsigned long long count;
    HL_CHECK_INT_EQ(hl_store_count(s, &count), HL_OK);
    HL_CHECK_INT_EQ(count, a.lines);
    /* no status: served answers for report too (their latency counts in its percentiles) */
    size_t ok = 0;
    HL_CHECK_INT_EQ(hl_store_scan(s, HL_STORE_GROUP_NONE, HL_STORE_TIME_MIN, HL_STORE_TIME_MAX, count_ok, &ok), HL_OK);
    HL_CHECK_INT_EQ(ok, 4);
    hl_store_close(s);
    char side[96];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", db, suffix[i]);
        unlink(side);
    }
    unlink(one);
    unlink(two);
}

typedef struct rewrite_ctx {
    hl_buf *out;
    size_t seen;
} rewrite_ctx;

static hl_err rewrite(void *ud, const hl_ledger_entry *e, size_t line_no) {
    (void)line_no;
    rewrite_ctx *c = ud;
    c->seen++;
    return hl_ledger_format(&e->rec, c->out);
}

/* The reader's input is whatever is on disk, torn lines included: 2,000 mutated copies of the
 * fixture (bytes flipped, lines cut). Properties: every line is accounted for once; the
 * store's indexer classifies the lines exactly as the reader does; and advise's figures on the
 * garbled journal are those of the records the reader kept, written back by the writer. */
HL_TEST(garbled_journals_read_as_the_indexer_reads_them) {
    size_t n = sizeof fixture - 1, copies = 2000;
    char *text = malloc(n * copies);
    HL_REQUIRE(text);
    uint64_t x = 42;
    for (size_t c = 0; c < copies; c++) {
        char *p = text + c * n;
        memcpy(p, fixture, n);
        for (int k = 0; k < 1 + (int)(c % 8); k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            p[(x >> 33) % n] = (char)(x >> 17);
        }
    }
    char path[64], clean[64], db[80], err[256];
    write_temp_n(text, n * copies, path, sizeof path);
    free(text);
    hl_buf out;
    hl_buf_init(&out, 0);
    rewrite_ctx rc = {&out, 0};
    hl_ledger_read_stats st;
    HL_REQUIRE(hl_ledger_read(path, 0, rewrite, &rc, &st, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(rc.seen, st.records);
    HL_CHECK_INT_EQ(st.lines, st.blank + st.records + st.malformed + st.duplicates + st.conflicts);
    HL_CHECK(st.records > 7 && st.malformed > 0 && st.duplicates > 0 && st.conflicts > 0);
    write_temp_n(out.data, out.len, clean, sizeof clean);
    hl_buf_release(&out);

    snprintf(db, sizeof db, "%s.db", path);
    hl_store *s;
    HL_REQUIRE(hl_store_open(&s, db, err, sizeof err) == HL_OK);
    hl_store_index_stats ist;
    HL_CHECK_INT_EQ(hl_store_index(s, path, &ist), HL_OK);
    HL_CHECK_INT_EQ(ist.lines, st.lines);
    HL_CHECK_INT_EQ(ist.inserted, st.records);
    HL_CHECK_INT_EQ(ist.malformed, st.malformed);
    HL_CHECK_INT_EQ(ist.duplicates, st.duplicates);
    HL_CHECK_INT_EQ(ist.conflicts, st.conflicts);
    hl_store_close(s);

    hl_advise_measured a, b;
    hl_err ea = hl_advise_measure(path, 0, &a, err, sizeof err);
    hl_err eb = hl_advise_measure(clean, 0, &b, err, sizeof err);
    HL_CHECK_INT_EQ(ea, HL_OK);
    HL_CHECK_INT_EQ(eb, HL_OK);
    check_same_measure(&a, &b);
    HL_CHECK_INT_EQ(b.bad_lines, 0);
    HL_CHECK_INT_EQ(b.duplicate_lines, 0);
    char side[96];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", db, suffix[i]);
        unlink(side);
    }
    unlink(path);
    unlink(clean);
}

HL_TEST_MAIN()
