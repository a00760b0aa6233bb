/* sha256.h — SHA-256, streamed: what a Hub LFS file's ETag is. OpenSSL's
 * libcrypto computes it (EVP: SHA-NI or AVX2 where the CPU has them, ~2 GB/s,
 * so the check keeps up with any download). */
#ifndef TUNA_HUB_SHA256_H
#define TUNA_HUB_SHA256_H
#include <stddef.h>

typedef struct {
    void *md; /* EVP_MD_CTX; NULL when not started */
} sha256_ctx;

/* 0, or -1 when out of memory (c->md NULL; update and hex then do nothing) */
int sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* the digest as 64 lowercase hex digits and a NUL ("" when init failed);
 * frees c */
void sha256_hex(sha256_ctx *c, char out[65]);
/* frees c (after a failure); safe to repeat and after sha256_hex */
void sha256_free(sha256_ctx *c);
#endif
