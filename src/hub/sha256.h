/* sha256.h — SHA-256 (FIPS 180-4), streamed: what a Hub LFS file's ETag is. */
#ifndef TUNA_HUB_SHA256_H
#define TUNA_HUB_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;     /* message length so far */
    uint8_t block[64];  /* pending bytes: bytes % 64 of them */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* the digest as 64 lowercase hex digits and a NUL */
void sha256_hex(sha256_ctx *c, char out[65]);
#endif
