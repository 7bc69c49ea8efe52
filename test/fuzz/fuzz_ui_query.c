/* Fuzz target: a dashboard query string (GET /api/...?...) through hl_ui_query_parse. Must
 * never crash or read out of bounds; an accepted query must hold a range with from < to and
 * printable, terminated names within their fields; a refusal must name a parameter (or the
 * query) and say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl_ui.h"

static void names_ok(const char *s, size_t cap) {
    size_t n = strnlen(s, cap);
    if (n == cap) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_ui_query q;
    char param[64], msg[256];
    msg[0] = '\0';
    if (hl_ui_query_parse((const char *)data, size, &q, param, sizeof param, msg, sizeof msg) == HL_OK) {
        if (q.from_ms >= q.to_ms) abort();
        names_ok(q.tenant, sizeof q.tenant);
        names_ok(q.backend, sizeof q.backend);
        names_ok(q.task_type, sizeof q.task_type);
    } else if (!msg[0] || strnlen(param, sizeof param) == sizeof param) {
        abort();
    }
    return 0;
}
