/* Tests for hl_sse: the WHATWG event-stream rules, real OpenAI and Anthropic streams, limits,
 * and that any split of a stream gives the same events. */
#include "hl_sse.h"
#include "hl_test.h"

#include <stdbool.h>
#include <stdint.h>

/* Each event is logged as "<event>|<id>|<data as a JSON string>\n", so whole streams
 * compare as one string. */
typedef struct event_log {
    hl_buf text;
    int n_events;
    int stop_after; /* return 99 from the callback after this many events; 0: never */
} event_log;

static int log_event(void *ud, const hl_sse_event *ev) {
    event_log *log = ud;
    hl_buf_printf(&log->text, "%s|%s|", ev->event, ev->id);
    hl_buf_json_str(&log->text, ev->data, ev->data_len);
    hl_buf_puts(&log->text, "\n");
    if (ev->data[ev->data_len] != '\0') hl_buf_puts(&log->text, "(data not NUL-terminated)\n");
    log->n_events++;
    return log->stop_after && log->n_events >= log->stop_after ? 99 : 0;
}

/* Feeds s[0..n) in pieces whose sizes come from pieces[] (cycled; none: one piece), each
 * from an exact-size copy so ASan sees overreads. Stops at the first non-zero result and
 * returns it; then ends the stream. */
static int feed_pieces(const char *s, size_t n, size_t max_event, const size_t *pieces,
                       size_t n_pieces, event_log *log) {
    hl_sse p;
    hl_sse_init(&p, max_event);
    hl_buf_init(&log->text, 0);
    log->n_events = 0;
    int rc = 0;
    size_t off = 0, i = 0;
    do {
        size_t step = n_pieces ? pieces[i++ % n_pieces] : n;
        if (step > n - off) step = n - off;
        char *copy = malloc(step ? step : 1);
        memcpy(copy, s + off, step);
        rc = hl_sse_feed(&p, copy, step, log_event, log);
        free(copy);
        off += step;
    } while (rc == 0 && off < n);
    hl_sse_finish(&p);
    hl_sse_release(&p);
    return rc;
}

static const char *log_text(const event_log *log) { return log->text.data ? log->text.data : ""; }

typedef struct sse_case {
    const char *name;
    const char *raw;
    size_t max_event; /* 0: 1 MiB */
    int rc;
    const char *events;
    size_t len; /* 0: strlen(raw) */
} sse_case;

#define OPENAI_STREAM                                                                      \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"  \
    "\"delta\":{\"role\":\"assistant\"}}]}\n\n"                                            \
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n" \
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"       \
    "\"finish_reason\":\"stop\"}]}\n\n"                                                    \
    "data: [DONE]\n\n"

#define ANTHROPIC_STREAM                                                                   \
    "event: message_start\n"                                                               \
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":"           \
    "{\"input_tokens\":12}}}\n\n"                                                          \
    "event: content_block_start\n"                                                         \
    "data: {\"type\":\"content_block_start\",\"index\":0}\n\n"                             \
    "event: ping\n"                                                                        \
    "data: {\"type\": \"ping\"}\n\n"                                                       \
    "event: content_block_delta\n"                                                         \
    "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"Hi\"}}\n\n"             \
    "event: message_stop\n"                                                                \
    "data: {\"type\":\"message_stop\"}\n\n"

static const sse_case sse_cases[] = {
    {"openai", OPENAI_STREAM, 0, 0,
     "||\"{\\\"id\\\":\\\"c1\\\",\\\"object\\\":\\\"chat.completion.chunk\\\",\\\"choices\\\":"
     "[{\\\"index\\\":0,\\\"delta\\\":{\\\"role\\\":\\\"assistant\\\"}}]}\"\n"
     "||\"{\\\"id\\\":\\\"c1\\\",\\\"choices\\\":[{\\\"index\\\":0,\\\"delta\\\":"
     "{\\\"content\\\":\\\"Hel\\\"}}]}\"\n"
     "||\"{\\\"id\\\":\\\"c1\\\",\\\"choices\\\":[{\\\"index\\\":0,\\\"delta\\\":"
     "{\\\"content\\\":\\\"lo\\\"},\\\"finish_reason\\\":\\\"stop\\\"}]}\"\n"
     "||\"[DONE]\"\n", 0},
    {"anthropic", ANTHROPIC_STREAM, 0, 0,
     "message_start||\"{\\\"type\\\":\\\"message_start\\\",\\\"message\\\":{\\\"id\\\":"
     "\\\"msg_1\\\",\\\"usage\\\":{\\\"input_tokens\\\":12}}}\"\n"
     "content_block_start||\"{\\\"type\\\":\\\"content_block_start\\\",\\\"index\\\":0}\"\n"
     "ping||\"{\\\"type\\\": \\\"ping\\\"}\"\n"
     "content_block_delta||\"{\\\"type\\\":\\\"content_block_delta\\\",\\\"delta\\\":"
     "{\\\"text\\\":\\\"Hi\\\"}}\"\n"
     "message_stop||\"{\\\"type\\\":\\\"message_stop\\\"}\"\n", 0},
    {"crlf", "event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n", 0, 0, "a||\"1\"\n||\"2\"\n", 0},
    {"cr only", "event: a\rdata: 1\r\rdata: 2\r\r", 0, 0, "a||\"1\"\n||\"2\"\n", 0},
    {"mixed line ends", "data: 1\r\ndata: 2\rdata: 3\n\r\n", 0, 0, "||\"1\\n2\\n3\"\n", 0},
    {"cr then lf is one end", "data: a\r\n\r\ndata: b\r\r\n", 0, 0, "||\"a\"\n||\"b\"\n", 0},
    {"data lines joined", "data: a\ndata: b\ndata\ndata: c\n\n", 0, 0,
     "||\"a\\nb\\n\\nc\"\n", 0},
    {"one space dropped", "data:a\n\ndata:  b\n\ndata:\tc\n\n", 0, 0,
     "||\"a\"\n||\" b\"\n||\"\\tc\"\n", 0},
    {"colon in value", "data: {\"a\":1}\n\n", 0, 0, "||\"{\\\"a\\\":1}\"\n", 0},
    {"comments", ": ping\n\n:\ndata: x\n: inside\n\n", 0, 0, "||\"x\"\n", 0},
    {"empty data dispatches", "data\n\ndata:\n\n", 0, 0, "||\"\"\n||\"\"\n", 0},
    {"event without data", "event: ping\n\n", 0, 0, "ping||\"\"\n", 0},
    {"blank lines alone", "\n\n\r\n\r\r", 0, 0, "", 0},
    {"event name reset", "event: a\ndata: 1\n\ndata: 2\n\n", 0, 0, "a||\"1\"\n||\"2\"\n", 0},
    {"last event name wins", "event: a\nevent: b\ndata: 1\n\n", 0, 0, "b||\"1\"\n", 0},
    {"empty event name", "event:\ndata: 1\n\n", 0, 0, "||\"1\"\n", 0},
    {"id persists", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", 0, 0,
     "|7|\"a\"\n|7|\"b\"\n||\"c\"\n", 0},
    {"id alone dispatches nothing", "id: 3\n\ndata: a\n\n", 0, 0, "|3|\"a\"\n", 0},
    {"id with nul ignored", "id: 1\nid: 2\0x\ndata: a\n\n", 0, 0, "|1|\"a\"\n", 23},
    {"nul in data kept", "data: a\0b\n\n", 0, 0, "||\"a\\u0000b\"\n", 11},
    {"other fields ignored", "retry: 1000\nfoo: bar\nDATA: no\ndata : no\ndata: yes\n\n", 0, 0,
     "||\"yes\"\n", 0},
    {"unfinished event dropped", "data: a\n\ndata: b\n", 0, 0, "||\"a\"\n", 0},
    {"unfinished line dropped", "data: a\n\ndata: b", 0, 0, "||\"a\"\n", 0},
    {"bom skipped", "\xEF\xBB\xBF" "data: a\n\n", 0, 0, "||\"a\"\n", 0},
    {"bom only once", "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", 0, 0,
     "||\"b\"\n", 0},
    {"false bom start", "\xEF\xBB" "data: a\n\ndata: b\n\n", 0, 0, "||\"b\"\n", 0},
    {"bom then crlf", "\xEF\xBB\xBF\r\ndata: a\r\n\r\n", 0, 0, "||\"a\"\n", 0},
    {"utf-8 data", "data: caf\xC3\xA9 \xE2\x9C\x93\n\n", 0, 0,
     "||\"caf\xC3\xA9 \xE2\x9C\x93\"\n", 0},

    {"data at limit", "data: 12345678\n\n", 8, 0, "||\"12345678\"\n", 0},
    {"data past limit", "data: a\n\ndata: 123456789\n\n", 8, HL_ERR_LIMIT, "||\"a\"\n", 0},
    {"joined at limit", "data: 1234\ndata: 567\n\n", 8, 0, "||\"1234\\n567\"\n", 0},
    {"joined past limit", "data: 1234\ndata: 5678\n\n", 8, HL_ERR_LIMIT, "", 0},
    {"event name past limit", "event: 123456789\n\n", 8, HL_ERR_LIMIT, "", 0},
    {"id past limit", "id: 123456789\n\n", 8, HL_ERR_LIMIT, "", 0},
    {"line at limit", ":23456789012345678901234\n\ndata: x\n\n", 8, 0, "||\"x\"\n", 0},
    {"line past limit", ":234567890123456789012345\n\ndata: x\n\n", 8, HL_ERR_LIMIT, "", 0},
    {"unfinished line past limit", "data: a\n\n:234567890123456789012345", 8, HL_ERR_LIMIT,
     "||\"a\"\n", 0},
    {"limit is sticky", "data: 123456789\n\ndata: a\n\n", 8, HL_ERR_LIMIT, "", 0},
};

static size_t case_len(const sse_case *c) { return c->len ? c->len : strlen(c->raw); }

HL_TEST(sse_table) {
    for (size_t t = 0; t < sizeof sse_cases / sizeof sse_cases[0]; t++) {
        const sse_case *c = &sse_cases[t];
        event_log log = {0};
        int rc = feed_pieces(c->raw, case_len(c), c->max_event ? c->max_event : 1 << 20, NULL,
                             0, &log);
        if (rc != c->rc || strcmp(log_text(&log), c->events) != 0)
            HL_FAIL_("%s: rc %d (expected %d)\n    got:      %s\n    expected: %s", c->name,
                     rc, c->rc, log_text(&log), c->events);
        hl_buf_release(&log.text);
    }
}

/* Every row split in two at each position, in three at each pair of positions, and fed one
 * byte at a time: the same events and the same result as one feed. */
HL_TEST(sse_every_split) {
    for (size_t t = 0; t < sizeof sse_cases / sizeof sse_cases[0]; t++) {
        const sse_case *c = &sse_cases[t];
        size_t n = case_len(c), max = c->max_event ? c->max_event : 1 << 20;
        event_log log = {0};
        size_t one[1] = {1};
        int rc = feed_pieces(c->raw, n, max, one, 1, &log);
        if (rc != c->rc || strcmp(log_text(&log), c->events) != 0)
            HL_FAIL_("%s byte by byte: rc %d\n    got: %s", c->name, rc, log_text(&log));
        hl_buf_release(&log.text);
        for (size_t a = 0; a <= n; a++) {
            for (size_t b = a; b <= n; b++) {
                if (n > 120 && b != a) continue; /* three-way splits only for short rows */
                size_t pieces[3] = {a, b - a, n};
                rc = feed_pieces(c->raw, n, max, pieces, 3, &log);
                bool same = rc == c->rc && strcmp(log_text(&log), c->events) == 0;
                hl_buf_release(&log.text);
                if (!same) {
                    HL_FAIL_("%s split at %zu,%zu: rc %d", c->name, a, b, rc);
                    goto next;
                }
            }
        }
    next:;
    }
}

HL_TEST(sse_callback_stops) {
    event_log log = {.stop_after = 2};
    const char raw[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    HL_CHECK_INT_EQ(feed_pieces(raw, sizeof raw - 1, 100, NULL, 0, &log), 99);
    HL_CHECK_STR_EQ(log_text(&log), "||\"1\"\n||\"2\"\n");
    hl_buf_release(&log.text);
}

/* After finish the parser reads a new stream from scratch: a BOM is skipped again, the id
 * and any half-read event are gone. After release it can be initialized again. */
HL_TEST(sse_finish_resets) {
    hl_sse p;
    event_log log = {0};
    hl_buf_init(&log.text, 0);
    hl_sse_init(&p, 64);
    const char a[] = "id: 5\nevent: x\ndata: first\n\ndata: half";
    HL_CHECK_INT_EQ(hl_sse_feed(&p, a, sizeof a - 1, log_event, &log), 0);
    hl_sse_finish(&p);
    const char b[] = "\xEF\xBB\xBF" "data: second\n\n";
    HL_CHECK_INT_EQ(hl_sse_feed(&p, b, sizeof b - 1, log_event, &log), 0);
    HL_CHECK_STR_EQ(log_text(&log), "x|5|\"first\"\n||\"second\"\n");

    /* An error is sticky until finish. */
    const char c[] = "data: 0123456789012345678901234567890123456789"
                     "012345678901234567890123456789\n\n"; /* 70 bytes of data */
    HL_CHECK_INT_EQ(hl_sse_feed(&p, c, sizeof c - 1, log_event, &log), HL_ERR_LIMIT);
    HL_CHECK_INT_EQ(hl_sse_feed(&p, "data: y\n\n", 9, log_event, &log), HL_ERR_LIMIT);
    hl_sse_finish(&p);
    HL_CHECK_INT_EQ(hl_sse_feed(&p, "data: y\n\n", 9, log_event, &log), 0);
    HL_CHECK_INT_EQ(log.n_events, 3);
    hl_sse_release(&p);
    hl_sse_init(&p, 0);
    HL_CHECK_INT_EQ(hl_sse_feed(&p, "data: z\n\n", 9, NULL, NULL), 0);
    hl_sse_release(&p);
    hl_buf_release(&log.text);
}

/* A BOM split over feeds that turns out not to be one: its bytes are text after all. The
 * pending line holds them whatever the split. */
HL_TEST(sse_false_bom_kept) {
    for (size_t k = 0; k <= 5; k++) {
        hl_sse p;
        hl_sse_init(&p, 64);
        const char raw[] = "\xEF\xBB" "abc";
        HL_CHECK_INT_EQ(hl_sse_feed(&p, raw, k, NULL, NULL), 0);
        HL_CHECK_INT_EQ(hl_sse_feed(&p, raw + k, 5 - k, NULL, NULL), 0);
        HL_CHECK_INT_EQ(p.line.len, 5);
        HL_CHECK(p.line.data && memcmp(p.line.data, raw, 5) == 0);
        hl_sse_release(&p);
    }
}

/* A long stream of CR-only lines and big events in odd-sized pieces: the parser stays
 * linear (this would time out if each line rescanned the rest of the feed) and exact. */
HL_TEST(sse_large_stream) {
    enum { N = 20000 };
    hl_buf raw, want;
    hl_buf_init(&raw, 0);
    hl_buf_init(&want, 0);
    for (int i = 0; i < N; i++) {
        hl_buf_printf(&raw, "event: e%d\rdata: {\"n\":%d}\r\r", i % 7, i);
        hl_buf_printf(&want, "e%d||\"{\\\"n\\\":%d}\"\n", i % 7, i);
    }
    size_t pieces[] = {4093, 1, 17, 60000, 2};
    event_log log = {0};
    HL_CHECK_INT_EQ(feed_pieces(raw.data, raw.len, 256, NULL, 0, &log), 0);
    HL_CHECK(strcmp(log_text(&log), want.data) == 0);
    HL_CHECK_INT_EQ(log.n_events, N);
    hl_buf_release(&log.text);
    HL_CHECK_INT_EQ(feed_pieces(raw.data, raw.len, 256, pieces, 5, &log), 0);
    HL_CHECK(strcmp(log_text(&log), want.data) == 0);
    hl_buf_release(&log.text);

    /* One event of 1 MiB of data arriving in small pieces. */
    hl_buf_reset(&raw);
    hl_buf_puts(&raw, "data: ");
    for (int i = 0; i < (1 << 20); i++) hl_buf_append(&raw, "x", 1);
    hl_buf_puts(&raw, "\n\n");
    size_t small[] = {1500};
    HL_CHECK_INT_EQ(feed_pieces(raw.data, raw.len, 1 << 20, small, 1, &log), 0);
    HL_CHECK_INT_EQ(log.n_events, 1);
    hl_buf_release(&log.text);
    HL_CHECK_INT_EQ(feed_pieces(raw.data, raw.len, (1 << 20) - 1, small, 1, &log),
                    HL_ERR_LIMIT);
    hl_buf_release(&log.text);
    hl_buf_release(&raw);
    hl_buf_release(&want);
}

HL_TEST_MAIN()
