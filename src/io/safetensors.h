/* safetensors.h — reader (memory-mapped) and writer for the safetensors format:
 * 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data block. Offsets are relative to the
 * data block. The reader validates everything (header length, JSON, dtypes,
 * shapes vs byte sizes, offsets inside the file, no overlap) and reports the
 * first problem with the file and tensor name. */
#ifndef TUNA_IO_SAFETENSORS_H
#define TUNA_IO_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "tuna.h"

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    int64_t numel;
    const void *data;   /* points into the mapping */
    size_t nbytes;
} st_tensor;

typedef struct {
    char *path;
    void *map;          /* whole file mapping (NULL for parsed buffers) */
    size_t map_size;
    st_tensor *tensors;
    int n_tensors;
} st_file;

/* Maps and validates a file. On failure nothing is left allocated. */
tuna_status st_open(st_file *f, const char *path);
/* Validates a buffer in memory (used by the fuzz target); data stays owned by
 * the caller and must outlive f. name is used in messages. */
tuna_status st_parse(st_file *f, const void *buf, size_t size, const char *name);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);

/* Converts a tensor of dtype F32/F16/BF16 to fp32 into out[numel].
 * TUNA_ERR_FORMAT, the tensor and the first bad element named, when a value
 * is NaN or infinite (checked in the same pass as the conversion). */
tuna_status st_to_f32(const st_tensor *t, float *out);
/* TUNA_OK when x[0..n) are all finite, else TUNA_ERR_FORMAT naming file (may
 * be NULL), tensor and the first NaN or infinity. */
tuna_status st_check_finite(const float *x, int64_t n, const char *file, const char *tensor);
/* The same check on a tensor's own bytes (F32, F16 or BF16, any alignment),
 * without converting it: for weights kept as stored. */
tuna_status st_check_finite_raw(const st_tensor *t, const char *file);

/* Writer: collect (name, dtype, shape, fp32 data) and write atomically. Data
 * are converted from fp32 to dtype (F32, F16 or BF16, round-to-nearest-even)
 * when written. Names and pointers must stay valid until st_writer_finish. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
tuna_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                          const int64_t *shape, const float *data);
/* Adds a 2-D tensor of file shape [R, C] whose data are held transposed
 * (data[c * R + r] is element (r, c)); rows are transposed as they are
 * written, so no transposed copy is held in memory. */
tuna_status st_writer_add_transposed(st_writer *w, const char *name, st_dtype dtype, int64_t R, int64_t C,
                                     const float *data);
/* Adds a tensor whose fp32 values are read one file row at a time when
 * written (rows = shape[0], or 1 for a 0/1-D tensor): read(ctx, r, out)
 * fills out[numel / rows] with row r. For weights not held as fp32 (kept as
 * stored), so no fp32 copy of the tensor is made. */
typedef void (*st_row_reader)(void *ctx, int64_t r, float *out);
tuna_status st_writer_add_rows(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                               st_row_reader read, void *ctx);
/* Adds raw bytes already in dtype (e.g. int tensors, pre-quantized data). */
tuna_status st_writer_add_raw(st_writer *w, const char *name, st_dtype dtype, int ndim,
                              const int64_t *shape, const void *data, size_t nbytes);
/* Optional "__metadata__" string entries. */
tuna_status st_writer_meta(st_writer *w, const char *key, const char *value);
/* Writes path durably through a temporary name (io/atomic_file.h). Frees w in
 * all cases. */
tuna_status st_writer_finish(st_writer *w, const char *path);
void st_writer_free(st_writer *w);

/* Gives back the resident pages of a read-only mapped range (the whole pages
 * inside it: a neighbour keeps its own); they are read from the file again
 * if touched later. */
void st_release_pages(const void *data, size_t nbytes);

/* fp16/bf16 scalar conversions (exact, round-to-nearest-even). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);
#endif
