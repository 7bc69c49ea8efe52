/* test_sha256: hl_sha256 against the FIPS 180-4 / NIST example vectors. */
#include "hl_sha256.h"
#include "hl_test.h"

static void hex_of(const char *msg, size_t len, char out[65]) { hl_sha256_hex(msg, len, out); }

HL_TEST(empty) {
    char h[65];
    hex_of("", 0, h);
    HL_CHECK_STR_EQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

HL_TEST(abc) {
    char h[65];
    hex_of("abc", 3, h);
    HL_CHECK_STR_EQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

HL_TEST(two_blocks) {
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char h[65];
    hex_of(m, strlen(m), h);
    HL_CHECK_STR_EQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

HL_TEST(long_message) {
    const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    char h[65];
    hex_of(m, strlen(m), h);
    HL_CHECK_STR_EQ(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a', fed in uneven pieces: the buffering across update calls. */
HL_TEST(million_a) {
    static char a[1000];
    memset(a, 'a', sizeof a);
    hl_sha256_ctx c;
    hl_sha256_init(&c);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t n = step < left ? step : left;
        if (n > sizeof a) n = sizeof a;
        hl_sha256_update(&c, a, n);
        left -= n;
        step = step * 7 % 997 + 1;
    }
    unsigned char d[32];
    hl_sha256_final(&c, d);
    static const unsigned char want[32] = {0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7,
                                           0xe2, 0x84, 0xd7, 0x3e, 0x67, 0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97,
                                           0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    HL_CHECK(memcmp(d, want, 32) == 0);
}

HL_TEST_MAIN()
