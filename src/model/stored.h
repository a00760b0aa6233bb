/* stored.h — a frozen weight held in the precision it was stored in: f32,
 * bf16 or f16 values, or GGUF's Q8_0/Q4_0 blocks (in place in the mapped
 * safetensors or GGUF file, or an owned copy when the file's layout or
 * alignment had to change; a GGUF q/k weight whose rows llama.cpp permuted
 * reads them through a row map instead), or NF4 blocks.
 * One table of storage types (bytes per value, conversion to fp32) serves
 * every reader: the linear layer's dequantization tiles, the embedding
 * lookup, and the fp32 accessor merge, save and fingerprints go through. */
#ifndef TUNA_MODEL_STORED_H
#define TUNA_MODEL_STORED_H
#include <stddef.h>
#include <stdint.h>

#include "kernels/nf4.h"

typedef enum { STORE_F32 = 0, STORE_BF16 = 1, STORE_F16 = 2, STORE_NF4 = 3, STORE_Q8_0 = 4, STORE_Q4_0 = 5 } store_type;

typedef struct {
    store_type type;
    int64_t n;           /* values, in our layout ([OC, IC] for a linear) */
    const void *data;    /* F32/BF16/F16: n values; Q8_0/Q4_0: n/32 blocks in ggml's
                          * layout (io/gguf.h); the mapped file, or owned */
    int32_t *rows;       /* NULL, or (owned) our row r is row rows[r] of data */
    int64_t cols;        /* values per row (with rows; a multiple of 32 for Q8_0/Q4_0) */
    void *owned;         /* what the model frees (converted values), NULL when mapped */
    nf4_tensor nf4;      /* NF4 */
    float *scratch;      /* fp32, shared by all layers: one dequantization tile */
} tuna_stored;

/* Name ("F32", "BF16", "F16", "NF4", "Q8_0", "Q4_0") and bytes per value
 * (NF4, Q8_0, Q4_0: 0, see stored_bytes) of a storage type. */
const char *store_type_name(store_type t);
size_t store_type_size(store_type t);
/* out[0..count) = values start..start+count-1 (our layout) as fp32 (add:
 * out += values; not for NF4). Exact for F32/BF16/F16; Q8_0/Q4_0 as
 * gguf_dequantize; NF4 as nf4_dequantize. */
void stored_read(const tuna_stored *s, int64_t start, int64_t count, float *out, int add);
/* Whether data holds the n values of an F32/BF16/F16 type in our layout (no
 * row map): what may be used or written as it is. */
int stored_in_order(const tuna_stored *s);
/* Bytes the model itself allocated for s (owned copy or NF4 blocks, and the
 * row map; 0 when mapped in place), and bytes of the values wherever they live. */
size_t stored_own_bytes(const tuna_stored *s);
size_t stored_bytes(const tuna_stored *s);
/* Bytes of s's values that lie in a file mapping (0 when owned or NF4). */
size_t stored_mapped_bytes(const tuna_stored *s);
/* Gives back the resident pages of values start..start+count-1 of a tensor
 * used in place from its file's mapping (nothing for an owned copy or NF4):
 * read again from the file when next used. */
void stored_release(const tuna_stored *s, int64_t start, int64_t count);
/* A table read a few rows at a time (an untied embedding) releases its
 * mapped pages after every STORED_LOOKUP_ROWS rows: the page cache maps whole
 * folios, up to megabytes, around each row read, so a few hundred rows would
 * keep most of a 1 GiB table resident. */
#define STORED_LOOKUP_ROWS 32
/* The same for the whole tensor, whatever its type (a no-op unless mapped). */
void stored_release_all(const tuna_stored *s);
/* Frees what s owns and zeroes it. */
void stored_free(tuna_stored *s);
#endif
