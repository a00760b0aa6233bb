/* train_data.c — the model, adapter and data steps the training modes share
 * (see train_data.h): the mode loaders call the helpers; the driver calls
 * train_data_prepare on what any loader produced. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/cli_model.h"
#include "cli/train_data.h"
#include "core/error.h"
#include "tuna_gguf.h"

int train_has_tokenizer(const char *model_dir) {
    if (tuna_is_gguf(model_dir)) return 1;
    const char *names[] = {"tokenizer.json", "tokenizer.bin", "vocab.json"};
    for (size_t k = 0; k < 3; k++) {
        char p[PATH_MAX];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", model_dir, names[k]);
        if (stat(p, &sb) == 0) return 1;
    }
    return 0;
}

tuna_status train_apply_bf16(tuna_model *m, const train_opts *o) {
    static int told;
    if (!o->a.bf16) return TUNA_OK;
    int r = tuna_model_set_bf16(m, 1);
    if (r < 0) return TUNA_ERR_NOMEM;
    if (r == 0 && !o->quiet && !told++) fprintf(stderr, "tuna: note: --bf16: %s\n", tuna_kernels_info());
    return TUNA_OK;
}

tuna_status train_load_model(tuna_model **m, const train_opts *o) {
    /* full: fp32; an adapter: the frozen base as stored (qlora: block linears in NF4) */
    tuna_status st = tuna_model_load_quantized(m, o->model_dir, cli_load_mode(o->method));
    if (st == TUNA_OK && tuna_model_config(*m)->num_labels && strcmp(o->mode->name, "reward"))
        st = core_fail(TUNA_ERR_ARG, "%s is a reward model (%s): tuna reward trains it further; %s needs a causal LM", o->model_dir,
                       tuna_model_config(*m)->architecture, o->cmd);
    return st == TUNA_OK ? train_apply_bf16(*m, o) : st;
}

/* a fresh adapter from the options; --prompt-init TEXT's tokens as its start */
static tuna_status attach_fresh(tuna_model *m, tuna_tokenizer *tok, train_opts *o) {
    tuna_peft_config *pc = &o->pc;
    snprintf(pc->base_model, sizeof pc->base_model, "%s", o->model_dir);
    if (pc->init_from_text && !tok) return core_fail(TUNA_ERR_ARG, "--prompt-init TEXT needs a tokenizer in %s", o->model_dir);
    if (pc->init_from_text) snprintf(pc->tokenizer_name, sizeof pc->tokenizer_name, "%s", o->model_dir);
    tuna_status st = tuna_peft_attach(m, pc, o->a.seed);
    if (st != TUNA_OK || !pc->init_from_text) return st;
    int32_t *ids = NULL;
    size_t n = 0;
    st = tuna_tokenizer_encode(tok, pc->init_text, strlen(pc->init_text), 1, &ids, &n);
    if (st == TUNA_OK) st = tuna_peft_prompt_init_tokens(m, ids, (int)n);
    free(ids);
    return st;
}

/* "lora: N trainable parameters (P% of M) in K of L linear layers; ..." */
static void print_trainable(tuna_model *m, const char *method) {
    const tuna_config *cfg = tuna_model_config(m);
    int64_t tp = tuna_peft_num_trainable(m), all = tuna_model_param_count(m);
    int64_t qn = 0, qb = 0;
    tuna_model_quant_stats(m, &qn, &qb);
    fprintf(stderr, "%s: %lld trainable parameters (%.3f%% of %lld)", method, (long long)tp, 100.0 * tp / (double)(all + qn),
            (long long)(all + qn));
    if (tuna_peft_num_adapted(m))
        fprintf(stderr, " in %d of %d linear layers", tuna_peft_num_adapted(m), cfg->L * (cfg->family == TUNA_FAMILY_GPT2 ? 4 : 7));
    if (qn) fprintf(stderr, "; base linears in NF4: %.1f MiB for %lld weights (%.3f bits each)", qb / 1048576.0, (long long)qn, 8.0 * qb / qn);
    fputc('\n', stderr);
}

tuna_status train_attach_adapter(tuna_model *m, tuna_tokenizer *tok, train_opts *o) {
    tuna_status st;
    if (o->adapter_dir) {
        st = tuna_peft_load(m, o->adapter_dir);
        if (st != TUNA_OK) return st;
        const tuna_peft_config *c = tuna_peft_get(m);
        if (c->type != o->pc.type)
            return core_fail(TUNA_ERR_ARG, "%s: the adapter is %s but --method is %s", o->adapter_dir,
                             c->type == TUNA_PEFT_LORA ? "LoRA" : c->type == TUNA_PEFT_IA3 ? "IA3" : "prompt tuning", o->method);
        /* the dropout of this run applies (PEFT keeps it in the config too) */
    } else if ((st = attach_fresh(m, tok, o)) != TUNA_OK) return st;
    if (!o->quiet) print_trainable(m, o->method);
    return TUNA_OK;
}

tuna_status train_check_vocab(const tuna_pretok *p, int V, const char *path) {
    for (int64_t s = 0; s < tuna_pretok_count(p); s++) {
        const int32_t *ids, *labels;
        int64_t n = tuna_pretok_seq(p, s, &ids, &labels, NULL);
        for (int64_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= V)
                return core_fail(TUNA_ERR_FORMAT, "%s: token id %d is outside the model's vocabulary (0..%d)", path, ids[i], V - 1);
            if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= V))
                return core_fail(TUNA_ERR_FORMAT, "%s: label %d is neither -100 nor in the model's vocabulary (0..%d)", path,
                                 labels[i], V - 1);
        }
    }
    return TUNA_OK;
}

static uint64_t seq_hash(const tuna_pretok *p, int64_t i) {
    uint64_t h = 1469598103934665603ULL;
    const int32_t *ids;
    int64_t n = tuna_pretok_seq(p, i, &ids, NULL, NULL);
    for (int64_t k = 0; k < n; k++) {
        h ^= (uint32_t)ids[k];
        h *= 1099511628211ULL;
    }
    return h;
}

/* moves the sequences whose hash falls below frac into a new *val */
static tuna_status split_val(tuna_pretok **train, tuna_pretok **val, double frac) {
    tuna_pretok *tr = NULL, *va = NULL;
    tuna_status st = tuna_pretok_new(&tr);
    if (st == TUNA_OK) st = tuna_pretok_new(&va);
    for (int64_t i = 0; st == TUNA_OK && i < tuna_pretok_count(*train); i++) {
        const int32_t *ids, *labels;
        int64_t len = tuna_pretok_seq(*train, i, &ids, &labels, NULL);
        st = tuna_pretok_append((double)(seq_hash(*train, i) % 1000000) < frac * 1e6 ? va : tr, ids, labels, len);
    }
    if (st != TUNA_OK) {
        tuna_pretok_free(tr); tuna_pretok_free(va);
        return core_fail(TUNA_ERR_NOMEM, "out of memory splitting data");
    }
    tuna_pretok_free(*train);
    *train = tr;
    *val = va;
    return TUNA_OK;
}

/* the positions a prompt-tuning adapter's virtual tokens take (else 0) */
static int virtual_tokens(tuna_model *m) {
    const tuna_peft_config *c = tuna_peft_get(m);
    return c && c->type == TUNA_PEFT_PROMPT ? c->num_virtual_tokens : 0;
}

/* Part k of the training parts (k < n_data), then of the validation parts. */
static tuna_pretok *part(train_data *d, const train_opts *o, int k) {
    return k < o->n_data ? d->parts[k] : d->vparts[k - o->n_data];
}

/* The file that part k came from: the --data file for a training part,
 * then the --val file — or, with --val-split, the data file whose share
 * part k is. */
static const char *part_file(const train_opts *o, int k) {
    return k < o->n_data ? o->data_paths[k] : o->val_path ? o->val_paths[k - o->n_data] : o->data_paths[k - o->n_data];
}

/* sequences longer than the model's positions: a warning where positions are
 * computed (RoPE runs on, untrained), an error where they are learned (no row
 * of the table exists for them). virt: the prompt-tuning virtual tokens put
 * before every sequence, which take positions too. */
static tuna_status check_context(const tuna_pretok *p, const tuna_config *c, int virt, const char *path) {
    long over = 0, longest = 0;
    for (int64_t i = 0; i < tuna_pretok_count(p); i++) {
        long len = (long)tuna_pretok_seq(p, i, NULL, NULL, NULL) + virt;
        if (len > c->max_positions) over++;
        if (len > c->max_positions && len > longest) longest = len;
    }
    char what[96];
    snprintf(what, sizeof what, virt ? "sequences (with %d virtual tokens) are" : "sequences are", virt);
    if (over && c->learned_positions)
        return core_fail(TUNA_ERR_ARG, "%s: %ld of %lld %s longer than the model's %d learned positions (longest %ld tokens): lower --seq-len%s",
                         path, over, (long long)tuna_pretok_count(p), what, c->max_positions, longest, virt ? " or --num-virtual-tokens" : "");
    cli_warn_context(path, over, (long)tuna_pretok_count(p), what, longest, c->max_positions);
    return TUNA_OK;
}

/* examples whose counted tokens were all truncated away cost time and teach nothing */
static tuna_status drop_uncounted(train_opts *o, train_data *d) {
    for (int k = 0; k < o->n_data + d->n_val; k++) {
        tuna_pretok *pp = part(d, o, k);
        int64_t before = tuna_pretok_count(pp), removed = tuna_pretok_drop_uncounted(pp);
        if (removed < 0) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        if (removed > 0 && !o->quiet)
            fprintf(stderr, "%s%s: %lld of %lld examples have no counted token (response truncated away at --seq-len %d?): left out\n",
                    part_file(o, k), k >= o->n_data && !o->val_path ? " (--val-split share)" : "", (long long)removed,
                    (long long)before, o->a.seq_len);
    }
    return TUNA_OK;
}

/* --pack: several examples per row, first-fit decreasing */
static tuna_status pack_parts(train_opts *o, train_data *d) {
    for (int k = 0; k < o->n_data; k++) {
        tuna_pretok *packed = NULL;
        int64_t examples = tuna_pretok_count(d->parts[k]);
        tuna_status st = tuna_pretok_pack(d->parts[k], o->a.seq_len, &packed);
        if (st != TUNA_OK) return st;
        tuna_pretok_free(d->parts[k]);
        d->parts[k] = packed;
        if (!o->quiet)
            fprintf(stderr, "%s: packed %lld examples into %lld rows of up to %d tokens\n", o->data_paths[k], (long long)examples,
                    (long long)tuna_pretok_count(d->parts[k]), o->a.seq_len);
    }
    return TUNA_OK;
}

/* n parts into one (taken over when n is 1) */
static tuna_status join(tuna_pretok **parts, int n, tuna_pretok **out) {
    if (n != 1) return tuna_pretok_concat((const tuna_pretok *const *)parts, n, out);
    *out = parts[0];
    parts[0] = NULL;
    return TUNA_OK;
}

tuna_status train_data_prepare(train_opts *o, train_data *d) {
    tuna_status st = TUNA_OK;
    for (int k = 0; st == TUNA_OK && o->val_split > 0 && k < o->n_data; k++) {
        /* the split is per file, so each task keeps its own validation share */
        st = split_val(&d->parts[k], &d->vparts[k], o->val_split);
        d->n_val = o->n_data;
    }
    if (st == TUNA_OK && !o->mode->pairs && !o->mode->items) st = drop_uncounted(o, d);
    for (int k = 0; st == TUNA_OK && k < o->n_data; k++)
        if (tuna_pretok_count(d->parts[k]) == 0) st = core_fail(TUNA_ERR_FORMAT, "%s: no training records with counted tokens", o->data_paths[k]);
    for (int k = 0; st == TUNA_OK && k < o->n_data + d->n_val; k++)
        st = check_context(part(d, o, k), tuna_model_config(d->m), virtual_tokens(d->m), part_file(o, k));
    if (st == TUNA_OK && o->pack) st = pack_parts(o, d);
    if (st == TUNA_OK) st = join(d->parts, o->n_data, &d->data);
    if (st == TUNA_OK && d->n_val > 0) st = join(d->vparts, d->n_val, &d->val);
    if (st == TUNA_OK && !d->val) st = tuna_pretok_new(&d->val); /* no validation data: an empty set */
    return st;
}

void train_data_free(train_data *d) {
    for (int k = 0; k < TRAIN_MAX_DATA; k++) {
        tuna_pretok_free(d->parts[k]);
        tuna_pretok_free(d->vparts[k]);
    }
    tuna_pretok_free(d->data);
    tuna_pretok_free(d->val);
    tuna_model_free(d->m);
    tuna_tokenizer_free(d->tok);
    free(d->ref_train);
    free(d->ref_val);
    free(d->kto_desirable);
    if (d->mode_free) d->mode_free(d->mode_state);
}
