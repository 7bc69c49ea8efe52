/* Tests for `hybridllm advise` and `hybridllm simulate` as a user runs them: flags, exit
 * statuses (0 done, 1 runtime failure, 2 usage error with the usage printed) and the reports.
 * The commands come from the CLI library (hlcli) and run in-process on temporary streams. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hl_cli_report.h"
#include "hl_test.h"

typedef struct outcome {
    int rc;
    char *out, *err; /* malloc'd */
} outcome;

static char *slurp(FILE *f) {
    long n = ftell(f);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!s) exit(1);
    rewind(f);
    size_t got = n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    s[got] = '\0';
    fclose(f);
    return s;
}

/* Runs the command in args (NULL-terminated, command name first). */
static outcome cli(const char *const *args) {
    char *argv[64];
    int argc = 0;
    while (args[argc] && argc < 63) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    if (!out || !err) exit(1);
    outcome o;
    o.rc = !strcmp(argv[0], "advise") ? hl_cli_advise_io(argc, argv, out, err) : hl_cli_simulate_io(argc, argv, out, err);
    o.out = slurp(out);
    o.err = slurp(err);
    return o;
}

static void release(outcome *o) {
    free(o->out);
    free(o->err);
}

static void write_file(char *path, const char *text) {
    int fd = mkstemp(path);
    if (fd < 0) exit(1);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) exit(1);
    close(fd);
}

HL_TEST(advise_defaults_to_the_brief_scenario) {
    outcome o = cli((const char *[]){"advise", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "(no workload flags: the brief's scenario") != NULL);
    HL_CHECK(strstr(o.out, "cloud per month          $66.00") != NULL);
    HL_CHECK(strstr(o.out, "Recommendation: hybrid") != NULL);
    HL_CHECK(strstr(o.out, "Note: the brief's headline figures") != NULL);
    HL_CHECK_STR_EQ(o.err, "");
    release(&o);
}

HL_TEST(advise_from_flags) {
    outcome o = cli((const char *[]){"advise", "--tokens-per-month", "10M", "--input-share", "0.7", "--cloud-model",
                                     "gpt-4o-2024-05-13", "--hardware-usd", "550", "--amortize-months", "36", "--power-usd-month",
                                     "10", "--privacy", "no", "--accuracy", "classification", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "cloud per month          $80.00") != NULL);
    HL_CHECK(strstr(o.out, "= $550.00 / ($80.00 cloud - $10.00 power)") != NULL);
    HL_CHECK(strstr(o.out, "Recommendation: local") != NULL);
    HL_CHECK(strstr(o.out, "~$1,800 is 12.0x") != NULL);
    release(&o);
    o = cli((const char *[]){"advise", "--tokens-per-month", "500K", "--privacy", "required", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "tokens per month         500,000") != NULL);
    HL_CHECK(strstr(o.out, "Recommendation: local") != NULL);
    HL_CHECK(strstr(o.out, "Note: the brief's") == NULL);
    release(&o);
}

HL_TEST(advise_json) {
    outcome o = cli((const char *[]){"advise", "--json", "--cloud-model", "gpt-4o-2024-05-13", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    json_t *j = json_loads(o.out, 0, NULL);
    HL_REQUIRE(j);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_object_get(j, "cloud"), "usd_per_month")), 80.0, 1e-9);
    json_decref(j);
    release(&o);
}

HL_TEST(advise_usage_errors_exit_2) {
    const char *const *const cases[] = {
        (const char *[]){"advise", "--bogus", NULL},
        (const char *[]){"advise", "--privacy", "maybe", NULL},
        (const char *[]){"advise", "--accuracy", NULL},
        (const char *[]){"advise", "--tokens-per-month", "lots", NULL},
        (const char *[]){"advise", "--input-share", "1.2", NULL},
        (const char *[]){"advise", "--amortize-months", "0", NULL},
        (const char *[]){"advise", "--ledger", "x.jsonl", "--tokens-per-month", "1M", NULL},
        (const char *[]){"advise", "--period-days", "3", NULL},
        (const char *[]){"advise", "extra", NULL},
        (const char *[]){"advise", "--target", "0", NULL},
        (const char *[]){"advise", "--target", "1.5", NULL},
        (const char *[]){"advise", "--min-samples", "0", NULL},
        (const char *[]){"advise", "--throughput", "0", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome o = cli(cases[i]);
        if (o.rc != 2) HL_FAIL_("case %zu: exit %d, expected 2", i, o.rc);
        HL_CHECK(strstr(o.err, "usage: hybridllm advise") != NULL);
        HL_CHECK_STR_EQ(o.out, "");
        release(&o);
    }
    outcome o = cli((const char *[]){"advise", "--help", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "usage: hybridllm advise") != NULL);
    release(&o);
}

HL_TEST(advise_runtime_failures_exit_1) {
    outcome o = cli((const char *[]){"advise", "--cloud-model", "mystery-model", NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    HL_CHECK(strstr(o.err, "no price for model 'mystery-model'") != NULL);
    release(&o);
    o = cli((const char *[]){"advise", "--ledger", "/nonexistent/ledger.jsonl", NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    HL_CHECK(strstr(o.err, "/nonexistent/ledger.jsonl") != NULL);
    release(&o);
    o = cli((const char *[]){"advise", "--config", "/nonexistent/gw.yaml", NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    HL_CHECK(strstr(o.err, "bad config") != NULL);
    release(&o);
}

HL_TEST(advise_from_a_ledger) {
    char path[] = "/tmp/hl_test_cli_XXXXXX";
    write_file(path, "{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":700000,\"output_tokens\":300000,\"latency_ms\":850,\"cost_usd\":6.6,\"status\":\"ok\"}\n"
                     "{\"timestamp\":\"2025-03-04T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":700000,\"output_tokens\":300000,\"latency_ms\":850,\"cost_usd\":6.6,\"status\":\"ok\"}\n");
    /* 2M tokens over 3 days: x10 = 20M tokens a month, $132 on Claude */
    outcome o = cli((const char *[]){"advise", "--ledger", path, NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "tokens per month         20,000,000") != NULL);
    HL_CHECK(strstr(o.out, "cloud per month          $132.00") != NULL);
    HL_CHECK(strstr(o.out, "measured per month       $132.00") != NULL);
    HL_CHECK(strstr(o.out, "Recommendation: hybrid") != NULL);
    release(&o);
    unlink(path);
}

/* Two task types shadowed: classification agreeing 150 times out of 150, free text 30 of 150.
 * --target and --min-samples decide; --throughput sets the machines. */
HL_TEST(advise_ledger_with_measured_agreement) {
    char path[] = "/tmp/hl_test_cli_XXXXXX";
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    HL_REQUIRE(f);
    for (int i = 0; i < 300; i++) {
        const char *task = i < 150 ? "classification" : "free_text";
        bool agree = i < 150 || i % 5 == 0;
        fprintf(f,
                "{\"timestamp\":\"2025-03-%02dT00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":70000,"
                "\"output_tokens\":30000,\"latency_ms\":850,\"cost_usd\":0.66,\"status\":\"ok\",\"request_id\":\"r%d\","
                "\"attempt\":1,\"task_type\":\"%s\"}\n",
                1 + i % 30, i, task);
        fprintf(f,
                "{\"timestamp\":\"2025-03-%02dT00:00:01Z\",\"source\":\"local\",\"input_tokens\":70000,"
                "\"output_tokens\":300,\"latency_ms\":3000,\"cost_usd\":0,\"status\":\"ok\",\"request_id\":\"r%d\","
                "\"attempt\":2,\"task_type\":\"%s\",\"shadow\":true,\"score\":%d,\"score_method\":\"exact\","
                "\"agree\":%s,\"reference\":\"served\",\"ref_output_tokens\":30000}\n",
                1 + i % 30, i, task, agree, agree ? "true" : "false");
    }
    fclose(f);
    outcome o = cli((const char *[]){"advise", "--ledger", path, "--json", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    json_t *j = json_loads(o.out, 0, NULL);
    HL_REQUIRE(j);
    json_t *tasks = json_object_get(json_object_get(j, "measured_agreement"), "task_types");
    HL_CHECK_INT_EQ(json_array_size(tasks), 2);
    for (size_t i = 0; i < json_array_size(tasks); i++) {
        json_t *t = json_array_get(tasks, i);
        const char *name = json_string_value(json_object_get(t, "task_type"));
        const char *v = json_string_value(json_object_get(t, "verdict"));
        HL_CHECK_STR_EQ(v, !strcmp(name, "classification") ? "local" : "cloud");
    }
    HL_CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "decision"), "advice")), "hybrid");
    HL_CHECK_NEAR(json_number_value(json_object_get(json_object_get(j, "local"), "throughput_tokens_per_s")), 100, 1e-9);
    json_decref(j);
    release(&o);
    o = cli((const char *[]){"advise", "--ledger", path, "--min-samples", "200", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "keep classification in the cloud: measurement still running, 150 of 200 samples") != NULL);
    HL_CHECK(strstr(o.out, "Recommendation: measure") != NULL);
    release(&o);
    /* simulate replays it with a policy from the measured agreement */
    o = cli((const char *[]){"simulate", "--ledger", path, "--json", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    j = json_loads(o.out, 0, NULL);
    HL_REQUIRE(j);
    json_t *ag = json_object_get(json_object_get(j, "workload"), "agreement");
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(ag, "free_text"), "agreed")), 30);
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(ag, "classification"), "samples")), 150);
    json_t *pol = json_object_get(j, "policies");
    HL_REQUIRE(json_array_size(pol) == 4);
    json_t *mp = json_array_get(pol, 3);
    HL_CHECK_STR_EQ(json_string_value(json_object_get(mp, "name")), "measured (95%)");
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(mp, "served_local")), 150); /* classification */
    HL_CHECK_NEAR(json_number_value(json_object_get(mp, "expected_agreement")), 1.0, 1e-12);
    HL_CHECK_NEAR(json_number_value(json_object_get(json_array_get(pol, 1), "expected_agreement")), 180.0 / 300.0, 1e-12);
    json_decref(j);
    release(&o);
    o = cli((const char *[]){"advise", "--ledger", path, "--throughput", "0.001", "--json", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    j = json_loads(o.out, 0, NULL);
    HL_REQUIRE(j);
    /* 9M output tokens over 29 days, 9.31M a month, at 0.001/s: 2.59M busy hours, 3,592 machines */
    HL_CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(j, "local"), "machines")), 3592);
    json_decref(j);
    release(&o);
    unlink(path);
}

HL_TEST(simulate_default) {
    outcome o = cli((const char *[]){"simulate", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, "10,000,000 tokens/month (the brief's scenario), seed 1") != NULL);
    HL_CHECK(strstr(o.out, "privacy violations                    1,247                0                0") != NULL);
    HL_CHECK(strstr(o.out, "hybrid (brief)") != NULL);
    release(&o);
    o = cli((const char *[]){"simulate", "--json", "--seed", "2", "--tokens-per-month", "1M", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    json_t *j = json_loads(o.out, 0, NULL);
    HL_REQUIRE(j);
    HL_CHECK_INT_EQ(json_array_size(json_object_get(j, "policies")), 3);
    json_decref(j);
    release(&o);
}

HL_TEST(simulate_a_policy_file) {
    char path[] = "/tmp/hl_test_policy_XXXXXX";
    write_file(path, "backends:\n"
                     "  - {name: gpt, kind: openai, location: cloud, base_url: http://127.0.0.1:1/v1, model: gpt-4o}\n"
                     "  - {name: local, kind: openai, location: local, base_url: http://127.0.0.1:1/v1, model: mistral-7b}\n"
                     "routes:\n"
                     "  - {name: all, to: [gpt, local]}\n");
    outcome o = cli((const char *[]){"simulate", "--policy", path, "--latency", "gpt=1000-1000", NULL});
    HL_CHECK_INT_EQ(o.rc, 0);
    HL_CHECK(strstr(o.out, path + 5) != NULL); /* the column is the file's name */
    HL_CHECK(strstr(o.out, "gpt (gpt-4o): cloud, $2.50/$10.00 per 1M (built-in), 1000-1000 ms") != NULL);
    release(&o);
    unlink(path);
}

HL_TEST(simulate_usage_errors_exit_2) {
    const char *const *const cases[] = {
        (const char *[]){"simulate", "--bogus", NULL},
        (const char *[]){"simulate", "--seed", "abc", NULL},
        (const char *[]){"simulate", "--seed", "-1", NULL},
        (const char *[]){"simulate", "--latency", "nonsense", NULL},
        (const char *[]){"simulate", "--latency", "x=900-100", NULL},
        (const char *[]){"simulate", "--sensitive-share", "2", NULL},
        (const char *[]){"simulate", "--tokens-per-month", "0", NULL},
        (const char *[]){"simulate", "--ledger", "x.jsonl", "--sensitive-share", "0.2", NULL},
        (const char *[]){"simulate", "--policy", "a", "--policy", "b", "--policy", "c", "--policy", "d", "--policy", "e", NULL},
        (const char *[]){"simulate", "--policy", NULL},
        (const char *[]){"simulate", "--target", "1.01", NULL},
        (const char *[]){"simulate", "--min-samples", "0", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome o = cli(cases[i]);
        if (o.rc != 2) HL_FAIL_("case %zu: exit %d, expected 2", i, o.rc);
        HL_CHECK(strstr(o.err, "usage: hybridllm simulate") != NULL);
        release(&o);
    }
}

HL_TEST(simulate_runtime_failures_exit_1) {
    outcome o = cli((const char *[]){"simulate", "--policy", "/nonexistent/policy.yaml", NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    HL_CHECK(strstr(o.err, "bad policy") != NULL);
    release(&o);
    o = cli((const char *[]){"simulate", "--cloud-model", "bad name", NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    release(&o);
    o = cli((const char *[]){"simulate", "--ledger", "/nonexistent/ledger.jsonl", NULL});
    HL_CHECK_INT_EQ(o.rc, 1);
    release(&o);
}

HL_TEST_MAIN()
