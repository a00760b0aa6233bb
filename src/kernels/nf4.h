/* nf4.h — bitsandbytes NF4 4-bit quantization with double quantization of the
 * block scales (QLoRA storage), bit-identical to bitsandbytes'
 * quantize_4bit(quant_type="nf4", blocksize=64, compress_statistics=True) and
 * dequantize_4bit, as re-implemented in tools/make_peft_fixtures.py and checked
 * against tests/fixtures/peft/nf4 by tests/test_nf4.c.
 *
 * Layout of one tensor of n values (flattened in stored row-major order):
 *   packed[(n+1)/2]      two 4-bit NF4 codes per byte; element 2j in the HIGH
 *                        nibble, 2j+1 in the low one; an odd n leaves the last
 *                        low nibble = 7 (the code of 0.0)
 *   absmax_q[nblocks]    one 8-bit code per block of 64 values: the block's
 *                        absmax minus `offset`, quantized blockwise (256) with
 *                        the signed dynamic map (nf4_dynamic_map)
 *   absmax2[nblocks2]    fp32 absmax of each block of 256 centred absmax values
 *   offset               fp32 mean of the block absmax values
 * i.e. 4 + 8/64 + 32/(64*256) ≈ 4.127 bits per value.
 *
 * Dequantization (all fp32, one rounding per operation, no FMA):
 *   scale_b = dynamic_map[absmax_q[b]] * absmax2[b/256];  scale_b += offset;
 *   w[i]    = nf4_code[q_i] * scale_{i/64}
 *
 * Quantization:
 *   absmax_b = max |x| over the block's real elements (last block may be
 *   partial); xn = x * (1.0f / absmax_b); q = #{t in the 15 fp32 thresholds of
 *   bitsandbytes' dQuantizeNF4 : xn > t}. A block whose absmax is 0 stores code 7
 *   (exact zero) for all its elements; bitsandbytes would compute 0 * inf = NaN
 *   and store code 0 (-1.0), which dequantizes to -0.0 — the same value up to
 *   the sign of zero. Likewise a 256-block of centred absmax values that are all
 *   zero stores the 8-bit code of 0.0 (bitsandbytes: code 0 via NaN); both give
 *   scale_b = offset exactly.
 *   offset: the float32 mean as torch computes it on the CPU (fp32 cascade sum
 *   in the order of torch's 8-lane vectorized reduction, then / (float)n). This
 *   reproduces the fixture's stored offset bit for bit; bitsandbytes on a GPU
 *   takes a CUDA reduction whose last bit may differ.
 *   8-bit codes: an = c * (1.0f / absmax2) and bitsandbytes' dQuantize<0>
 *   binary search with its midpoint rule over the sorted 256-value map.
 *
 * Weights must be finite: nf4_quantize rejects NaN/inf with TUNA_ERR_NUMERIC
 * (the lower-level functions give unspecified codes for them). */
#ifndef TUNA_KERNELS_NF4_H
#define TUNA_KERNELS_NF4_H
#include <stddef.h>
#include <stdint.h>

#include "tuna.h"
#include "core/error.h"

#define NF4_BLOCK 64   /* values per NF4 block (one absmax) */
#define NF4_BLOCK2 256 /* absmax values per double-quantization block */

typedef struct {
    int64_t n;         /* number of values */
    int64_t nblocks;   /* ceil(n / 64) */
    uint8_t *packed;   /* (n + 1) / 2 bytes */
    uint8_t *absmax_q; /* [nblocks] 8-bit codes of absmax - offset */
    float *absmax2;    /* [ceil(nblocks / 256)] */
    float offset;
} nf4_tensor;

/* Quantizes w[0..n) into *q (allocated here; free with nf4_free). Returns
 * TUNA_OK, TUNA_ERR_ARG (n < 0), TUNA_ERR_NUMERIC (a NaN/inf weight) or
 * TUNA_ERR_NOMEM, with detail via core_fail; on failure *q is left empty. */
tuna_status nf4_quantize(nf4_tensor *q, const float *w, int64_t n);
/* Frees the arrays and zeroes *q; an empty or zeroed *q is fine. */
void nf4_free(nf4_tensor *q);
/* out[0..count) = dequantized values start..start+count-1 (any range inside
 * [0, n)); OpenMP-parallel over blocks when count is large. */
void nf4_dequantize(float *out, const nf4_tensor *q, int64_t start, int64_t count);
/* Dequantized absmax of block b (the per-block scale used by nf4_dequantize). */
float nf4_block_scale(const nf4_tensor *q, int64_t b);
/* Bytes held: packed + 8-bit codes + absmax2 + offset. */
size_t nf4_storage_bytes(const nf4_tensor *q);

/* ---- lower-level pieces (used by nf4_quantize and the tests) ---- */
/* NF4 codes and per-block absmax: packed[(n+1)/2], absmax[ceil(n/64)]. */
void nf4_quantize_blocks(uint8_t *packed, float *absmax, const float *w, int64_t n);
/* Offset of the double quantization: torch's CPU float32 mean of absmax[0..n)
 * (0 for n == 0). */
float nf4_offset(const float *absmax, int64_t n);
/* 8-bit codes of absmax - offset in blocks of 256: absmax_q[nblocks],
 * absmax2[ceil(nblocks/256)]. */
void nf4_double_quant(uint8_t *absmax_q, float *absmax2, const float *absmax, int64_t nblocks, float offset);
/* The 16 NF4 code values (bitsandbytes' dDequantizeNF4 table). */
const float *nf4_code(void);
/* bitsandbytes' create_dynamic_map(signed=True): 256 sorted fp32 values,
 * generated on first use with torch's float32 linspace arithmetic. */
const float *nf4_dynamic_map(void);
#endif
