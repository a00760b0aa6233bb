/* ckpt_scan.c — a checkpoint described from its headers (see ckpt_scan.h).
 * A safetensors file is read with two small preads: its 8-byte header length
 * and the JSON header; the data block is never touched (nor checked: loading
 * does that), so a shard whose data is damaged is still described. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/ckpt_scan.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/llama2c.h"
#include "model/model_internal.h"
#include "tuna_gguf.h"

#define MAX_HEADER (100L << 20) /* safetensors' own limit on the JSON header */

const char *ckpt_group_name(ckpt_group g) {
    static const char *n[] = {"embeddings", "block linears", "norms and biases", "lm_head", "other"};
    return g < CKPT_NGROUPS ? n[g] : "?";
}

static int has(const char *s, const char *part) { return strstr(s, part) != NULL; }

/* Checkpoint buffers that are not parameters (the loader skips them too). */
static int is_buffer(const char *name) {
    return has(name, ".attn.bias") || has(name, ".attn.masked_bias") || has(name, "rotary_emb.inv_freq") ||
           !strcmp(name, "rope_freqs.weight");
}

static ckpt_group group_of(const char *name, int ndim) {
    if (has(name, "embed_tokens.") || has(name, "wte.") || has(name, "wpe.") || has(name, "token_embd.") || has(name, "position_embd."))
        return CKPT_EMBED;
    if (!strcmp(name, "lm_head.weight") || !strcmp(name, "output.weight")) return CKPT_HEAD;
    return ndim == 1 ? CKPT_NORM : ndim == 2 ? CKPT_LINEAR : CKPT_OTHER;
}

static tuna_status add_tensor(ckpt_info *ci, const char *name, const char *dtype, int ndim, int64_t numel, int64_t bytes) {
    if (is_buffer(name) || (ci->cfg.tie_embeddings && !strcmp(name, "lm_head.weight"))) return TUNA_OK;
    if ((ci->n & (ci->n - 1)) == 0) { /* grow at powers of two */
        ckpt_tensor *t = realloc(ci->t, (size_t)(ci->n ? 2 * ci->n : 1) * sizeof *t);
        if (!t) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        ci->t = t;
    }
    ckpt_tensor *t = &ci->t[ci->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->numel = numel;
    t->bytes = bytes;
    t->group = group_of(name, ndim);
    return TUNA_OK;
}

/* The JSON header of one safetensors file, read with pread. */
static tuna_status read_header(const char *path, json_t **out, int64_t *file_bytes) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char len8[8];
    tuna_status st = TUNA_OK;
    uint64_t n = 0;
    if (fstat(fd, &sb) != 0 || pread(fd, len8, 8, 0) != 8) st = core_fail(TUNA_ERR_FORMAT, "%s: shorter than a safetensors header", path);
    for (int i = 7; st == TUNA_OK && i >= 0; i--) n = n << 8 | len8[i];
    if (st == TUNA_OK && (n < 2 || n > MAX_HEADER || (int64_t)n > (int64_t)sb.st_size - 8))
        st = core_fail(TUNA_ERR_FORMAT, "%s: header length %llu does not fit the file (%lld bytes)", path, (unsigned long long)n,
                       (long long)sb.st_size);
    char *buf = st == TUNA_OK ? malloc(n) : NULL;
    if (st == TUNA_OK && !buf) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st == TUNA_OK && pread(fd, buf, n, 8) != (ssize_t)n) st = core_fail(TUNA_ERR_IO, "%s: cannot read the header", path);
    json_error_t je;
    if (st == TUNA_OK && !(*out = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je)))
        st = core_fail(TUNA_ERR_FORMAT, "%s: header is not valid JSON: %s", path, je.text);
    free(buf);
    close(fd);
    *file_bytes = sb.st_size;
    return st;
}

/* One tensor entry of a header: {"dtype", "shape", "data_offsets"}. */
static tuna_status header_tensor(ckpt_info *ci, const char *path, const char *name, json_t *e) {
    json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || json_array_size(sh) > 8 || !json_is_array(off) || json_array_size(off) != 2)
        return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets", path, name);
    int64_t numel = 1;
    for (size_t i = 0; i < json_array_size(sh); i++) {
        json_int_t d = json_integer_value(json_array_get(sh, i));
        if (!json_is_integer(json_array_get(sh, i)) || d < 0 || (d && numel > INT64_MAX / d))
            return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s': bad shape", path, name);
        numel *= d;
    }
    json_int_t b = json_integer_value(json_array_get(off, 0)), e2 = json_integer_value(json_array_get(off, 1));
    if (b < 0 || e2 < b) return core_fail(TUNA_ERR_FORMAT, "%s: tensor '%s': bad data_offsets", path, name);
    return add_tensor(ci, name, json_string_value(dt), (int)json_array_size(sh), numel, e2 - b);
}

static tuna_status scan_shard(ckpt_info *ci, const char *path) {
    json_t *h;
    int64_t size;
    tuna_status st = read_header(path, &h, &size);
    if (st != TUNA_OK) return st;
    const char *name;
    json_t *e;
    json_object_foreach(h, name, e) {
        if (!strcmp(name, "__metadata__")) continue;
        if ((st = header_tensor(ci, path, name, e)) != TUNA_OK) break;
    }
    json_decref(h);
    ci->disk_bytes += size;
    ci->n_files++;
    return st;
}

/* model.safetensors, or each shard the index names (once). */
static tuna_status scan_safetensors(ckpt_info *ci, const char *dir) {
    char path[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &sb) == 0) return scan_shard(ci, path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_error_t je;
    json_t *idx = json_load_file(path, 0, &je);
    if (!idx) return core_fail(errno == ENOENT ? TUNA_ERR_IO : TUNA_ERR_FORMAT, "%s: %s", path, je.text);
    json_t *wm = json_object_get(idx, "weight_map"), *seen = json_object();
    tuna_status st = json_is_object(wm) ? TUNA_OK : core_fail(TUNA_ERR_FORMAT, "%s: missing \"weight_map\" object", path);
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        const char *f = json_string_value(v);
        if (st != TUNA_OK || (f && json_object_get(seen, f))) continue;
        if (!f || strchr(f, '/')) { st = core_fail(TUNA_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a plain file name", path, key); break; }
        json_object_set_new(seen, f, json_true());
        char sp[PATH_MAX];
        snprintf(sp, sizeof sp, "%s/%s", dir, f);
        st = scan_shard(ci, sp);
    }
    json_decref(seen);
    json_decref(idx);
    return st;
}

static tuna_status scan_gguf(ckpt_info *ci, const char *path) {
    gguf_file f;
    tuna_status st = gguf_open(&f, path);
    if (st != TUNA_OK) return st;
    st = gguf_model_config(&f, path, &ci->cfg);
    for (size_t i = 0; st == TUNA_OK && i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        st = add_tensor(ci, t->name, gguf_type_name(t->type), t->ndim, t->numel, (int64_t)t->nbytes);
    }
    ci->disk_bytes = (int64_t)f.size;
    ci->n_files = 1;
    ci->gguf = ci->mapped = 1;
    gguf_close(&f);
    return st;
}

/* A config.json alone (or a llama2.c checkpoint, all fp32): the tensors of
 * its parameter table, in its torch_dtype. */
static tuna_status scan_config_only(ckpt_info *ci) {
    tuna_model *m;
    tuna_status st = model_skeleton(&m, &ci->cfg);
    if (st != TUNA_OK) return st;
    const char *dt = ci->cfg.dtype == TUNA_DTYPE_BF16 ? "BF16" : ci->cfg.dtype == TUNA_DTYPE_F16 ? "F16" : "F32";
    int64_t size = ci->cfg.dtype == TUNA_DTYPE_F32 ? 4 : 2;
    for (int i = 0; st == TUNA_OK && i < m->n_params; i++) {
        const tuna_param *p = &m->params[i].pub;
        st = add_tensor(ci, p->name, dt, p->ndim, p->numel, p->numel * size);
    }
    tuna_model_free(m);
    return st;
}

/* A llama2.c checkpoint: its 28-byte header. */
static tuna_status scan_llama2c(ckpt_info *ci, const char *path, int64_t size) {
    FILE *f = fopen(path, "rb");
    if (!f) return core_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    tuna_status st = llama2c_config(f, path, &ci->cfg);
    fclose(f);
    if (st == TUNA_OK) st = scan_config_only(ci);
    ci->disk_bytes = size;
    ci->n_files = 1;
    return st;
}

tuna_status ckpt_scan(ckpt_info *ci, const char *path) {
    memset(ci, 0, sizeof *ci);
    struct stat sb;
    if (stat(path, &sb) != 0) return core_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    tuna_status st;
    size_t n = strlen(path);
    if (S_ISREG(sb.st_mode) && tuna_is_gguf(path)) st = scan_gguf(ci, path);
    else if (S_ISREG(sb.st_mode) && n >= 5 && !strcmp(path + n - 5, ".json")) {
        st = tuna_config_load(&ci->cfg, path);
        if (st == TUNA_OK) st = scan_config_only(ci);
    } else if (S_ISREG(sb.st_mode)) {
        st = scan_llama2c(ci, path, (int64_t)sb.st_size);
    } else {
        char cp[PATH_MAX];
        snprintf(cp, sizeof cp, "%s/config.json", path);
        st = tuna_config_load(&ci->cfg, cp);
        if (st == TUNA_OK) st = scan_safetensors(ci, path);
        ci->mapped = 1;
    }
    if (st != TUNA_OK) ckpt_free(ci);
    return st;
}

void ckpt_free(ckpt_info *ci) {
    free(ci->t);
    ci->t = NULL;
    ci->n = 0;
}
