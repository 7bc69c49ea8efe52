/* Tests for hl_authlimit: ten wrong keys per window and address, then every attempt refused
 * until the window ends; addresses counted apart (IPv6 by its /64, IPv4-mapped as IPv4); a
 * full table gives up the address whose window started first. */
#include "hl_authlimit.h"
#include "hl_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static struct sockaddr_storage addr(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) v6->sin6_family = AF_INET6;
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static bool allowed(hl_authlimit *l, const char *text, long long now, long long *retry) {
    struct sockaddr_storage ss = addr(text);
    long long r;
    bool ok = hl_authlimit_allow(l, SA(ss), now, retry ? retry : &r);
    return ok;
}

static void fail_n(hl_authlimit *l, const char *text, long long now, int n) {
    struct sockaddr_storage ss = addr(text);
    for (int i = 0; i < n; i++) hl_authlimit_failed(l, SA(ss), now);
}

HL_TEST(ten_wrong_keys_then_refused_until_the_window_ends) {
    hl_authlimit *l = hl_authlimit_new();
    HL_CHECK(l != NULL);
    long long t0 = 1000000, retry = -1;
    fail_n(l, "192.0.2.7", t0, HL_AUTHLIMIT_FAILURES - 1);
    HL_CHECK(allowed(l, "192.0.2.7", t0 + 10, &retry));
    HL_CHECK_INT_EQ(retry, 0);
    fail_n(l, "192.0.2.7", t0 + 20, 1);
    HL_CHECK(!allowed(l, "192.0.2.7", t0 + 1000, &retry));
    HL_CHECK_INT_EQ(retry, HL_AUTHLIMIT_WINDOW_MS - 1000); /* the window runs from the first failure */
    HL_CHECK(!allowed(l, "192.0.2.7", t0 + HL_AUTHLIMIT_WINDOW_MS - 1, &retry));
    HL_CHECK_INT_EQ(retry, 1);
    HL_CHECK(allowed(l, "192.0.2.7", t0 + HL_AUTHLIMIT_WINDOW_MS, &retry));
    /* a new window: counting starts again */
    fail_n(l, "192.0.2.7", t0 + HL_AUTHLIMIT_WINDOW_MS, HL_AUTHLIMIT_FAILURES - 1);
    HL_CHECK(allowed(l, "192.0.2.7", t0 + HL_AUTHLIMIT_WINDOW_MS + 1, NULL));
    hl_authlimit_free(l);
}

HL_TEST(addresses_are_counted_apart) {
    hl_authlimit *l = hl_authlimit_new();
    long long t = 5000;
    fail_n(l, "192.0.2.1", t, HL_AUTHLIMIT_FAILURES);
    HL_CHECK(!allowed(l, "192.0.2.1", t, NULL));
    HL_CHECK(allowed(l, "192.0.2.2", t, NULL));
    HL_CHECK(!allowed(l, "::ffff:192.0.2.1", t, NULL)); /* the same host over IPv6 */
    fail_n(l, "2001:db8:1:2::1", t, HL_AUTHLIMIT_FAILURES);
    HL_CHECK(!allowed(l, "2001:db8:1:2:ffff::9", t, NULL)); /* the same /64 */
    HL_CHECK(allowed(l, "2001:db8:1:3::1", t, NULL));      /* another /64 */
    hl_authlimit_free(l);
}

HL_TEST(no_limiter_or_no_address_allows) {
    struct sockaddr_storage ss = addr("192.0.2.1");
    long long retry = -1;
    HL_CHECK(hl_authlimit_allow(NULL, SA(ss), 0, &retry));
    HL_CHECK_INT_EQ(retry, 0);
    hl_authlimit_failed(NULL, SA(ss), 0);
    hl_authlimit *l = hl_authlimit_new();
    HL_CHECK(hl_authlimit_allow(l, NULL, 0, &retry));
    struct sockaddr_storage unix_peer;
    memset(&unix_peer, 0, sizeof unix_peer);
    unix_peer.ss_family = AF_UNIX;
    for (int i = 0; i < HL_AUTHLIMIT_FAILURES; i++) hl_authlimit_failed(l, SA(unix_peer), 0);
    HL_CHECK(hl_authlimit_allow(l, SA(unix_peer), 0, &retry));
    hl_authlimit_free(l);
}

/* Every slot blocked, windows started a millisecond apart: one more address takes the
 * slot of the first, whose block is lifted; the others stay blocked. */
HL_TEST(a_full_table_gives_up_the_oldest) {
    hl_authlimit *l = hl_authlimit_new();
    char a[64];
    long long t = 100000;
    for (int i = 0; i < HL_AUTHLIMIT_SLOTS; i++) {
        snprintf(a, sizeof a, "10.%d.%d.1", i / 256, i % 256);
        fail_n(l, a, t + i, HL_AUTHLIMIT_FAILURES);
    }
    long long now = t + HL_AUTHLIMIT_SLOTS;
    HL_CHECK(!allowed(l, "10.0.0.1", now, NULL));
    HL_CHECK(!allowed(l, "10.0.1.1", now, NULL));
    fail_n(l, "198.51.100.1", now, 1);
    HL_CHECK(allowed(l, "10.0.0.1", now, NULL));  /* the oldest: given up */
    HL_CHECK(!allowed(l, "10.0.1.1", now, NULL)); /* the second oldest: kept */
    snprintf(a, sizeof a, "10.%d.%d.1", (HL_AUTHLIMIT_SLOTS - 1) / 256, (HL_AUTHLIMIT_SLOTS - 1) % 256);
    HL_CHECK(!allowed(l, a, now, NULL));
    hl_authlimit_free(l);
}

HL_TEST_MAIN()
