/* stored.c — reading a stored weight as fp32 (see stored.h). bf16 -> fp32 is
 * a shift and f16 -> fp32 exact, so every reader sees the file's values. */
#include "model/stored.h"

#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

static const struct { const char *name; size_t size; } traits[] = {
    [STORE_F32] = {"F32", 4}, [STORE_BF16] = {"BF16", 2}, [STORE_F16] = {"F16", 2}, [STORE_NF4] = {"NF4", 0},
};

const char *store_type_name(store_type t) { return traits[t].name; }
size_t store_type_size(store_type t) { return traits[t].size; }

/* bf16 is the high half of an fp32: a shift the compiler vectorizes */
static void bf16_read(float *out, const uint16_t *x, int64_t n, int add) {
    if (add) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)x[i] << 16;
            float f;
            memcpy(&f, &u, 4);
            out[i] += f;
        }
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)x[i] << 16;
        memcpy(out + i, &u, 4);
    }
}

static void f16_read(float *out, const uint16_t *x, int64_t n, int add) {
    if (add) for (int64_t i = 0; i < n; i++) out[i] += st_f16_to_f32(x[i]);
    else for (int64_t i = 0; i < n; i++) out[i] = st_f16_to_f32(x[i]);
}

static void f32_read(float *out, const float *x, int64_t n, int add) {
    if (add) for (int64_t i = 0; i < n; i++) out[i] += x[i];
    else memcpy(out, x, (size_t)n * sizeof(float));
}

/* one range, serial */
static void read_range(const tuna_stored *s, int64_t start, int64_t count, float *out, int add) {
    switch (s->type) {
    case STORE_F32: f32_read(out, (const float *)s->data + start, count, add); break;
    case STORE_BF16: bf16_read(out, (const uint16_t *)s->data + start, count, add); break;
    case STORE_F16: f16_read(out, (const uint16_t *)s->data + start, count, add); break;
    case STORE_NF4: break;
    }
}

#define READ_CHUNK 16384 /* values per thread's piece of a large read */
void stored_read(const tuna_stored *s, int64_t start, int64_t count, float *out, int add) {
    if (s->type == STORE_NF4) { nf4_dequantize(out, &s->nf4, start, count); return; }
    if (count <= READ_CHUNK) { read_range(s, start, count, out, add); return; }
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < count; c0 += READ_CHUNK) {
        int64_t k = count - c0 < READ_CHUNK ? count - c0 : READ_CHUNK;
        read_range(s, start + c0, k, out + c0, add);
    }
}

size_t stored_bytes(const tuna_stored *s) {
    return s->type == STORE_NF4 ? nf4_storage_bytes(&s->nf4) : (size_t)s->n * store_type_size(s->type);
}

size_t stored_own_bytes(const tuna_stored *s) {
    return s->type == STORE_NF4 || s->owned ? stored_bytes(s) : 0;
}

void stored_release(const tuna_stored *s, int64_t start, int64_t count) {
    size_t esz = store_type_size(s->type);
    if (s->type != STORE_NF4 && !s->owned && s->data) st_release_pages((const char *)s->data + (size_t)start * esz, (size_t)count * esz);
}

void stored_free(tuna_stored *s) {
    nf4_free(&s->nf4);
    free(s->owned);
    memset(s, 0, sizeof *s);
}
