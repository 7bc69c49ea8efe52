/* Tests for hl_ledger and hl_pricing: record bytes, one whole line per append even from
 * several threads, cloud and local cost arithmetic (cached tokens at their own rate). */
#include <pthread.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_pricing.h"
#include "hl_test.h"

HL_TEST(cloud_cost_prices_cache_separately) {
    hl_price p = {"m", 3.0, 15.0, 0.30, 3.75};
    hl_usage u = {.input_tokens = 1000000, .output_tokens = 100000, .cached_input_tokens = 500000,
                  .cache_write_tokens = 100000};
    /* 400k plain x $3 + 500k cached x $0.30 + 100k writes x $3.75 + 100k out x $15 */
    HL_CHECK_NEAR(hl_pricing_cloud(&p, &u), 1.2 + 0.15 + 0.375 + 1.5, 1e-12);
    /* The brief's example: 450 in, 200 out on Claude 3.5 Sonnet = $0.00435. */
    hl_usage brief = {.input_tokens = 450, .output_tokens = 200};
    hl_price sonnet = {"s", 3.0, 15.0, 3.0, 3.0};
    HL_CHECK_NEAR(hl_pricing_cloud(&sonnet, &brief), 0.00435, 1e-12);
    /* The brief's local example: 1800 ms at $0.05/h. */
    HL_CHECK_NEAR(hl_pricing_local(0.05, 1800), 0.000025, 1e-12);
}

HL_TEST(record_format) {
    hl_ledger_record r = {0};
    r.timestamp = 1700000000.25;
    r.request_id = "req_1";
    r.attempt = 1;
    r.cloud = true;
    r.backend = "anthropic";
    r.model = "claude";
    r.route_reason = "rule:x";
    r.status = "ok";
    r.stream = true;
    r.usage = (hl_usage){.input_tokens = 450, .output_tokens = 200, .known = true};
    r.latency_ms = 850;
    r.ttft_ms = 120.5;
    r.cost_usd = 0.00435;
    r.confidence = -1;
    r.cost_known = true;
    r.http_status = 200;
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_CHECK_STR_EQ(b.data,
        "{\"timestamp\":\"2023-11-14T22:13:20.250Z\",\"source\":\"cloud\",\"input_tokens\":450,"
        "\"output_tokens\":200,\"latency_ms\":850.000,\"cost_usd\":0.0043500000,\"request_id\":\"req_1\","
        "\"attempt\":1,\"backend\":\"anthropic\",\"model\":\"claude\",\"route_reason\":\"rule:x\","
        "\"status\":\"ok\",\"stream\":true,\"ttft_ms\":120.500,\"cached_input_tokens\":0,"
        "\"cache_write_tokens\":0,\"usage_estimated\":false,\"tenant\":null,\"task_type\":null,\"task_inferred\":false,\"sensitive\":false,"
        "\"pii\":null,\"confidence\":null,\"http_status\":200,\"error\":null}\n");
    hl_buf_release(&b);
}

typedef struct { hl_ledger *l; int n; } writer_arg;

static void *writer(void *p) {
    writer_arg *a = p;
    hl_ledger_record r = {0};
    r.request_id = "req_threaded_with_a_longer_id_to_make_lines_bigger";
    r.backend = r.model = r.route_reason = r.status = "x";
    r.ttft_ms = -1;
    for (int i = 0; i < a->n; i++) hl_ledger_append(a->l, &r);
    return NULL;
}

HL_TEST(concurrent_appends_keep_lines_whole) {
    char path[] = "/tmp/hl_ledger_test_XXXXXX";
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    close(fd);
    hl_ledger l;
    HL_REQUIRE(hl_ledger_open(&l, path) == HL_OK);
    pthread_t t[4];
    writer_arg a = {&l, 500};
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, writer, &a);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    HL_CHECK_INT_EQ(atomic_load(&l.records), 2000);
    hl_ledger_close(&l);
    FILE *f = fopen(path, "r");
    HL_REQUIRE(f);
    char line[4096];
    int lines = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        size_t n = strlen(line);
        if (n < 2 || line[0] != '{' || line[n - 2] != '}' || line[n - 1] != '\n') bad++;
    }
    fclose(f);
    unlink(path);
    HL_CHECK_INT_EQ(lines, 2000);
    HL_CHECK_INT_EQ(bad, 0);
}

HL_TEST(open_failure_is_reported) {
    hl_ledger l;
    HL_CHECK_INT_EQ(hl_ledger_open(&l, "/nonexistent-dir/x/ledger.jsonl"), HL_ERR_IO);
}

HL_TEST_MAIN()
