/* hub_pull.c — tuna_hub_pull and tuna_hub_resolve (tuna_hub.h): the
 * revision's commit and file list from the API, the selection
 * (hub_select.c), what the snapshot lacks HEADed for its etag and size, then
 * downloaded by two threads (hub_fetch.c); offline, the snapshot the ref
 * names (hub_snapshot.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "hub/hub_snapshot.h"

#define N_THREADS 2
#define API_MAX (64u << 20)   /* the API's JSON for a revision */
#define INDEX_MAX (64u << 20) /* a safetensors index */

/* ---- the revision's commit and files (GET api/models/{repo}/revision/{rev}) ---- */

typedef struct {
    char **names;
    int n;
} name_list;

static void names_free(name_list *l) {
    for (int k = 0; k < l->n; k++) free(l->names[k]);
    free(l->names);
}

static tuna_status parse_info(hub_run *run, const char *body, size_t len, name_list *l) {
    json_error_t e;
    json_t *root = json_loadb(body, len, 0, &e), *sib = json_object_get(root, "siblings");
    const char *sha = json_string_value(json_object_get(root, "sha"));
    tuna_status st = sha && hub_is_hex(sha, 40) && json_is_array(sib) ? TUNA_OK
                     : core_fail(TUNA_ERR_NETWORK, "%s: the Hub's answer has no commit sha or siblings list", run->id.repo);
    if (!st) memcpy(run->commit, sha, 41);
    size_t k;
    json_t *v;
    if (!st && !(l->names = calloc(json_array_size(sib) + 1, sizeof *l->names))) st = core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    json_array_foreach(sib, k, v) {
        const char *name = json_string_value(json_object_get(v, "rfilename"));
        if (st) break;
        if (!name || !hub_path_ok(name))
            st = core_fail(TUNA_ERR_NETWORK, "%s: the Hub lists a file with an unusable name ('%.100s')", run->id.repo, name ? name : "");
        else if (!(l->names[l->n++] = strdup(name))) st = core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    }
    json_decref(root);
    return st;
}

static tuna_status revision_info(hub_http *h, hub_run *run, name_list *l) {
    char rev[800], url[2048], *body;
    size_t len;
    hub_resp r;
    hub_url_escape(rev, sizeof rev, run->id.rev, 0);
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", run->env->endpoint, run->id.repo, rev);
    int rc = hub_http_get_mem(h, url, API_MAX, &body, &len, &r);
    tuna_status st = rc || r.code != 200 ? hub_fail(run, &r, rc, NULL) : parse_info(run, body, len, l);
    free(body);
    return st;
}

/* ---- the index's shards: from the snapshot, or downloaded first ---- */


static tuna_status index_shards(hub_http *h, hub_run *run, hub_shards *s) {
    if (hub_cache_has(&run->cache, run->commit, HUB_INDEX_NAME)) return hub_snapshot_shards(run, s);
    hub_meta m = {.path = HUB_INDEX_NAME};
    if (!run->o || !run->o->dry_run) { /* into the cache like any file */
        tuna_status st = hub_head(h, run, &m);
        if (!st) st = hub_fetch(h, run, &m);
        return st ? st : hub_snapshot_shards(run, s);
    }
    char url[4096], *body;
    size_t n;
    hub_resp r;
    hub_resolve_url(run, HUB_INDEX_NAME, url, sizeof url);
    int rc = hub_http_get_mem(h, url, INDEX_MAX, &body, &n, &r);
    tuna_status st = rc || r.code != 200 ? hub_fail(run, &r, rc, HUB_INDEX_NAME) : hub_shards_parse(body, n, s);
    free(body);
    return st;
}

/* ---- the download threads ---- */

typedef struct {
    hub_run *run;
    hub_meta *pending;
    int n, next;
    tuna_status st;          /* the first failure */
    char detail[1024];
} queue;

static void *worker(void *arg) {
    queue *q = arg;
    hub_http *h = hub_http_new(q->run->env);
    for (;;) {
        pthread_mutex_lock(&q->run->mu);
        int k = q->st || !h ? q->n : q->next++;
        if (!h && !q->st) q->st = TUNA_ERR_NOMEM, snprintf(q->detail, sizeof q->detail, "hub: out of memory");
        pthread_mutex_unlock(&q->run->mu);
        if (k >= q->n) break;
        tuna_status st = hub_fetch(h, q->run, &q->pending[k]);
        if (!st) continue;
        pthread_mutex_lock(&q->run->mu);
        if (!q->st || q->st == TUNA_ERR_INTERRUPTED) q->st = st, snprintf(q->detail, sizeof q->detail, "%s", tuna_last_error());
        __atomic_store_n(&q->run->stop, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&q->run->mu);
    }
    hub_http_free(h);
    return NULL;
}

static tuna_status download_all(hub_run *run, hub_meta *pending, int n) {
    queue q = {.run = run, .pending = pending, .n = n};
    pthread_t t[N_THREADS];
    int started = 0;
    for (; started < N_THREADS && started < n; started++)
        if (pthread_create(&t[started], NULL, worker, &q)) break;
    if (!started && n) return core_fail(TUNA_ERR_NOMEM, "hub: cannot start a download thread");
    for (int k = 0; k < started; k++) pthread_join(t[k], NULL);
    return q.st ? core_fail(q.st, "%s", q.detail) : TUNA_OK;
}

/* ---- online pull ---- */

/* the selection: each file cached (size from the snapshot) or HEADed into pending */
static tuna_status select_files(hub_http *h, hub_run *run, const name_list *l, const hub_shards *idx, tuna_hub_result *r,
                                hub_meta *pending, int *n_pending) {
    tuna_status st = TUNA_OK;
    for (int k = 0; k < l->n && !st; k++) {
        const char *p = l->names[k];
        if (!hub_selected(p, run->o, idx)) continue;
        char snap[PATH_MAX];
        struct stat sb;
        if (hub_cache_snapshot(&run->cache, run->commit, p, snap, sizeof snap) == 0 && stat(snap, &sb) == 0 && S_ISREG(sb.st_mode)) {
            st = hub_result_add(r, p, (int64_t)sb.st_size, 1);
            continue;
        }
        hub_meta *m = &pending[*n_pending];
        *m = (hub_meta){.path = p};
        st = hub_head(h, run, m);
        if (!st) st = hub_result_add(r, p, m->size, 0);
        if (!st) (*n_pending)++, run->total += m->size > 0 ? m->size : 0;
    }
    if (!st && r->n_files == 0)
        st = core_fail(TUNA_ERR_ARG, "%s@%s: no file of the repository's %d is selected%s", run->id.repo, run->id.rev, l->n,
                       run->o && run->o->n_include ? " by --include" : " (no config, tokenizer or safetensors file; --include chooses)");
    return st;
}

static tuna_status pull_online(hub_run *run, tuna_hub_result *r) {
    hub_http *h = hub_http_new(run->env);
    name_list l = {0};
    hub_shards idx = {0};
    hub_meta *pending = NULL;
    tuna_status st = h ? revision_info(h, run, &l) : core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    int has_index = 0, n_pending = 0;
    for (int k = 0; k < l.n; k++) has_index |= !strcmp(l.names[k], HUB_INDEX_NAME);
    has_index = has_index && (!run->o || !run->o->n_include) && hub_selected(HUB_INDEX_NAME, run->o, NULL);
    if (!st) memcpy(r->commit, run->commit, 41);
    if (!st && !(run->o && run->o->dry_run)) st = hub_cache_set_ref(&run->cache, run->id.rev, run->commit);
    int index_cached = hub_cache_has(&run->cache, run->commit, HUB_INDEX_NAME);
    if (!st && has_index) st = index_shards(h, run, &idx);
    if (!st && !(pending = calloc((size_t)l.n + 1, sizeof *pending))) st = core_fail(TUNA_ERR_NOMEM, "hub: out of memory");
    if (!st) st = select_files(h, run, &l, has_index ? &idx : NULL, r, pending, &n_pending);
    for (int k = 0; !st && has_index && !index_cached && k < r->n_files; k++) /* downloaded first, above */
        if (!strcmp(r->files[k].path, HUB_INDEX_NAME)) r->files[k].cached = 0;
    run->files = n_pending;
    if (!st && !(run->o && run->o->dry_run)) st = download_all(run, pending, n_pending);
    r->bytes_downloaded = run->done - run->resumed;
    hub_http_free(h);
    hub_shards_free(&idx);
    names_free(&l);
    free(pending);
    return st;
}


/* ---- public ---- */

tuna_status tuna_hub_pull(const char *id, const tuna_hub_opts *o, tuna_hub_result *r) {
    memset(r, 0, sizeof *r);
    hub_env env;
    hub_run run = {.env = &env, .o = o};
    char why[512];
    if (!id || hub_id_parse(id, &run.id, why, sizeof why)) return core_fail(TUNA_ERR_ARG, "%s", id ? why : "hub: no id");
    tuna_status st = hub_env_load(&env, o);
    if (!st) st = hub_cache_init(&run.cache, env.cache, run.id.repo);
    if (st) return st;
    pthread_mutex_init(&run.mu, NULL);
    if (env.offline) {
        if (hub_cache_ref(&run.cache, run.id.rev, run.commit) == 0)
            hub_cache_snapshot(&run.cache, run.commit, "", r->dir, sizeof r->dir);
        st = hub_pull_offline(&run, r);
    } else {
        st = pull_online(&run, r);
        if (run.commit[0]) hub_cache_snapshot(&run.cache, run.commit, "", r->dir, sizeof r->dir);
    }
    pthread_mutex_destroy(&run.mu);
    return st;
}

tuna_status tuna_hub_resolve(const char *path_or_id, const tuna_hub_opts *o, char *dir, size_t n) {
    struct stat sb;
    if (!path_or_id) return core_fail(TUNA_ERR_ARG, "hub: no path or id");
    int exists = stat(path_or_id, &sb) == 0;
    if (!exists && !tuna_hub_is_id(path_or_id))
        return core_fail(TUNA_ERR_IO, "%s: no such file or folder, and not a Hub id ORG/NAME[@REVISION]", path_or_id);
    if (exists) return snprintf(dir, n, "%s", path_or_id) >= (int)n ? core_fail(TUNA_ERR_ARG, "%s: path too long", path_or_id) : TUNA_OK;
    tuna_hub_result r;
    tuna_status st = tuna_hub_pull(path_or_id, o, &r);
    if (!st && snprintf(dir, n, "%s", r.dir) >= (int)n) st = core_fail(TUNA_ERR_ARG, "%s: path too long", r.dir);
    tuna_hub_result_free(&r);
    return st;
}
