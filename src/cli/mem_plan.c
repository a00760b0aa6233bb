/* mem_plan.c — the memory estimator (see mem_plan.h for what it assumes).
 *
 * peak = baseline + max(load, train, reference) where
 *   load      = final weights + the largest tensor in flight (full: its mapped
 *               pages while it is converted to fp32; qlora: its fp32 scratch)
 *   train     = frozen + trainable·(4 weight + 4 gradient + 8 AdamW) bytes
 *               + activations(rows, T, mode) + adapter buffers + NF4 tile + data
 *   reference = dpo only: the weights + evaluation activations of the
 *               reference pass (2 rows per pair), before the trainer exists;
 *               grpo: the rollouts' decoder and, full, the frozen reference
 *               copy with its evaluation activations, added to train (held
 *               beside it)
 * and for inference: frozen (NF4 with --quant nf4, bf16 with --dtype bf16) +
 * NF4 tile + decoder (generate, serve) or evaluation activations (eval). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mem_plan.h"
#include "commands.h"
#include "core/error.h"
#include "model/adapter_hooks.h"
#include "model/linear.h"
#include "model/model_internal.h"
#include "model/stored.h"
#include "tuna_infer.h"

/* RSS of a tuna process before any model memory (measured: `tuna info` on a
 * tiny model peaks at ~17.6 MiB, a training run of a tiny model at ~17.75 MiB
 * beyond its buffers, of which ~3.6 MiB are the libraries libmicrohttpd
 * brings for tuna serve (GnuTLS and its dependencies), ~1.2 MiB Open MPI's
 * ~4 MiB oneDNN's (relocations of its 40 MB library) and ~3.4 MiB libcurl's
 * for the Hub (OpenSSL, nghttp2, libssh2, LDAP, Kerberos); OpenBLAS work buffers: up to a few MiB per
 * thread, bounded by the largest operand it packs) */
#define BASELINE_BYTES (17.75 * 1048576.0) /* a whole number of bytes: info and plan round alike */
#define BLAS_PER_THREAD_MAX (8.0 * 1048576.0)

void mem_opts_init(mem_opts *o, mem_job job) {
    memset(o, 0, sizeof *o);
    o->job = job;
    o->method = "full";
    tuna_peft_config_default(&o->pc, TUNA_PEFT_LORA);
    tuna_train_args a; /* sft's defaults */
    tuna_train_args_default(&a);
    o->batch = a.batch;
    o->seq_len = a.seq_len;
    o->rows = 1;
}

int mem_method_type(const char *m) {
    return !strcmp(m, "full") ? TUNA_PEFT_NONE : !strcmp(m, "lora") || !strcmp(m, "qlora") ? TUNA_PEFT_LORA
         : !strcmp(m, "ia3") ? TUNA_PEFT_IA3 : !strcmp(m, "prompt") ? TUNA_PEFT_PROMPT : -1;
}

static int threads(void) {
#ifdef _OPENMP
    extern int omp_get_max_threads(void);
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static double baseline(const tuna_config *c) {
    double largest = (double)c->V * c->C * 4, ff = (double)c->FF * c->C * 4;
    if (ff > largest) largest = ff;
    return BASELINE_BYTES + (largest < BLAS_PER_THREAD_MAX ? largest : BLAS_PER_THREAD_MAX) * threads();
}

/* GGUF k-quant (Q2_K..Q6_K) and Q5_0/Q5_1 tensors have no kernels: the
 * loader keeps them as fp32 copies (io/gguf_model.c) */
static int fp32_at_load(const ckpt_tensor *t) {
    return t->dtype[0] == 'Q' && (strchr(t->dtype, 'K') || !strcmp(t->dtype, "Q5_0") || !strcmp(t->dtype, "Q5_1"));
}

/* Resident bytes of a frozen tensor kept as stored: all of it, except an
 * untied token embedding used in place from the mapping, of which only the
 * rows of one lookup chunk are resident at a time (model_embed_done). */
static double stored_resident(const ckpt_info *ci, const ckpt_tensor *t) {
    if (fp32_at_load(t)) return 4.0 * t->numel;
    int token_embed = t->group == CKPT_EMBED && !strstr(t->name, "wpe.") && !strstr(t->name, "position_embd.");
    if (!token_embed || !ci->mapped || ci->cfg.tie_embeddings) return (double)t->bytes;
    double row = (double)t->bytes / ci->cfg.V * STORED_LOOKUP_ROWS;
    return row < (double)t->bytes ? row : (double)t->bytes;
}

/* --dtype bf16 converts every 2-D weight not stored in bf16 into an owned
 * bf16 copy (all of it resident) */
static int to_bf16(const ckpt_tensor *t, int bf16) {
    return bf16 && (t->group == CKPT_EMBED || t->group == CKPT_LINEAR || t->group == CKPT_HEAD) && strcmp(t->dtype, "BF16");
}

/* Frozen weights: as stored, block linears in NF4 when nf4, 2-D weights in
 * bf16 when bf16; *tile: the NF4 dequantization tile; *biggest: the fp32
 * bytes of the largest tensor converted at load (NF4 or bf16). */
static double frozen_bytes(const ckpt_info *ci, int nf4, int bf16, double *tile, double *biggest) {
    double sum = 0;
    int64_t maxn = 0, maxc = 0;
    for (int i = 0; i < ci->n; i++) {
        const ckpt_tensor *t = &ci->t[i];
        int q = nf4 && t->group == CKPT_LINEAR, b = to_bf16(t, bf16);
        sum += q ? (double)tuna_nf4_bytes(t->numel) : b ? 2.0 * t->numel : stored_resident(ci, t);
        if (q && t->numel > maxn) maxn = t->numel;
        if ((q || b) && t->numel > maxc) maxc = t->numel;
    }
    *tile = 4.0 * (maxn < LINEAR_TILE ? maxn : LINEAR_TILE);
    *biggest = 4.0 * maxc;
    return sum;
}

static double largest_stored(const ckpt_info *ci) {
    double m = 0;
    for (int i = 0; i < ci->n; i++)
        if (ci->t[i].bytes > m) m = (double)ci->t[i].bytes;
    return m;
}

/* bf16 compute's bytes for rows x T (0 when off or this CPU has no bf16
 * GEMM): copies of the fp32 linear weights (every one, lm_head included,
 * when training all weights; the frozen ones stored F32 otherwise), tiles for
 * the other stored types */
static double bf16_bytes(const ckpt_info *ci, const mem_opts *o, int full, int nf4, long N, int T) {
    if (!o->bf16_compute || !tuna_bf16_supported()) return 0;
    double copies = 0;
    int tiles = 0, head = 0;
    for (int i = 0; i < ci->n; i++) {
        const ckpt_tensor *t = &ci->t[i];
        int linear = t->group == CKPT_LINEAR || t->group == CKPT_HEAD;
        head |= t->group == CKPT_HEAD;
        if (!linear) continue;
        if (full || (!strcmp(t->dtype, "F32") && !(nf4 && t->group == CKPT_LINEAR))) copies += (double)t->numel;
        else tiles |= strcmp(t->dtype, "BF16") != 0;
    }
    if (!head && (full || ci->cfg.dtype == TUNA_DTYPE_F32)) copies += (double)ci->cfg.V * ci->cfg.C; /* tied */
    else if (!head) tiles |= ci->cfg.dtype == TUNA_DTYPE_F16;
    return model_bf16_bytes(&ci->cfg, N, T, tiles, copies, full);
}

static tuna_status train_estimate(const ckpt_info *ci, const mem_opts *o, mem_est *e) {
    const tuna_config *c = &ci->cfg;
    int type = mem_method_type(o->method), qlora = !strcmp(o->method, "qlora");
    if (type < 0) return core_fail(TUNA_ERR_ARG, "--method '%s' is not available (full, lora, qlora, ia3, prompt)", o->method);
    int micro = o->micro > 0 && o->micro < o->batch ? o->micro : o->batch;
    e->rows = (o->job == MEM_DPO ? 2 : o->job == MEM_GRPO && o->group > 1 ? o->group : 1) * micro;
    int P = type == TUNA_PEFT_PROMPT ? o->pc.num_virtual_tokens : 0;
    e->T = o->seq_len + P;
    double tile = 0, biggest = 0;
    if (type == TUNA_PEFT_NONE) {
        e->trainable = (double)tuna_model_weight_bytes(c);
        e->grads = e->trainable;
        e->moments = 2 * e->trainable;
        e->load = e->trainable + (o->job == MEM_PRETRAIN ? 0 : largest_stored(ci));
    } else {
        tuna_peft_config pc = o->pc;
        pc.type = (tuna_peft_type)type;
        int64_t n_train = 0, buf = 0;
        tuna_status st = peft_plan(c, &pc, (int64_t)e->rows * e->T, &n_train, &buf);
        if (st != TUNA_OK) return st;
        e->frozen = frozen_bytes(ci, qlora, 0, &tile, &biggest);
        e->scratch = tile;
        e->trainable = 4.0 * n_train;
        e->grads = e->trainable;
        e->moments = 2 * e->trainable;
        e->adapter = (double)buf;
        e->load = e->frozen + biggest;
    }
    int ck = o->grad_checkpoint ? c->L : o->ckpt_layers;
    if (ck < 0 || ck > c->L)
        return core_fail(TUNA_ERR_ARG, "--checkpoint-layers %d: the model has %d blocks", o->ckpt_layers, c->L);
    e->acts = (double)tuna_model_activation_bytes_checkpointed(c, e->rows, e->T, ck);
    e->bf16 = bf16_bytes(ci, o, type == TUNA_PEFT_NONE, qlora, (long)e->rows * e->T, e->T);
    /* token data (ids + labels) and the trainer's batch buffers (ids, labels, positions) */
    e->data = 8.0 * o->data_tokens + 12.0 * e->rows * e->T;
    if (o->job == MEM_DPO && !o->ref_free)
        e->reference = e->frozen + e->trainable + e->scratch +
                       (double)tuna_model_activation_bytes(c, e->rows, e->T, TUNA_MODE_EVAL);
    if (o->job == MEM_GRPO) /* the rollouts' decoder; full training: a frozen fp32 copy with its own buffers */
        e->reference = (o->group > 0 ? (double)tuna_decoder_bytes(c, o->group * o->batch, e->T, o->group * o->batch * e->T) : 0) +
                       (type == TUNA_PEFT_NONE ? e->trainable + (double)tuna_model_activation_bytes(c, e->rows, e->T, TUNA_MODE_EVAL) : 0);
    return TUNA_OK;
}

static tuna_status infer_estimate(const ckpt_info *ci, const mem_opts *o, mem_est *e) {
    const tuna_config *c = &ci->cfg;
    double tile = 0, biggest = 0;
    e->frozen = frozen_bytes(ci, o->nf4, o->bf16, &tile, &biggest);
    e->scratch = tile;
    e->load = e->frozen + biggest;
    e->T = o->seq_len;
    if (o->job == MEM_EVAL) {
        e->rows = o->batch;
        e->acts = (double)tuna_model_activation_bytes(c, e->rows, e->T, TUNA_MODE_EVAL);
    } else {
        e->rows = o->rows;
        e->acts = (double)tuna_decoder_bytes(c, e->rows, e->T, e->T);
    }
    return TUNA_OK;
}

tuna_status mem_estimate(const ckpt_info *ci, const mem_opts *o, mem_est *e) {
    memset(e, 0, sizeof *e);
    int infer = o->job == MEM_GENERATE || o->job == MEM_EVAL || o->job == MEM_SERVE;
    tuna_status st = infer ? infer_estimate(ci, o, e) : train_estimate(ci, o, e);
    if (st != TUNA_OK) return st;
    e->baseline = baseline(&ci->cfg);
    double run = e->frozen + e->trainable + e->grads + e->moments + e->acts + e->adapter + e->scratch + e->data + e->bf16;
    double phase = run > e->load ? run : e->load;
    if (o->job == MEM_GRPO) phase += e->reference; /* held beside the trainer */
    else if (e->reference > phase) phase = e->reference;
    e->peak = e->baseline + phase;
    return TUNA_OK;
}

/* ---------------- memory available ---------------- */

int64_t mem_parse_bytes(const char *s) {
    char *end;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    double k = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': k = 1024.0; end++; break;
    case 'M': k = 1048576.0; end++; break;
    case 'G': k = 1073741824.0; end++; break;
    case 'T': k = 1099511627776.0; end++; break;
    }
    if (toupper((unsigned char)*end) == 'I') end++;
    if (toupper((unsigned char)*end) == 'B') end++;
    return end == s || *end || !(v >= 0) ? -1 : (int64_t)(v * k);
}

/* The first integer after key in a small text file (-1: none). */
static int64_t file_value(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    int64_t v = -1;
    size_t kl = strlen(key);
    while (v < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) {
            char *end;
            long long x = strtoll(line + kl, &end, 10);
            if (end != line + kl) v = x;
        }
    fclose(f);
    return v;
}

/* The cgroup limit minus usage (v2: this process's group and its parents'
 * memory.max; v1: the memory controller's root view); -1 when unlimited. */
static int64_t cgroup_room(void) {
    int64_t lim = file_value("/sys/fs/cgroup/memory/memory.limit_in_bytes", ""), use;
    if (lim > 0 && lim < ((int64_t)1 << 60)) {
        use = file_value("/sys/fs/cgroup/memory/memory.usage_in_bytes", "");
        return use >= 0 ? lim - use : lim;
    }
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[1024], group[900] = "";
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) { snprintf(group, sizeof group, "%.890s", line + 3); group[strcspn(group, "\n")] = 0; }
    if (f) fclose(f);
    int64_t best = -1;
    for (;;) { /* the tightest of this group and its parents */
        char p[1100];
        snprintf(p, sizeof p, "/sys/fs/cgroup%s/memory.max", group);
        lim = file_value(p, "");
        snprintf(p, sizeof p, "/sys/fs/cgroup%s/memory.current", group);
        use = file_value(p, "");
        if (lim > 0 && (best < 0 || lim - (use > 0 ? use : 0) < best)) best = lim - (use > 0 ? use : 0);
        char *slash = strrchr(group, '/');
        if (!slash || !group[0]) break;
        *slash = 0;
    }
    return best;
}

int64_t mem_available(char *src, size_t n) {
    const char *env = getenv("TUNA_MEM_AVAILABLE");
    if (env && *env) {
        snprintf(src, n, "TUNA_MEM_AVAILABLE");
        return mem_parse_bytes(env);
    }
    int64_t avail = file_value("/proc/meminfo", "MemAvailable:");
    if (avail >= 0) avail *= 1024;
    snprintf(src, n, "MemAvailable");
    int64_t cg = cgroup_room();
    if (cg >= 0 && (avail < 0 || cg < avail)) {
        snprintf(src, n, "the cgroup's limit less its usage");
        avail = cg;
    }
    return avail;
}

/* ---------------- the check before training ---------------- */

/* "12.3 GiB" or "345 MiB" into buf. */
static const char *size_text(double b, char *buf, size_t n) {
    if (b >= 1073741824.0) snprintf(buf, n, "%.1f GiB", b / 1073741824.0);
    else snprintf(buf, n, "%.0f MiB", b / 1048576.0);
    return buf;
}

static double predict(const ckpt_info *ci, const mem_opts *o) {
    mem_est e;
    return mem_estimate(ci, o, &e) == TUNA_OK ? e.peak : -1;
}

/* The largest micro-batch below mb that divides batch (0 when mb is 1). */
static int smaller_micro(int batch, int mb) {
    for (int d = mb - 1; d >= 1; d--)
        if (batch % d == 0) return d;
    return 0;
}

/* The first setting of t's method that fits in avail: t's own checkpointing
 * first, then with it; the largest micro-batch that fits. */
static double first_fit(const ckpt_info *ci, mem_opts *t, double avail) {
    int micro0 = t->micro > 0 && t->micro < t->batch ? t->micro : t->batch, ck0 = t->grad_checkpoint;
    for (int ck = ck0; ck <= 1; ck++)
        for (int mb = micro0; mb; mb = smaller_micro(t->batch, mb)) {
            t->grad_checkpoint = ck;
            t->micro = mb;
            double p = predict(ci, t);
            if (p >= 0 && p <= avail) return p;
        }
    return -1;
}

/* Settings that fit, tried through the estimator, written as options into
 * out: this method with gradient checkpointing or a smaller micro-batch,
 * then the cheaper methods (lora for full, qlora for full and lora). */
static void alternatives(const ckpt_info *ci, const mem_opts *o, double avail, char *out, size_t n) {
    const char *methods[] = {o->method, "lora", "qlora"};
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; k < 3; k++) {
        if (k && (o->job == MEM_PRETRAIN || (k == 1 && strcmp(o->method, "full")) ||
                  (k == 2 && strcmp(o->method, "full") && strcmp(o->method, "lora"))))
            continue;
        mem_opts t = *o;
        t.method = methods[k];
        double p = first_fit(ci, &t, avail);
        if (p < 0) continue;
        int micro0 = o->micro > 0 && o->micro < o->batch ? o->micro : o->batch;
        char opt[160] = "";
        int w = k ? snprintf(opt, sizeof opt, "--method %s", methods[k]) : 0;
        if (t.grad_checkpoint && !o->grad_checkpoint) w += snprintf(opt + w, sizeof opt - w, "%s--grad-checkpoint", w ? " " : "");
        if (t.micro != micro0) snprintf(opt + w, sizeof opt - w, "%s--micro-batch %d", w ? " " : "", t.micro);
        char sz[32];
        len += snprintf(out + len, len < n ? n - len : 0, "%s%s (%s)", len ? "; " : "", opt, size_text(p, sz, sizeof sz));
    }
}

int mem_fit_checkpoint(const ckpt_info *ci, mem_opts *o, double cap) {
    int lo = 0, hi = ci->cfg.L;
    o->ckpt_layers = hi;
    double p = predict(ci, o);
    if (p < 0 || p > cap) { o->ckpt_layers = 0; return -1; }
    while (lo < hi) { /* the peak does not grow with the count */
        o->ckpt_layers = (lo + hi) / 2;
        p = predict(ci, o);
        if (p >= 0 && p <= cap) hi = o->ckpt_layers;
        else lo = o->ckpt_layers + 1;
    }
    o->ckpt_layers = lo;
    return lo;
}

/* When the run does not fit in avail as asked but fits with some blocks
 * checkpointed (and the user chose no checkpointing), picks the fewest and
 * says so: 1 when a->checkpoint_layers was set. */
static int fit_by_checkpointing(const char *cmd, const ckpt_info *ci, mem_opts *o, double need, double avail,
                                const char *src, int quiet, tuna_train_args *a) {
    if (a->grad_checkpoint || a->checkpoint_layers) return 0;
    int k = mem_fit_checkpoint(ci, o, avail);
    if (k <= 0) return 0;
    a->checkpoint_layers = k;
    char s1[32], s2[32], s3[32];
    if (!quiet)
        fprintf(stderr, "tuna: note: %s: keeping every block's activations needs about %s, over the %s available (%s): "
                "checkpointing %d of %d blocks (predicted peak %s; the same gradients, backward recomputes those blocks)\n",
                cmd, size_text(need, s1, sizeof s1), size_text(avail, s2, sizeof s2), src, k, ci->cfg.L,
                size_text(predict(ci, o), s3, sizeof s3));
    return 1;
}

int mem_check_train(const char *cmd, const char *model, mem_job job, const char *method, const tuna_peft_config *pc,
                    int64_t max_memory, int quiet, tuna_train_args *a) {
    char src[64];
    int64_t avail = mem_available(src, sizeof src);
    if (max_memory > 0 && (avail < 0 || max_memory < avail)) {
        avail = max_memory;
        snprintf(src, sizeof src, "--max-memory");
    }
    if (avail < 0) return 0; /* unknown: nothing to check against */
    ckpt_info ci;
    if (ckpt_scan(&ci, model) != TUNA_OK) return 0; /* loading reports what is wrong with the files */
    mem_opts o;
    mem_opts_init(&o, job);
    o.method = method;
    o.pc = *pc;
    o.batch = a->batch;
    o.micro = a->micro_batch;
    o.seq_len = a->seq_len;
    o.grad_checkpoint = a->grad_checkpoint;
    o.ckpt_layers = a->checkpoint_layers;
    o.bf16_compute = a->bf16;
    o.ref_free = a->dpo && (a->dpo->type == TUNA_DPO_ORPO || a->dpo->type == TUNA_DPO_SIMPO);
    o.group = a->step_rows;
    mem_est e;
    tuna_status st = mem_estimate(&ci, &o, &e);
    if (st == TUNA_ERR_ARG) { /* e.g. more checkpointed blocks than the model has */
        ckpt_free(&ci);
        return cli_status_error(st);
    }
    double need = st == TUNA_OK ? e.peak : -1;
    int rc = 0;
    if (need > (double)avail && !fit_by_checkpointing(cmd, &ci, &o, need, (double)avail, src, quiet, a)) {
        char alt[1024];
        alternatives(&ci, &o, (double)avail, alt, sizeof alt);
        char a1[32], a2[32];
        rc = cli_usage_error("%s: this run needs about %s (predicted peak RSS, --method %s) but %s are available (%s); "
                             "%s%s (--no-mem-check runs it anyway)",
                             cmd, size_text(need, a1, sizeof a1), method, size_text((double)avail, a2, sizeof a2), src,
                             alt[0] ? "settings that fit: " : "no setting fits", alt);
    }
    ckpt_free(&ci);
    return rc;
}
