/* Tests for hl_time: the ISO 8601 forms every ledger reader and --from/--to accept (the
 * ledger's, the brief's CostTracker's, the short ones a person types), and what they reject. */
#include <stdbool.h>
#include "hl_test.h"
#include "hl_time.h"

static long long us(const char *s) {
    long long v = -999;
    if (hl_time_parse_us(s, strlen(s), &v) != HL_OK) return -999;
    return v;
}

static bool rejects(const char *s) {
    long long v = 12345;
    return hl_time_parse_us(s, strlen(s), &v) == HL_ERR_PARSE && v == 12345;
}

HL_TEST(the_forms_accepted) {
    const long long day = 1740787200LL * 1000000; /* 2025-03-01T00:00:00Z */
    HL_CHECK_INT_EQ(us("2025-03-01T00:00:00Z"), day);
    HL_CHECK_INT_EQ(us("2025-03-01T00:00:00.250Z"), day + 250000);
    HL_CHECK_INT_EQ(us("2025-03-01"), day);
    HL_CHECK_INT_EQ(us("2025-03-01Z"), day);
    HL_CHECK_INT_EQ(us("2025-03-01T12:30"), day + 45000LL * 1000000);
    HL_CHECK_INT_EQ(us("2025-03-01 12:30:15"), day + 45015LL * 1000000);
    /* the brief's CostTracker: datetime.utcnow().isoformat(), no zone, microseconds */
    HL_CHECK_INT_EQ(us("2025-03-01T00:00:00.123456"), day + 123456);
    /* a fraction to the nanosecond is cut to the microsecond; one digit is tenths */
    HL_CHECK_INT_EQ(us("2025-03-01T00:00:00.123456789Z"), day + 123456);
    HL_CHECK_INT_EQ(us("2025-03-01T00:00:00.5"), day + 500000);
    /* offsets: east of UTC is earlier in UTC */
    HL_CHECK_INT_EQ(us("2025-03-01T01:00:00+01:00"), day);
    HL_CHECK_INT_EQ(us("2025-02-28T19:30:00-0430"), day);
    HL_CHECK_INT_EQ(us("2025-03-01T05:45:00.100+05:45"), day + 100000);
    /* the epoch, a leap day, before 1970 */
    HL_CHECK_INT_EQ(us("1970-01-01T00:00:00Z"), 0);
    HL_CHECK_INT_EQ(us("2024-02-29T00:00:00Z"), 1709164800LL * 1000000);
    HL_CHECK_INT_EQ(us("2000-02-29"), 951782400LL * 1000000);
    HL_CHECK_INT_EQ(us("1969-12-31T23:59:59.5Z"), -500000);
    /* not terminated: only n bytes are read */
    long long v;
    HL_CHECK_INT_EQ(hl_time_parse_us("2025-03-01T00:00:00Zjunk", 20, &v), HL_OK);
    HL_CHECK_INT_EQ(v, day);
}

HL_TEST(milliseconds_round_down) {
    long long ms;
    HL_REQUIRE(hl_time_parse_ms("2025-03-01T00:00:00.123999Z", 27, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, 1740787200123LL);
    HL_REQUIRE(hl_time_parse_ms("1969-12-31T23:59:59.9995Z", 25, &ms) == HL_OK);
    HL_CHECK_INT_EQ(ms, -1);
}

HL_TEST(garbage_is_rejected) {
    static const char *const bad[] = {
        "", "2025", "2025-03", "2025-3-01", "25-03-01", "2025-03-01T", "2025-03-01T12", "2025-03-01T12:3",
        "2025-13-01", "2025-00-10", "2025-02-29", "2100-02-29", "2025-04-31", "2025-03-00",
        "2025-03-01T24:00:00Z", "2025-03-01T12:60:00Z", "2025-03-01T12:00:60Z", /* no leap seconds */
        "2025-03-01T00:00:00.Z", "2025-03-01T00:00:00.1234567890Z", "2025-03-01T00:00:00+24:00",
        "2025-03-01T00:00:00+01:60", "2025-03-01T00:00:00+1", "2025-03-01T00:00:00ZZ",
        "2025-03-01T00:00:00Zjunk", "2025-03-01T00:00:00 ", " 2025-03-01", "2025-03-01+01:00",
        "yesterday", "2025-03-01t00:00:00z", "２０２５-03-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!rejects(bad[i])) HL_FAIL_("accepted: \"%s\"", bad[i]);
    long long v;
    HL_CHECK_INT_EQ(hl_time_parse_us(NULL, 0, &v), HL_ERR_PARSE);
}

HL_TEST(format_and_parse_agree) {
    char buf[32];
    static const long long ms[] = {0, 1, 999, 1740787200123LL, 951782400000LL - 1, 253402300799999LL, -1, -86400001};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        hl_time_format_ms(ms[i], buf, sizeof buf);
        long long back = 0;
        if (hl_time_parse_ms(buf, strlen(buf), &back) != HL_OK || back != ms[i])
            HL_FAIL_("%lld -> %s -> %lld", ms[i], buf, back);
    }
    hl_time_format_ms(1740787200123LL, buf, sizeof buf);
    HL_CHECK_STR_EQ(buf, "2025-03-01T00:00:00.123Z");
}

HL_TEST(civil_days_round_trip) {
    for (long long d = -800000; d <= 3000000; d += 997) {
        int y;
        unsigned m, dd;
        hl_time_civil_from_days(d, &y, &m, &dd);
        if (hl_time_days_from_civil(y, m, dd) != d) HL_FAIL_("day %lld -> %d-%u-%u", d, y, m, dd);
    }
}

HL_TEST_MAIN()
