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

HL_TEST_MAIN()
