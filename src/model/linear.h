/* linear.h — the linear layer every block calls. Blocks never touch weights
 * directly: they call linear_forward/linear_backward, so adapters (LoRA, IA3)
 * and quantized base weights (NF4) hang on this struct without changing the
 * decoder. Weight layout is PyTorch nn.Linear's [OC, IC]. */
#ifndef TUNA_MODEL_LINEAR_H
#define TUNA_MODEL_LINEAR_H

typedef struct tuna_linear {
    const char *name;   /* module path, e.g. "model.layers.0.self_attn.q_proj" */
    int IC, OC;
    float *w;           /* [OC, IC] */
    float *b;           /* [OC] or NULL */
    float *dw, *db;     /* gradients, NULL when frozen or not allocated */
    void *adapter;      /* reserved for LoRA / IA3 state (NULL: plain layer) */
    void *quant;        /* reserved for a quantized base weight (NULL: fp32 w) */
} tuna_linear;

/* out[N,OC] = in[N,IC] @ W^T + b */
void linear_forward(const tuna_linear *l, float *out, const float *in, int N);
/* din[N,IC] = (or += when din_acc) dout @ W, unless din is NULL;
 * dw += dout^T in and db += colsum(dout) when those gradients exist. */
void linear_backward(tuna_linear *l, float *din, int din_acc, const float *dout, const float *in, int N);
#endif
