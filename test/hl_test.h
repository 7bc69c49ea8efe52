/* hl_test: the unit-test harness. Each test file is one executable that ctest runs in its
 * own process (with a timeout). A test is a function declared with HL_TEST(name); it
 * registers itself before main(). HL_TEST_MAIN() ends the file: it runs every test (or only
 * the one named in argv[1]) and prints "N passed, N failed, N skipped".
 *
 * Checks: HL_CHECK(cond) records a failure and goes on; HL_REQUIRE(cond) returns from the
 * test. The *_EQ forms print both sides.
 *
 * A test that cannot run here (a missing model, no database server) says so with
 * HL_SKIP("why"), which returns from it (HL_SKIP_MARK("why") only marks it, for a helper).
 * A failure outweighs a skip. When some test skipped and none failed, the executable exits
 * 77, which ctest reports as skipped (SKIP_RETURN_CODE in test/tests.cmake): a test that did
 * not run never reads as passed. */
#ifndef HL_TEST_H
#define HL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*hl_test_fn)(void);
typedef struct { const char *name; hl_test_fn fn; } hl_test_case;

#define HL_TEST_MAX 512
static hl_test_case hl_test_cases[HL_TEST_MAX];
static int hl_test_count;
static int hl_test_failed_now;
static int hl_test_skipped_now;

#define HL_TEST(name)                                                             \
    static void test_##name(void);                                                \
    __attribute__((constructor)) static void hl_test_reg_##name(void) {           \
        if (hl_test_count < HL_TEST_MAX)                                          \
            hl_test_cases[hl_test_count++] = (hl_test_case){#name, test_##name};  \
    }                                                                             \
    static void test_##name(void)

#define HL_FAIL_(...)                                                             \
    do {                                                                          \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                         \
        fprintf(stderr, __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                      \
        hl_test_failed_now = 1;                                                   \
    } while (0)

#define HL_SKIP_MARK(...)                                                         \
    do {                                                                          \
        printf("  skipped: ");                                                    \
        printf(__VA_ARGS__);                                                      \
        putchar('\n');                                                           \
        hl_test_skipped_now = 1;                                                  \
    } while (0)
#define HL_SKIP(...) do { HL_SKIP_MARK(__VA_ARGS__); return; } while (0)
#define HL_SKIPPED() (hl_test_skipped_now != 0)

#define HL_CHECK(c) do { if (!(c)) HL_FAIL_("check failed: %s", #c); } while (0)
#define HL_REQUIRE(c) do { if (!(c)) { HL_FAIL_("required: %s", #c); return; } } while (0)
#define HL_CHECK_INT_EQ(a, b)                                                     \
    do {                                                                          \
        long long a_ = (long long)(a), b_ = (long long)(b);                       \
        if (a_ != b_) HL_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);         \
    } while (0)
#define HL_CHECK_STR_EQ(a, b)                                                     \
    do {                                                                          \
        const char *a_ = (a), *b_ = (b);                                          \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                    \
            HL_FAIL_("%s == %s:\n    got:      %s\n    expected: %s", #a, #b,     \
                     a_ ? a_ : "(null)", b_ ? b_ : "(null)");                     \
    } while (0)
#define HL_CHECK_NEAR(a, b, tol)                                                  \
    do {                                                                          \
        double a_ = (double)(a), b_ = (double)(b);                                \
        if (!(a_ - b_ <= (tol) && b_ - a_ <= (tol)))                              \
            HL_FAIL_("%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)

#define HL_TEST_MAIN()                                                            \
    int main(int argc, char **argv) {                                             \
        int passed = 0, failed = 0, skipped = 0;                                  \
        for (int i = 0; i < hl_test_count; i++) {                                 \
            if (argc > 1 && strcmp(argv[1], hl_test_cases[i].name) != 0) continue; \
            hl_test_failed_now = hl_test_skipped_now = 0;                         \
            hl_test_cases[i].fn();                                                \
            printf("%s %s\n", hl_test_failed_now    ? "FAIL"                      \
                              : hl_test_skipped_now ? "SKIP"                      \
                                                    : "ok  ",                     \
                   hl_test_cases[i].name);                                        \
            if (hl_test_failed_now) failed++;                                     \
            else if (hl_test_skipped_now) skipped++;                              \
            else passed++;                                                        \
        }                                                                         \
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);    \
        if (failed || passed + skipped == 0) return 1;                            \
        return skipped ? 77 : 0;                                                  \
    }

#endif
