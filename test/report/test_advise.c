/* Tests for hl_advise: the break-even arithmetic pinned on the product brief's numbers (and on
 * the brief's headline totals that do not follow from them), the decision matrix, prices from
 * a config before the built-in table, and ledger figures against a hand-computed fixture. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "hl_advise.h"
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

/* 10M tokens a month on GPT-4o at the brief's $5/$15 with a 70/30 split: 7M x $5 + 3M x $15
 * per 1M = $35 + $45 = $80. The brief says ~$1,800. */
HL_TEST(brief_scenario_gpt4o_costs_80_not_1800) {
    hl_advise_input in;
    hl_advise_input_defaults(&in);
    in.cloud_model = "gpt-4o";
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
        {500e3, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSET, HL_ADVICE_BREAK_EVEN, "500K-5M"},
        {3e6, NULL, HL_PRIVACY_UNSET, HL_ACCURACY_UNSURE, HL_ADVICE_BREAK_EVEN, "500K-5M"},
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

HL_TEST(timestamps) {
    HL_CHECK_NEAR(hl_advise_parse_time("2025-03-01T00:00:00Z"), 1740787200.0, 0);
    HL_CHECK_NEAR(hl_advise_parse_time("2025-03-01T00:00:00.250Z"), 1740787200.25, 1e-6);
    HL_CHECK_NEAR(hl_advise_parse_time("2025-03-01T01:00:00+01:00"), 1740787200.0, 0);
    /* the brief's CostTracker: datetime.utcnow().isoformat(), no zone */
    HL_CHECK_NEAR(hl_advise_parse_time("2025-03-01T00:00:00.123456"), 1740787200.123456, 1e-6);
    HL_CHECK(hl_advise_parse_time("2025-03-01") < 0);
    HL_CHECK(hl_advise_parse_time("2025-13-01T00:00:00Z") < 0);
    HL_CHECK(hl_advise_parse_time("2025-03-01T00:00:00Zjunk") < 0);
    HL_CHECK(hl_advise_parse_time(NULL) < 0);
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
    "\"latency_ms\":1080,\"cost_usd\":null}";

HL_TEST(ledger_figures_match_the_hand_computed_fixture) {
    char path[64], err[256];
    write_temp(fixture, path, sizeof path);
    hl_advise_measured m;
    HL_REQUIRE(hl_advise_measure(path, 0, &m, err, sizeof err) == HL_OK);
    HL_CHECK_INT_EQ(m.lines, 7);
    HL_CHECK_INT_EQ(m.bad_lines, 1);
    HL_CHECK(strstr(err, ":8: not a ledger record") != NULL);
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
    write_temp("{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":700,\"output_tokens\":300}\n",
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

HL_TEST(ledger_line_over_the_ceiling_is_an_error) {
    char path[64], err[256];
    size_t n = HL_ADVISE_MAX_LINE + 16;
    char *big = malloc(n + 1);
    HL_REQUIRE(big);
    memset(big, 'x', n);
    big[n] = '\0';
    write_temp(big, path, sizeof path);
    free(big);
    hl_advise_measured m;
    HL_CHECK_INT_EQ(hl_advise_measure(path, 0, &m, err, sizeof err), HL_ERR_LIMIT);
    HL_CHECK(strstr(err, "longer than") != NULL);
    unlink(path);
}

static hl_err count_line(const hl_advise_ledger_line *l, void *ud) {
    (void)l;
    (*(size_t *)ud)++;
    return HL_OK;
}

/* The scanner's input is whatever is on disk, torn lines included: 2,000 mutated copies of the
 * fixture (bytes flipped, lines cut) must scan without error or crash (run under ASan). */
HL_TEST(ledger_scan_survives_garbage) {
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
    char path[64], err[256];
    write_temp_n(text, n * copies, path, sizeof path);
    free(text);
    size_t seen = 0, lines, bad;
    HL_CHECK_INT_EQ(hl_advise_ledger_scan(path, count_line, &seen, &lines, &bad, err, sizeof err), HL_OK);
    HL_CHECK_INT_EQ(seen, lines);
    HL_CHECK(lines > copies && bad > 0);
    hl_advise_measured m;
    hl_err e = hl_advise_measure(path, 0, &m, err, sizeof err);
    HL_CHECK_INT_EQ(e, HL_OK);
    unlink(path);
}

HL_TEST_MAIN()
