/* gguf.h — the GGUF v3 container (llama.cpp's model file), read and written
 * by tuna's own code: header "GGUF", version 3, tensor and key/value counts;
 * typed key/values (scalars, strings, arrays); tensor infos (name, dims with
 * ne[0] the fastest-varying, ggml type, offset); tensor data aligned to
 * general.alignment (32). Little-endian. The reader validates every length,
 * type and offset against the file before use and names the key or tensor
 * that is wrong. Tensor types: F32, F16, Q8_0 and Q4_0 in ggml's exact block
 * layouts (Q8_0: f16 scale + 32 int8; Q4_0: f16 scale + 16 bytes, element j
 * in the low nibble of byte j, element j+16 in its high nibble), and the
 * k-quants Q2_K..Q6_K with Q5_0/Q5_1 (io/gguf_kquant.h), written and read. */
#ifndef TUNA_IO_GGUF_H
#define TUNA_IO_GGUF_H
#include <stddef.h>
#include <stdint.h>
#include "tuna.h"
#include "tuna_peft.h" /* tuna_quant_type */
#include "io/gguf_kquant.h" /* the k-quant type numbers */

enum { GGUF_T_U8 = 0, GGUF_T_I8, GGUF_T_U16, GGUF_T_I16, GGUF_T_U32, GGUF_T_I32, GGUF_T_F32, GGUF_T_BOOL, GGUF_T_STRING,
       GGUF_T_ARRAY, GGUF_T_U64, GGUF_T_I64, GGUF_T_F64 };
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8 };

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
void gguf_kv_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_kv_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_kv_f32(gguf_writer *w, const char *key, float v);
void gguf_kv_bool(gguf_writer *w, const char *key, int v);
void gguf_kv_str(gguf_writer *w, const char *key, const char *v);
/* arrays: strings (n pointers), f32, i32 */
void gguf_kv_str_array(gguf_writer *w, const char *key, const char *const *v, size_t n);
void gguf_kv_f32_array(gguf_writer *w, const char *key, const float *v, size_t n);
void gguf_kv_i32_array(gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* A tensor of PyTorch shape [rows, cols] (rows = 1 for a vector) stored as
 * ggml ne = {cols, rows}, from fp32 data in row-major order; converted to
 * type when written (cols a multiple of the type's block, TUNA_ERR_ARG
 * otherwise). data must stay valid until gguf_writer_finish. Quantized
 * tensors with a NaN or infinity are refused (TUNA_ERR_NUMERIC, the tensor
 * named). */
tuna_status gguf_add_tensor(gguf_writer *w, const char *name, int ndim, int64_t rows, int64_t cols, int type, const float *data);
/* The same tensor, its fp32 rows read one at a time when written
 * (read(ctx, r, out) fills out[cols] with row r), so no fp32 copy of it is
 * held; a Q8_0 or Q4_0 row with a NaN or infinity fails the write
 * (TUNA_ERR_NUMERIC, the tensor and element named; nothing is published). */
typedef void (*gguf_row_reader)(void *ctx, int64_t r, float *out);
tuna_status gguf_add_tensor_rows(gguf_writer *w, const char *name, int ndim, int64_t rows, int64_t cols, int type,
                                 gguf_row_reader read, void *ctx);
/* Writes path durably through a temporary name (io/atomic_file.h). Frees
 * nothing (call _free). */
tuna_status gguf_writer_finish(gguf_writer *w, const char *path);

/* ---- reader ---- */
typedef struct {
    const char *key;     /* points into the mapping, not NUL-terminated: key_len */
    size_t key_len;
    uint32_t type;
    const uint8_t *val;  /* the value's bytes (for arrays: after elem type and count) */
    uint32_t arr_type;   /* arrays */
    uint64_t arr_n;
    const uint8_t **strs; /* string arrays: where each element (u64 length + bytes) starts */
} gguf_kv;

typedef struct {
    char name[128];
    int ndim;
    int64_t ne[4];
    uint32_t type;
    uint64_t offset;     /* absolute in the file */
    uint64_t nbytes;
    int64_t numel;
} gguf_tensor;

typedef struct {
    char path[512];
    uint8_t *map;
    size_t size;
    gguf_kv *kv;
    size_t n_kv;
    gguf_tensor *tensors;
    size_t n_tensors;
    uint32_t alignment;
} gguf_file;

tuna_status gguf_open(gguf_file *f, const char *path);
/* The same on a buffer the caller owns (fuzz target); name for messages. */
tuna_status gguf_parse(gguf_file *f, const void *buf, size_t size, const char *name);
void gguf_close(gguf_file *f);
/* The model config a GGUF file's metadata describes (validated; no tensor
 * data read): what tuna_model_load_gguf builds and `tuna info` prints. */
tuna_status gguf_model_config(const gguf_file *f, const char *path, tuna_config *out);
/* The model a GGUF file holds (io/gguf_model.c): fp32 (TUNA_QUANT_NONE, as
 * tuna_model_load_gguf), or TUNA_QUANT_STORED: its 2-D weights kept as the
 * file stores them (F32, F16, Q8_0, Q4_0) in place in the mapping, which the
 * model keeps; Llama's q/k rows read through a row map. NF4: not here. */
tuna_status gguf_model_load(tuna_model **out, const char *path, tuna_quant_type quant);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
/* Scalar getters: 0 on success (numeric types converted), -1 when missing or of another kind. */
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_f64(const gguf_file *f, const char *key, double *out);
/* Metadata read as strictly as config.json: absent gives dflt; a key of
 * another type or out of range records one line "<file>: <key> <value>: must
 * be ..." into *st (the first error only; TUNA_ERR_FORMAT) and gives dflt.
 * _int: an integer in [lo, INT_MAX]; _pos: a number > 0, finite as a float. */
int gguf_meta_int(const gguf_file *f, const char *key, int lo, int dflt, tuna_status *st);
double gguf_meta_pos(const gguf_file *f, const char *key, double dflt, tuna_status *st);
/* A string value (not NUL-terminated) or NULL. */
const char *gguf_get_str(const gguf_file *f, const char *key, size_t *len);
/* i-th string of a string array (bounds already validated at open). */
const char *gguf_arr_str(const gguf_kv *kv, uint64_t i, size_t *len);
/* Dequantizes a tensor (any type above) into out[numel]; TUNA_ERR_FORMAT
 * naming the file and tensor when a value is NaN or infinite. */
tuna_status gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor *t, float *out);
/* TUNA_ERR_FORMAT naming the file and tensor when a value (F32, F16) or a
 * block's scale (Q8_0, Q4_0; the k-quants: a dequantized value) is NaN or
 * infinite; reads the file's bytes only. */
tuna_status gguf_check_finite(const gguf_file *f, const gguf_tensor *t);
/* out[0..n) = values first..first+n-1 of a quantized block array (any
 * range, not only whole blocks) as fp32, exactly as gguf_tensor_to_f32;
 * add: out += them. */
void gguf_dequantize(int type, const uint8_t *blocks, int64_t first, int64_t n, float *out, int add);
size_t gguf_type_size(int type, int64_t n); /* bytes of n elements; 0 if unknown or n not a block multiple */
int gguf_block_values(int type);             /* values per block: 1 (F32, F16), 32, 256; 0 if unknown */
const char *gguf_type_name(int type);

/* block quantizers, ggml's reference rounding (exposed for tests); x must be
 * finite (gguf_add_tensor refuses a quantized tensor that is not) */
void gguf_quantize_q8_0(const float *x, uint8_t *out, int64_t n);
void gguf_quantize_q4_0(const float *x, uint8_t *out, int64_t n);
#endif
