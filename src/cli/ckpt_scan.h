/* ckpt_scan.h — what a checkpoint holds, read from its headers only:
 * config.json and each safetensors shard's JSON header (through
 * model.safetensors.index.json when sharded), a GGUF file's metadata and
 * tensor table, or a llama2.c checkpoint's header. No weight byte is read, so `tuna info` and the memory
 * planner describe a 70 GB model in a few MiB. */
#ifndef TUNA_CLI_CKPT_SCAN_H
#define TUNA_CLI_CKPT_SCAN_H
#include <stdint.h>

#include "tuna.h"

/* What a tensor is for, which decides how each method stores it. */
typedef enum { CKPT_EMBED, CKPT_LINEAR, CKPT_NORM, CKPT_HEAD, CKPT_OTHER, CKPT_NGROUPS } ckpt_group;

typedef struct {
    char name[160];
    char dtype[16];  /* as the file names it: F32, BF16, F16, Q8_0, ... */
    int64_t numel;
    int64_t bytes;   /* stored bytes */
    ckpt_group group;
} ckpt_tensor;

typedef struct {
    tuna_config cfg;
    ckpt_tensor *t;  /* the tensors the model uses (buffers and a tied lm_head copy left out) */
    int n;
    int64_t disk_bytes;
    int n_files;     /* weight files read (0: a config.json alone, dtypes from its torch_dtype) */
    int gguf;
    int mapped;      /* safetensors or GGUF: frozen tensors are used in place from the mapped file */
} ckpt_info;

/* path: a model folder, a GGUF file, a llama2.c checkpoint (fp32), or a
 * *.json config (then the tensors are the config's, in its torch_dtype). */
tuna_status ckpt_scan(ckpt_info *ci, const char *path);
void ckpt_free(ckpt_info *ci);
const char *ckpt_group_name(ckpt_group g);
#endif
