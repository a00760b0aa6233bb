/* linear.h — the linear layer every block calls. Blocks never touch weights
 * directly: they call linear_forward/linear_backward, so adapters (LoRA, IA3)
 * and stored base weights (bf16, f16, NF4 ...) hang on this struct without
 * changing the decoder. Weight layout is PyTorch nn.Linear's [OC, IC]. */
#ifndef TUNA_MODEL_LINEAR_H
#define TUNA_MODEL_LINEAR_H
#include <stdint.h>

#include "model/stored.h"

/* Scratch and switches shared by all adapters of a model. */
typedef struct {
    float *scratch_in;   /* [Nmax, max IC] dropped-out or scaled input */
    float *scratch_out;  /* gradient temporaries (see peft_prepare) */
    float dropout;       /* LoRA dropout probability */
    int training;        /* dropout active */
    int disabled;        /* adapters switched off: the base alone (tuna_peft_set_enabled) */
    uint64_t key;        /* dropout stream of the current forward */
} tuna_adapter_rt;

enum { TUNA_ADAPTER_LORA = 1, TUNA_ADAPTER_IA3 = 2 };

typedef struct tuna_adapter {
    int kind, id;        /* id: index among the model's adapted layers */
    /* LoRA: y += scale * B (A dropout(x)) */
    int r;
    float scale;
    float *A, *B;        /* [r, IC], [OC, r] */
    float *dA, *dB;
    float *h;            /* [r, Nmax] (A dropout(x))ᵀ of the last forward, kept for backward */
    /* IA3: y = s * (W x + b) (ff = 0), or y = W (s * x) + b (ff = 1) */
    int ff;
    float *s, *ds;       /* [OC] or [IC] */
    float *z;            /* [Nmax, OC] W x + b before scaling (ff = 0) */
    tuna_adapter_rt *rt;
} tuna_adapter;

/* A stored (frozen) base weight other than fp32: forward and input-gradient
 * backward convert it in tiles of whole rows (at most LINEAR_TILE values,
 * 4 MiB of fp32) into the model's shared scratch, each tile followed by its
 * GEMM; a stored F32 weight (mapped in place) is multiplied directly. */
#define LINEAR_TILE (1L << 20)

/* bf16 compute (see linear.c), shared by the linears of one model: GEMM
 * inputs rounded to bf16, products summed in fp32. Buffers grow to the
 * largest call on first use and stay. The rounded input is reused while
 * consecutive linears read the same buffer (q, k, v; gate, up): whoever
 * rewrites a buffer that a linear read last (a block recomputed under
 * checkpointing, the next decode step) calls linear_bf16_flush first. */
typedef struct linear_bf16 {
    uint16_t *x16;       /* the last input, rounded */
    const float *x_src;  /* ... of this buffer and size (NULL: none) */
    long x_n;
    uint16_t *g16;       /* an output gradient, rounded (backward) */
    uint16_t *t16;       /* a stored tile converted to bf16 [LINEAR_TILE] */
    size_t x_cap, g_cap; /* values x16 and g16 hold */
} linear_bf16;

void linear_bf16_flush(linear_bf16 *b);
void linear_bf16_free(linear_bf16 *b);

typedef struct tuna_linear {
    const char *name;   /* module path, e.g. "model.layers.0.self_attn.q_proj" */
    int IC, OC;
    int wparam;         /* index of the weight in the model's parameter table */
    float *w;           /* [OC, IC], NULL when stored */
    float *b;           /* [OC] or NULL */
    float *dw, *db;     /* gradients, NULL when frozen or not allocated */
    tuna_adapter *adapter; /* LoRA / IA3 state, NULL: plain layer */
    const tuna_stored *stored; /* frozen base weight as stored, NULL: fp32 w */
    linear_bf16 *bf16;  /* bf16 compute (the model's), NULL: fp32 */
    uint16_t *w16;      /* bf16 copy of w when bf16 computes, else NULL */
} tuna_linear;

/* out[N,OC] = in[N,IC] @ W^T + b (+ the adapter's contribution) */
void linear_forward(const tuna_linear *l, float *out, const float *in, int N);
/* din[N,IC] = (or += when din_acc) dout @ W (+ through the adapter), unless
 * din is NULL; dw += dout^T in and db += colsum(dout) when those gradients
 * exist; the adapter's gradients are added to. */
void linear_backward(tuna_linear *l, float *din, int din_acc, const float *dout, const float *in, int N);
#endif
