/* linear.c — forward/backward of one linear layer (see linear.h). Today a
 * plain fp32 GEMM; adapters and quantized bases extend these two functions. */
#include <stddef.h>

#include "model/linear.h"
#include "kernels/kernels.h"

void linear_forward(const tuna_linear *l, float *out, const float *in, int N) {
    k_matmul_fwd(out, in, l->w, l->b, N, l->IC, l->OC);
}

void linear_backward(tuna_linear *l, float *din, int din_acc, const float *dout, const float *in, int N) {
    k_matmul_bwd(din, l->dw, l->b ? l->db : NULL, dout, in, l->w, N, l->IC, l->OC, din_acc);
}
