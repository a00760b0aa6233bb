/* stored.c — reading a stored weight as fp32 (see stored.h). bf16 -> fp32 is
 * a shift and f16 -> fp32 exact, so every reader sees the file's values;
 * Q8_0/Q4_0 blocks dequantize with gguf.c's own code, as a GGUF load into
 * fp32 does. */
#include "model/stored.h"

#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "io/safetensors.h"

static const struct { const char *name; size_t size; int ggml; } traits[] = {
    [STORE_F32] = {"F32", 4, GGML_F32}, [STORE_BF16] = {"BF16", 2, -1}, [STORE_F16] = {"F16", 2, GGML_F16},
    [STORE_NF4] = {"NF4", 0, -1}, [STORE_Q8_0] = {"Q8_0", 0, GGML_Q8_0}, [STORE_Q4_0] = {"Q4_0", 0, GGML_Q4_0},
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
    case STORE_Q8_0: case STORE_Q4_0: gguf_dequantize(traits[s->type].ggml, s->data, start, count, out, add); break;
    case STORE_NF4: break;
    }
}

/* one range of our layout: through the row map, a row's piece at a time */
static void read_span(const tuna_stored *s, int64_t start, int64_t count, float *out, int add) {
    if (!s->rows) { read_range(s, start, count, out, add); return; }
    while (count > 0) {
        int64_t r = start / s->cols, c = start % s->cols, k = s->cols - c < count ? s->cols - c : count;
        read_range(s, (int64_t)s->rows[r] * s->cols + c, k, out, add);
        start += k;
        count -= k;
        out += k;
    }
}

#define READ_CHUNK 16384 /* values per thread's piece of a large read */
void stored_read(const tuna_stored *s, int64_t start, int64_t count, float *out, int add) {
    if (s->type == STORE_NF4) { nf4_dequantize(out, &s->nf4, start, count); return; }
    if (count <= READ_CHUNK) { read_span(s, start, count, out, add); return; }
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < count; c0 += READ_CHUNK) {
        int64_t k = count - c0 < READ_CHUNK ? count - c0 : READ_CHUNK;
        read_span(s, start + c0, k, out + c0, add);
    }
}

size_t stored_bytes(const tuna_stored *s) {
    if (s->type == STORE_NF4) return nf4_storage_bytes(&s->nf4);
    if (s->type == STORE_Q8_0 || s->type == STORE_Q4_0) return gguf_type_size(traits[s->type].ggml, s->n);
    return (size_t)s->n * store_type_size(s->type);
}

int stored_in_order(const tuna_stored *s) { return !s->rows && store_type_size(s->type) > 0; }

size_t stored_mapped_bytes(const tuna_stored *s) {
    return s->type == STORE_NF4 || s->owned ? 0 : stored_bytes(s);
}

size_t stored_own_bytes(const tuna_stored *s) {
    size_t map = s->rows ? (size_t)(s->n / s->cols) * sizeof *s->rows : 0;
    return map + (s->type == STORE_NF4 || s->owned ? stored_bytes(s) : 0);
}

void stored_release(const tuna_stored *s, int64_t start, int64_t count) {
    size_t esz = store_type_size(s->type);
    if (s->type != STORE_NF4 && !s->owned && s->data) st_release_pages((const char *)s->data + (size_t)start * esz, (size_t)count * esz);
}

void stored_release_all(const tuna_stored *s) {
    size_t b = stored_mapped_bytes(s);
    if (b && s->data) st_release_pages(s->data, b);
}

void stored_free(tuna_stored *s) {
    nf4_free(&s->nf4);
    free(s->owned);
    free(s->rows);
    memset(s, 0, sizeof *s);
}
