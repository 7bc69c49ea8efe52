/* fuzz_pii: libFuzzer target for hl_pii, which reads the text of every request.
 *
 * The input is scanned and redacted twice: with the built-in types only and with a detector
 * that has custom patterns (one of them can match the empty string, one overlaps built-in
 * values). Invariants, any broken one aborts:
 *   - a report's total is the sum of its counts, and the custom count the sum per pattern;
 *   - redaction reports exactly what the scan reports;
 *   - redaction allocates nothing when nothing was found, and something when anything was;
 *   - the redacted text is NUL-terminated at out_len and, scanned again, holds no value of
 *     a built-in type (nor, for the custom detector, of a custom pattern): nothing the scan
 *     found survives, and placeholders create nothing new. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl_pii.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_report(const hl_pii_report *r) {
    long sum = 0, custom = 0;
    for (int t = 0; t < HL_PII_NTYPES; t++) {
        CHECK(r->counts[t] >= 0);
        sum += r->counts[t];
    }
    for (int i = 0; i < HL_PII_MAX_CUSTOM; i++) custom += r->custom[i];
    CHECK(sum == r->total);
    CHECK(custom == r->counts[HL_PII_CUSTOM]);
}

static void run(const hl_pii_detector *d, const char *text, size_t size) {
    hl_pii_report scanned = {0}, red = {0};
    hl_pii_scan(d, text, size, &scanned);
    check_report(&scanned);

    char *out = (char *)text; /* must be overwritten */
    size_t out_len = 1;
    hl_err err = hl_pii_redact(d, text, size, &out, &out_len, &red);
    CHECK(memcmp(&scanned, &red, sizeof red) == 0);
    if (err == HL_ERR_LIMIT) { /* a custom pattern hit the match limit: fail closed */
        CHECK(out == NULL && out_len == 0 && red.counts[HL_PII_CUSTOM] > 0);
        return;
    }
    CHECK(err == HL_OK);
    if (scanned.total == 0) {
        CHECK(out == NULL && out_len == 0);
        return;
    }
    CHECK(out != NULL && out[out_len] == '\0');

    hl_pii_report again = {0};
    hl_pii_scan(d, out, out_len, &again);
    CHECK(again.total == 0);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static hl_pii_detector *custom;
    if (!custom) {
        const char *patterns[] = {"EMP-[0-9]{4,6}", "(?i)passw0rd", "q*",
                                  "[0-9]{3}-[0-9]{2}", "\\p{Han}{2}\\d"};
        const char *names[] = {"employee_id", "pw", "qs", "digits", "han"};
        CHECK(hl_pii_detector_new(&custom, patterns, names, 5, NULL, 0) == HL_OK);
    }
    run(NULL, (const char *)data, size);
    run(custom, (const char *)data, size);
    return 0;
}
