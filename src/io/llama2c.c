/* llama2c.c — import of llama2.c checkpoints (legacy format: 7 int32 header
 * dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative = separate
 * classifier), seq_len; then fp32 tensors). llama2.c's RoPE rotates adjacent
 * pairs (2i, 2i+1) where HF's rotate_half pairs i with i+HD/2, so the rows of
 * wq and wk are permuted per head (even rows first, then odd rows): the
 * converted model then gives llama2.c's logits under HF semantics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/llama2c.h"
#include "io/safetensors.h"
#include "model/model_internal.h"
#include "tuna_llama2c.h"
#include "core/error.h"

/* rows of one [H*HD, IC] projection: new row h*HD+j takes old row
 * h*HD + 2j (j < HD/2) or h*HD + 2(j-HD/2)+1 */
static void permute_rope_rows(float *dst, const float *src, int H, int HD, int IC) {
    for (int h = 0; h < H; h++)
        for (int j = 0; j < HD; j++) {
            int old = j < HD / 2 ? 2 * j : 2 * (j - HD / 2) + 1;
            memcpy(dst + ((long)h * HD + j) * IC, src + ((long)h * HD + old) * IC, (size_t)IC * sizeof(float));
        }
}

tuna_status llama2c_config(FILE *f, const char *checkpoint, tuna_config *cfg) {
    int32_t h[7];
    if (fseek(f, 0, SEEK_SET) != 0 || fread(h, sizeof(int32_t), 7, f) != 7)
        return core_fail(TUNA_ERR_FORMAT, "%s: too short for a llama2.c header", checkpoint);
    int dim = h[0], hidden = h[1], L = h[2], NH = h[3], NKV = h[4], V = h[5] < 0 ? -h[5] : h[5], S = h[6];
    int shared = h[5] > 0;
    if (dim <= 0 || hidden <= 0 || L <= 0 || NH <= 0 || NKV <= 0 || V <= 0 || S <= 0 || dim % NH || NH % NKV ||
        dim > 65536 || hidden > 1 << 20 || L > 1024 || V > 1 << 22 || S > 1 << 22 || (dim / NH) % 2)
        return core_fail(TUNA_ERR_FORMAT, "%s: implausible llama2.c header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq_len %d)",
                         checkpoint, dim, hidden, L, NH, NKV, h[5], S);
    int HD = dim / NH, KD = NKV * HD;
    struct stat sb;
    fstat(fileno(f), &sb);
    long long expect = 7 * 4 + 4LL * ((long long)V * dim + 2LL * L * dim + (long long)L * dim * dim * 2 +
                                      2LL * L * KD * dim + 3LL * L * hidden * dim + dim + (long long)S * HD +
                                      (shared ? 0 : (long long)V * dim));
    if (sb.st_size != expect)
        return core_fail(TUNA_ERR_FORMAT, "%s: %lld bytes, but the header implies %lld (truncated or not a llama2.c checkpoint)",
                         checkpoint, (long long)sb.st_size, expect);
    tuna_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.family = TUNA_FAMILY_LLAMA;
    c.norm = TUNA_NORM_RMSNORM;
    c.mlp = TUNA_MLP_SWIGLU;
    c.V = V; c.C = dim; c.L = L; c.NH = NH; c.NKV = NKV; c.HD = HD; c.FF = hidden;
    c.max_positions = S;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tie_embeddings = shared;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    c.pad_token_id = -1;
    c.dtype = TUNA_DTYPE_F32;
    c.initializer_range = 0.02f;
    *cfg = c;
    return TUNA_OK;
}

tuna_status tuna_llama2c_convert(const char *checkpoint, const char *out_dir) {
    FILE *f = fopen(checkpoint, "rb");
    if (!f) return core_fail(TUNA_ERR_IO, "%s: cannot open: %s", checkpoint, strerror(errno));
    tuna_config c;
    tuna_status hst = llama2c_config(f, checkpoint, &c);
    if (hst != TUNA_OK) { fclose(f); return hst; }
    int dim = c.C, hidden = c.FF, L = c.L, NH = c.NH, NKV = c.NKV, V = c.V, S = c.max_positions, HD = c.HD, KD = NKV * HD;
    int shared = c.tie_embeddings;
    tuna_model *m;
    tuna_status st = tuna_model_create(&m, &c);
    if (st != TUNA_OK) { fclose(f); return st; }
    float *tmp = malloc((size_t)dim * dim * sizeof(float) > (size_t)hidden * dim * sizeof(float)
                            ? (size_t)dim * dim * sizeof(float) : (size_t)hidden * dim * sizeof(float));
    int ok = tmp != NULL;
#define RD(ptr, count) (ok = ok && fread((ptr), sizeof(float), (size_t)(count), f) == (size_t)(count))
    RD(m->wte, (long)V * dim);
    for (int l = 0; l < L; l++) RD(m->blocks[l].ln1_w, dim);
    for (int l = 0; l < L; l++) { RD(tmp, (long)dim * dim); if (ok) permute_rope_rows(m->blocks[l].q.w, tmp, NH, HD, dim); }
    for (int l = 0; l < L; l++) { RD(tmp, (long)KD * dim); if (ok) permute_rope_rows(m->blocks[l].k.w, tmp, NKV, HD, dim); }
    for (int l = 0; l < L; l++) RD(m->blocks[l].v.w, (long)KD * dim);
    for (int l = 0; l < L; l++) RD(m->blocks[l].o.w, (long)dim * dim);
    for (int l = 0; l < L; l++) RD(m->blocks[l].ln2_w, dim);
    for (int l = 0; l < L; l++) RD(m->blocks[l].gate.w, (long)hidden * dim);
    for (int l = 0; l < L; l++) RD(m->blocks[l].down.w, (long)dim * hidden);
    for (int l = 0; l < L; l++) RD(m->blocks[l].up.w, (long)hidden * dim);
    RD(m->lnf_w, dim);
    /* freq_cis tables: llama2.c run.c recomputes them; skip */
    ok = ok && fseek(f, (long)S * HD * (long)sizeof(float), SEEK_CUR) == 0;
    if (!shared) RD(m->lm_head.w, (long)V * dim);
#undef RD
    free(tmp);
    fclose(f);
    if (!ok) { tuna_model_free(m); return core_fail(TUNA_ERR_FORMAT, "%s: read failed (truncated?)", checkpoint); }
    for (int i = 0; st == TUNA_OK && i < m->n_params; i++) /* a NaN or infinite weight, named as HF names it */
        st = st_check_finite(m->params[i].pub.data, m->params[i].pub.numel, checkpoint, m->params[i].pub.name);
    if (st == TUNA_OK) st = tuna_model_save(m, out_dir, TUNA_DTYPE_F32);
    tuna_model_free(m);
    return st;
}
