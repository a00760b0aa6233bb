/* model_io.c — loading and saving HF model folders.
 * Loading: config.json, then model.safetensors or the shards named by
 * model.safetensors.index.json, memory-mapped; every header is checked before
 * any weight is read (each tensor the config implies present once, in the
 * shard the index names, with the right shape and a float dtype; a tensor the
 * model would not use is an error rather than silently dropped, except known
 * non-parameter buffers). Then tensor by tensor: converted to fp32, quantized
 * to NF4 or converted to bf16 (through one tensor's fp32 buffer), or kept as
 * stored (tuna_quant_type) — in place in the mapping, which the model then
 * keeps, or copied; a converted tensor's pages are released. Saving writes model.safetensors and
 * config.json atomically in the file layout (GPT-2 Conv1D transposed back). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "model/model_internal.h"
#include "model/param_rows.h"
#include "tuna_gguf.h"

#define MAX_SHARDS 256

typedef struct {
    st_file files[MAX_SHARDS];
    int n;
} shard_set;

static void shards_close(shard_set *s) {
    for (int i = 0; i < s->n; i++) st_close(&s->files[i]);
    s->n = 0;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* the shard weight_map names for tensor `key` must hold it, and no tensor may
 * sit in two shards (an index naming one file twice, under two names, shows
 * up here too): checked on the headers, before any weight is read */
static tuna_status check_index(const shard_set *s, json_t *wm, const char *path, const char *dir) {
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        char sp[PATH_MAX];
        snprintf(sp, sizeof sp, "%s/%s", dir, json_string_value(val));
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->files[i].path, sp) && !st_find(&s->files[i], key))
                return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is mapped to %s, which does not hold it", path, key,
                                 json_string_value(val));
    }
    for (int i = 0; i < s->n; i++)
        for (int j = i + 1; j < s->n; j++)
            for (int k = 0; k < s->files[j].n_tensors; k++)
                if (st_find(&s->files[i], s->files[j].tensors[k].name))
                    return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is in two shards, %s and %s", path,
                                     s->files[j].tensors[k].name, s->files[i].path, s->files[j].path);
    return TUNA_OK;
}

/* opens the shard `name` the index maps `tensor` to: a missing file is bad
 * input naming both */
static tuna_status open_shard(shard_set *s, const char *dir, const char *idx_path, const char *name, const char *tensor) {
    char sp[PATH_MAX];
    snprintf(sp, sizeof sp, "%s/%s", dir, name);
    if (!file_exists(sp))
        return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is mapped to %s, which is missing from %s", idx_path, tensor,
                         name, dir);
    tuna_status st = st_open(&s->files[s->n], sp);
    if (st == TUNA_OK) s->n++;
    return st;
}

/* line n (from 1) of the file at path, trimmed, into buf ("" if unreadable) */
static const char *line_of(const char *path, int n, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    for (int i = 0; f && i < n && fgets(buf, (int)size, f); i++) {}
    if (f) fclose(f);
    char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strlen(p);
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ',')) p[--len] = 0;
    return p;
}

static tuna_status shards_open(shard_set *s, const char *dir) {
    char path[PATH_MAX];
    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (file_exists(path)) {
        tuna_status st = st_open(&s->files[0], path);
        if (st == TUNA_OK) s->n = 1;
        return st;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!file_exists(path))
        return core_fail(TUNA_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    json_error_t jerr;
    json_t *idx = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!idx && json_error_code(&jerr) == json_error_duplicate_key) {
        char line[512];
        return core_fail(TUNA_ERR_FORMAT, "%s:%d: a key given twice (a tensor named twice?): %s", path, jerr.line,
                         line_of(path, jerr.line, line, sizeof line));
    }
    if (!idx) return core_fail(TUNA_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    json_t *wm = json_object_get(idx, "weight_map");
    if (!json_is_object(wm)) {
        json_decref(idx);
        return core_fail(TUNA_ERR_FORMAT, "%s: missing \"weight_map\" object", path);
    }
    /* open each distinct shard once */
    const char *names[MAX_SHARDS];
    int n = 0;
    const char *key;
    json_t *val;
    tuna_status st = TUNA_OK;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val)) { st = core_fail(TUNA_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file name", path, key); break; }
        const char *f = json_string_value(val);
        if (strchr(f, '/') || !strcmp(f, "..")) { st = core_fail(TUNA_ERR_FORMAT, "%s: shard name '%s' must be a plain file name", path, f); break; }
        int seen = 0;
        for (int i = 0; i < n; i++) if (!strcmp(names[i], f)) seen = 1;
        if (seen) continue;
        if (n == MAX_SHARDS) { st = core_fail(TUNA_ERR_UNSUPPORTED, "%s: more than %d shards", path, MAX_SHARDS); break; }
        names[n++] = f;
        st = open_shard(s, dir, path, f, key);
        if (st != TUNA_OK) break;
    }
    if (st == TUNA_OK) st = check_index(s, wm, path, dir);
    json_decref(idx);
    if (st != TUNA_OK) shards_close(s);
    return st;
}

static const st_tensor *shards_find(const shard_set *s, const char *name, const st_file **file) {
    for (int i = 0; i < s->n; i++) {
        const st_tensor *t = st_find(&s->files[i], name);
        if (t) { *file = &s->files[i]; return t; }
    }
    return NULL;
}

/* Buffers that checkpoints carry but that are not parameters. */
static int is_known_buffer(const char *name) {
    size_t n = strlen(name);
    const char *ends[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq"};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        size_t k = strlen(ends[i]);
        if (n >= k && !strcmp(name + n - k, ends[i])) return 1;
    }
    return 0;
}

/* Tensor t of the file against entry e, on the header alone: the shape
 * config.json implies and a dtype tuna computes from. */
static tuna_status check_header(const tuna_param_entry *e, const st_tensor *t, const char *file) {
    const tuna_param *p = &e->pub;
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: F32, F16, BF16)", file,
                         p->name, st_dtype_name(t->dtype));
    int ok = t->ndim == p->ndim;
    for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->shape[d];
    if (!ok) {
        char got[96] = "", want[96] = "";
        for (int d = 0; d < t->ndim && d < 8; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)t->shape[d]);
        for (int d = 0; d < p->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)p->shape[d]);
        return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but config.json implies [%s]", file, p->name,
                         got, want);
    }
    return TUNA_OK;
}

/* Gives back the memory of t's mapped pages once t has been converted (the
 * whole pages inside it: a neighbour used in place keeps its own), so loading
 * holds one tensor of the file at a time. */
static void release_pages(const st_tensor *t) { st_release_pages(t->data, t->nbytes); }

/* Converts tensor t of the file into dest (fp32, our layout). */
static tuna_status read_f32(const tuna_param_entry *e, const st_tensor *t, const char *file, float *dest) {
    const tuna_param *p = &e->pub;
    if (!p->transposed) return core_fail_in(st_to_f32(t, dest), file);
    /* file [in, out] -> ours [out, in] */
    int64_t R = p->shape[0], Cc = p->shape[1];
    float *tmp = malloc((size_t)p->numel * sizeof(float));
    if (!tmp) return core_fail(TUNA_ERR_NOMEM, "out of memory loading '%s'", p->name);
    tuna_status st = st_to_f32(t, tmp);
    if (st == TUNA_OK) {
#pragma omp parallel for
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < Cc; j++) dest[j * R + i] = tmp[i * Cc + j];
    }
    free(tmp);
    return core_fail_in(st, file);
}

/* dst[C, R] = the transpose of src[R, C], values of esz bytes moved as they are */
static void transpose_raw(void *dst, const void *src, int64_t R, int64_t C, size_t esz) {
#pragma omp parallel for
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++)
            memcpy((char *)dst + (size_t)(j * R + i) * esz, (const char *)src + (size_t)(i * C + j) * esz, esz);
}

static store_type store_of(st_dtype d) { return d == ST_BF16 ? STORE_BF16 : d == ST_F16 ? STORE_F16 : STORE_F32; }

/* Keeps t as the file stores it: in place in the mapping when its layout and
 * alignment are ours (*in_place set), else an owned copy in the same dtype
 * (GPT-2's Conv1D transposed; a misaligned tensor); either way the pages the
 * finiteness check read are released, so loading holds one tensor of the
 * file at a time (merge and export then read each tensor once as written). */
static tuna_status keep_stored(tuna_stored *s, const tuna_param_entry *e, const st_tensor *t, const char *file,
                               int *in_place) {
    tuna_status st = st_check_finite_raw(t, file);
    if (st != TUNA_OK) return st;
    size_t esz = st_dtype_size(t->dtype);
    s->type = store_of(t->dtype);
    s->n = t->numel;
    if (!e->pub.transposed && (uintptr_t)t->data % esz == 0) {
        s->data = t->data;
        *in_place = 1;
        release_pages(t); /* read by the check: mapped again where the model uses it */
        return TUNA_OK;
    }
    s->owned = malloc(t->nbytes ? t->nbytes : 1);
    if (!s->owned) return core_fail(TUNA_ERR_NOMEM, "out of memory loading '%s'", e->name);
    if (e->pub.transposed) transpose_raw(s->owned, t->data, e->pub.shape[0], e->pub.shape[1], esz);
    else memcpy(s->owned, t->data, t->nbytes);
    s->data = s->owned;
    release_pages(t);
    return TUNA_OK;
}

/* NF4 quantizes the block linears; embeddings and lm_head stay as stored */
static int is_nf4_target(const tuna_model *m, int i) {
    return m->quant_type == TUNA_QUANT_NF4 && i != m->wte_param && i != m->wpe_param &&
           strcmp(m->params[i].name, "lm_head.weight") != 0;
}

/* TUNA_QUANT_BF16 converts the weights the file does not store in bf16 */
static int is_bf16_target(const tuna_model *m, const st_tensor *t) {
    return m->quant_type == TUNA_QUANT_BF16 && t->dtype != ST_BF16;
}

/* s = the fp32 values in tmp, as NF4 blocks or an owned bf16 copy */
static tuna_status convert_stored(tuna_stored *s, const tuna_param_entry *e, const float *tmp, int nf4) {
    int64_t n = e->pub.numel;
    s->n = n;
    if (nf4) {
        s->type = STORE_NF4;
        return nf4_quantize(&s->nf4, tmp, n);
    }
    s->owned = malloc((size_t)(n ? n : 1) * sizeof(uint16_t));
    if (!s->owned) return core_fail(TUNA_ERR_NOMEM, "out of memory converting '%s' to bf16", e->name);
    k_f32_to_bf16(s->owned, tmp, n);
    s->type = STORE_BF16;
    s->data = s->owned;
    return TUNA_OK;
}

/* Reads parameter i from tensor t: fp32 into the weights, kept as stored, or
 * converted (NF4, bf16) through tmp (fp32, one tensor); converted tensors'
 * pages are released right after. */
static tuna_status load_param(tuna_model *m, int i, const st_tensor *t, const char *file, float *tmp, int *in_place) {
    tuna_param_entry *e = &m->params[i];
    tuna_status st;
    if (!e->external) {
        st = read_f32(e, t, file, e->pub.data);
        release_pages(t);
        return st;
    }
    tuna_stored *s = &m->stored[e->sidx];
    int nf4 = is_nf4_target(m, i);
    if (!nf4 && !is_bf16_target(m, t)) return keep_stored(s, e, t, file, in_place);
    st = read_f32(e, t, file, tmp);
    release_pages(t);
    return st == TUNA_OK ? core_fail_in(convert_stored(s, e, tmp, nf4), file) : st;
}

int64_t tuna_nf4_bytes(int64_t n) {
    int64_t blocks = (n + 63) / 64;
    return (n + 1) / 2 + blocks + (blocks + 255) / 256 * 4 + 4;
}

void tuna_model_quant_stats(const tuna_model *m, int64_t *quantized_params, int64_t *quant_bytes) {
    int64_t n = 0, b = 0;
    for (int i = 0; i < m->n_stored; i++) {
        if (m->stored[i].type != STORE_NF4) continue;
        n += m->stored[i].n;
        b += (int64_t)nf4_storage_bytes(&m->stored[i].nf4);
    }
    *quantized_params = n;
    *quant_bytes = b;
}

static tuna_status load_impl(tuna_model **out, const char *dir, tuna_quant_type quant);

tuna_status tuna_model_load(tuna_model **out, const char *dir) { return load_impl(out, dir, TUNA_QUANT_NONE); }

tuna_status tuna_model_load_quantized(tuna_model **out, const char *dir, tuna_quant_type q) {
    if (q != TUNA_QUANT_NONE && q != TUNA_QUANT_NF4 && q != TUNA_QUANT_STORED && q != TUNA_QUANT_BF16)
        return core_fail(TUNA_ERR_ARG, "unknown quantization %d", (int)q);
    return load_impl(out, dir, q);
}

/* Every tensor of the files must be one the model uses (or a known buffer,
 * or the redundant copy of a tied lm_head). Headers only. */
static tuna_status check_unused(const tuna_model *m, const shard_set *s) {
    for (int fi = 0; fi < s->n; fi++)
        for (int ti = 0; ti < s->files[fi].n_tensors; ti++) {
            const char *name = s->files[fi].tensors[ti].name;
            if (is_known_buffer(name)) continue;
            if (m->cfg.tie_embeddings && !strcmp(name, "lm_head.weight")) continue;
            int found = 0;
            for (int i = 0; i < m->n_params && !found; i++) found = !strcmp(m->params[i].name, name);
            if (!found)
                return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is not part of a %s with this config.json",
                                 s->files[fi].path, name, m->cfg.architecture);
        }
    return TUNA_OK;
}

/* The file tensor of every parameter (ts[i], in shard fs[i]), each checked on
 * its header: nothing is read before the whole checkpoint is known good. */
static tuna_status find_tensors(const tuna_model *m, const shard_set *s, const char *dir, const st_tensor **ts, int *fs) {
    for (int i = 0; i < m->n_params; i++) {
        const st_file *f = NULL;
        ts[i] = shards_find(s, m->params[i].name, &f);
        if (!ts[i]) return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is missing from the checkpoint", dir, m->params[i].name);
        fs[i] = (int)(f - s->files);
        tuna_status st = check_header(&m->params[i], ts[i], f->path);
        if (st != TUNA_OK) return st;
    }
    return check_unused(m, s);
}

/* fp32 values of the largest tensor converted (NF4, bf16) as it is read (0: none) */
static int64_t convert_tmp_values(const tuna_model *m, const st_tensor *const *ts) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].external && (is_nf4_target(m, i) || is_bf16_target(m, ts[i])) && m->params[i].pub.numel > n)
            n = m->params[i].pub.numel;
    return n;
}

/* The model keeps the mappings its stored tensors point into (freed with it). */
static tuna_status keep_maps(tuna_model *m, shard_set *s, const int *used) {
    for (int fi = 0; fi < s->n; fi++) {
        if (!used[fi]) continue;
        struct model_map *mp = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *mp);
        if (!mp) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        m->maps = mp;
        m->maps[m->n_maps++] = (struct model_map){s->files[fi].map, s->files[fi].map_size};
        s->files[fi].map = NULL; /* st_close leaves it mapped */
    }
    return TUNA_OK;
}

static tuna_status load_all(tuna_model *m, shard_set *s, const char *dir) {
    const st_tensor **ts = calloc((size_t)m->n_params, sizeof *ts);
    int *fs = calloc((size_t)m->n_params, sizeof *fs), used[MAX_SHARDS] = {0};
    float *tmp = NULL;
    tuna_status st = !ts || !fs ? core_fail(TUNA_ERR_NOMEM, "out of memory") : find_tensors(m, s, dir, ts, fs);
    int64_t nt = st == TUNA_OK ? convert_tmp_values(m, ts) : 0;
    if (nt && !(tmp = malloc((size_t)nt * sizeof(float)))) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TUNA_OK && i < m->n_params; i++)
        st = load_param(m, i, ts[i], s->files[fs[i]].path, tmp, &used[fs[i]]);
    if (st == TUNA_OK) st = keep_maps(m, s, used);
    if (st == TUNA_OK) st = model_link_stored(m);
    free(tmp);
    free(fs);
    free(ts);
    return st;
}

static tuna_status load_impl(tuna_model **out, const char *dir, tuna_quant_type quant) {
    *out = NULL;
    char path[PATH_MAX];
    struct stat sb;
    /* a llama.cpp file instead of a folder (e.g. one tuna exported): fp32 or as stored */
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode) && tuna_is_gguf(dir)) {
        if (quant == TUNA_QUANT_NF4 || quant == TUNA_QUANT_BF16)
            return core_fail(TUNA_ERR_UNSUPPORTED, "%s: %s of a GGUF model is not supported (load it as stored)", dir,
                             quant == TUNA_QUANT_NF4 ? "NF4 quantization" : "conversion to bf16");
        return gguf_model_load(out, dir, quant);
    }
    if (stat(dir, &sb) != 0) return core_fail(TUNA_ERR_IO, "%s: not a model folder (%s)", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return core_fail(TUNA_ERR_IO, "%s: not a folder (a model is a folder with config.json and its weights, or a GGUF file)", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    tuna_config cfg;
    tuna_status st = tuna_config_load(&cfg, path);
    if (st != TUNA_OK) return st;
    shard_set *s = calloc(1, sizeof *s);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    st = shards_open(s, dir);
    if (st != TUNA_OK) { free(s); return st; }
    tuna_model *m = calloc(1, sizeof *m);
    if (!m) { shards_close(s); free(s); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    m->cfg = cfg;
    if (cfg.family == TUNA_FAMILY_GPT2) {
        /* save_pretrained writes "transformer.*"; the original hub file has no prefix */
        const st_file *f;
        snprintf(m->prefix, sizeof m->prefix, "%s", shards_find(s, "transformer.wte.weight", &f) ? "transformer." : "");
    }
    m->quant_type = quant;
    st = model_build(m, 0);
    if (st == TUNA_OK) st = load_all(m, s, dir);
    shards_close(s);
    free(s);
    if (st != TUNA_OK) { tuna_model_free(m); return st; }
    *out = m;
    return TUNA_OK;
}

/* Adds parameter i to the shard being written: fp32 data as they are, else
 * (kept as stored, or changed by an adapter folded on write) file rows read
 * through *src as written. */
static tuna_status add_param(st_writer *w, const tuna_model *m, int i, st_dtype sd, param_rows *src, rows_tile *tile) {
    const tuna_param *p = &m->params[i].pub;
    if (!param_rows_needed(m, i)) {
        /* GPT-2 Conv1D weights go back to the file's [in, out] row by row */
        if (p->transposed) return st_writer_add_transposed(w, p->name, sd, p->shape[0], p->shape[1], p->data);
        return st_writer_add(w, p->name, sd, p->ndim, p->shape, p->data);
    }
    param_rows_init(src, m, i, tile, 0, 1);
    return st_writer_add_rows(w, p->name, sd, p->ndim, p->shape, param_rows_read, src);
}

tuna_status tuna_model_save(const tuna_model *m, const char *dir, tuna_dtype dtype) {
    return tuna_model_save_sharded(m, dir, dtype, 0);
}

/* removes model*.safetensors files and the index that this save did not write
 * (a sharded export over an unsharded one, or another shard count) */
static void remove_stale(const char *dir, int n_shards) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, n_shards > 1 ? "model.safetensors" : "model.safetensors.index.json");
    unlink(p);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int k, n, len = 0;
        if (sscanf(e->d_name, "model-%5d-of-%5d.safetensors%n", &k, &n, &len) == 2 && len == (int)strlen(e->d_name) &&
            (n_shards == 1 || n != n_shards)) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

tuna_status tuna_model_save_sharded(const tuna_model *m, const char *dir, tuna_dtype dtype, int64_t max_shard_bytes) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return core_fail(atomic_write_status(errno), "%s: cannot create: %s", dir, strerror(errno));
    if (m->quant_type == TUNA_QUANT_NF4)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: a model with NF4-quantized weights cannot be saved (load the original to merge or export)", dir);
    st_dtype sd = dtype == TUNA_DTYPE_F16 ? ST_F16 : dtype == TUNA_DTYPE_BF16 ? ST_BF16 : ST_F32;
    size_t esz = st_dtype_size(sd);
    /* shards as transformers' save_pretrained splits them: tensors in order, a
     * new shard when the next tensor would pass the limit (a larger tensor
     * gets a shard of its own) */
    int *shard_of = malloc((size_t)(m->n_params ? m->n_params : 1) * sizeof *shard_of);
    param_rows *srcs = calloc((size_t)(m->n_params ? m->n_params : 1), sizeof *srcs);
    rows_tile tile = {0};
    tuna_status st = !shard_of || !srcs ? core_fail(TUNA_ERR_NOMEM, "out of memory") : rows_tile_init(&tile, m);
    if (st != TUNA_OK) { free(shard_of); free(srcs); rows_tile_free(&tile); return st; }
    int n_shards = 1;
    int64_t cur = 0, total = 0;
    for (int i = 0; i < m->n_params; i++) {
        int64_t b = m->params[i].pub.numel * (int64_t)esz;
        if (max_shard_bytes > 0 && cur > 0 && cur + b > max_shard_bytes) { n_shards++; cur = 0; }
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    if (n_shards > 99999) st = core_fail(TUNA_ERR_ARG, "%s: %d shards: raise the shard size", dir, n_shards);
    char path[PATH_MAX];
    json_t *wm = n_shards > 1 ? json_object() : NULL;
    for (int k = 0; st == TUNA_OK && k < n_shards; k++) {
        st_writer *w = st_writer_new();
        if (!w) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
        st_writer_meta(w, "format", "pt");
        char fname[64];
        if (n_shards > 1) snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        else snprintf(fname, sizeof fname, "model.safetensors");
        for (int i = 0; st == TUNA_OK && i < m->n_params; i++) {
            if (shard_of[i] != k) continue;
            st = add_param(w, m, i, sd, &srcs[i], &tile);
            if (wm) json_object_set_new(wm, m->params[i].name, json_string(fname));
        }
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        if (st == TUNA_OK) st = st_writer_finish(w, path);
        else st_writer_free(w);
    }
    free(shard_of);
    free(srcs);
    rows_tile_free(&tile);
    if (st == TUNA_OK && wm) {
        json_t *idx = json_pack("{s:{s:I},s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        st = atomic_file_write_json(path, idx, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(idx);
    }
    json_decref(wm);
    if (st != TUNA_OK) return st;
    remove_stale(dir, n_shards);
    tuna_config c = m->cfg;
    c.dtype = dtype;
    snprintf(path, sizeof path, "%s/config.json", dir);
    return tuna_config_save(&c, path);
}

tuna_status tuna_model_load_weights(tuna_model *m, const char *dir) {
    if (m->n_stored)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: weights cannot be replaced in a model whose weights are kept as stored", dir);
    tuna_model *o = NULL;
    tuna_status st = tuna_model_load(&o, dir);
    if (st != TUNA_OK) return st;
    if (o->n_weights != m->n_weights || o->n_params != m->n_params) {
        tuna_model_free(o);
        return core_fail(TUNA_ERR_FORMAT, "%s: weights of a different architecture than the model in memory", dir);
    }
    memcpy(m->weights, o->weights, (size_t)m->n_weights * sizeof(float));
    model_bf16_copies_stale(m);
    tuna_model_free(o);
    return TUNA_OK;
}
