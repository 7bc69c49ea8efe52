/* hl_sha256: SHA-256 (FIPS 180-4), for storing client keys as hashes (hl_keys.h).
 *
 * Why our own: one small, well-tested function is all the gateway needs from a crypto
 * library, and it keeps the dependency list short. Not constant-time in the data's length;
 * the data hashed here are keys of a fixed length. */
#ifndef HL_SHA256_H
#define HL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HL_SHA256_LEN 32

typedef struct hl_sha256_ctx {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t n;              /* bytes in buf */
} hl_sha256_ctx;

void hl_sha256_init(hl_sha256_ctx *c);
void hl_sha256_update(hl_sha256_ctx *c, const void *data, size_t len);
/* Writes the digest to out and wipes c. */
void hl_sha256_final(hl_sha256_ctx *c, unsigned char out[HL_SHA256_LEN]);
/* One call: out = SHA-256(data[0..len)). */
void hl_sha256(const void *data, size_t len, unsigned char out[HL_SHA256_LEN]);
/* out (65 bytes at least) = the digest of data in lower-case hex. */
void hl_sha256_hex(const void *data, size_t len, char out[2 * HL_SHA256_LEN + 1]);

#endif
