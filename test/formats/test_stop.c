/* Tests for hl_stop: the gateway's own stop sequences, on whole texts and on streams cut
 * anywhere (the text that could begin a stop is held back, and never lost). */
#include "hl_stop.h"
#include "hl_test.h"

#include <string.h>

static char *STOPS[] = {"END", "\n\nUser:", "ENDING", ""};

HL_TEST(cut_whole_text) {
    char a[] = "hello END world ENDING";
    HL_CHECK_INT_EQ(hl_stop_cut(STOPS, 4, a), 0);
    HL_CHECK_STR_EQ(a, "hello ");
    char b[] = "no stop here";
    HL_CHECK_INT_EQ(hl_stop_cut(STOPS, 4, b), -1);
    HL_CHECK_STR_EQ(b, "no stop here");
    char c[] = "x ENDING";
    /* at one offset the longer stop is the one that was completed */
    HL_CHECK_INT_EQ(hl_stop_cut(STOPS, 4, c), 2);
    HL_CHECK_STR_EQ(c, "x ");
    char d[] = "line\n\nUser: next";
    HL_CHECK_INT_EQ(hl_stop_cut(STOPS, 4, d), 1);
    HL_CHECK_STR_EQ(d, "line");
}

/* Feeds text in pieces of `step` bytes; returns the match and the text passed on. */
static int stream(const char *text, size_t step, hl_buf *out) {
    hl_stop_filter f;
    hl_stop_init(&f, STOPS, 4);
    int m = -1;
    size_t n = strlen(text);
    for (size_t off = 0; off < n && m < 0; off += step) {
        size_t k = n - off < step ? n - off : step;
        m = hl_stop_feed(&f, text + off, k, out);
    }
    if (m < 0) hl_stop_flush(&f, out);
    hl_stop_release(&f);
    return m;
}

HL_TEST(stream_split_anywhere) {
    const char *texts[] = {"once upon a time END and more", "a\n\nUse no stop\n\nUser: hi", "EN EN E", "ENDIN"};
    int want_m[] = {0, 1, -1, 0};
    const char *want[] = {"once upon a time ", "a\n\nUse no stop", "EN EN E", ""};
    for (size_t t = 0; t < 4; t++) {
        for (size_t step = 1; step <= strlen(texts[t]); step++) {
            hl_buf out;
            hl_buf_init(&out, 0);
            int m = stream(texts[t], step, &out);
            HL_CHECK_INT_EQ(m, want_m[t]);
            HL_CHECK_STR_EQ(out.data ? out.data : "", want[t]);
            hl_buf_release(&out);
        }
    }
}

HL_TEST(stream_holds_back_only_a_possible_start) {
    hl_stop_filter f;
    hl_stop_init(&f, STOPS, 4);
    hl_buf out;
    hl_buf_init(&out, 0);
    HL_CHECK_INT_EQ(hl_stop_feed(&f, "abc E", 5, &out), -1);
    HL_CHECK_STR_EQ(out.data, "abc "); /* "E" may begin END */
    HL_CHECK_INT_EQ(hl_stop_feed(&f, "x", 1, &out), -1);
    HL_CHECK_STR_EQ(out.data, "abc Ex");
    HL_CHECK_INT_EQ(hl_stop_feed(&f, "EN", 2, &out), -1);
    HL_CHECK_INT_EQ(hl_stop_feed(&f, "D!", 2, &out), 0);
    HL_CHECK_STR_EQ(out.data, "abc Ex");
    /* after the match nothing more passes */
    HL_CHECK_INT_EQ(hl_stop_feed(&f, "more", 4, &out), 0);
    HL_CHECK_STR_EQ(out.data, "abc Ex");
    hl_buf_release(&out);
    hl_stop_release(&f);
}

HL_TEST_MAIN()
