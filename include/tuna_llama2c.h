/* tuna_llama2c.h — import of llama2.c checkpoints into HF model folders. */
#ifndef TUNA_LLAMA2C_H
#define TUNA_LLAMA2C_H
#include "tuna.h"
/* Reads a llama2.c .bin checkpoint and writes out_dir/config.json and
 * out_dir/model.safetensors (F32) of an equivalent LlamaForCausalLM (q/k rows
 * permuted from llama2.c's interleaved RoPE to HF's rotate_half). */
tuna_status tuna_llama2c_convert(const char *checkpoint, const char *out_dir);
#endif
