/* hub_snapshot.c — what a snapshot folder of the cache holds: the pull's
 * result list, its index's shards, and, offline (HF_HUB_OFFLINE=1), the
 * snapshot the ref names walked for the selected files and checked for what
 * a model needs (a config, every shard its index names), a missing file named. */
#include "hub/hub_snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

#define INDEX_MAX (64u << 20) /* a safetensors index */

tuna_status hub_result_add(tuna_hub_result *r, const char *path, int64_t size, int cached) {
    tuna_hub_file *f = realloc(r->files, (size_t)(r->n_files + 1) * sizeof *f);
    if (!f) return core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    r->files = f;
    f[r->n_files] = (tuna_hub_file){strdup(path), size, cached};
    if (!f[r->n_files].path) return core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    r->n_files++;
    return TUNA_OK;
}

void tuna_hub_result_free(tuna_hub_result *r) {
    if (!r) return;
    for (int k = 0; k < r->n_files; k++) free(r->files[k].path);
    free(r->files);
    r->files = NULL, r->n_files = 0;
}

static tuna_status read_small(const char *path, char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f) return core_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *b = malloc(INDEX_MAX + 1);
    *n = b ? fread(b, 1, INDEX_MAX, f) : 0;
    fclose(f);
    if (!b) return core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    b[*n] = '\0';
    *out = b;
    return TUNA_OK;
}

tuna_status hub_snapshot_shards(const hub_run *run, hub_shards *s) {
    char p[PATH_MAX], *body;
    size_t n;
    hub_cache_snapshot(&run->cache, run->commit, HUB_INDEX_NAME, p, sizeof p);
    tuna_status st = read_small(p, &body, &n);
    if (!st) st = core_fail_in(hub_shards_parse(body, n, s), p);
    free(body);
    return st;
}

/* ---- offline: the snapshot the ref names ---- */

/* the files under dir (relative names after prefix) that the selection takes */
static tuna_status walk(const hub_run *run, const char *dir, const char *prefix, const hub_shards *idx, tuna_hub_result *r) {
    DIR *d = opendir(dir);
    if (!d) return core_fail(TUNA_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    struct dirent *e;
    tuna_status st = TUNA_OK;
    while (!st && (e = readdir(d))) {
        char p[PATH_MAX], rel[PATH_MAX];
        struct stat sb;
        if (e->d_name[0] == '.' || snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        snprintf(rel, sizeof rel, "%s%s%s", prefix, prefix[0] ? "/" : "", e->d_name);
        int ok = stat(p, &sb) == 0;
        if (ok && S_ISDIR(sb.st_mode)) st = walk(run, p, rel, idx, r);
        else if (!hub_selected(rel, run->o, idx)) continue;
        else if (!ok)
            st = core_fail(TUNA_ERR_IO, "%s@%s: %s is missing from the cache (%s links to nothing) and HF_HUB_OFFLINE=1 is set",
                           run->id.repo, run->id.rev, rel, p);
        else st = hub_result_add(r, rel, (int64_t)sb.st_size, 1);
    }
    closedir(d);
    return st;
}

/* what a model needs from the snapshot: a config, and the index's shards */
static tuna_status offline_complete(const hub_run *run, const hub_shards *idx, const tuna_hub_result *r) {
    const char *need = NULL;
    for (int k = 0; idx && k < idx->n && !need; k++)
        if (!hub_cache_has(&run->cache, run->commit, idx->names[k])) need = idx->names[k];
    if (!need && !(run->o && run->o->n_include) && !hub_cache_has(&run->cache, run->commit, "config.json") &&
        !hub_cache_has(&run->cache, run->commit, "adapter_config.json"))
        need = "config.json";
    if (!need && r->n_files == 0) need = "any selected file";
    if (!need) return TUNA_OK;
    return core_fail(TUNA_ERR_IO, "%s@%s: %s is missing from the cache (snapshot %s) and HF_HUB_OFFLINE=1 is set", run->id.repo,
                     run->id.rev, need, r->dir);
}

tuna_status hub_pull_offline(hub_run *run, tuna_hub_result *r) {
    if (hub_cache_ref(&run->cache, run->id.rev, run->commit))
        return core_fail(TUNA_ERR_IO, "%s@%s: not in the cache (no %s/refs/%s) and HF_HUB_OFFLINE=1 is set", run->id.repo,
                         run->id.rev, run->cache.repo_dir, run->id.rev);
    memcpy(r->commit, run->commit, 41);
    hub_shards idx = {0};
    int use_idx = !(run->o && run->o->n_include) && hub_cache_has(&run->cache, run->commit, HUB_INDEX_NAME);
    struct stat sb;
    tuna_status st = stat(r->dir, &sb) == 0 ? TUNA_OK
                     : core_fail(TUNA_ERR_IO, "%s@%s: the snapshot %s is missing from the cache and HF_HUB_OFFLINE=1 is set",
                                 run->id.repo, run->id.rev, r->dir);
    if (!st && use_idx) st = hub_snapshot_shards(run, &idx);
    if (!st) st = walk(run, r->dir, "", use_idx ? &idx : NULL, r);
    if (!st) st = offline_complete(run, use_idx ? &idx : NULL, r);
    hub_shards_free(&idx);
    return st;
}
