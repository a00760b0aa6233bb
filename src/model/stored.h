/* stored.h — a frozen weight held in the precision it was stored in: f32,
 * bf16 or f16 values (in place in the mapped safetensors file, or an owned
 * copy when the file's layout or alignment had to change), or NF4 blocks.
 * One table of storage types (bytes per value, conversion to fp32) serves
 * every reader: the linear layer's dequantization tiles, the embedding
 * lookup, and the fp32 accessor merge, save and fingerprints go through. */
#ifndef TUNA_MODEL_STORED_H
#define TUNA_MODEL_STORED_H
#include <stddef.h>
#include <stdint.h>

#include "kernels/nf4.h"

typedef enum { STORE_F32 = 0, STORE_BF16 = 1, STORE_F16 = 2, STORE_NF4 = 3 } store_type;

typedef struct {
    store_type type;
    int64_t n;           /* values, in our layout ([OC, IC] for a linear) */
    const void *data;    /* F32/BF16/F16: n values (the mapped file, or owned) */
    void *owned;         /* what the model frees (converted values), NULL when mapped */
    nf4_tensor nf4;      /* NF4 */
    float *scratch;      /* fp32, shared by all layers: one dequantization tile */
} tuna_stored;

/* Name ("F32", "BF16", "F16", "NF4") and bytes per value (NF4: 0, see
 * nf4_storage_bytes) of a storage type. */
const char *store_type_name(store_type t);
size_t store_type_size(store_type t);
/* out[0..count) = values start..start+count-1 as fp32 (add: out += values;
 * not for NF4). Exact for F32/BF16/F16; NF4 as nf4_dequantize. */
void stored_read(const tuna_stored *s, int64_t start, int64_t count, float *out, int add);
/* Bytes the model itself allocated for s (owned copy or NF4 blocks; 0 when
 * mapped in place), and bytes of the values wherever they live. */
size_t stored_own_bytes(const tuna_stored *s);
size_t stored_bytes(const tuna_stored *s);
/* Gives back the resident pages of values start..start+count-1 of a tensor
 * used in place from its file's mapping (nothing for an owned copy or NF4):
 * read again from the file when next used. */
void stored_release(const tuna_stored *s, int64_t start, int64_t count);
/* Frees what s owns and zeroes it. */
void stored_free(tuna_stored *s);
#endif
