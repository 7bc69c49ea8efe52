/* Tests for hl_pii: per-type tables of what must and must not count, exact redaction
 * output, custom patterns and their errors, the labelled set's recall and precision (with
 * floors), concurrent scans, and throughput (printed, not asserted). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "hl_pii.h"
#include "hl_test.h"

typedef struct pii_case {
    const char *text;
    const char *expect; /* hl_pii_report_format() of the scan, "" for nothing */
} pii_case;

/* Scans text with d (NULL: built-ins) and formats the report into a static buffer. */
static const char *found(const hl_pii_detector *d, const char *text) {
    static char buf[512];
    hl_pii_report r = {0};
    hl_pii_scan(d, text, strlen(text), &r);
    if (hl_pii_report_format(&r, d, buf, sizeof buf) != HL_OK) return "(format failed)";
    return buf;
}

#define CHECK_CASES(d, cases)                                                         \
    do {                                                                              \
        for (size_t i_ = 0; i_ < sizeof(cases) / sizeof(cases)[0]; i_++) {            \
            const char *got_ = found((d), (cases)[i_].text);                          \
            if (strcmp(got_, (cases)[i_].expect) != 0)                                \
                HL_FAIL_("\"%s\": got \"%s\", expected \"%s\"", (cases)[i_].text,     \
                         got_, (cases)[i_].expect);                                   \
        }                                                                             \
    } while (0)

/* Redacts text with d and returns the output (static buffer); "(unchanged)" when nothing
 * was found. */
static const char *redacted(const hl_pii_detector *d, const char *text) {
    static char buf[2048];
    char *out = NULL;
    size_t n = 0;
    hl_pii_report r = {0};
    hl_err e = hl_pii_redact(d, text, strlen(text), &out, &n, &r);
    if (e != HL_OK) return hl_err_str(e);
    if (!out) return "(unchanged)";
    snprintf(buf, sizeof buf, "%s", out);
    if (strlen(out) != n) snprintf(buf, sizeof buf, "(length mismatch)");
    free(out);
    return buf;
}

/* ---- Per-type tables ----------------------------------------------------------------- */

HL_TEST(email) {
    static const pii_case cases[] = {
        {"write to john.smith@example.com today", "email:1"},
        {"plus-addressing jane+newsletter@mail.example.co.uk", "email:1"},
        {"subdomains ops@eu-west.internal.corp.example", "email:1"},
        {"two: a.b@x.io, c_d@y.org", "email:2"},
        {"<alice@example.net>", "email:1"},
        {"end of sentence: bob@example.net.", "email:1"},
        {"url-encoded mailto%3Ajohn%40example.com", "email:1"},
        {"obfuscated john [at] example [dot] com", "email:1"},
        {"obfuscated john(at)example(dot)org", "email:1"},
        {"obfuscated JOHN {AT} EXAMPLE.COM", "email:1"},
        {"full width ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "email:1"},
        {"IDN domain user@münchen.de", "email:1"},
        {"punycode TLD user@example.xn--p1ai", "email:1"},
        {"accented josé.garcía@example.es", "email:1"},
        {"cyrillic иван@example.ru", "email:1"},
        {"CJK around it: 我的邮箱是john@qq.com谢谢", "email:1"},
        {"sms gateway 4155550100@txt.example.net", "email:1"},
        {"...dots@example.com", "email:1"},
        /* Not addresses. */
        {"@channel please review", ""},
        {"decorator @app.route('/')", ""},
        {"npm install react@18.2.0 lodash@4.17.21", ""},
        {"asset icon@2x.png and logo@3x.webp", ""},
        {"git clone git@github.com:org/repo.git", ""},
        {"ssh deploy@build.example.com:/srv/app", ""},
        {"host user@localhost", ""},
        {"matmul y = W@x.T", ""},
        {"5 @ $3.00 each", ""},
        {"spelled out: john at example dot com", ""},
        {"no TLD user@example.c", ""},
        {"numeric TLD user@example.123", ""},
        {"empty local @example.com", ""},
        {"CJK local part 张三@例子.广告", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(phone) {
    static const pii_case cases[] = {
        {"E.164 +14155550132", "phone:1"},
        {"spaced +1 415 555 0132", "phone:1"},
        {"UK +44 20 7946 0958", "phone:1"},
        {"FR +33 1 42 68 53 00", "phone:1"},
        {"DE +49 (0)30 901820", "phone:1"},
        {"NANP (415) 555-0132", "phone:1"},
        {"NANP 415-555-0132", "phone:1"},
        {"NANP 415.555.0132", "phone:1"},
        {"NANP 415 555 0132", "phone:1"},
        {"NANP 1-800-555-0199", "phone:1"},
        {"NANP 1 (800) 555-0199", "phone:1"},
        {"trunk 020 7946 0958", "phone:1"},
        {"trunk 06 12 34 56 78", "phone:1"},
        {"trunk 0171-2345678", "phone:1"},
        {"trunk 030/12345678", "phone:1"},
        {"intl 0044 20 7946 0958", "phone:1"},
        {"phone word: 4155550132", "phone:1"},
        {"Tel.: 4155550132", "phone:1"},
        {"call me on 555-0142", "phone:1"},
        {"手机13800138000", "phone:1"},
        {"full width ＋１ ４１５ ５５５ ０１３２", "phone:1"},
        {"call 415-555-0132 2 times", "phone:1"},
        {"two: 415-555-0132 / 415-555-0133", "phone:2"},
        /* Not phone numbers. */
        {"bare 4155550132 without a phone word", ""},
        {"epoch 1705312200", ""},
        {"local 555-0142 without a phone word", ""},
        {"date 2024-01-15 and 15.01.2024 and 01/15/2024", ""},
        {"range 2023-2024", ""},
        {"version 10.0.19041.1234", ""},
        {"numbers 100 200 300 400 500", ""},
        {"area code 1xx 123-456-7890", ""},
        {"exchange 1xx 415-155-0132", ""},
        {"all-zero prefix 000-12-3456", ""},
        {"too long +1234567890123456", ""},
        {"too short +1234567", ""},
        {"hotel room 4155550132", ""},
        {"maths 3+4155550132", ""},
        {"order ORD-2024-123456", ""},
        {"zoom 845 2231 9876", ""},
        {"Fibonacci 0 1 1 2 3 5 8 13 21 34", ""},
        {"date and time 01.02.2024 12", ""},
        {"zero-padded list 001 002 003 004 005", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(ssn) {
    static const pii_case cases[] = {
        {"SSN 123-45-6789", "ssn:1"},
        {"spaced 123 45 6789", "ssn:1"},
        {"ssn: 123456789", "ssn:1"},
        {"Social Security number 536221234", "ssn:1"},
        {"SS# 536221234", "ssn:1"},
        {"area 899 is the last valid: 899-12-3456", "ssn:1"},
        {"full width １２３-４５-６７８９", "ssn:1"},
        /* Invalid numbers and other shapes. */
        {"area 000: 000-12-3456", ""},
        {"area 666: 666-12-3456", ""},
        {"area 9xx: 900-12-3456 987-65-4321", ""},
        {"group 00: 123-00-6789", ""},
        {"serial 0000: 123-45-0000", ""},
        {"mixed separators 123-45 6789", ""},
        {"bare 123456789 without an ssn word", ""},
        {"glued A123-45-6789", ""},
        {"longer 123-45-67890", ""},
        {"dotted 123.45.6789", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(credit_card) {
    static const pii_case cases[] = {
        {"Visa 4111111111111111", "credit_card:1"},
        {"Visa 4111 1111 1111 1111", "credit_card:1"},
        {"Visa 4111-1111-1111-1111", "credit_card:1"},
        {"Visa 13 digits 4222222222222", "credit_card:1"},
        {"Visa 19 digits 4917 6100 0000 0000 003", "credit_card:1"},
        {"Mastercard 5555 5555 5555 4444", "credit_card:1"},
        {"Mastercard 2-series 2223003122003222", "credit_card:1"},
        {"Amex 3782 822463 10005", "credit_card:1"},
        {"Amex 371449635398431", "credit_card:1"},
        {"Discover 6011 0009 9013 9424", "credit_card:1"},
        {"Diners 3056 930902 5904", "credit_card:1"},
        {"JCB 3530111333300000", "credit_card:1"},
        {"full width ４２４２４２４２４２４２４２４２", "credit_card:1"},
        {"in CJK 卡号4111111111111111谢谢", "credit_card:1"},
        {"card 4111 1111 1111 1111 exp 09/27", "credit_card:1"},
        {"two 4111111111111111,5555555555554444", "credit_card:2"},
        /* Luhn-invalid, wrong network or length, odd grouping. */
        {"Luhn 4111 1111 1111 1112", ""},
        {"Luhn 4111-1111-1111-1113", ""},
        {"Luhn 5555555555554443", ""},
        {"Luhn 3782 822463 10006", ""},
        {"prefix 1 1234567812345670", ""},
        {"prefix 2024 2024010112345674", ""},
        {"Visa length 15 411111111111116", ""},
        {"Amex length 16 3714496353984312", ""},
        {"mixed separators 4111 1111-1111 1111", ""},
        {"grouped by twos 41 11 11 11 11 11 11 11", ""},
        {"epoch ms 1705312200000", ""},
        {"20 digits 41111111111111111111", ""},
        {"glued x4111111111111111", ""},
        {"hex 4111111111111111abc", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(iban) {
    static const pii_case cases[] = {
        {"DE DE89370400440532013000", "iban:1"},
        {"DE grouped DE89 3704 0044 0532 0130 00", "iban:1"},
        {"GB GB82WEST12345698765432", "iban:1"},
        {"GB grouped GB82 WEST 1234 5698 7654 32", "iban:1"},
        {"FR FR14 2004 1010 0505 0001 3M02 606", "iban:1"},
        {"NL NL91ABNA0417164300", "iban:1"},
        {"ES ES91-2100-0418-4502-0005-1332", "iban:1"},
        {"IT IT60X0542811101000000123456", "iban:1"},
        {"CH CH9300762011623852957", "iban:1"},
        {"BE BE68539007547034", "iban:1"},
        {"NO NO9386011117947", "iban:1"},
        {"MT MT84MALT011000012345MTLCAST001S", "iban:1"},
        {"BR BR9700360305000010009795493P1", "iban:1"},
        {"RU RU0204452560040702810412345678901", "iban:1"},
        {"KW KW81CBKU0000000000001234560101", "iban:1"},
        {"lower case de89370400440532013000", "iban:1"},
        {"IBAN:DE89370400440532013000.", "iban:1"},
        {"full width ＤＥ８９３７０４００４４０５３２０１３０００", "iban:1"},
        /* Bad checksum, length, country, grouping. */
        {"checksum DE89370400440532013001", ""},
        {"checksum DE00370400440532013000", ""},
        {"checksum GB82WEST12345698765433", ""},
        {"grouped bad checksum DE89 3704 0044 0532 0130 01", ""},
        {"too long DE893704004405320130001", ""},
        {"too short DE8937040044053201300", ""},
        {"unknown country XX89370400440532013000", ""},
        {"grouped by threes DE89 370 400 440 532 013 000", ""},
        {"glued aDE89370400440532013000", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(ipv4) {
    static const pii_case cases[] = {
        {"host 203.0.113.42", "ipv4:1"},
        {"private 192.168.1.20 and 10.0.12.5", "ipv4:2"},
        {"port 198.51.100.7:8080", "ipv4:1"},
        {"CIDR 198.51.100.0/24", "ipv4:1"},
        {"range 172.16.0.100-172.16.0.200", "ipv4:2"},
        {"URL http://203.0.113.9/path", "ipv4:1"},
        {"list 203.0.113.1,203.0.113.2", "ipv4:2"},
        {"sentence end 203.0.113.42.", "ipv4:1"},
        {"leading zeros 010.001.001.001", "ipv4:1"},
        {"bracketed [203.0.113.42]", "ipv4:1"},
        /* Not (or not someone's) addresses. */
        {"version 1.2.3.4.5", ""},
        {"version 1.2.3.4", ""},
        {"Version: 10.2.0.1", ""},
        {"v 1.2.3.4 and v1.2.3.4", ""},
        {"firmware 2.4.1.3, build 5.0.0.1, release 3.1.4.1", ""},
        {"UA Chrome/120.0.0.0", ""},
        {"octet 256.1.1.1", ""},
        {"three parts 1.2.3", ""},
        {"loopback 127.0.0.1", ""},
        {"any 0.0.0.0", ""},
        {"netmask 255.255.255.0", ""},
        {"resolvers 8.8.8.8, 1.1.1.1 and 9.9.9.9", ""},
        {"glued a203.0.113.42", ""},
        {"glued 203.0.113.42a", ""},
        {"OID 1.3.6.1.4.1.2021", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(ipv6) {
    static const pii_case cases[] = {
        {"full 2001:0db8:0000:0000:0000:ff00:0042:8329", "ipv6:1"},
        {"compressed 2001:db8::ff00:42:8329", "ipv6:1"},
        {"compressed 2001:db8:85a3::8a2e:370:7334", "ipv6:1"},
        {"trailing :: 2001:db8::", "ipv6:1"},
        {"leading :: ::ffff:192.0.2.128", "ipv6:1"},
        {"link-local fe80::1ff:fe23:4567:890a%eth0", "ipv6:1"},
        {"short link-local fe80::1", "ipv6:1"},
        {"bracketed [2001:db8::10]:443", "ipv6:1"},
        {"upper case 2001:DB8::1", "ipv6:1"},
        {"ipv4 tail 64:ff9b::192.0.2.33", "ipv6:1"},
        {"sentence end 2001:db8::1.", "ipv6:1"},
        {"sentence colon 2001:db8::1: unreachable", "ipv6:1"},
        /* Not addresses. */
        {"loopback ::1", ""},
        {"unspecified ::", ""},
        {"long loopback 0:0:0:0:0:0:0:1", ""},
        {"C++ Cafe::add(Bad::ref) std::vector", ""},
        {"Python a[1::2] and a[::2]", ""},
        {"time 12:34:56", ""},
        {"MAC 00:1a:2b:3c:4d:5e", ""},
        {"two :: 2001:db8::1::2", ""},
        {"nine groups 1:2:3:4:5:6:7:8:9", ""},
        {"group of 5 2001:db8::12345", ""},
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(mixed_and_boundaries) {
    static const pii_case cases[] = {
        {"", ""},
        {"no pii at all", ""},
        {"Maria (maria.k@example.com, +30 21 0123 4567), card 4111111111111111",
         "email:1,phone:1,credit_card:1"},
        {"ssn 123-45-6789 card 4111 1111 1111 1111 ip 203.0.113.1",
         "ssn:1,credit_card:1,ipv4:1"},
        {"tabs\t203.0.113.1\tand\nnewlines\n415-555-0132\n", "phone:1,ipv4:1"},
        {"NUL\0inside", ""},
    };
    CHECK_CASES(NULL, cases);
    /* Text need not be NUL-terminated: a value cut by len is not there. */
    hl_pii_report r = {0};
    const char *t = "card 4111111111111111";
    hl_pii_scan(NULL, t, strlen(t) - 1, &r);
    HL_CHECK_INT_EQ(r.total, 0);
    hl_pii_scan(NULL, t, strlen(t), &r);
    HL_CHECK_INT_EQ(r.counts[HL_PII_CREDIT_CARD], 1);
    /* Scans add up; a value seen again (in another text of the request, or written
     * differently) counts once. */
    hl_pii_scan(NULL, "a@example.com", 13, &r);
    hl_pii_scan(NULL, t, strlen(t), &r);
    hl_pii_scan(NULL, "card 4111-1111-1111-1111", 24, &r);
    HL_CHECK_INT_EQ(r.counts[HL_PII_CREDIT_CARD], 1);
    hl_pii_scan(NULL, "card 4242 4242 4242 4242", 24, &r);
    HL_CHECK_INT_EQ(r.counts[HL_PII_CREDIT_CARD], 2);
    HL_CHECK_INT_EQ(r.counts[HL_PII_EMAIL], 1);
    HL_CHECK_INT_EQ(r.total, 3);
    hl_pii_scan(NULL, t, strlen(t), NULL); /* a NULL report is allowed */
}

/* ---- Redaction ----------------------------------------------------------------------- */

HL_TEST(redact_exact) {
    static const pii_case cases[] = {
        {"Mail john@example.com or call +1 415 555 0132.",
         "Mail [EMAIL_1] or call [PHONE_1]."},
        {"a@example.com, b@example.com, a@example.com",
         "[EMAIL_1], [EMAIL_2], [EMAIL_1]"},
        {"card 4111-1111-1111-1111 exp 09/27", "card [CREDIT_CARD_1] exp 09/27"},
        {"SSN 123-45-6789; IBAN DE89 3704 0044 0532 0130 00",
         "SSN [SSN_1]; IBAN [IBAN_1]"},
        {"[2001:db8::10]:443 and 203.0.113.5:22", "[[IPV6_1]]:443 and [IPV4_1]:22"},
        {"range 10.0.0.1-10.0.0.9", "range [IPV4_1]-[IPV4_2]"},
        {"fe80::1%eth0", "[IPV6_1]%eth0"},
        {"john [at] example [dot] com!", "[EMAIL_1]!"},
        {"?to=jane%40example.com&x=1", "?to=[EMAIL_1]&x=1"},
        {"我的邮箱是john@qq.com谢谢", "我的邮箱是[EMAIL_1]谢谢"},
        {"ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ。", "[EMAIL_1]。"},
        {"josé.garcía@example.es", "[EMAIL_1]"},
        {"nothing here", "(unchanged)"},
        {"", "(unchanged)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = redacted(NULL, cases[i].text);
        if (strcmp(got, cases[i].expect) != 0)
            HL_FAIL_("\"%s\": got \"%s\", expected \"%s\"", cases[i].text, got,
                     cases[i].expect);
    }
}

HL_TEST(redact_report_matches_scan) {
    const char *t = "x a@example.com 4111111111111111 a@example.com 203.0.113.1";
    hl_pii_report s = {0}, r = {0};
    hl_pii_scan(NULL, t, strlen(t), &s);
    char *out = NULL;
    size_t n = 0;
    HL_REQUIRE(hl_pii_redact(NULL, t, strlen(t), &out, &n, &r) == HL_OK);
    HL_CHECK(memcmp(&s, &r, sizeof s) == 0);
    HL_CHECK_INT_EQ(r.counts[HL_PII_EMAIL], 1); /* distinct values, not occurrences */
    HL_CHECK_STR_EQ(out, "x [EMAIL_1] [CREDIT_CARD_1] [EMAIL_1] [IPV4_1]");
    free(out);
}

HL_TEST(redact_until_clean) {
    /* The SSN word is 60 bytes before the number, out of reach (48); once the addresses
     * are placeholders it is 40 bytes away, and a scan of the output would find the
     * number. A second pass redacts it too; the report stays the first scan's. */
    const char *t = "ssn 203.0.113.201 203.0.113.202 203.0.113.203 203.0.113.204 536221234";
    HL_CHECK_STR_EQ(found(NULL, t), "ipv4:4");
    HL_CHECK_STR_EQ(redacted(NULL, t), "ssn [IPV4_1] [IPV4_2] [IPV4_3] [IPV4_4] [SSN_1]");
    char *out = NULL;
    size_t n = 0;
    hl_pii_report r = {0}, again = {0};
    HL_REQUIRE(hl_pii_redact(NULL, t, strlen(t), &out, &n, &r) == HL_OK);
    HL_CHECK_INT_EQ(r.total, 4);
    hl_pii_scan(NULL, out, n, &again);
    HL_CHECK_INT_EQ(again.total, 0);
    free(out);
}

/* ---- Custom patterns ----------------------------------------------------------------- */

HL_TEST(custom_patterns) {
    const char *pats[] = {"EMP-[0-9]{6}", "(?i)project\\s+falcon", "x*"};
    const char *names[] = {"employee_id", "codename", "xs"};
    char err[256];
    hl_pii_detector *d = NULL;
    HL_REQUIRE(hl_pii_detector_new(&d, pats, names, 3, err, sizeof err) == HL_OK);
    HL_CHECK_STR_EQ(hl_pii_custom_name(d, 1), "codename");
    HL_CHECK(hl_pii_custom_name(d, 3) == NULL);

    const char *t = "EMP-123456 on Project  Falcon, EMP-123456 again, EMP-654321 too";
    HL_CHECK_STR_EQ(found(d, t), "custom.employee_id:2,custom.codename:1");
    HL_CHECK_STR_EQ(redacted(d, t), "[EMPLOYEE_ID_1] on [CODENAME_1], [EMPLOYEE_ID_1] again, "
                                    "[EMPLOYEE_ID_2] too");
    /* Empty matches do not count; non-empty ones do. */
    HL_CHECK_STR_EQ(found(d, "a xx b x"), "custom.xs:2");
    /* Without the detector, custom counts are summed. */
    hl_pii_report r = {0};
    hl_pii_scan(d, t, strlen(t), &r);
    char buf[64];
    HL_CHECK_INT_EQ(hl_pii_report_format(&r, NULL, buf, sizeof buf), HL_OK);
    HL_CHECK_STR_EQ(buf, "custom:3");
    HL_CHECK_INT_EQ(r.counts[HL_PII_CUSTOM], 3);
    HL_CHECK_INT_EQ(r.custom[0], 2);
    /* Invalid UTF-8 in the text does not stop a pattern. */
    const char bad[] = "\xff\xfe EMP-111111 \xc3";
    hl_pii_report r2 = {0};
    hl_pii_scan(d, bad, sizeof bad - 1, &r2);
    HL_CHECK_INT_EQ(r2.custom[0], 1);
    hl_pii_detector_free(d);
}

HL_TEST(custom_overlaps_builtin) {
    const char *pats[] = {"\\d{3}-\\d{2}-\\d{4}", "smith@example"};
    const char *names[] = {"ssn_like", "smith"};
    hl_pii_detector *d = NULL;
    HL_REQUIRE(hl_pii_detector_new(&d, pats, names, 2, NULL, 0) == HL_OK);
    /* Both count; one placeholder covers the value. */
    HL_CHECK_STR_EQ(found(d, "SSN 123-45-6789"), "ssn:1,custom.ssn_like:1");
    HL_CHECK_STR_EQ(redacted(d, "SSN 123-45-6789."), "SSN [SSN_1].");
    /* A custom match inside an email: the email's placeholder covers both. */
    HL_CHECK_STR_EQ(redacted(d, "to john.smith@example.com!"), "to [EMAIL_1]!");
    /* A custom match starting earlier and ending inside a built-in one. */
    HL_CHECK_STR_EQ(redacted(d, "id 999-45-6789 x"), "id [SSN_LIKE_1] x");
    hl_pii_detector_free(d);
}

HL_TEST(custom_errors) {
    char err[256];
    hl_pii_detector *d = (hl_pii_detector *)1;
    const char *bad[] = {"ok", "EMP-("};
    const char *names[] = {"first", "employee_id"};
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, bad, names, 2, err, sizeof err), HL_ERR_INVAL);
    HL_CHECK(d == NULL);
    HL_CHECK_STR_EQ(err, "custom PII pattern 'employee_id': missing closing parenthesis at "
                         "offset 5");

    const char *p1[] = {"a"};
    const char *bad_name[] = {"has space"};
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, p1, bad_name, 1, err, sizeof err), HL_ERR_INVAL);
    HL_CHECK(strstr(err, "#1") && strstr(err, "[A-Za-z0-9_]"));
    const char *long_name[] = {"abcdefghijklmnopqrstuvwxyz0123456"}; /* 33 */
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, p1, long_name, 1, err, sizeof err), HL_ERR_INVAL);

    const char *p2[] = {"a", "b"};
    const char *dup[] = {"x", "x"};
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, p2, dup, 2, err, sizeof err), HL_ERR_INVAL);
    HL_CHECK_STR_EQ(err, "custom PII pattern 'x': name used twice");

    const char *many_p[HL_PII_MAX_CUSTOM + 1], *many_n[HL_PII_MAX_CUSTOM + 1];
    for (int i = 0; i <= HL_PII_MAX_CUSTOM; i++) many_p[i] = many_n[i] = "a";
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, many_p, many_n, HL_PII_MAX_CUSTOM + 1, err,
                                        sizeof err),
                    HL_ERR_LIMIT);
    HL_CHECK(strstr(err, "at most 32") != NULL);
    /* A pattern that matches its own (or any) placeholder could never redact cleanly. */
    const char *greedy[] = {"(?i)secret\\w*"};
    const char *greedy_name[] = {"secret"};
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, greedy, greedy_name, 1, err, sizeof err),
                    HL_ERR_INVAL);
    HL_CHECK_STR_EQ(err, "custom PII pattern 'secret' matches the placeholder [AWS_SECRET_1], so "
                         "redacted text could never come out clean");
    const char *digits[] = {"EMP-\\d+", "\\d+"};
    const char *digit_names[] = {"emp", "any_number"};
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, digits, digit_names, 2, err, sizeof err),
                    HL_ERR_INVAL);
    HL_CHECK(strstr(err, "'any_number' matches the placeholder [EMAIL_1]") != NULL);

    /* A tiny error buffer is cut, not overrun. */
    char tiny[8];
    HL_CHECK_INT_EQ(hl_pii_detector_new(&d, bad, names, 2, tiny, sizeof tiny), HL_ERR_INVAL);
    HL_CHECK_STR_EQ(tiny, "custom ");
}

HL_TEST(custom_match_limit_fails_closed) {
    /* Nested quantifiers on a long non-matching line: exponential backtracking, stopped by
     * the match limit. The text then counts as sensitive and cannot be redacted. */
    const char *pats[] = {"^(\\w+\\s?)*$"};
    const char *names[] = {"slow"};
    hl_pii_detector *d = NULL;
    HL_REQUIRE(hl_pii_detector_new(&d, pats, names, 1, NULL, 0) == HL_OK);
    char text[200];
    memset(text, 'a', sizeof text - 2);
    text[sizeof text - 2] = '!';
    text[sizeof text - 1] = '\0';
    hl_pii_report r = {0};
    hl_pii_scan(d, text, strlen(text), &r);
    HL_CHECK_INT_EQ(r.custom[0], 1);
    hl_pii_report r2 = {0};
    char *out = (char *)1;
    size_t n = 7;
    HL_CHECK_INT_EQ(hl_pii_redact(d, text, strlen(text), &out, &n, &r2), HL_ERR_LIMIT);
    HL_CHECK(out == NULL && n == 0);
    HL_CHECK_INT_EQ(r2.total, 1);
    hl_pii_detector_free(d);
}

/* ---- Issue 11: what real text hides --------------------------------------------------- */

HL_TEST(unicode_separators_and_wrapping) {
    static const pii_case cases[] = {
        {"card 4111\xc2\xa0" "1111\xc2\xa0" "1111\xc2\xa0" "1111", "credit_card:1"},       /* NBSP */
        {"card 4111\xe2\x80\x89" "1111\xe2\x80\x89" "1111\xe2\x80\x89" "1111", "credit_card:1"}, /* thin */
        {"card 4111\xe2\x80\xaf" "1111\xe2\x80\xaf" "1111\xe2\x80\xaf" "1111", "credit_card:1"}, /* NNBSP */
        {"card 4111\xe2\x80\x87" "1111\xe2\x80\x87" "1111\xe2\x80\x87" "1111", "credit_card:1"}, /* figure */
        {"card 4111\xe2\x80\x93" "1111\xe2\x80\x93" "1111\xe2\x80\x93" "1111", "credit_card:1"}, /* en dash */
        {"ssn 123\xe2\x80\x91" "45\xe2\x80\x91" "6789", "ssn:1"},                         /* nb hyphen */
        {"ssn 123\xe2\x88\x92" "45\xe2\x88\x92" "6789", "ssn:1"},                         /* minus */
        {"\xef\xbc\x90\xef\xbc\x97\xef\xbc\x94-\xef\xbc\x90\xef\xbc\x98-\xef\xbc\x90\xef\xbc\x98\xef\xbc\x95\xef\xbc\x99",
         "ssn:1"}, /* full width, every group led by 0 */
        {"ssn 074-08-0859", "ssn:1"},
        {"tel 415\xe2\x80\x94" "555\xe2\x80\x94" "0132", "phone:1"},                       /* em dash */
        {"4\xe2\x80\x8b" "111 1111 1111 1111", "credit_card:1"},                           /* zero width */
        {"joe\xe2\x80\x8b@example.com", "email:1"},
        {"joe@\xef\xbb\xbf" "example.com", "email:1"},
        {"card 4111 1111\n1111 1111", "credit_card:1"},
        {"> card 4111 1111\n> 1111 1111\n> thanks", "credit_card:1"},
        {"IBAN DE89 3704\r\n>> 0044 0532 0130 00", "iban:1"},
        {"call 020 7946\n0958 today", "phone:1"},
        {"note +44\n>> 20 7946 7248 thanks", "phone:1"},
        {"ring (415)\n555-0132", "phone:1"},
        {"4903\n7164 9980 4368", "credit_card:1"},
        {"98765\n43210", ""}, /* a list, one number a line */
        /* Not joined: a line that ends in a word, a list of years. */
        {"total 1200\nitems 4111", ""},
        {"2019\n2020\n2021\n2022", ""},
    };
    CHECK_CASES(NULL, cases);
    /* Redaction replaces the original bytes, separators and line break included. */
    HL_CHECK_STR_EQ(redacted(NULL, "pay 4111\xc2\xa0" "1111 1111\n> 1111 now"), "pay [CREDIT_CARD_1] now");
    HL_CHECK_STR_EQ(redacted(NULL, "\xe2\x80\x8bjoe\xe2\x80\x8b@example.com\xe2\x80\x8b!"),
                    "\xe2\x80\x8b[EMAIL_1]\xe2\x80\x8b!");
}

HL_TEST(phones_informal_and_international) {
    static const pii_case cases[] = {
        {"0033 6 12 34 56 78", "phone:1"},
        {"00 31 6 1234 5678", "phone:1"},
        {"ring 98765 43210", "phone:1"},
        {"98765-43210", "phone:1"},
        {"text me at 4155550132", "phone:1"},
        {"reach me on 4155550132", "phone:1"},
        {"<a href=\"tel:+14155550132\">(415) 555-0132</a>", "phone:1"},
        {"https://wa.me/14155550132", "phone:1"},
        /* Not phones. */
        {"Tel 2024-01-05 10:30", ""},
        {"Tel. 05.01.2024 10", ""},
        {"card 4111 1111 1111 1112 declined, Tel desk", ""},
        {"card 3782 822463 10006 declined", ""},
        {"IMEI 356938035643809", ""},
        /* CSV: the header names the column, however far the value is from it. */
        {"id,name,email,city,notes,phone\n1,Ana,x,Lyon,vip,4155550132\n2,Bo,y,Graz,n/a,4155550133",
         "phone:2"},
        {"order_id;sku;qty;phone\n4155550132;AB12;3;\n4155550199;CD34;1;", ""},
        {"a;b;c\n1;2;4155550132\n4155550133;x;y", ""}, /* rows end and start with digits */
    };
    CHECK_CASES(NULL, cases);
}

HL_TEST(headers_and_addresses) {
    static const pii_case cases[] = {
        {"Received: from x ([IPv6:2001:db8::1234]) by y", "ipv6:1"},
        {"Received: from x ([IPv6:2001:db8:85a3::8a2e:370:7334])", "ipv6:1"},
        {"write to o'brien@example.ie", "email:1"},
        {"'joe@example.com'", "email:1"},
        {"bad user@-example.com", ""},
        {"<a href=\"mailto:ana@example.com\">ana@example.com</a>", "email:1"},
    };
    CHECK_CASES(NULL, cases);
    HL_CHECK_STR_EQ(redacted(NULL, "'joe@example.com'"), "'[EMAIL_1]'");
    HL_CHECK_STR_EQ(redacted(NULL, "to joe.o\xe2\x80\x99" "brien@example.com now"), "to [EMAIL_1] now");
}

HL_TEST(secrets) {
    static const pii_case cases[] = {
        {"key sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4", "openai_key:1"},
        {"sk-ant-api03-A1b2C3d4E5f6G7h8I9j0K1l2M3n4", "anthropic_key:1"},
        {"AKIAIOSFODNN7EXAMPLE", "aws_access_key:1"},
        {"AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_access_key:1,aws_secret:1"},
        {"aws_secret_access_key = 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", "aws_secret:1"},
        {"ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "github_token:1"},
        {"glpat-A1b2C3d4E5f6G7h8I9j0", "gitlab_token:1"},
        {"xoxb-123456789012-123456789012-A1b2C3d4E5f6", "slack_token:1"},
        {"sk_live_A1b2C3d4E5f6G7h8I9j0", "stripe_key:1"},
        {"AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "google_api_key:1"},
        {"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "private_key:1"},
        {"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (cut)", "private_key:1"},
        {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk", "jwt:1"},
        {"postgres://app:S3cure99@db.example/app", "password_in_url:1"},
        {"Server=x;User Id=sa;Password=Hunter2x;", "password_in_url:1"},
        {"DB_PASSWORD=Hunter2x", "env_secret:1"},
        {"\"client_secret\": \"A1b2C3d4E5f6\"", "env_secret:1"},
        {"Authorization: Bearer A1b2C3d4E5f6G7h8I9j0", "env_secret:1"},
        /* Not secrets. */
        {"TOKEN_LIMIT=4096 max_tokens=1024 PASSWORD_MIN_LENGTH=8", ""},
        {"API_KEY=${API_KEY} SECRET_KEY=<your key> DB_PASSWORD=changeme", ""},
        {"OPENAI_API_KEY=your_api_key_here", ""},
        {"postgres://user:password@localhost/db", ""},
        {"the password: forgotten", ""},
        {"pip install scikit-learn sk-learn", ""},
        {"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", ""},
        {"primary_key=id sort_key=created_at", ""},
    };
    CHECK_CASES(NULL, cases);
    HL_CHECK_STR_EQ(redacted(NULL, "OPENAI_API_KEY=sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4\nDB_PASSWORD=a&b,c;d9"),
                    "OPENAI_API_KEY=[OPENAI_KEY_1]\nDB_PASSWORD=[ENV_SECRET_1]");
    HL_CHECK_STR_EQ(redacted(NULL, "mongodb://u:p4ss#w0rd@h.example/x"), "mongodb://u:[PASSWORD_IN_URL_1]@h.example/x");
}

HL_TEST(national_ids) {
    static const pii_case cases[] = {
        {"NI number AB123456C", "uk_nino:1"},
        {"AB 12 34 56 C", "uk_nino:1"},
        {"DNI 12345678Z", "es_dni:1"},
        {"NIE X1234567L", "es_dni:1"},
        {"BSN 111222333", "nl_bsn:1"},
        {"BSN 1112.22.333", "nl_bsn:1"},
        {"CF RSSMRA85T10A562S", "it_codice_fiscale:1"},
        {"NIR 1 85 05 78 006 084 91", "fr_nir:1"},
        {"Steuer-ID 86095742719", "de_steuer_id:1"},
        /* Not ids: wrong letter or check, no keyword, bad prefix, part numbers. */
        {"DNI 12345678A", ""},
        {"invoice 12345678Z-rev", ""},
        {"order 111222333", ""},
        {"BSN 111222334", ""},
        {"code DA123456C", ""},
        {"CF RSSMRA85T10A562T", ""},
        {"NIR 185057800608437", ""},
        {"ticket 86095742719", ""},
    };
    CHECK_CASES(NULL, cases);
}

/* How often a random look-alike of each national id passes its check: the false-positive
 * rate on the hardest negatives there are (right shape, right context word, random digits).
 * Printed for the README; the bounds are the checksums' own odds with room for noise. */
HL_TEST(national_id_false_positive_rates) {
    static const struct {
        const char *type, *prefix, *shape; /* shape: 9 a digit, A an uppercase letter, L one of A-D */
        hl_pii_type t;
        double bound;
    } ids[] = {
        {"es_dni", "DNI ", "99999999A", HL_PII_ES_DNI, 0.07},
        {"nl_bsn", "BSN ", "999999999", HL_PII_NL_BSN, 0.12},
        {"de_steuer_id", "Steuer-ID ", "99999999999", HL_PII_DE_STEUER_ID, 0.03},
        {"fr_nir", "NIR ", "199999999999999", HL_PII_FR_NIR, 0.02},
        {"it_codice_fiscale", "CF ", "AAAAAA99A99A999A", HL_PII_IT_CODICE_FISCALE, 0.07},
        {"uk_nino (no checksum)", "NI ", "AA999999L", HL_PII_UK_NINO, 1.0},
    };
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        int hits = 0, n = 20000;
        for (int i = 0; i < n; i++) {
            char buf[64];
            size_t pl = strlen(ids[k].prefix), sl = strlen(ids[k].shape);
            memcpy(buf, ids[k].prefix, pl);
            for (size_t j = 0; j < sl; j++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                char c = ids[k].shape[j];
                buf[pl + j] = c == '9' ? (char)('0' + x % 10) : c == 'L' ? (char)('A' + x % 4)
                              : c == 'A' ? (char)('A' + x % 26) : c;
            }
            if (ids[k].t == HL_PII_FR_NIR) buf[pl] = (char)('1' + x % 2);
            buf[pl + sl] = '\0';
            hl_pii_report r = {0};
            hl_pii_scan(NULL, buf, pl + sl, &r);
            hits += r.counts[ids[k].t] > 0;
        }
        double rate = (double)hits / n;
        printf("  %-22s random look-alikes detected: %.4f\n", ids[k].type, rate);
        HL_CHECK(rate <= ids[k].bound);
    }
}

/* ---- Report -------------------------------------------------------------------------- */

HL_TEST(report_format) {
    HL_CHECK_STR_EQ(hl_pii_type_name(HL_PII_CREDIT_CARD), "credit_card");
    HL_CHECK_STR_EQ(hl_pii_type_name(HL_PII_IPV6), "ipv6");
    HL_CHECK_STR_EQ(hl_pii_type_name(HL_PII_NTYPES), "unknown");
    hl_pii_report r = {0};
    char buf[64];
    HL_CHECK_INT_EQ(hl_pii_report_format(&r, NULL, buf, sizeof buf), HL_OK);
    HL_CHECK_STR_EQ(buf, "");
    r.counts[HL_PII_EMAIL] = 2;
    r.counts[HL_PII_CREDIT_CARD] = 1;
    r.total = 3;
    HL_CHECK_INT_EQ(hl_pii_report_format(&r, NULL, buf, sizeof buf), HL_OK);
    HL_CHECK_STR_EQ(buf, "email:2,credit_card:1");
    char small[16];
    HL_CHECK_INT_EQ(hl_pii_report_format(&r, NULL, small, sizeof small), HL_ERR_LIMIT);
    HL_CHECK_STR_EQ(small, "");
    char exact[22]; /* 21 characters and the NUL */
    HL_CHECK_INT_EQ(hl_pii_report_format(&r, NULL, exact, sizeof exact), HL_OK);
    HL_CHECK_INT_EQ(hl_pii_report_format(&r, NULL, exact, 0), HL_ERR_LIMIT);
}

/* ---- Labelled set -------------------------------------------------------------------- */

static char *read_file(const char *name, size_t *len) {
    const char *dir = getenv("HL_SRC_DIR");
    const char *prefixes[] = {dir ? dir : ".", ".", "..", "../.."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", prefixes[i], name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
            fclose(f);
            return buf;
        }
        free(buf);
        fclose(f);
    }
    return NULL;
}

static int type_by_name(const char *name, size_t n) {
    for (int t = 0; t < HL_PII_NTYPES; t++)
        if (strlen(hl_pii_type_name((hl_pii_type)t)) == n &&
            memcmp(hl_pii_type_name((hl_pii_type)t), name, n) == 0)
            return t;
    return -1;
}

/* Parses "email:1,phone:2" or "-" into counts; false on a malformed label. */
static bool parse_expect(const char *s, int counts[HL_PII_NTYPES]) {
    memset(counts, 0, sizeof(int) * HL_PII_NTYPES);
    if (strcmp(s, "-") == 0) return true;
    while (*s) {
        const char *colon = strchr(s, ':');
        if (!colon) return false;
        int t = type_by_name(s, (size_t)(colon - s));
        if (t < 0) return false;
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || v <= 0) return false;
        counts[t] += (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return false;
    }
    return true;
}

HL_TEST(labelled_set) {
    size_t len;
    char *file = read_file("test/router/pii_labelled.tsv", &len);
    HL_REQUIRE(file != NULL);
    int tp[HL_PII_NTYPES] = {0}, fp[HL_PII_NTYPES] = {0}, fn[HL_PII_NTYPES] = {0};
    int lines = 0, pos_lines = 0, neg_lines = 0, flagged_neg = 0, missed_pos = 0;
    char *save = NULL;
    for (char *line = strtok_r(file, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tab = strrchr(line, '\t');
        if (!tab) {
            HL_FAIL_("no tab: %s", line);
            continue;
        }
        *tab = '\0';
        int want[HL_PII_NTYPES];
        if (!parse_expect(tab + 1, want)) {
            HL_FAIL_("bad label \"%s\" on: %s", tab + 1, line);
            continue;
        }
        hl_pii_report r = {0};
        hl_pii_scan(NULL, line, strlen(line), &r);
        int want_total = 0;
        for (int t = 0; t < HL_PII_NTYPES; t++) {
            int got = r.counts[t];
            tp[t] += got < want[t] ? got : want[t];
            fp[t] += got > want[t] ? got - want[t] : 0;
            fn[t] += want[t] > got ? want[t] - got : 0;
            want_total += want[t];
            if (got != want[t])
                printf("  labelled: %s: want %d %s, got %d\n", line, want[t],
                       hl_pii_type_name((hl_pii_type)t), got);
        }
        lines++;
        if (want_total) {
            pos_lines++;
            missed_pos += r.total == 0;
        } else {
            neg_lines++;
            flagged_neg += r.total > 0;
        }
    }
    free(file);
    HL_REQUIRE(lines >= 150);

    printf("  labelled set: %d texts (%d with PII, %d without)\n", lines, pos_lines, neg_lines);
    printf("  %-12s %4s %4s %4s %8s %9s\n", "type", "tp", "fp", "fn", "recall", "precision");
    int TP = 0, FP = 0, FN = 0;
    double recall[HL_PII_NTYPES], precision[HL_PII_NTYPES];
    for (int t = 0; t < HL_PII_CUSTOM; t++) {
        recall[t] = tp[t] + fn[t] ? (double)tp[t] / (tp[t] + fn[t]) : 1.0;
        precision[t] = tp[t] + fp[t] ? (double)tp[t] / (tp[t] + fp[t]) : 1.0;
        printf("  %-12s %4d %4d %4d %8.3f %9.3f\n", hl_pii_type_name((hl_pii_type)t), tp[t],
               fp[t], fn[t], recall[t], precision[t]);
        TP += tp[t];
        FP += fp[t];
        FN += fn[t];
    }
    double R = (double)TP / (TP + FN), P = (double)TP / (TP + FP);
    printf("  %-12s %4d %4d %4d %8.3f %9.3f\n", "overall", TP, FP, FN, R, P);
    printf("  texts: %d of %d with PII flagged sensitive, %d of %d without PII flagged\n",
           pos_lines - missed_pos, pos_lines, flagged_neg, neg_lines);

    /* Floors. The checksum types and SSN have exact rules, so every labelled value must be
     * found and nothing else may pass. Email and the IPs are near-exact; the set holds one
     * known email and one known IPv4 false positive (see the file's header). Phone is a
     * judgement call by design: the set holds three known misses (a 7-digit local number
     * and two national mobile numbers, all without a phone word or '+'). What matters for
     * privacy is the text-level rate: a text is kept local when anything in it is found,
     * so a miss next to a found value leaks nothing. */
    for (int t = HL_PII_SSN; t <= HL_PII_IBAN; t++) {
        HL_CHECK_NEAR(recall[t], 1.0, 1e-9);
        HL_CHECK_NEAR(precision[t], 1.0, 1e-9);
    }
    HL_CHECK(recall[HL_PII_EMAIL] >= 0.999);
    HL_CHECK(recall[HL_PII_IPV4] >= 0.999 && recall[HL_PII_IPV6] >= 0.999);
    HL_CHECK(precision[HL_PII_EMAIL] >= 0.95 && precision[HL_PII_IPV4] >= 0.9);
    HL_CHECK(precision[HL_PII_IPV6] >= 0.999);
    HL_CHECK(recall[HL_PII_PHONE] >= 0.85 && precision[HL_PII_PHONE] >= 0.95);
    HL_CHECK(R >= 0.97 && P >= 0.97);
    HL_CHECK(missed_pos <= 2);  /* texts with PII that would go to a cloud backend */
    HL_CHECK(flagged_neg <= 3); /* texts without PII kept local for nothing */
}

/* Undoes the generated set's escapes in place: "\n", "\r", "\t", "\\". */
static void unescape(char *s) {
    char *o = s;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* The generated set (test/router/gen_pii_set.mjs, fixed seed): thousands of texts from many
 * templates, half of them hard negatives. Every type must reach recall 0.99 and precision
 * 0.97 on it; the national ids' false positives on the negatives are printed as rates. */
HL_TEST(generated_set) {
    size_t len;
    char *file = read_file("test/router/pii_generated.tsv", &len);
    HL_REQUIRE(file != NULL);
    int tp[HL_PII_NTYPES] = {0}, fp[HL_PII_NTYPES] = {0}, fn[HL_PII_NTYPES] = {0};
    int neg_hit[HL_PII_NTYPES] = {0};
    int lines = 0, neg_lines = 0, shown = 0;
    char *save = NULL;
    for (char *line = strtok_r(file, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tab = strrchr(line, '\t');
        HL_REQUIRE(tab != NULL);
        *tab = '\0';
        int want[HL_PII_NTYPES];
        if (!parse_expect(tab + 1, want)) {
            HL_FAIL_("bad label \"%s\"", tab + 1);
            continue;
        }
        unescape(line);
        hl_pii_report r = {0};
        hl_pii_scan(NULL, line, strlen(line), &r);
        int want_total = 0;
        for (int t = 0; t < HL_PII_CUSTOM; t++) want_total += want[t];
        for (int t = 0; t < HL_PII_CUSTOM; t++) {
            int got = r.counts[t];
            tp[t] += got < want[t] ? got : want[t];
            fp[t] += got > want[t] ? got - want[t] : 0;
            fn[t] += want[t] > got ? want[t] - got : 0;
            if (!want_total && got) neg_hit[t]++;
            if (got != want[t] && shown++ < 40)
                printf("  generated: [%s]: want %d %s, got %d\n", line, want[t],
                       hl_pii_type_name((hl_pii_type)t), got);
        }
        lines++;
        neg_lines += want_total == 0;
    }
    free(file);
    HL_REQUIRE(lines >= 3000);
    printf("  generated set: %d texts (%d hard negatives)\n", lines, neg_lines);
    printf("  %-18s %5s %4s %4s %7s %9s %s\n", "type", "tp", "fp", "fn", "recall", "precision",
           "negatives flagged");
    for (int t = 0; t < HL_PII_CUSTOM; t++) {
        double R = tp[t] + fn[t] ? (double)tp[t] / (tp[t] + fn[t]) : 1.0;
        double P = tp[t] + fp[t] ? (double)tp[t] / (tp[t] + fp[t]) : 1.0;
        printf("  %-18s %5d %4d %4d %7.3f %9.3f %d/%d\n", hl_pii_type_name((hl_pii_type)t), tp[t],
               fp[t], fn[t], R, P, neg_hit[t], neg_lines);
        if (tp[t] + fn[t] > 0) {
            HL_CHECK(tp[t] + fn[t] >= 50); /* every type is exercised */
            if (R < 0.99 || P < 0.97)
                HL_FAIL_("%s: recall %.3f precision %.3f (targets 0.99 / 0.97)",
                         hl_pii_type_name((hl_pii_type)t), R, P);
        } else {
            HL_FAIL_("%s: no labelled values in the generated set", hl_pii_type_name((hl_pii_type)t));
        }
    }
}

/* ---- Threads ------------------------------------------------------------------------- */

typedef struct scan_job {
    const hl_pii_detector *d;
    const char *text;
    size_t len;
    hl_pii_report report;
} scan_job;

static void *scan_thread(void *arg) {
    scan_job *j = arg;
    for (int i = 0; i < 20; i++) {
        hl_pii_report r = {0};
        hl_pii_scan(j->d, j->text, j->len, &r);
        if (i == 0) j->report = r;
        else if (memcmp(&r, &j->report, sizeof r) != 0) j->report.total = -1;
    }
    return NULL;
}

HL_TEST(shared_detector_threads) {
    const char *pats[] = {"EMP-[0-9]{6}", "(?i)falcon"};
    const char *names[] = {"employee_id", "codename"};
    hl_pii_detector *d = NULL;
    HL_REQUIRE(hl_pii_detector_new(&d, pats, names, 2, NULL, 0) == HL_OK);
    const char *unit = "EMP-123456 falcon a@example.com 4111111111111111 203.0.113.1 ";
    size_t ul = strlen(unit), reps = 2000;
    char *text = malloc(ul * reps);
    HL_REQUIRE(text);
    for (size_t i = 0; i < reps; i++) memcpy(text + i * ul, unit, ul);
    scan_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (scan_job){.d = d, .text = text, .len = ul * reps};
        HL_REQUIRE(pthread_create(&th[i], NULL, scan_thread, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        HL_CHECK_INT_EQ(jobs[i].report.total, 5); /* distinct values */
        HL_CHECK_INT_EQ(jobs[i].report.custom[1], 1);
    }
    free(text);
    hl_pii_detector_free(d);
}

/* ---- Throughput ---------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Fills buf with copies of unit and reports scan throughput in MB/s (best of 5 runs). */
static double mb_per_s(const hl_pii_detector *d, const char *unit, size_t size, int *found_) {
    size_t ul = strlen(unit);
    char *buf = malloc(size);
    if (!buf) return 0;
    for (size_t i = 0; i < size; i += ul) memcpy(buf + i, unit, i + ul <= size ? ul : size - i);
    double best = 1e9;
    for (int run = 0; run < 5; run++) {
        hl_pii_report r = {0};
        double t0 = now_s();
        hl_pii_scan(d, buf, size, &r);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        *found_ = r.total;
    }
    free(buf);
    return (double)size / 1e6 / best;
}

HL_TEST(throughput) {
    const size_t size = 4u << 20;
    int n;
    const char *prose =
        "Please summarize the following meeting notes and list the action items for each "
        "team member. The quarterly review covered hiring, the roadmap and the budget. ";
    const char *chat =
        "Hi! Can you draft a reply to john.smith@example.com? Our call is at 10:30 on "
        "2024-01-15, version 1.2.3, order 123456789012, call (415) 555-0132. ";
    const char *numeric = "12, 3.5, 2024-01-15, 10:30:00, 1.2.3.4.5, 415 555, 99.9%, 0x1f, ";
    const char *cjk = "我的邮箱是请帮我写一封求职信谢谢您的帮助今天天气很好我们去公园散步吧。";
    hl_pii_detector *d = NULL;
    const char *pats[] = {"EMP-[0-9]{6}", "(?i)project\\s+falcon"};
    const char *names[] = {"employee_id", "codename"};
    HL_REQUIRE(hl_pii_detector_new(&d, pats, names, 2, NULL, 0) == HL_OK);
    printf("  throughput, 4 MiB buffers, best of 5:\n");
    double v = mb_per_s(NULL, prose, size, &n);
    printf("    prose            %7.0f MB/s\n", v);
    HL_CHECK_INT_EQ(n, 0);
    v = mb_per_s(NULL, chat, size, &n);
    printf("    chat with PII    %7.0f MB/s (%d values)\n", v, n);
    HL_CHECK(n > 0);
    v = mb_per_s(NULL, numeric, size, &n);
    printf("    numbers          %7.0f MB/s (%d values)\n", v, n);
    v = mb_per_s(NULL, cjk, size, &n);
    printf("    CJK              %7.0f MB/s\n", v);
    v = mb_per_s(d, chat, size, &n);
    printf("    chat + 2 custom  %7.0f MB/s\n", v);

    /* Per request, as the router sees it: a 2 KiB chat text (four values in it). */
    char req[2048];
    size_t cl = strlen(chat);
    for (size_t i = 0; i < sizeof req; i += cl)
        memcpy(req + i, chat, i + cl <= sizeof req ? cl : sizeof req - i);
    const int iters = 20000;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) hl_pii_scan(NULL, req, sizeof req, NULL);
    double per_scan = (now_s() - t0) / iters * 1e6;
    t0 = now_s();
    for (int i = 0; i < iters; i++) hl_pii_scan(d, req, sizeof req, NULL);
    double per_scan_custom = (now_s() - t0) / iters * 1e6;
    printf("    2 KiB chat request: %.2f us per scan, %.2f us with 2 custom patterns\n",
           per_scan, per_scan_custom);
    hl_pii_detector_free(d);
}

HL_TEST_MAIN()
