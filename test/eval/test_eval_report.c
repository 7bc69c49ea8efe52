/* Tests for hl_eval_report: what an answer is scored against (the expected answer, else the
 * reference backend's, never the reference against itself; an expected object compared as
 * JSON), the ledger record of a call, and the JSON and CSV figures built from them. No
 * network: the calls' outcomes are filled in by hand. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl_eval_report.h"
#include "hl_test.h"

typedef struct fixture {
    hl_backend_cfg cfg[2];
    hl_backend be[2];
    hl_backend *bs[2];
    hl_eval_dataset ds;
    hl_eval_results res;
    hl_eval_score scores[6];
    hl_eval_setup su;
} fixture;

static void answer(hl_eval_call *c, const char *text, long out_tokens, double latency) {
    c->status = HL_EVAL_OK;
    c->attempt = 1;
    c->wall0 = 1796601600.25; /* 2026-12-07 */
    hl_chat_response_init(&c->resp);
    c->resp.text = strdup(text);
    c->usage = c->resp.usage = (hl_usage){.input_tokens = 10, .output_tokens = out_tokens, .known = true};
    c->latency_ms = latency;
    c->cost_known = true;
    c->cost_usd = 0.01;
    c->confidence = -1;
}

/* Items: 1 classification "yes"; 2 an expected object; 3 no expected answer. Backends: "cand"
 * and "ref" (the reference). */
static bool setup(fixture *f) {
    memset(f, 0, sizeof *f);
    static const char *lines[] = {
        "{\"id\":\"a\",\"prompt\":\"Is it?\",\"expected\":\"yes\",\"task_type\":\"classification\"}",
        "{\"id\":\"b\",\"prompt\":\"Fields?\",\"expected\":{\"a\":1,\"b\":\"X\"}}",
        "{\"id\":\"c\",\"prompt\":\"Tell me.\"}",
    };
    f->ds.v = calloc(3, sizeof *f->ds.v);
    char why[256];
    for (size_t i = 0; i < 3; i++)
        if (hl_eval_item_parse(lines[i], strlen(lines[i]), i + 1, &f->ds.v[f->ds.n++], why, sizeof why) != HL_OK)
            return false;
    const char *names[2] = {"cand", "ref"};
    for (int b = 0; b < 2; b++) {
        f->cfg[b].name = (char *)names[b];
        f->cfg[b].location = b ? HL_LOCATION_CLOUD : HL_LOCATION_LOCAL;
        f->be[b].cfg = &f->cfg[b];
        f->be[b].model = (char *)(b ? "big" : "small");
        f->bs[b] = &f->be[b];
    }
    f->res = (hl_eval_results){.n_items = 3, .n_backends = 2, .calls = calloc(6, sizeof(hl_eval_call)),
                               .privacy = calloc(3, sizeof(hl_privacy_verdict))};
    for (size_t i = 0; i < 6; i++) hl_chat_response_init(&f->res.calls[i].resp);
    answer(hl_eval_at(&f->res, 0, 0), "Yes.", 1, 10);
    answer(hl_eval_at(&f->res, 0, 1), "no", 1, 20);
    answer(hl_eval_at(&f->res, 1, 0), "```json\n{\"b\": \"x\", \"a\": 1.0}\n```", 9, 30);
    answer(hl_eval_at(&f->res, 1, 1), "{\"a\": 2, \"b\": \"X\"}", 8, 40);
    answer(hl_eval_at(&f->res, 2, 0), "the cat sat on the mat", 6, 50);
    answer(hl_eval_at(&f->res, 2, 1), "the cat sat on the mat", 7, 60);
    f->su = (hl_eval_setup){.run_id = "ev_test", .dataset = "d.jsonl", .backends = f->bs, .n_backends = 2,
                            .reference = 1, .method = HL_CMP_AUTO, .threshold = 0.5};
    return true;
}

static void teardown(fixture *f) {
    hl_eval_results_release(&f->res);
    hl_eval_dataset_release(&f->ds);
}

HL_TEST(scores_against_expected_else_the_reference) {
    fixture f;
    HL_REQUIRE(setup(&f));
    HL_REQUIRE(hl_eval_score_all(&f.su, &f.ds, &f.res, f.scores) == HL_OK);
    hl_eval_score *s = f.scores;
    /* item a: exact labels (case and final dot ignored) against "expected" */
    HL_CHECK(s[0].scored && s[0].agree && s[0].method == HL_CMP_EXACT);
    HL_CHECK_STR_EQ(s[0].reference, "expected");
    HL_CHECK(s[1].scored && !s[1].agree); /* the reference backend is scored against expected too */
    /* item b: an expected object is compared as JSON even without a task type */
    HL_CHECK(s[2].scored && s[2].agree && s[2].method == HL_CMP_JSON);
    HL_CHECK(s[3].scored && !s[3].agree && s[3].method == HL_CMP_JSON);
    HL_CHECK_NEAR(s[3].score, 0.5, 1e-9);
    /* item c: against the reference's answer; the reference not against itself */
    HL_CHECK(s[4].scored && s[4].agree && s[4].method == HL_CMP_ROUGE_L);
    HL_CHECK_STR_EQ(s[4].reference, "ref");
    HL_CHECK_INT_EQ(s[4].ref_output_tokens, 7);
    HL_CHECK(!s[5].scored);
    /* no reference backend: item c is not scored at all */
    f.su.reference = -1;
    HL_REQUIRE(hl_eval_score_all(&f.su, &f.ds, &f.res, f.scores) == HL_OK);
    HL_CHECK(!f.scores[4].scored && !f.scores[5].scored);
    /* a failed reference call leaves the item unscored */
    f.su.reference = 1;
    hl_eval_at(&f.res, 2, 1)->status = HL_EVAL_ERROR;
    HL_REQUIRE(hl_eval_score_all(&f.su, &f.ds, &f.res, f.scores) == HL_OK);
    HL_CHECK(!f.scores[4].scored);
    teardown(&f);
}

HL_TEST(ledger_record_of_a_scored_call) {
    fixture f;
    HL_REQUIRE(setup(&f));
    HL_REQUIRE(hl_eval_score_all(&f.su, &f.ds, &f.res, f.scores) == HL_OK);
    hl_ledger_record rec;
    char id[64];
    hl_eval_ledger_record(&f.su, 2, &f.ds.v[2], 0, &f.res.privacy[2], hl_eval_at(&f.res, 2, 0), &f.scores[4], id,
                          sizeof id, &rec);
    HL_CHECK_STR_EQ(rec.request_id, "ev_test-3");
    HL_CHECK_STR_EQ(rec.eval_run, "ev_test");
    HL_CHECK_STR_EQ(rec.route_reason, "eval");
    HL_CHECK_STR_EQ(rec.backend, "cand");
    HL_CHECK_STR_EQ(rec.model, "small");
    HL_CHECK(!rec.cloud && rec.scored && rec.agree);
    HL_CHECK_STR_EQ(rec.score_method, "rouge_l");
    HL_CHECK_STR_EQ(rec.reference, "ref");
    HL_CHECK_INT_EQ(rec.ref_output_tokens, 7);
    hl_buf line;
    hl_buf_init(&line, 0);
    HL_REQUIRE(hl_ledger_format(&rec, &line) == HL_OK);
    hl_ledger_entry e;
    char why[160];
    hl_err pe = hl_ledger_parse_line(line.data, line.len - 1, &e, why, sizeof why);
    if (pe != HL_OK) fprintf(stderr, "  the line is malformed (%s): %s", why, line.data);
    HL_REQUIRE(pe == HL_OK);
    HL_CHECK_STR_EQ(e.rec.eval_run, "ev_test");
    HL_CHECK(e.rec.scored && e.rec.agree);
    hl_ledger_entry_release(&e);
    hl_buf_release(&line);
    teardown(&f);
}

static char *print(fixture *f, hl_eval_format fmt) {
    char *text = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&text, &n);
    if (!m) return NULL;
    hl_err e = hl_eval_print(&f->su, &f->ds, &f->res, f->scores, fmt, m);
    fclose(m);
    if (e != HL_OK) {
        free(text);
        return NULL;
    }
    return text;
}

HL_TEST(json_and_csv_figures) {
    fixture f;
    HL_REQUIRE(setup(&f));
    HL_REQUIRE(hl_eval_score_all(&f.su, &f.ds, &f.res, f.scores) == HL_OK);
    char *js = print(&f, HL_EVAL_JSON);
    HL_REQUIRE(js);
    json_error_t jerr;
    json_t *doc = json_loads(js, 0, &jerr);
    HL_REQUIRE(doc);
    json_t *cand = json_array_get(json_object_get(doc, "backends"), 0);
    json_t *all = json_object_get(cand, "overall");
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(all, "n")), 3);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(all, "agree")), 3);
    HL_CHECK_NEAR(json_real_value(json_object_get(all, "accuracy")), 1.0, 1e-12);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_object_get(all, "latency_ms"), "p50")), 30, 1e-9);
    HL_CHECK_NEAR(json_number_value(json_object_get(all, "cost_usd")), 0.03, 1e-12);
    json_t *ref = json_object_get(json_array_get(json_object_get(doc, "backends"), 1), "overall");
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(ref, "n")), 2);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(ref, "agree")), 0);
    json_t *types = json_object_get(cand, "by_task_type");
    HL_CHECK_INT_EQ(json_object_size(types), 2); /* classification and none */
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(types, "none"), "n")), 2);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(doc, "reference")), "ref");
    HL_CHECK_INT_EQ(json_array_size(json_object_get(doc, "failures")), 0);
    json_decref(doc);
    free(js);
    char *csv = print(&f, HL_EVAL_CSV);
    HL_REQUIRE(csv);
    HL_CHECK(strstr(csv, "\ncand,all,all,3,0,0,3,3,1,") != NULL);
    HL_CHECK(strstr(csv, "\nref,task_type,classification,1,0,0,1,0,0,0,") != NULL);
    HL_CHECK(strstr(csv, "\ncand,prompt_tokens,<=1k,3,") != NULL);
    free(csv);
    teardown(&f);
}

HL_TEST_MAIN()
