/* model_io.c — loading and saving HF model folders.
 * Loading: config.json, then model.safetensors or the shards named by
 * model.safetensors.index.json, memory-mapped; every tensor the config implies
 * must be present with the right shape and a float dtype (converted to fp32);
 * a tensor the model would not use is an error rather than silently dropped,
 * except known non-parameter buffers. Saving writes model.safetensors and
 * config.json atomically in the file layout (GPT-2 Conv1D transposed back). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/model_internal.h"
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
    json_t *idx = json_load_file(path, 0, &jerr);
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
    }
    for (int i = 0; st == TUNA_OK && i < n; i++) {
        char sp[PATH_MAX];
        snprintf(sp, sizeof sp, "%s/%s", dir, names[i]);
        st = st_open(&s->files[s->n], sp);
        if (st == TUNA_OK) s->n++;
    }
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

/* Converts tensor t of the file into dest (fp32, our layout) after checking it. */
static tuna_status load_tensor(tuna_param_entry *e, const st_tensor *t, const char *file, float *dest) {
    tuna_param *p = &e->pub;
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
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: F32, F16, BF16)", file,
                         p->name, st_dtype_name(t->dtype));
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

/* NF4 storage of the block linears: one tuna_quant per quantized weight and
 * one fp32 scratch the size of the largest (the dequantization tile). */
static tuna_status setup_quant(tuna_model *m, tuna_linear ***by_param) {
    tuna_linear *ls[8 * 1024];
    int n = model_linears(m, ls);
    int64_t maxn = 1;
    m->quants = calloc((size_t)n, sizeof *m->quants);
    *by_param = calloc((size_t)m->n_params, sizeof **by_param);
    if (!m->quants || !*by_param) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        tuna_param_entry *e = &m->params[ls[i]->wparam];
        if (!e->external) continue;
        if (e->pub.numel > maxn) maxn = e->pub.numel;
        ls[i]->quant = &m->quants[m->n_quants++];
        (*by_param)[ls[i]->wparam] = ls[i];
    }
    m->quant_scratch = malloc((size_t)maxn * sizeof(float));
    if (!m->quant_scratch) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_quants; i++) m->quants[i].scratch = m->quant_scratch;
    return TUNA_OK;
}

int64_t tuna_nf4_bytes(int64_t n) {
    int64_t blocks = (n + 63) / 64;
    return (n + 1) / 2 + blocks + (blocks + 255) / 256 * 4 + 4;
}

void tuna_model_quant_stats(const tuna_model *m, int64_t *quantized_params, int64_t *quant_bytes) {
    int64_t n = 0, b = 0;
    for (int i = 0; i < m->n_quants; i++) {
        n += m->quants[i].t.n;
        b += (int64_t)nf4_storage_bytes(&m->quants[i].t);
    }
    *quantized_params = n;
    *quant_bytes = b;
}

static tuna_status load_impl(tuna_model **out, const char *dir, tuna_quant_type quant);

tuna_status tuna_model_load(tuna_model **out, const char *dir) { return load_impl(out, dir, TUNA_QUANT_NONE); }

tuna_status tuna_model_load_quantized(tuna_model **out, const char *dir, tuna_quant_type q) {
    if (q != TUNA_QUANT_NONE && q != TUNA_QUANT_NF4) return core_fail(TUNA_ERR_ARG, "unknown quantization %d", (int)q);
    return load_impl(out, dir, q);
}

static tuna_status load_impl(tuna_model **out, const char *dir, tuna_quant_type quant) {
    *out = NULL;
    char path[PATH_MAX];
    struct stat sb;
    /* a llama.cpp file instead of a folder (e.g. one tuna exported) */
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode) && tuna_is_gguf(dir)) {
        if (quant != TUNA_QUANT_NONE) return core_fail(TUNA_ERR_UNSUPPORTED, "%s: NF4 quantization of a GGUF model is not supported", dir);
        return tuna_model_load_gguf(out, dir);
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
    tuna_linear **by_param = NULL;
    if (st == TUNA_OK && quant != TUNA_QUANT_NONE) st = setup_quant(m, &by_param);
    int used_lm_head = 0;
    for (int i = 0; st == TUNA_OK && i < m->n_params; i++) {
        const st_file *f = NULL;
        const st_tensor *t = shards_find(s, m->params[i].name, &f);
        if (!t) {
            st = core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is missing from the checkpoint", dir, m->params[i].name);
            break;
        }
        if (!m->params[i].external) { st = load_tensor(&m->params[i], t, f->path, m->params[i].pub.data); continue; }
        /* quantize as it is read: the fp32 copy is one tensor in the scratch */
        tuna_linear *l = by_param[i];
        st = load_tensor(&m->params[i], t, f->path, m->quant_scratch);
        if (st == TUNA_OK) st = nf4_quantize(&l->quant->t, m->quant_scratch, m->params[i].pub.numel);
    }
    free(by_param);
    if (st == TUNA_OK && m->n_quants) {
        /* training needs one dequantization tile, not a whole weight: shrink */
        int64_t tile = 1;
        tuna_linear *ls[8 * 1024];
        int nl = model_linears(m, ls);
        for (int i = 0; i < nl; i++) {
            if (!ls[i]->quant) continue;
            int64_t rows = LINEAR_TILE / ls[i]->IC;
            if (rows < 1) rows = 1;
            if (rows > ls[i]->OC) rows = ls[i]->OC;
            if (rows * ls[i]->IC > tile) tile = rows * ls[i]->IC;
        }
        float *p = realloc(m->quant_scratch, (size_t)tile * sizeof(float));
        if (p) {
            m->quant_scratch = p;
            for (int i = 0; i < m->n_quants; i++) m->quants[i].scratch = p;
        }
    }
    /* every tensor in the files must have been used */
    for (int fi = 0; st == TUNA_OK && fi < s->n; fi++)
        for (int ti = 0; st == TUNA_OK && ti < s->files[fi].n_tensors; ti++) {
            const char *name = s->files[fi].tensors[ti].name;
            if (is_known_buffer(name)) continue;
            if (cfg.tie_embeddings && !strcmp(name, "lm_head.weight")) { used_lm_head = 1; continue; }
            int found = 0;
            for (int i = 0; i < m->n_params && !found; i++) found = !strcmp(m->params[i].name, name);
            if (!found)
                st = core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s' is not part of a %s with this config.json", s->files[fi].path,
                               name, cfg.architecture);
        }
    (void)used_lm_head; /* a tied lm_head copy in the file is redundant: wte is used */
    shards_close(s);
    free(s);
    if (st != TUNA_OK) { tuna_model_free(m); return st; }
    *out = m;
    return TUNA_OK;
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
    if (m->quant_type != TUNA_QUANT_NONE)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: a model with NF4-quantized weights cannot be saved (load the original to merge or export)", dir);
    st_dtype sd = dtype == TUNA_DTYPE_F16 ? ST_F16 : dtype == TUNA_DTYPE_BF16 ? ST_BF16 : ST_F32;
    size_t esz = st_dtype_size(sd);
    /* shards as transformers' save_pretrained splits them: tensors in order, a
     * new shard when the next tensor would pass the limit (a larger tensor
     * gets a shard of its own) */
    int *shard_of = malloc((size_t)(m->n_params ? m->n_params : 1) * sizeof *shard_of);
    if (!shard_of) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    int n_shards = 1;
    int64_t cur = 0, total = 0;
    for (int i = 0; i < m->n_params; i++) {
        int64_t b = m->params[i].pub.numel * (int64_t)esz;
        if (max_shard_bytes > 0 && cur > 0 && cur + b > max_shard_bytes) { n_shards++; cur = 0; }
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    if (n_shards > 99999) { free(shard_of); return core_fail(TUNA_ERR_ARG, "%s: %d shards: raise the shard size", dir, n_shards); }
    tuna_status st = TUNA_OK;
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
            const tuna_param *p = &m->params[i].pub;
            /* GPT-2 Conv1D weights go back to the file's [in, out] row by row */
            if (p->transposed) st = st_writer_add_transposed(w, p->name, sd, p->shape[0], p->shape[1], p->data);
            else st = st_writer_add(w, p->name, sd, p->ndim, p->shape, p->data);
            if (wm) json_object_set_new(wm, p->name, json_string(fname));
        }
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        if (st == TUNA_OK) st = st_writer_finish(w, path);
        else st_writer_free(w);
    }
    free(shard_of);
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
    tuna_model *o = NULL;
    tuna_status st = tuna_model_load(&o, dir);
    if (st != TUNA_OK) return st;
    if (o->n_weights != m->n_weights || o->n_params != m->n_params) {
        tuna_model_free(o);
        return core_fail(TUNA_ERR_FORMAT, "%s: weights of a different architecture than the model in memory", dir);
    }
    memcpy(m->weights, o->weights, (size_t)m->n_weights * sizeof(float));
    tuna_model_free(o);
    return TUNA_OK;
}
