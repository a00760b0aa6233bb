/* dequant_f32.c — a GGUF model as tuna reads it (every tensor dequantized to
 * fp32) written back as an F32 GGUF: llama.cpp decoding that file computes
 * with the quantized file's exact weights but without quantizing its
 * activations for the dot products, which tells a weight difference from a
 * compute difference when llama.cpp's greedy tokens on a k-quant file part
 * from tuna's (tools/gguf-check/README.md).
 *   dequant_f32 IN.gguf OUT.gguf TOKENIZER_DIR   (built against libtuna) */
#include <stdio.h>
#include "io/gguf.h"
#include "tuna.h"
#include "tuna_gguf.h"
int main(int argc, char **argv) {
    (void)argc;
    gguf_file f; uint64_t ab = 0, ae = 0, pad = 0;
    if (gguf_open(&f, argv[1]) != TUNA_OK) return 1;
    gguf_get_u64(&f, "tokenizer.ggml.add_bos_token", &ab); gguf_get_u64(&f, "tokenizer.ggml.add_eos_token", &ae);
    gguf_get_u64(&f, "tokenizer.ggml.padding_token_id", &pad);
    gguf_close(&f);
    tuna_model *m;
    if (tuna_model_load_gguf(&m, argv[1]) != TUNA_OK) { fprintf(stderr, "%s\n", tuna_last_error()); return 1; }
    tuna_gguf_meta meta = {argv[3], NULL, "dequantized", 0, 0, -1, (int)pad, (int)ab, (int)ae};
    if (tuna_export_gguf(m, &meta, "f32", argv[2]) != TUNA_OK) { fprintf(stderr, "%s\n", tuna_last_error()); return 1; }
    return 0;
}
