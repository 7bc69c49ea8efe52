/* Tests for hl_ledger and hl_pricing: record bytes, one whole line per append even from
 * several threads, cloud and local cost arithmetic (cached tokens at their own rate), and the
 * one reader: writer -> parser field by field, the brief's CostTracker lines and their derived
 * ids, malformed lines with their reasons, first-line-per-key reading of a journal. */
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hl_ledger.h"
#include "hl_pricing.h"
#include "hl_test.h"
#include "hl_time.h"

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

/* The line's date and time part is kept per thread for the second it was made for: lines
 * whose times go forward, back, across midnight and a year, and round up into the next second,
 * each carry their own time (checked against hl_time_format_ms, the other formatter). */
HL_TEST(timestamps_in_any_order_format_their_own_second) {
    static const long long ms[] = {
        1700000000250LL, 1700000000999LL, 1700000001000LL, 1700000000001LL, /* back a second */
        1700006399999LL, 1700006400000LL, 1700006399999LL,                  /* across midnight */
        1704067199500LL, 1704067200000LL, 1704067199999LL,                  /* across a year */
        1700000000250LL, 0, 1700000000250LL,
    };
    hl_ledger_record r = {0};
    r.request_id = "req_t";
    r.attempt = 1;
    r.ttft_ms = r.confidence = -1;
    hl_buf b;
    hl_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        r.timestamp = (double)ms[i] / 1000.0;
        hl_buf_reset(&b);
        HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
        char want[64], line_ts[32];
        hl_time_format_ms(ms[i], want, sizeof want);
        snprintf(line_ts, sizeof line_ts, "%.24s", b.data + strlen("{\"timestamp\":\""));
        if (strcmp(line_ts, want) != 0) HL_FAIL_("%lld ms: line says %s, want %s", ms[i], line_ts, want);
    }
    /* 0.9996 s rounds to the next second's first millisecond */
    r.timestamp = 1700000000.9996;
    hl_buf_reset(&b);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_CHECK(strncmp(b.data, "{\"timestamp\":\"2023-11-14T22:13:21.000Z\"", 39) == 0);
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

/* Polls the writeback thread (period 2 ms, for 2 s at most) until it is done up to within
 * HL_LEDGER_WRITEBACK_MIN of size; what it is done up to then. */
static unsigned long long writeback_catches_up(hl_ledger_writeback *w, long long size) {
    for (int i = 0; i < 1000 && size - (long long)hl_ledger_writeback_done(w) >= HL_LEDGER_WRITEBACK_MIN; i++)
        usleep(2000);
    return hl_ledger_writeback_done(w);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

HL_TEST(writeback_follows_the_journal_by_whole_pages) {
    char path[] = "/tmp/hl_ledger_test_XXXXXX";
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    char junk[5000];
    memset(junk, 'x', sizeof junk);
    HL_REQUIRE(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    long long page = sysconf(_SC_PAGESIZE);
    hl_ledger l;
    HL_REQUIRE(hl_ledger_open(&l, path) == HL_OK);
    hl_ledger_writeback *w = NULL;
    HL_REQUIRE(hl_ledger_writeback_start(&l, 2, &w) == HL_OK);
    /* What was there before: counted as done, to the page below the end. */
    unsigned long long start = (unsigned long long)(5000 / page * page);
    HL_CHECK_INT_EQ(hl_ledger_writeback_done(w), start);

    hl_ledger_record r = {0};
    r.request_id = "req_writeback_test_with_a_longer_id_to_make_lines_bigger";
    r.backend = r.model = r.route_reason = r.status = "x";
    r.ttft_ms = -1;
    /* Less than HL_LEDGER_WRITEBACK_MIN new: nothing started yet. */
    while (file_size(path) < (long long)start + HL_LEDGER_WRITEBACK_MIN / 2) HL_REQUIRE(hl_ledger_append(&l, &r) == HL_OK);
    usleep(30000);
    HL_CHECK_INT_EQ(hl_ledger_writeback_done(w), start);
    /* Past it: every full page, never the one still being filled. */
    while (file_size(path) < 3 * (long long)HL_LEDGER_WRITEBACK_MIN) HL_REQUIRE(hl_ledger_append(&l, &r) == HL_OK);
    long long size = file_size(path);
    unsigned long long done = writeback_catches_up(w, size);
    HL_CHECK(done > start && done % (unsigned long long)page == 0 && (long long)done <= size);
    HL_CHECK(size - (long long)done < HL_LEDGER_WRITEBACK_MIN);

    /* Truncated by someone else: it follows the file down, then up again. */
    HL_REQUIRE(truncate(path, 10000) == 0);
    for (int i = 0; i < 1000 && hl_ledger_writeback_done(w) > 10000; i++) usleep(2000);
    HL_CHECK_INT_EQ(hl_ledger_writeback_done(w), 10000 / page * page);
    while (file_size(path) < 10000 + 2 * (long long)HL_LEDGER_WRITEBACK_MIN) HL_REQUIRE(hl_ledger_append(&l, &r) == HL_OK);
    size = file_size(path);
    done = writeback_catches_up(w, size);
    HL_CHECK(done > 10000 && done % (unsigned long long)page == 0 && (long long)done <= size);
    HL_CHECK(size - (long long)done < HL_LEDGER_WRITEBACK_MIN);
    hl_ledger_writeback_stop(w);
    hl_ledger_close(&l);
    unlink(path);
}

/* A journal that is not a file (a pipe, as with path: /dev/stdout): the thread gives up on it
 * quietly and still stops when asked. */
HL_TEST(writeback_leaves_a_pipe_alone) {
    int p[2];
    HL_REQUIRE(pipe(p) == 0);
    hl_ledger l = {.fd = p[1]};
    hl_ledger_writeback *w = NULL;
    HL_REQUIRE(hl_ledger_writeback_start(&l, 1, &w) == HL_OK);
    HL_REQUIRE(write(p[1], "{}\n", 3) == 3);
    usleep(20000);
    HL_CHECK_INT_EQ(hl_ledger_writeback_done(w), 0);
    hl_ledger_writeback_stop(w);
    close(p[0]);
    close(p[1]);
}

HL_TEST(open_failure_is_reported) {
    hl_ledger l;
    HL_CHECK_INT_EQ(hl_ledger_open(&l, "/nonexistent-dir/x/ledger.jsonl"), HL_ERR_IO);
}

/* ---- the reader ---- */

static hl_ledger_record full_record(void) {
    hl_ledger_record r = {0};
    r.timestamp = 1740787200.123; /* 2025-03-01T00:00:00.123Z: a time that is not a binary fraction */
    r.request_id = "req_\"quoted\"\\n";
    r.attempt = 2;
    r.cloud = true;
    r.backend = "anthropic";
    r.model = "claude-3-5-sonnet";
    r.route_reason = "rule:complex";
    r.status = "escalated";
    r.tenant = "team-a";
    r.pii = "email:1";
    r.task_type = "reasoning";
    r.task_inferred = true;
    r.sensitive = true;
    r.stream = true;
    r.usage = (hl_usage){.input_tokens = 450, .output_tokens = 200, .cached_input_tokens = 100,
                         .cache_write_tokens = 50, .estimated = true, .known = true};
    r.latency_ms = 850.125;
    r.ttft_ms = 120.5;
    r.confidence = 0.55;
    r.cost_usd = 0.00435;
    r.cost_known = true;
    r.http_status = 529;
    r.error = "overloaded \xc3\xa9";
    return r;
}

HL_TEST(writer_to_parser_field_by_field) {
    hl_ledger_record r = full_record();
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "\"timestamp\":\"2025-03-01T00:00:00.123Z\"") != NULL);
    hl_ledger_entry e;
    char why[160];
    HL_REQUIRE(hl_ledger_parse_line(b.data, b.len - 1, &e, why, sizeof why) == HL_OK);
    const hl_ledger_record *p = &e.rec;
    HL_CHECK_INT_EQ(e.ts_ms, 1740787200123LL);
    HL_CHECK_INT_EQ(e.ts_us, 1740787200123000LL);
    HL_CHECK_NEAR(p->timestamp, r.timestamp, 1e-6);
    HL_CHECK_STR_EQ(p->request_id, r.request_id);
    HL_CHECK(!e.id_derived);
    HL_CHECK_INT_EQ(p->attempt, 2);
    HL_CHECK(p->cloud);
    HL_CHECK_STR_EQ(p->backend, "anthropic");
    HL_CHECK_STR_EQ(p->model, "claude-3-5-sonnet");
    HL_CHECK_STR_EQ(p->route_reason, "rule:complex");
    HL_CHECK_STR_EQ(p->status, "escalated");
    HL_CHECK_STR_EQ(p->tenant, "team-a");
    HL_CHECK_STR_EQ(p->pii, "email:1");
    HL_CHECK_STR_EQ(p->task_type, "reasoning");
    HL_CHECK_STR_EQ(p->error, "overloaded \xc3\xa9");
    HL_CHECK(p->task_inferred && p->sensitive && p->stream && p->usage.estimated);
    HL_CHECK_INT_EQ(p->usage.input_tokens, 450);
    HL_CHECK_INT_EQ(p->usage.output_tokens, 200);
    HL_CHECK_INT_EQ(p->usage.cached_input_tokens, 100);
    HL_CHECK_INT_EQ(p->usage.cache_write_tokens, 50);
    HL_CHECK_NEAR(p->latency_ms, 850.125, 0);
    HL_CHECK_NEAR(p->ttft_ms, 120.5, 0);
    HL_CHECK_NEAR(p->confidence, 0.55, 0);
    HL_CHECK_NEAR(p->cost_usd, 0.00435, 0);
    HL_CHECK(p->cost_known);
    HL_CHECK_INT_EQ(p->http_status, 529);
    /* and back: the same bytes */
    hl_buf b2;
    hl_buf_init(&b2, 0);
    HL_REQUIRE(hl_ledger_format(p, &b2) == HL_OK);
    HL_CHECK_STR_EQ(b2.data, b.data);
    hl_ledger_entry_release(&e);
    /* nulls come back as nulls */
    r.tenant = r.pii = r.task_type = r.error = r.backend = NULL;
    r.ttft_ms = r.confidence = -1;
    r.cost_known = false;
    hl_buf_reset(&b);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_REQUIRE(hl_ledger_parse_line(b.data, b.len - 1, &e, why, sizeof why) == HL_OK);
    HL_CHECK(!e.rec.tenant && !e.rec.pii && !e.rec.task_type && !e.rec.error && !e.rec.backend);
    HL_CHECK(e.rec.ttft_ms < 0 && e.rec.confidence < 0 && !e.rec.cost_known);
    hl_ledger_entry_release(&e);
    hl_buf_release(&b);
    hl_buf_release(&b2);
}

/* The client key's id and name travel through the ledger (and are absent without a key). */
/* Numbers read without strtod (the reader's fast path for the writer's decimals) equal what
 * strtod and strtoll give, digit counts and lengths around its limits included. */
HL_TEST(numbers_read_as_strtod_reads_them) {
    hl_ledger_record r = full_record();
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    const char *at = strstr(b.data, "\"latency_ms\":");
    HL_REQUIRE(at != NULL);
    size_t head = (size_t)(at - b.data) + strlen("\"latency_ms\":");
    const char *tail = strchr(b.data + head, ',');
    unsigned long long x = 88172645463325252ULL;
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        char num[64];
        int ip = (int)(x % 7), fp = (int)((x >> 8) % 26); /* up to 6 integer and 25 fraction digits */
        int n = 0;
        for (int i = 0; i < ip || i == 0; i++) num[n++] = (char)('0' + (i == 0 && ip > 1 ? 1 + (x >> (12 + i)) % 9 : (x >> (16 + 2 * i)) % 10));
        if (fp) {
            num[n++] = '.';
            for (int i = 0; i < fp; i++) num[n++] = (char)('0' + (x >> (3 * i % 60)) % 10);
        }
        if (k % 97 == 0) n += snprintf(num + n, sizeof num - (size_t)n, "e-%d", (int)(x % 30));
        num[n] = '\0';
        char line[2048];
        snprintf(line, sizeof line, "%.*s%s%s", (int)head, b.data, num, tail);
        hl_ledger_entry e;
        char why[160];
        if (hl_ledger_parse_line(line, strlen(line), &e, why, sizeof why) != HL_OK) {
            HL_CHECK(!"a number the reader refused");
            fprintf(stderr, "  %s: %s\n", num, why);
            continue;
        }
        if (e.rec.latency_ms != strtod(num, NULL)) {
            HL_CHECK(!"latency_ms differs from strtod");
            fprintf(stderr, "  %s: %.17g vs %.17g\n", num, e.rec.latency_ms, strtod(num, NULL));
        }
        hl_ledger_entry_release(&e);
    }
    /* Integers: up to 15 digits by hand, longer ones by strtoll, out of range refused. */
    const char *ints[] = {"0", "7", "123456789012345", "1234567890123456", "9223372036854775807"};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        const char *it = strstr(b.data, "\"input_tokens\":");
        size_t h = (size_t)(it - b.data) + strlen("\"input_tokens\":");
        char line[2048];
        snprintf(line, sizeof line, "%.*s%s%s", (int)h, b.data, ints[k], strchr(b.data + h, ','));
        hl_ledger_entry e;
        char why[160];
        HL_REQUIRE(hl_ledger_parse_line(line, strlen(line), &e, why, sizeof why) == HL_OK);
        HL_CHECK(e.rec.usage.input_tokens == strtoll(ints[k], NULL, 10));
        hl_ledger_entry_release(&e);
    }
    hl_buf_release(&b);
}

HL_TEST(key_id_and_name_round_trip) {
    hl_ledger_record r = full_record();
    r.key_id = 42;
    r.key_name = "alice";
    hl_buf b;
    hl_buf_init(&b, 0);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "\"key_id\":42,\"key_name\":\"alice\"}") != NULL);
    hl_ledger_entry e;
    char why[160];
    HL_REQUIRE(hl_ledger_parse_line(b.data, b.len - 1, &e, why, sizeof why) == HL_OK);
    HL_CHECK_INT_EQ(e.rec.key_id, 42);
    HL_CHECK_STR_EQ(e.rec.key_name, "alice");
    hl_ledger_entry_release(&e);
    r.key_id = 0;
    r.key_name = NULL;
    hl_buf_reset(&b);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_CHECK(strstr(b.data, "key_") == NULL);
    HL_REQUIRE(hl_ledger_parse_line(b.data, b.len - 1, &e, why, sizeof why) == HL_OK);
    HL_CHECK(e.rec.key_id == 0 && e.rec.key_name == NULL);
    hl_ledger_entry_release(&e);
    static const char bad[] = "{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"local\",\"input_tokens\":1,"
                              "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,\"key_id\":0}";
    HL_CHECK(hl_ledger_parse_line(bad, sizeof bad - 1, &e, why, sizeof why) != HL_OK);
    HL_CHECK(strstr(why, "key_id") != NULL);
    hl_buf_release(&b);
}

/* The quality fields (shadow, comparison, confidence signals, eval run) round-trip, are
 * absent when unset, and come together or not at all. */
HL_TEST(quality_fields_round_trip) {
    hl_ledger_record r = full_record();
    r.shadow = true;
    r.scored = true;
    r.score = 0.8125;
    r.score_method = "token_f1";
    r.agree = true;
    r.reference = "served";
    r.ref_output_tokens = 17;
    r.signals = true;
    r.confidence_margin = 0.5;
    r.confidence_min = 0.0625;
    r.eval_run = "ev_1";
    r.replica = "http://10.0.0.2:8000/v1";
    hl_buf b, b2;
    hl_buf_init(&b, 0);
    hl_buf_init(&b2, 0);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    hl_ledger_entry e;
    char why[160];
    HL_REQUIRE(hl_ledger_parse_line(b.data, b.len - 1, &e, why, sizeof why) == HL_OK);
    HL_CHECK(e.rec.shadow && e.rec.scored && e.rec.agree && e.rec.signals);
    HL_CHECK_NEAR(e.rec.score, 0.8125, 0);
    HL_CHECK_STR_EQ(e.rec.score_method, "token_f1");
    HL_CHECK_STR_EQ(e.rec.reference, "served");
    HL_CHECK_INT_EQ(e.rec.ref_output_tokens, 17);
    HL_CHECK_NEAR(e.rec.confidence_margin, 0.5, 0);
    HL_CHECK_NEAR(e.rec.confidence_min, 0.0625, 0);
    HL_CHECK_STR_EQ(e.rec.eval_run, "ev_1");
    HL_CHECK_STR_EQ(e.rec.replica, "http://10.0.0.2:8000/v1");
    HL_CHECK(strstr(b.data, ",\"replica\":\"http://10.0.0.2:8000/v1\"}") != NULL);
    HL_REQUIRE(hl_ledger_format(&e.rec, &b2) == HL_OK);
    HL_CHECK_STR_EQ(b2.data, b.data);
    hl_ledger_entry_release(&e);
    /* unset: none of the keys is written, and they read back unset */
    r = full_record();
    hl_buf_reset(&b);
    HL_REQUIRE(hl_ledger_format(&r, &b) == HL_OK);
    HL_CHECK(!strstr(b.data, "shadow") && !strstr(b.data, "score") && !strstr(b.data, "eval_run") && !strstr(b.data, "replica") &&
             !strstr(b.data, "confidence_m"));
    HL_REQUIRE(hl_ledger_parse_line(b.data, b.len - 1, &e, why, sizeof why) == HL_OK);
    HL_CHECK(!e.rec.shadow && !e.rec.scored && !e.rec.signals && !e.rec.eval_run && !e.rec.replica);
    hl_ledger_entry_release(&e);
    /* partial or out-of-range quality fields make the line malformed, naming the field */
    static const struct { const char *tail, *says; } bad[] = {
        {"\"score\":0.5}", "come together"},
        {"\"score\":1.5,\"score_method\":\"exact\",\"agree\":true,\"reference\":\"served\",\"ref_output_tokens\":1}",
         "score is not"},
        {"\"agree\":true}", "come together"},
        {"\"score\":1,\"score_method\":\"exact\",\"agree\":1,\"reference\":\"served\",\"ref_output_tokens\":1}",
         "wrong type"},
        {"\"confidence_margin\":0.2}", "come together"},
        {"\"confidence_margin\":-0.2,\"confidence_min\":0.1}", "0..1"},
        {"\"shadow\":\"yes\"}", "shadow"},
        {"\"eval_run\":3}", "eval_run"},
        {"\"replica\":[\"a\"]}", "replica"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[512];
        snprintf(line, sizeof line,
                 "{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"local\",\"input_tokens\":1,"
                 "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":0,%s", bad[i].tail);
        HL_CHECK(hl_ledger_parse_line(line, strlen(line), &e, why, sizeof why) != HL_OK);
        HL_CHECK(strstr(why, bad[i].says) != NULL);
    }
    hl_buf_release(&b);
    hl_buf_release(&b2);
}

/* The brief's CostTracker: json.dumps({timestamp: datetime.utcnow().isoformat(), source,
 * input_tokens, output_tokens, latency_ms, cost_usd}). */
static const char brief_line[] = "{\"timestamp\": \"2025-03-01T12:00:00.123456\", \"source\": \"cloud\", "
                                 "\"input_tokens\": 450, \"output_tokens\": 200, \"latency_ms\": 850, "
                                 "\"cost_usd\": 0.00435}";

HL_TEST(cost_tracker_lines_get_a_stable_derived_id) {
    hl_ledger_entry a, b, c;
    char why[160];
    HL_REQUIRE(hl_ledger_parse_line(brief_line, strlen(brief_line), &a, why, sizeof why) == HL_OK);
    HL_CHECK_INT_EQ(a.ts_us, 1740830400123456LL);
    HL_CHECK_INT_EQ(a.ts_ms, 1740830400123LL);
    HL_CHECK(a.rec.cloud);
    HL_CHECK_INT_EQ(a.rec.usage.input_tokens, 450);
    HL_CHECK_INT_EQ(a.rec.usage.output_tokens, 200);
    HL_CHECK_NEAR(a.rec.latency_ms, 850, 0);
    HL_CHECK_NEAR(a.rec.cost_usd, 0.00435, 0);
    HL_CHECK(a.rec.cost_known && !a.rec.status && a.rec.attempt == 1);
    HL_CHECK(a.id_derived);
    HL_CHECK_INT_EQ(strlen(a.rec.request_id), 35);
    HL_CHECK(!strncmp(a.rec.request_id, "ct-", 3));
    /* The same record serialized another way (no spaces, keys reordered, a zone): same id. */
    static const char same[] = "{\"source\":\"cloud\",\"timestamp\":\"2025-03-01T13:00:00.123456+01:00\",\"input_tokens\":450,"
                               "\"output_tokens\":200,\"latency_ms\":850.0,\"cost_usd\":4.35e-3}";
    HL_REQUIRE(hl_ledger_parse_line(same, strlen(same), &b, why, sizeof why) == HL_OK);
    HL_CHECK_STR_EQ(b.rec.request_id, a.rec.request_id);
    /* One microsecond later: another record. */
    static const char later[] = "{\"timestamp\": \"2025-03-01T12:00:00.123457\", \"source\": \"cloud\", "
                                "\"input_tokens\": 450, \"output_tokens\": 200, \"latency_ms\": 850, \"cost_usd\": 0.00435}";
    HL_REQUIRE(hl_ledger_parse_line(later, strlen(later), &c, why, sizeof why) == HL_OK);
    HL_CHECK(strcmp(c.rec.request_id, a.rec.request_id) != 0);
    hl_ledger_entry_release(&c);
    /* Written back by the writer, the line carries the derived id and keeps its key. */
    hl_buf out;
    hl_buf_init(&out, 0);
    HL_REQUIRE(hl_ledger_format(&a.rec, &out) == HL_OK);
    HL_REQUIRE(hl_ledger_parse_line(out.data, out.len - 1, &c, why, sizeof why) == HL_OK);
    HL_CHECK(!c.id_derived);
    HL_CHECK_STR_EQ(c.rec.request_id, a.rec.request_id);
    HL_CHECK_INT_EQ(c.rec.attempt, 1);
    HL_CHECK_INT_EQ(c.ts_ms, a.ts_ms);
    hl_buf_release(&out);
    hl_ledger_entry_release(&a);
    hl_ledger_entry_release(&b);
    hl_ledger_entry_release(&c);
}

HL_TEST(malformed_lines_say_why) {
    static const struct {
        const char *line, *why;
    } cases[] = {
        {"   \t\r", "blank line"},
        {"not json", "not JSON"},
        {"[1, 2]", "not a JSON object"},
        {"{\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":1}",
         "timestamp missing"},
        {"{\"timestamp\":12,\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":1}",
         "timestamp missing or not a string"},
        {"{\"timestamp\":\"2025-02-29T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "timestamp is not ISO 8601"},
        {"{\"timestamp\":\"1969-12-31T23:59:59Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "timestamp before 1970"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"edge\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "source is neither cloud nor local"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1.5,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "input_tokens missing or not a count"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":-1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "output_tokens missing or not a count"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"cost_usd\":1}", "latency_ms missing"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1}", "cost_usd missing"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":\"1\"}", "cost_usd is not a number"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"request_id\":\"r\"}", "attempt missing"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"request_id\":\"r\",\"attempt\":0}", "attempt is not an integer >= 1"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"request_id\":\"\",\"attempt\":1}", "request_id is empty"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"status\":3}", "a text field holds a non-string"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"stream\":\"yes\"}", "a boolean field holds something else"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"source\":\"local\",\"input_tokens\":1,"
         "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":1}", "source given twice"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"tenant\":\"a\\ud800\"}", "lone high surrogate"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"tenant\":\"\xc3\"}", "invalid UTF-8"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"tenant\":\"a\\u0000\"}", "\\u0000"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1e3,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "input_tokens missing or not a count"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":99999999999999999999,"
         "\"output_tokens\":1,\"latency_ms\":1,\"cost_usd\":1}", "integer out of range"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1e999,\"cost_usd\":1}", "number out of range"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":01,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1}", "not JSON"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,}", "not JSON"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1} {}", "bytes after the object"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"x\":[1,{\"a\":[tru]}]}", "invalid token"},
        {"{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
         "\"latency_ms\":1,\"cost_usd\":1,\"model\":[\"m\"]}", "a text field holds a non-string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_ledger_entry e;
        char why[160] = "unset";
        hl_err rc = hl_ledger_parse_line(cases[i].line, strlen(cases[i].line), &e, why, sizeof why);
        if (rc != HL_ERR_PARSE || !strstr(why, cases[i].why))
            HL_FAIL_("case %zu: rc %d, why \"%s\", expected \"%s\"", i, rc, why, cases[i].why);
        hl_ledger_entry_release(&e);
    }
}

HL_TEST(any_valid_json_spelling_is_read) {
    /* escaped key names, nested unknown values, whitespace everywhere, exponents, escapes and
     * a surrogate pair in strings */
    static const char line[] =
        " { \"\\u0074imestamp\" : \"2025-03-01T00:00:00Z\" ,\"extra\":{\"a\":[1,2.5e-3,true,null,{\"b\":\"\\\"\"}],\"c\":{}},"
        "\"source\":\"local\",\"input_tokens\":-0,\"output_tokens\":7,\"latency_ms\":1.5E+2,\"cost_usd\":null,"
        "\"tenant\":\"caf\\u00e9 \\ud83d\\ude00\\t\\/\\\\\",\"model\":\"\xe6\x97\xa5\xe6\x9c\xac\",\"other\":[] } \r";
    hl_ledger_entry e;
    char why[160];
    HL_REQUIRE(hl_ledger_parse_line(line, sizeof line - 1, &e, why, sizeof why) == HL_OK);
    HL_CHECK_INT_EQ(e.ts_ms, 1740787200000LL);
    HL_CHECK(!e.rec.cloud);
    HL_CHECK_INT_EQ(e.rec.usage.input_tokens, 0);
    HL_CHECK_INT_EQ(e.rec.usage.output_tokens, 7);
    HL_CHECK_NEAR(e.rec.latency_ms, 150, 0);
    HL_CHECK(!e.rec.cost_known);
    HL_CHECK_STR_EQ(e.rec.tenant, "caf\xc3\xa9 \xf0\x9f\x98\x80\t/\\");
    HL_CHECK_STR_EQ(e.rec.model, "\xe6\x97\xa5\xe6\x9c\xac");
    hl_ledger_entry_release(&e);
}

HL_TEST(line_time_fast_path_and_fallback) {
    long long ms;
    static const char first[] = "{\"timestamp\":\"2025-03-01T00:00:00.250Z\",\"source\":\"local\"}";
    HL_CHECK_INT_EQ(hl_ledger_line_time(first, strlen(first), &ms), HL_OK); /* the fast path reads the time only */
    HL_CHECK_INT_EQ(ms, 1740787200250LL);
    HL_CHECK_INT_EQ(hl_ledger_line_time(brief_line, strlen(brief_line), &ms), HL_OK);
    HL_CHECK_INT_EQ(ms, 1740830400123LL);
    static const char later[] = "{\"source\":\"local\",\"input_tokens\":1,\"output_tokens\":1,\"latency_ms\":1,"
                                "\"cost_usd\":1,\"timestamp\":\"2025-03-01T00:00:01Z\"}";
    HL_CHECK_INT_EQ(hl_ledger_line_time(later, strlen(later), &ms), HL_OK);
    HL_CHECK_INT_EQ(ms, 1740787201000LL);
    HL_CHECK_INT_EQ(hl_ledger_line_time("{\"timestamp\":\"yesterday\"}", 25, &ms), HL_ERR_PARSE);
}

static hl_err collect(void *ctx, const hl_ledger_entry *e, size_t line_no) {
    hl_buf *b = ctx;
    return hl_buf_printf(b, "%zu:%s/%d ", line_no, e->rec.request_id, e->rec.attempt);
}

HL_TEST(read_keeps_the_first_line_of_each_key) {
    static const char text[] =
        "{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"local\",\"input_tokens\":1,\"output_tokens\":1,"
        "\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"a\",\"attempt\":1}\n"
        "\n"
        "{\"timestamp\":\"2025-03-01T00:00:01Z\",\"source\":\"cloud\",\"input_tokens\":1,\"output_tokens\":1,"
        "\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"a\",\"attempt\":2}\n"
        "{\"timestamp\":\"2025-03-01T00:00:00Z\",\"source\":\"local\",\"input_tokens\":1,\"output_tokens\":1,"
        "\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"a\",\"attempt\":1}\n" /* duplicate */
        "{\"timestamp\":\"2025-03-01T00:00:05Z\",\"source\":\"local\",\"input_tokens\":9,\"output_tokens\":1,"
        "\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"a\",\"attempt\":2}\n" /* conflict */
        "{\"timestamp\":\"2025-03-01T00:00:00Z\"}\n"
        "{\"timestamp\":\"2025-03-01T00:00:02Z\",\"source\":\"local\",\"input_tokens\":1,\"output_tokens\":1,"
        "\"latency_ms\":1,\"cost_usd\":0,\"request_id\":\"a\\u0000x\"";
    char path[] = "/tmp/hl_ledger_read_XXXXXX", err[256];
    int fd = mkstemp(path);
    HL_REQUIRE(fd >= 0);
    HL_REQUIRE(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    hl_buf seen;
    hl_buf_init(&seen, 0);
    hl_ledger_read_stats st;
    HL_REQUIRE(hl_ledger_read(path, 0, collect, &seen, &st, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(seen.data, "1:a/1 3:a/2 ");
    HL_CHECK_INT_EQ(st.lines, 6);
    HL_CHECK_INT_EQ(st.blank, 1);
    HL_CHECK_INT_EQ(st.records, 2);
    HL_CHECK_INT_EQ(st.duplicates, 1);
    HL_CHECK_INT_EQ(st.conflicts, 1);
    HL_CHECK_INT_EQ(st.malformed, 1);
    HL_CHECK_INT_EQ(st.first_bad_line, 6);
    HL_CHECK(strstr(st.first_bad, "source missing") != NULL);
    HL_CHECK(st.partial); /* the unterminated last line is not read */
    HL_CHECK(st.end_offset > 0 && text[st.end_offset - 1] == '\n');
    /* From an offset: the line at it is line 1. */
    long long third = (long long)(strchr(strchr(text, '\n') + 1, '\n') + 1 - text);
    hl_buf_reset(&seen);
    HL_REQUIRE(hl_ledger_read(path, third, collect, &seen, &st, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(seen.data, "1:a/2 2:a/1 ");
    hl_buf_release(&seen);
    unlink(path);
    HL_CHECK_INT_EQ(hl_ledger_read(path, 0, collect, &seen, &st, err, sizeof err), HL_ERR_IO);
    HL_CHECK(strstr(err, path) != NULL);
}

HL_TEST_MAIN()
