/* hub_snapshot.h — a snapshot folder of the cache (hub_snapshot.c): the
 * result list of a pull, an index's shards read from the snapshot, and the
 * offline pull. */
#ifndef TUNA_HUB_SNAPSHOT_H
#define TUNA_HUB_SNAPSHOT_H
#include "hub/hub_fetch.h"
#include "hub/hub_select.h"

/* one file appended to r's list (path copied) */
tuna_status hub_result_add(tuna_hub_result *r, const char *path, int64_t size, int cached);
/* the shards of the snapshot's model.safetensors.index.json */
tuna_status hub_snapshot_shards(const hub_run *run, hub_shards *s);
/* HF_HUB_OFFLINE: r filled from the snapshot run->id's ref names (r->dir
 * set by the caller when the ref exists); TUNA_ERR_IO naming what is missing */
tuna_status hub_pull_offline(hub_run *run, tuna_hub_result *r);
#endif
