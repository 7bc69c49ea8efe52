/* fuzz_sse: libFuzzer target for hl_sse, which reads every byte upstream backends stream.
 *
 * The input is fed once whole and once in pseudo-random pieces (empty ones included); both
 * must give the same events and the same result, since a stream's meaning may not depend on
 * how the network cut it. Each event is checked against what the format allows: data has no
 * CR, names and ids no line ends, everything within the ceiling. The ceiling comes from the
 * first byte so the fuzzer reaches it. Any broken invariant aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_sse.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct run {
    hl_buf log; /* every event, serialized */
    size_t max;
} run;

static int on_event(void *ud, const hl_sse_event *ev) {
    run *r = ud;
    size_t en = strlen(ev->event), in = strlen(ev->id);
    CHECK(ev->data[ev->data_len] == '\0');
    CHECK(!memchr(ev->data, '\r', ev->data_len));
    CHECK(!strpbrk(ev->event, "\r\n") && !strpbrk(ev->id, "\r\n"));
    if (r->max) CHECK(ev->data_len <= r->max && en <= r->max && in <= r->max);
    /* Length-prefixed, so no two different event sequences serialize alike. */
    CHECK(hl_buf_printf(&r->log, "%zu:%s%zu:%s%zu:", en, ev->event, in, ev->id,
                        ev->data_len) == HL_OK);
    CHECK(hl_buf_append(&r->log, ev->data, ev->data_len) == HL_OK);
    return 0;
}

static int feed(const uint8_t *data, size_t size, size_t max, bool pieces, run *r) {
    hl_sse p;
    hl_sse_init(&p, max);
    hl_buf_init(&r->log, 0);
    r->max = max;
    uint32_t seed = (uint32_t)size * 2654435761u + (size ? data[size - 1] : 0);
    size_t off = 0;
    int rc = 0;
    do {
        size_t step = size - off;
        if (pieces) {
            seed = seed * 1103515245u + 12345u;
            size_t want = (seed >> 16) % 9; /* mostly tiny pieces, some empty */
            if ((seed >> 8) % 5 == 0) want = (seed >> 16) % 300;
            if (want < step) step = want;
        }
        /* An exact-size copy so reads past the piece are caught. */
        char *copy = malloc(step ? step : 1);
        memcpy(copy, data + off, step);
        rc = hl_sse_feed(&p, copy, step, on_event, r);
        free(copy);
        off += step;
    } while (rc == 0 && off < size);
    hl_sse_finish(&p);
    /* A finished parser starts over cleanly. */
    CHECK(hl_sse_feed(&p, "data: x\n\n", 9, NULL, NULL) == 0);
    hl_sse_release(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t max = size ? (size_t)(data[0] & 7) * 64 : 0; /* 0 (none), 64, ... 448 */
    run whole, split;
    int rc1 = feed(data, size, max, false, &whole);
    int rc2 = feed(data, size, max, true, &split);
    CHECK(rc1 == HL_OK || rc1 == HL_ERR_LIMIT);
    CHECK(rc1 == rc2);
    CHECK(whole.log.len == split.log.len);
    CHECK(whole.log.len == 0 || memcmp(whole.log.data, split.log.data, whole.log.len) == 0);
    hl_buf_release(&whole.log);
    hl_buf_release(&split.log);
    return 0;
}
