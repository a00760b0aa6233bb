/* param_rows.h — a parameter's values as a file writes them, one file row at
 * a time, without an fp32 copy of the whole tensor: the weight as stored (or
 * fp32) plus, when the model folds its adapter on write
 * (tuna_peft_merge_on_write), the adapter's delta — LoRA's s·B·A, or IA3's
 * scaling of the weight and (output scaling) of the bias. Rows are computed a
 * block at a time into a tile shared by all readers of one write (the writers
 * write one tensor after another), with the same GEMM tuna_peft_merge runs
 * on the block's rows, and the mapped pages of a stored tensor are given
 * back tile by tile once read (so a write holds about one tile of it). */
#ifndef TUNA_MODEL_PARAM_ROWS_H
#define TUNA_MODEL_PARAM_ROWS_H
#include <stdint.h>

#include "core/error.h"

struct tuna_model;
struct tuna_linear;

/* The fp32 tile the readers of one write share. */
typedef struct {
    float *buf;
    int64_t cap; /* values */
} rows_tile;

typedef struct {
    const struct tuna_model *m;
    int i;                          /* parameter index */
    const struct tuna_linear *fold; /* the adapted linear whose delta is added, NULL: none */
    int bias;                       /* i is fold's bias (IA3 scales it) */
    int64_t rows, cols;             /* rows = shape[0] (1 for a vector), or ours */
    int transposed;                 /* rows are our columns (GPT-2's Conv1D in the file's layout) */
    int64_t block;                  /* file rows per tile */
    rows_tile *tile;
    int64_t t0, t1;                 /* file rows now in the tile (t0 == t1: none) */
} param_rows;

/* Whether parameter i must be written through a reader: kept as stored, or
 * changed by the adapter the model folds on write. */
int param_rows_needed(const struct tuna_model *m, int i);
/* A tile for every parameter of m (TUNA_ERR_NOMEM when it cannot be had). */
tuna_status rows_tile_init(rows_tile *t, const struct tuna_model *m);
void rows_tile_free(rows_tile *t);
/* A reader of parameter i using tile t, in the safetensors file's layout
 * (ours = 0: GPT-2's Conv1D weights transposed back) or in ours ([out, in],
 * as GGUF stores them); tiles start at multiples of `align` rows when > 1 (so
 * that a row permutation inside groups of align rows, as GGUF's q/k one,
 * stays inside one tile). */
void param_rows_init(param_rows *r, const struct tuna_model *m, int i, rows_tile *t, int ours, int64_t align);
/* st_row_reader: out[cols] = file row `row` of the reader ctx (a param_rows). */
void param_rows_read(void *ctx, int64_t row, float *out);
/* Tests: tile values (0: the default) so that small models use several tiles. */
void param_rows_tile_at(int64_t values);
#endif
