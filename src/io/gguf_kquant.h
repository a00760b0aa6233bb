/* gguf_kquant.h — llama.cpp's k-quant blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K:
 * super-blocks of 256 values) and the 32-value Q5_0 / Q5_1 blocks its
 * mixtures fall back to, in ggml's exact byte layouts. The quantizers give
 * the bytes ggml's reference quantizers (quantize_row_*_ref, no importance
 * matrix: what llama-quantize writes without --imatrix) give, bit for bit;
 * tests/test_kquant.c checks them against bytes llama.cpp wrote
 * (tools/kquant-check). Every rounding, comparison and float operation is
 * done in the reference's order, because changing one flips a block's
 * choice of scale. Layouts (f16 little-endian, offsets in bytes):
 *   Q2_K  84: scales[16] (low nibble scale, high nibble min), qs[64] (2 bits),
 *             d, dmin
 *   Q3_K 110: hmask[32] (3rd bit), qs[64] (2 bits), scales[12] (6-bit, signed
 *             -32), d
 *   Q4_K 144: d, dmin, scales[12] (8 x 6-bit scale and min), qs[128]
 *   Q5_K 176: d, dmin, scales[12], qh[32] (5th bit), qs[128]
 *   Q6_K 210: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d
 *   Q5_0  22: d, qh (u32, 5th bits), qs[16]; value (q - 16) * d
 *   Q5_1  24: d, m, qh, qs[16]; value q * d + m
 * Input must be finite (the GGUF writer refuses a tensor that is not). */
#ifndef TUNA_IO_GGUF_KQUANT_H
#define TUNA_IO_GGUF_KQUANT_H
#include <stddef.h>
#include <stdint.h>

enum { GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14 };
#define KQ_MAX_BLOCK 256 /* the most values one block holds (the super-blocks) */

/* values per block (256 or 32) and bytes per block of type; 0 when type is
 * not one of these */
int kq_block_values(int type);
size_t kq_block_bytes(int type);
/* out = x[n] as type's blocks (n a multiple of kq_block_values(type)) */
void kq_quantize(int type, const float *x, uint8_t *out, int64_t n);
/* y[kq_block_values(type)] = one block as fp32, as ggml's dequantize_row_* */
void kq_dequantize_block(int type, const uint8_t *block, float *y);
#endif
