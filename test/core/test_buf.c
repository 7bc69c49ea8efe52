/* Tests for hl_buf: growth, ceilings, JSON escaping. */
#include "hl_buf.h"
#include "hl_test.h"

HL_TEST(append_and_ceiling) {
    hl_buf b;
    hl_buf_init(&b, 8);
    HL_CHECK_INT_EQ(hl_buf_puts(&b, "abcd"), HL_OK);
    HL_CHECK_INT_EQ(hl_buf_puts(&b, "efgh"), HL_OK);
    HL_CHECK_INT_EQ(hl_buf_puts(&b, "i"), HL_ERR_LIMIT);
    HL_CHECK_STR_EQ(b.data, "abcdefgh");
    hl_buf_consume(&b, 3);
    HL_CHECK_STR_EQ(b.data, "defgh");
    hl_buf_release(&b);
}

HL_TEST(json_escape) {
    hl_buf b;
    hl_buf_init(&b, 0);
    const char s[] = "a\"b\\c\n\x01\xc3\xa9";
    HL_CHECK_INT_EQ(hl_buf_json_str(&b, s, sizeof s - 1), HL_OK);
    HL_CHECK_STR_EQ(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    hl_buf_release(&b);
}

/* The eight-bytes-a-step scan against the byte-by-byte rule it stands for: every special byte
 * at every offset of a run, behind every kind of byte (a borrow in the word must not hide or
 * invent one), with and without ascii_only. */
static size_t plain_len_ref(const unsigned char *s, size_t n, int ascii_only) {
    size_t i = 0;
    while (i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' && !(ascii_only && s[i] >= 0x80)) i++;
    return i;
}

HL_TEST(json_plain_len_matches_the_byte_rule) {
    static const unsigned char specials[] = {0x00, 0x01, 0x1f, '"', '\\', 0x80, 0xc3, 0xff};
    static const unsigned char fillers[] = {0x20, 'a', 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x9f, 0xa0, 0xe9, 0x00, 0x1f};
    unsigned char s[40];
    for (size_t f = 0; f < sizeof fillers; f++)
        for (size_t g = 0; g < sizeof fillers; g++)
            for (size_t k = 0; k < sizeof specials; k++)
                for (size_t at = 0; at < 24; at++) {
                    for (size_t i = 0; i < sizeof s; i++) s[i] = i & 1 ? fillers[f] : fillers[g];
                    s[at] = specials[k];
                    for (int ascii = 0; ascii < 2; ascii++)
                        for (size_t n = at; n <= at + 17; n += 1) {
                            size_t got = hl_json_plain_len((const char *)s, n, ascii);
                            size_t want = plain_len_ref(s, n, ascii);
                            if (got != want) {
                                HL_CHECK_INT_EQ(got, want);
                                return;
                            }
                        }
                }
}

HL_TEST(printf_long) {
    hl_buf b;
    hl_buf_init(&b, 0);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    HL_CHECK_INT_EQ(hl_buf_printf(&b, "<%s>", big), HL_OK);
    HL_CHECK_INT_EQ(b.len, 1001);
    hl_buf_release(&b);
}

HL_TEST(numbers_without_printf) {
    hl_buf b;
    hl_buf_init(&b, 0);
    hl_buf_i64(&b, 0);
    hl_buf_puts(&b, " ");
    hl_buf_i64(&b, -9223372036854775807LL - 1);
    hl_buf_puts(&b, " ");
    hl_buf_fixed(&b, 0.0000780000, 10);
    hl_buf_puts(&b, " ");
    hl_buf_fixed(&b, 850.0, 3);
    hl_buf_puts(&b, " ");
    hl_buf_fixed(&b, 12.3456, 2);
    hl_buf_puts(&b, " ");
    hl_buf_fixed(&b, -0.5, 0);
    hl_buf_puts(&b, " ");
    hl_buf_fixed(&b, 1e300, 3); /* out of the fast range: printf */
    HL_CHECK(!strncmp(b.data, "0 -9223372036854775808 0.0000780000 850.000 12.35 -1 1", 54));
    /* agrees with printf on a sweep */
    for (int i = 0; i < 2000; i++) {
        double x = (i * 7919 % 100003) / 997.0 - 40.0;
        char want[64];
        hl_buf_reset(&b);
        hl_buf_fixed(&b, x, 3);
        snprintf(want, sizeof want, "%.3f", x);
        if (strcmp(b.data, want) != 0 && !(strcmp(want, "-0.000") == 0 && strcmp(b.data, "0.000") == 0))
            HL_FAIL_("%.17g: %s vs printf %s", x, b.data, want);
    }
    hl_buf_release(&b);
}

/* Shortest form that reads back; -0 is written 0 (JSON readers take "-0" for the integer 0,
 * so a written -0 would change on a round trip: a fuzzer found it). */
HL_TEST(doubles_round_trip) {
    static const struct { double x; const char *want; } cases[] = {
        {0.9, "0.9"}, {2.3, "2.3"}, {-0.0, "0"}, {0.0, "0"}, {1e-7, "1e-07"},
        {-1.5, "-1.5"},
    };
    hl_buf b;
    hl_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hl_buf_reset(&b);
        hl_buf_double(&b, cases[i].x);
        HL_CHECK_STR_EQ(b.data, cases[i].want);
    }
    hl_buf_release(&b);
}

HL_TEST_MAIN()
