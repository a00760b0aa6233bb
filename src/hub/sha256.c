/* sha256.c — SHA-256 through OpenSSL's EVP interface (sha256.h). */
#include "hub/sha256.h"

#include <openssl/evp.h>
#include <stdio.h>

int sha256_init(sha256_ctx *c) {
    c->md = EVP_MD_CTX_new();
    if (c->md && EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) == 1) return 0;
    sha256_free(c);
    return -1;
}

void sha256_update(sha256_ctx *c, const void *data, size_t n) {
    if (c->md) EVP_DigestUpdate(c->md, data, n);
}

void sha256_hex(sha256_ctx *c, char out[65]) {
    unsigned char d[32];
    unsigned int n = 0;
    out[0] = '\0';
    if (c->md && EVP_DigestFinal_ex(c->md, d, &n) == 1 && n == 32)
        for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
    sha256_free(c);
}

void sha256_free(sha256_ctx *c) {
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}
