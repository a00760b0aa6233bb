/* hub_select.h — which files of a repository a pull takes. By default what
 * tuna loads, at the repository's top level: config.json,
 * generation_config.json, the tokenizer files, adapter_config.json and
 * adapter_model.safetensors, model.safetensors.index.json and the shards it
 * names (without an index: every *.safetensors); never *.bin, *.pt, *.pth,
 * *.h5, *.msgpack, ONNX or other checkpoints. --include globs replace the
 * default; --exclude globs remove files from either (fnmatch, '*' crossing
 * '/', a glob ending in '/' taking a folder: huggingface-cli download's rules). */
#ifndef TUNA_HUB_SELECT_H
#define TUNA_HUB_SELECT_H
#include <stddef.h>
#include "tuna_hub.h"

#define HUB_INDEX_NAME "model.safetensors.index.json"

typedef struct {
    char **names; /* distinct shard file names of the index */
    int n;
} hub_shards;

/* the shards an index names (its weight_map's values); TUNA_ERR_FORMAT naming
 * the file when it is not such an index */
tuna_status hub_shards_parse(const char *json, size_t len, hub_shards *s);
void hub_shards_free(hub_shards *s);
/* 1 when a pull with o takes path; idx: the index's shards, or NULL when the
 * repository has no index */
int hub_selected(const char *path, const tuna_hub_opts *o, const hub_shards *idx);
#endif
