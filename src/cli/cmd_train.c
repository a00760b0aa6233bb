/* cmd_train.c — `tuna sft` (fine-tuning a model folder on any record format),
 * `tuna pretrain` (a randomly initialised model on plain text) and `tuna dpo`
 * (preference optimisation; its data and reference pass live in cmd_dpo.c),
 * sharing one training driver: live progress line, metrics.jsonl, train_args.json,
 * validation with early stopping (keeping the best weights), checkpoints and
 * exact resume, the general-text perplexity check before and after, and an
 * output folder Hugging Face tools can load. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/run_staging.h"
#include "cli/train_metrics.h"
#include "cli/train_resume.h"
#include "cli_model.h"
#include "cli_paths.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"
#include "tuna_gguf.h"
#include "tuna_report.h"
#include "tuna_text.h"
#include "tuna_peft.h"
#include "tuna_dist.h"
#include "tuna_train.h"
#include "core/error.h"

static const char *sft_help =
    "usage: tuna sft --model DIR --data FILE.jsonl --out DIR [options]\n"
    "\n"
    "Full fine-tuning with PyTorch/Transformers semantics. Data (JSONL or a JSON\n"
    "array; format detected per record): chat {\"messages\"}, ShareGPT\n"
    "{\"conversations\"}, Alpaca {\"instruction\",\"input\",\"output\"},\n"
    "{\"prompt\",\"completion\"}, {\"text\"}, or pre-tokenized {\"input_ids\",\"labels\"}\n"
    "(labels -100 are not counted; position t is scored against labels[t+1]),\n"
    "taken in file order with --no-shuffle. Records are rendered with the model's\n"
    "chat template; the loss counts the assistant turns (with their stop token)\n"
    "or the completion (+EOS). A model folder without tokenizer files takes\n"
    "pre-tokenized records only. FILE may be a pipe, FIFO, /dev/stdin or <(...):\n"
    "read once into memory (limits TUNA_INPUT_MAX_BYTES, default 2 GiB, and\n"
    "TUNA_INPUT_MAX_LINE, default 256 MiB), not cached; progress every 64 MiB.\n"
    "  --template NAME|FILE   chat template: built-in (chatml, llama3, llama2, alpaca,\n"
    "                         zephyr) or a Jinja file, instead of the model's\n"
    "  --loss-on response|all  count the responses (default) or every token\n"
    "  --truncate right|left|drop  sequences longer than --seq-len (default right)\n"
    "  --max-bad X --strict   bad records: skipped and reported, failing above the\n"
    "                         fraction X (default 0.01); --strict stops at the first\n"
    "  --cache-dir DIR --no-cache  token cache (default $XDG_CACHE_HOME/tuna or ~/.cache/tuna;\n"
    "                         not written: a note, and the run goes on uncached)\n"
    "  --method M             full (default), lora, qlora (LoRA on an NF4-quantized base),\n"
    "                         ia3 or prompt (prompt tuning); adapters are written in\n"
    "                         PEFT's format (adapter_config.json, adapter_model.safetensors)\n"
    "  --lora-r N --lora-alpha X   LoRA rank (default 16) and alpha (default 32); scale alpha/r\n"
    "  --rslora               scale alpha/sqrt(r) instead\n"
    "  --lora-dropout X       dropout on the adapter's input (default 0, as PEFT's)\n"
    "  --lora-targets LIST    PEFT module names, e.g. q_proj,v_proj (Llama default) or\n"
    "                         c_attn (GPT-2 default; also c_proj, c_fc), or all-linear\n"
    "  --ia3-targets LIST --ia3-feedforward LIST   IA3 modules (default PEFT's: Llama\n"
    "                         k_proj,v_proj,down_proj / down_proj; GPT-2 c_attn,mlp.c_proj)\n"
    "  --num-virtual-tokens N --prompt-init TEXT|random   prompt tuning (default 20, random)\n"
    "  --adapter DIR          continue training a PEFT adapter; its adapter_config.json\n"
    "                         (r, alpha, targets, scaling) wins over the options above\n"
    "  --lr X                 peak learning rate (default 2e-5 full, 2e-4 lora/qlora,\n"
    "                         3e-3 ia3, 3e-2 prompt)\n"
    "  --schedule S           constant | linear | cosine (default linear), as HF get_scheduler;\n"
    "                         constant with --warmup > 0 is HF's constant_with_warmup\n"
    "  --warmup X             fraction of steps (< 1) or number of steps (default 0)\n"
    "  --weight-decay X       decoupled AdamW decay, not on biases/norms (default 0)\n"
    "  --betas B1,B2 --eps E  AdamW (default 0.9,0.999 and 1e-8)\n"
    "  --grad-clip X          max global gradient L2 norm; 0 disables (default 1.0)\n"
    "  --batch N              sequences per optimizer step (default 8)\n"
    "  --micro-batch N        sequences per forward/backward (default = batch)\n"
    "  --seq-len N            truncate sequences to N tokens (default 512)\n"
    "  --epochs X | --steps N training length (default 1 epoch)\n"
    "  --loss-norm token|sequence  mean over the step's counted tokens (default),\n"
    "                         or mean over sequences of each sequence's mean\n"
    "  --seed N  --no-shuffle data order\n"
    "  --data A.jsonl:0.7 --data B.jsonl:0.3   multi-task mixing: each sequence is drawn\n"
    "                         from a file chosen by weight (default: by size); the actual\n"
    "                         shares are reported. One --val per --data, or --val-split,\n"
    "                         gives per-task validation losses (eval_loss/FILE).\n"
    "  --val FILE | --val-split X   validation data (X: hash-based fraction of each --data)\n"
    "  --eval-every N         validation every N steps (default: 10 evals per run)\n"
    "  --early-stop N         stop after N evaluations without improvement\n"
    "  --save-dtype f32|bf16|f16   dtype of the saved weights (default f32)\n"
    "  --grad-checkpoint      keep only each block's input; recompute in backward\n"
    "  --pack                 pack several examples per row (first-fit decreasing),\n"
    "                         positions restarting and attention confined per example\n"
    "  --save-every N         checkpoint every N steps into OUT/checkpoint-STEP (the\n"
    "                         previous one is removed once the new one is complete)\n"
    "  --resume DIR           continue exactly from a checkpoint folder (one of OUT's:\n"
    "                         the run goes on in OUT): different data, model,\n"
    "                         method/adapter, batch, micro-batch, seq-len, packing,\n"
    "                         schedule, seed, loss settings or dpo --ref-model are\n"
    "                         refused; a changed --lr, --steps/--epochs, warmup,\n"
    "                         optimizer or eval/save cadence is allowed and listed;\n"
    "                         other validation data resets the best-so-far loss\n"
    "  --overwrite            replace a non-empty OUT (refused without it)\n"
    "  --general-eval FILE    perplexity on plain text (JSONL {\"text\"} or .txt) before\n"
    "                         and after training, to see forgetting (general_eval.json)\n"
    "  --quiet                no progress output\n"
    "Started by mpirun -np N, the run is data-parallel: each rank takes 1/N of every\n"
    "--batch and the gradients are summed across ranks (README: Data-parallel training).\n"
    "Ctrl-C or SIGTERM saves a checkpoint and exits (status 1) with the resume command.\n"
    "Writes OUT/model.safetensors (or the adapter files), config.json, tokenizer files,\n"
    "metrics.jsonl, train_args.json. With validation, OUT holds the best weights seen.\n"
    "They are written in a hidden sibling, .OUT.run-PID, which takes OUT's place at the\n"
    "run's first checkpoint, best-weights save or final save: a run that fails before\n"
    "leaves OUT as it was (or absent).\n";

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* a stop asked on any rank stops every rank at the same step */
static tuna_status agree_stop(void) {
    int any = 0;
    tuna_status st = tuna_dist_any(stop_requested, &any);
    if (any) stop_requested = 1;
    return st;
}

static int parse_float(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    if (!s) return cli_usage_error("%s needs a value", opt), -1;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        cli_usage_error("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

void cli_copy_file(const char *src_dir, const char *dst_dir, const char *name) {
    char s[PATH_MAX], d[PATH_MAX];
    snprintf(s, sizeof s, "%s/%s", src_dir, name);
    snprintf(d, sizeof d, "%s/%s", dst_dir, name);
    FILE *in = fopen(s, "rb");
    if (!in) return;
    atomic_file out;
    if (atomic_file_open(&out, d) != TUNA_OK) { fclose(in); return; }
    char buf[65536];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ok &= fwrite(buf, 1, n, out.f) == n;
    ok &= !ferror(in);
    fclose(in);
    if (ok) atomic_file_commit(&out);
    else atomic_file_abort(&out);
}

/* Removes a checkpoint folder of OUT so that a kill never leaves a half-removed
 * one looking like a checkpoint: renamed to a hidden name first, then deleted. */
static void discard_checkpoint(const char *out_dir, const char *dir) {
    char gone[2 * PATH_MAX + 8];
    const char *base = strrchr(dir, '/');
    snprintf(gone, sizeof gone, "%s/.%s.old", out_dir, base ? base + 1 : dir);
    cli_remove_tree(gone);
    if (rename(dir, gone) == 0) cli_remove_tree(gone);
}

/* A run resumed from OUT/checkpoint-STEP of its own output folder takes that
 * checkpoint as its previous one (prev: its name in OUT): removed once the
 * next one is complete. */
static void adopt_resumed_checkpoint(const char *resume, const char *out_dir, int step, char *prev, size_t prev_n) {
    char own[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    snprintf(own, sizeof own, "%s/checkpoint-%d", out_dir, step);
    if (realpath(resume, a) && realpath(own, b) && !strcmp(a, b)) snprintf(prev, prev_n, "checkpoint-%d", step);
}

/* Writes OUT/checkpoint-STEP atomically and durably: a temporary folder, synced
 * and renamed into place (io/atomic_file.h); only then is the previous
 * checkpoint (prev, a name in the run's folder) removed, so a crash at any
 * point leaves one complete checkpoint. A checkpoint is a complete result: a
 * staged run's folder takes --out's place (run_staging.h). */
static tuna_status write_checkpoint(tuna_trainer *tr, cli_run_dir *rd, const char *extra, char *prev, size_t prev_n,
                                    const char *model_dir) {
    char tmp[PATH_MAX], fin[PATH_MAX], old[PATH_MAX];
    const char *out_dir = rd->dir;
    int step = tuna_trainer_step_count(tr);
    snprintf(fin, sizeof fin, "%s/checkpoint-%d", out_dir, step);
    snprintf(tmp, sizeof tmp, "%s/.checkpoint-%d.tmp", out_dir, step);
    /* a device or file of that name is refused, not discarded below */
    tuna_status st = atomic_check_output(fin, 1);
    if (st != TUNA_OK) return st;
    cli_remove_tree(tmp);
    st = tuna_trainer_save(tr, tmp, extra);
    if (st != TUNA_OK) { cli_remove_tree(tmp); return st; }
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "tokenizer.model"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) cli_copy_file(model_dir, tmp, names[k]);
    discard_checkpoint(out_dir, fin);
    st = atomic_dir_commit(tmp, fin);
    if (st != TUNA_OK) { cli_remove_tree(tmp); return st; }
    snprintf(old, sizeof old, "%s/%s", out_dir, prev);
    if (prev[0] && strcmp(old, fin)) discard_checkpoint(out_dir, old);
    snprintf(prev, prev_n, "checkpoint-%d", step);
    return cli_run_dir_commit(rd);
}

/* progress of tokenizing a large file: a live line on a terminal, else a line
 * every 10% */
typedef struct { const char *file; int tty, last_decile; double t0; } load_progress;
static void on_load_progress(void *ctx, uint64_t done, uint64_t total) {
    load_progress *p = ctx;
    if (total < (8u << 20)) return; /* small files finish before anyone looks */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = ts.tv_sec + ts.tv_nsec * 1e-9, el = now - p->t0;
    double frac = total ? (double)done / total : 1, mbs = el > 0 ? done / 1048576.0 / el : 0;
    if (p->tty) fprintf(stderr, "\r\033[Ktokenizing %s: %3.0f%% (%.1f MB/s)%s", p->file, frac * 100, mbs, done >= total ? "\n" : "");
    else if ((int)(frac * 10) > p->last_decile) {
        p->last_decile = (int)(frac * 10);
        fprintf(stderr, "tokenizing %s: %.0f%% (%.1f MB/s)\n", p->file, frac * 100, mbs);
    }
}

static uint64_t seq_hash(const tuna_pretok *p, int64_t i) {
    uint64_t h = 1469598103934665603ULL;
    for (int64_t k = p->off[i]; k < p->off[i + 1]; k++) {
        h ^= (uint32_t)p->ids[k];
        h *= 1099511628211ULL;
    }
    return h;
}

/* moves the sequences whose hash falls below frac into val */
static tuna_status split_val(tuna_pretok *train, tuna_pretok *val, double frac) {
    tuna_pretok tr = {0}, va = {0};
    int64_t ntok = train->off[train->n];
    tr.off = malloc((size_t)(train->n + 1) * sizeof(int64_t));
    va.off = malloc((size_t)(train->n + 1) * sizeof(int64_t));
    tr.ids = malloc((size_t)ntok * 4); tr.labels = malloc((size_t)ntok * 4);
    va.ids = malloc((size_t)ntok * 4); va.labels = malloc((size_t)ntok * 4);
    if (!tr.off || !va.off || !tr.ids || !tr.labels || !va.ids || !va.labels) {
        tuna_pretok_free(&tr); tuna_pretok_free(&va);
        return core_fail(TUNA_ERR_NOMEM, "out of memory splitting data");
    }
    tr.off[0] = va.off[0] = 0;
    for (int64_t i = 0; i < train->n; i++) {
        tuna_pretok *d = (double)(seq_hash(train, i) % 1000000) < frac * 1e6 ? &va : &tr;
        int64_t len = train->off[i + 1] - train->off[i];
        memcpy(d->ids + d->off[d->n], train->ids + train->off[i], (size_t)len * 4);
        memcpy(d->labels + d->off[d->n], train->labels + train->off[i], (size_t)len * 4);
        d->off[d->n + 1] = d->off[d->n] + len;
        d->n++;
        if (len > d->max_len) d->max_len = (int)len;
    }
    tuna_pretok_free(train);
    *train = tr;
    *val = va;
    return TUNA_OK;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    long t = (long)s;
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static const char *pretrain_help =
    "usage: tuna pretrain --config ARCH.json --tokenizer DIR --data TEXT --out DIR [options]\n"
    "\n"
    "Pre-training from scratch: a model with the architecture of ARCH.json (an HF\n"
    "config.json) is initialised as the family does (normal(0, initializer_range);\n"
    "GPT-2 residual projections scaled by 1/sqrt(2 layers)), TEXT (JSONL {\"text\"}\n"
    "lines, or a .txt file as one document) is tokenized with the tokenizer in DIR\n"
    "(BOS as the tokenizer adds it, EOS after each document), concatenated and cut\n"
    "into --seq-len sequences; the loss counts every token. --val FILE is text too.\n"
    "Defaults differ from sft: --lr 1e-3, --schedule cosine, --warmup 0.05.\n"
    "Every other option is as in `tuna sft --help`.\n";

static tuna_status general_eval(tuna_trainer *tr, tuna_tokenizer *tok, const char *path, int seq_len, double *loss,
                                int64_t *tokens) {
    tuna_pretok g;
    tuna_status st = tuna_text_chunks(tok, path, seq_len, &g);
    if (st != TUNA_OK) return st;
    st = tuna_trainer_eval(tr, &g, loss, tokens);
    tuna_pretok_free(&g);
    return st;
}

/* the positions a prompt-tuning adapter's virtual tokens take (else 0) */
static int virtual_tokens(tuna_model *m) {
    const tuna_peft_config *c = tuna_peft_get(m);
    return c && c->type == TUNA_PEFT_PROMPT ? c->num_virtual_tokens : 0;
}

/* The file that part k came from: data_paths[k] for the training parts
 * (k < n_data), then val_paths[k - n_data] — or, with --val-split (val_paths
 * NULL), the data file whose share part k is. */
static const char *part_file(int k, int n_data, const char *const *data_paths, const char *const *val_paths) {
    return k < n_data ? data_paths[k] : val_paths ? val_paths[k - n_data] : data_paths[k - n_data];
}

/* Writes the result: the adapter when one is trained, else the model. A
 * complete result: a staged run's folder takes --out's place (run_staging.h). */
static tuna_status save_result(tuna_model *m, cli_run_dir *rd, tuna_dtype dt) {
    tuna_status st = tuna_peft_get(m) ? tuna_peft_save(m, rd->dir) : tuna_model_save(m, rd->dir, dt);
    return st == TUNA_OK ? cli_run_dir_commit(rd) : st;
}

/* Attaches the adapter to train: the one of adapter_dir (its config wins), or
 * a fresh one from the options, PEFT-initialised. */
static tuna_status attach_adapter(tuna_model *m, tuna_tokenizer *tok, tuna_peft_config *pc, const char *adapter_dir,
                                  const char *model_dir, const char *method, uint64_t seed, int quiet) {
    tuna_status st;
    if (adapter_dir) {
        st = tuna_peft_load(m, adapter_dir);
        if (st != TUNA_OK) return st;
        const tuna_peft_config *c = tuna_peft_get(m);
        if (c->type != pc->type)
            return core_fail(TUNA_ERR_ARG, "%s: the adapter is %s but --method is %s", adapter_dir,
                             c->type == TUNA_PEFT_LORA ? "LoRA" : c->type == TUNA_PEFT_IA3 ? "IA3" : "prompt tuning", method);
        /* the dropout of this run applies (PEFT keeps it in the config too) */
    } else {
        snprintf(pc->base_model, sizeof pc->base_model, "%s", model_dir);
        if (pc->init_from_text && !tok)
            return core_fail(TUNA_ERR_ARG, "--prompt-init TEXT needs a tokenizer in %s", model_dir);
        if (pc->init_from_text) snprintf(pc->tokenizer_name, sizeof pc->tokenizer_name, "%s", model_dir);
        st = tuna_peft_attach(m, pc, seed);
        if (st != TUNA_OK) return st;
        if (pc->init_from_text) {
            int32_t *ids = NULL;
            size_t n = 0;
            st = tuna_tokenizer_encode(tok, pc->init_text, strlen(pc->init_text), 1, &ids, &n);
            if (st == TUNA_OK) st = tuna_peft_prompt_init_tokens(m, ids, (int)n);
            free(ids);
            if (st != TUNA_OK) return st;
        }
    }
    if (!quiet) {
        const tuna_config *cfg = tuna_model_config(m);
        int64_t tp = tuna_peft_num_trainable(m), all = tuna_model_param_count(m);
        int64_t qn = 0, qb = 0;
        tuna_model_quant_stats(m, &qn, &qb);
        fprintf(stderr, "%s: %lld trainable parameters (%.3f%% of %lld)", method, (long long)tp, 100.0 * tp / (double)(all + qn),
                (long long)(all + qn));
        if (tuna_peft_num_adapted(m)) fprintf(stderr, " in %d of %d linear layers", tuna_peft_num_adapted(m), cfg->L * (cfg->family == TUNA_FAMILY_GPT2 ? 4 : 7));
        if (qn) fprintf(stderr, "; base linears in NF4: %.1f MiB for %lld weights (%.3f bits each)", qb / 1048576.0, (long long)qn, 8.0 * qb / qn);
        fputc('\n', stderr);
    }
    return TUNA_OK;
}

/* A model folder with tokenizer files, or a GGUF file (its vocabulary is inside). */
static int has_tokenizer(const char *model_dir) {
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

/* DPO's reference: the log-probability of every train and validation
 * sequence's counted tokens under m, as it is now (minus the row loss sums) */
static tuna_status reference_logps(tuna_model *m, const tuna_pretok *train, const tuna_pretok *val, int rows, double *ref_train,
                                   double *ref_val) {
    int64_t *tokens = malloc((size_t)(train->n > val->n ? train->n : val->n) * sizeof *tokens + 1);
    if (!tokens) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_status st = tuna_eval_losses(m, train, rows, ref_train, tokens, NULL, NULL);
    if (st == TUNA_OK && val->n) st = tuna_eval_losses(m, val, rows, ref_val, tokens, NULL, NULL);
    for (int64_t i = 0; st == TUNA_OK && i < train->n; i++) ref_train[i] = -ref_train[i];
    for (int64_t i = 0; st == TUNA_OK && i < val->n; i++) ref_val[i] = -ref_val[i];
    free(tokens);
    return st;
}

/* every id and label (-100 aside) inside the model's vocabulary: data from the
 * token cache was not checked record by record */
static tuna_status check_vocab(const tuna_pretok *p, int V, const char *path) {
    for (int64_t i = 0; i < (p->off ? p->off[p->n] : 0); i++) {
        if (p->ids[i] < 0 || p->ids[i] >= V)
            return core_fail(TUNA_ERR_FORMAT, "%s: token id %d is outside the model's vocabulary (0..%d)", path, p->ids[i], V - 1);
        if (p->labels && p->labels[i] != -100 && (p->labels[i] < 0 || p->labels[i] >= V))
            return core_fail(TUNA_ERR_FORMAT, "%s: label %d is neither -100 nor in the model's vocabulary (0..%d)", path,
                             p->labels[i], V - 1);
    }
    return TUNA_OK;
}

/* sequences longer than the model's positions: a warning where positions are
 * computed (RoPE runs on, untrained), an error where they are learned (no row
 * of the table exists for them). virt: the prompt-tuning virtual tokens put
 * before every sequence, which take positions too. */
static tuna_status check_context(const tuna_pretok *p, const tuna_config *c, int virt, const char *path) {
    long over = 0, longest = 0;
    for (int64_t i = 0; i < p->n; i++) {
        long len = (long)(p->off[i + 1] - p->off[i]) + virt;
        if (len > c->max_positions) over++;
        if (len > c->max_positions && len > longest) longest = len;
    }
    char what[96];
    snprintf(what, sizeof what, virt ? "sequences (with %d virtual tokens) are" : "sequences are", virt);
    if (over && c->learned_positions)
        return core_fail(TUNA_ERR_ARG, "%s: %ld of %lld %s longer than the model's %d learned positions (longest %ld tokens): lower --seq-len%s",
                         path, over, (long long)p->n, what, c->max_positions, longest, virt ? " or --num-virtual-tokens" : "");
    cli_warn_context(path, over, (long)p->n, what, longest, c->max_positions);
    return TUNA_OK;
}

int cli_train_command(int argc, char **argv, int mode) {
    const int pretrain = mode == CLI_TRAIN_PRETRAIN, dpo = mode == CLI_TRAIN_DPO;
    if (cli_wants_help(argc, argv)) { fputs(pretrain ? pretrain_help : dpo ? cli_dpo_help : sft_help, stdout); return 0; }
    const char *cmd = pretrain ? "pretrain" : dpo ? "dpo" : "sft";
    tuna_dpo_args dargs = {TUNA_DPO_SIGMOID, 0.1, 0.0};
    const char *ref_model = NULL;
    int max_prompt_len = 0;
    const char *config_path = NULL, *tok_dir = NULL, *general = NULL, *template_arg = NULL, *cache_dir = NULL;
    int pack = 0, no_cache = 0;
    tuna_dataset_options dso;
    tuna_dataset_options_init(&dso);
    enum { MAX_DATA = 16 };
    const char *data_paths[MAX_DATA], *val_paths[MAX_DATA];
    static char data_buf[MAX_DATA][PATH_MAX];
    double data_w[MAX_DATA];
    int n_data = 0, n_val = 0, any_weight = 0;
    const char *model_dir = NULL, *data_path = NULL, *out_dir = NULL, *val_path = NULL, *method = "full",
               *save_dtype = "f32";
    double val_split = 0, x;
    const char *resume = NULL, *adapter_dir = NULL, *prompt_init = "random";
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    const char *lora_targets = NULL, *ia3_targets = NULL, *ia3_ff = NULL;
    int lr_given = 0, overwrite = 0, in_place = 0;
    int eval_every = 0, early_stop = 0, quiet = 0, mb_given = 0, iv, save_every = 0;
    tuna_train_args a;
    tuna_train_args_default(&a);
    if (pretrain) {
        a.lr = 1e-3f;
        a.schedule = TUNA_SCHED_COSINE;
        a.warmup = 0.05;
    }
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEXT() (i++, v)
        if (!strcmp(o, "--model") && v && !pretrain) model_dir = NEXT();
        else if (dpo && !strcmp(o, "--beta")) { if (parse_float(o, NEXT(), 1e-9, 1e9, &dargs.beta)) return 2; }
        else if (dpo && !strcmp(o, "--label-smoothing")) { if (parse_float(o, NEXT(), 0, 0.5, &dargs.label_smoothing)) return 2; }
        else if (dpo && !strcmp(o, "--loss") && v) {
            const char *s = NEXT();
            int t = tuna_dpo_loss_from_name(s);
            if (t < 0) return cli_usage_error("--loss must be sigmoid, ipo or hinge (got '%s')", s);
            dargs.type = (tuna_dpo_loss_type)t;
        }
        else if (dpo && !strcmp(o, "--ref-model") && v) ref_model = NEXT();
        else if (dpo && !strcmp(o, "--max-prompt-len")) { if (cli_parse_int(o, NEXT(), 1, 1 << 20, &max_prompt_len)) return 2; }
        else if (dpo && !strcmp(o, "--max-len")) { if (cli_parse_int(o, NEXT(), 2, 1 << 20, &a.seq_len)) return 2; }
        else if (!strcmp(o, "--config") && v && pretrain) config_path = NEXT();
        else if (!strcmp(o, "--tokenizer") && v && pretrain) tok_dir = NEXT();
        else if (!strcmp(o, "--general-eval") && v) general = NEXT();
        else if (!strcmp(o, "--template") && v) template_arg = NEXT();
        else if (!strcmp(o, "--cache-dir") && v) cache_dir = NEXT();
        else if (!strcmp(o, "--no-cache")) no_cache = 1;
        else if (!strcmp(o, "--strict")) dso.data.strict = 1;
        else if (!strcmp(o, "--max-bad")) { if (parse_float(o, NEXT(), 0, 1, &x)) return 2; dso.data.max_bad = x; }
        else if (!strcmp(o, "--loss-on") && v) {
            const char *s = NEXT();
            if (!strcmp(s, "all")) dso.loss_on_all = 1;
            else if (!strcmp(s, "response")) dso.loss_on_all = 0;
            else return cli_usage_error("--loss-on must be response or all (got '%s')", s);
        }
        else if (!strcmp(o, "--truncate") && v) {
            const char *s = NEXT();
            if (!strcmp(s, "right")) dso.truncate = TUNA_TRUNCATE_RIGHT;
            else if (!strcmp(s, "left")) dso.truncate = TUNA_TRUNCATE_LEFT;
            else if (!strcmp(s, "drop")) dso.truncate = TUNA_TRUNCATE_DROP;
            else return cli_usage_error("--truncate must be right, left or drop (got '%s')", s);
        }
        else if (!strcmp(o, "--data") && v) {
            if (n_data == MAX_DATA) return cli_usage_error("at most %d --data files", MAX_DATA);
            /* FILE:WEIGHT (the weight after the last ':' when it parses as a number) */
            const char *arg = NEXT(), *colon = strrchr(arg, ':');
            char *end = NULL;
            double w = colon ? strtod(colon + 1, &end) : 0;
            if (colon && end && *end == '\0' && end != colon + 1) {
                if (!(w >= 0)) return cli_usage_error("--data %s: weight must be >= 0", arg);
                snprintf(data_buf[n_data], sizeof data_buf[n_data], "%.*s", (int)(colon - arg), arg);
                data_w[n_data] = w;
                any_weight = 1;
            } else {
                snprintf(data_buf[n_data], sizeof data_buf[n_data], "%s", arg);
                data_w[n_data] = -1;
            }
            data_paths[n_data] = data_buf[n_data];
            n_data++;
            data_path = data_paths[0];
        }
        else if (!strcmp(o, "--out") && v) out_dir = NEXT();
        else if (!strcmp(o, "--val") && v) {
            if (n_val == MAX_DATA) return cli_usage_error("at most %d --val files", MAX_DATA);
            val_paths[n_val++] = NEXT();
            val_path = val_paths[0];
        }
        else if (!strcmp(o, "--method") && v) method = NEXT();
        else if (!strcmp(o, "--save-dtype") && v) save_dtype = NEXT();
        else if (!strcmp(o, "--resume") && v) resume = NEXT();
        else if (!strcmp(o, "--overwrite")) overwrite = 1;
        else if (!strcmp(o, "--save-every")) { if (cli_parse_int(o, NEXT(), 1, 1 << 30, &save_every)) return 2; }
        else if (!strcmp(o, "--lr")) { if (parse_float(o, NEXT(), 0, 10, &x)) return 2; a.lr = (float)x; lr_given = 1; }
        else if (!strcmp(o, "--adapter") && v && !pretrain) adapter_dir = NEXT();
        else if (!strcmp(o, "--lora-r")) { if (cli_parse_int(o, NEXT(), 1, 65536, &pc.r)) return 2; }
        else if (!strcmp(o, "--lora-alpha")) { if (parse_float(o, NEXT(), 1e-6, 1e6, &x)) return 2; pc.alpha = (float)x; }
        else if (!strcmp(o, "--lora-dropout")) { if (parse_float(o, NEXT(), 0, 0.99, &x)) return 2; pc.dropout = (float)x; }
        else if (!strcmp(o, "--rslora")) pc.rslora = 1;
        else if (!strcmp(o, "--lora-targets") && v) lora_targets = NEXT();
        else if (!strcmp(o, "--ia3-targets") && v) ia3_targets = NEXT();
        else if (!strcmp(o, "--ia3-feedforward") && v) ia3_ff = NEXT();
        else if (!strcmp(o, "--num-virtual-tokens")) { if (cli_parse_int(o, NEXT(), 1, 4096, &pc.num_virtual_tokens)) return 2; }
        else if (!strcmp(o, "--prompt-init") && v) prompt_init = NEXT();
        else if (!strcmp(o, "--weight-decay")) { if (parse_float(o, NEXT(), 0, 10, &x)) return 2; a.weight_decay = (float)x; }
        else if (!strcmp(o, "--grad-clip")) { if (parse_float(o, NEXT(), 0, 1e9, &x)) return 2; a.grad_clip = (float)x; }
        else if (!strcmp(o, "--eps")) { if (parse_float(o, NEXT(), 1e-30, 1, &x)) return 2; a.eps = (float)x; }
        else if (!strcmp(o, "--warmup")) { if (parse_float(o, NEXT(), 0, 1e9, &x)) return 2; a.warmup = x; }
        else if (!strcmp(o, "--epochs")) { if (parse_float(o, NEXT(), 1e-9, 1e6, &x)) return 2; a.epochs = x; }
        else if (!strcmp(o, "--val-split")) { if (parse_float(o, NEXT(), 0, 0.5, &val_split)) return 2; }
        else if (!strcmp(o, "--betas")) {
            float b1, b2;
            if (!v || sscanf(NEXT(), "%f,%f", &b1, &b2) != 2 || !(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
                return cli_usage_error("--betas needs B1,B2 in [0,1)");
            a.beta1 = b1; a.beta2 = b2;
        }
        else if (!strcmp(o, "--batch")) { if (cli_parse_int(o, NEXT(), 1, 1 << 20, &a.batch)) return 2; }
        else if (!strcmp(o, "--micro-batch")) { if (cli_parse_int(o, NEXT(), 1, 1 << 20, &a.micro_batch)) return 2; mb_given = 1; }
        else if (!strcmp(o, "--seq-len")) { if (cli_parse_int(o, NEXT(), 2, 1 << 20, &a.seq_len)) return 2; }
        else if (!strcmp(o, "--steps")) { if (cli_parse_int(o, NEXT(), 1, 1 << 30, &a.steps)) return 2; }
        else if (!strcmp(o, "--seed")) { if (cli_parse_int(o, NEXT(), 0, 2147483647, &iv)) return 2; a.seed = (uint64_t)iv; }
        else if (!strcmp(o, "--eval-every")) { if (cli_parse_int(o, NEXT(), 1, 1 << 30, &eval_every)) return 2; }
        else if (!strcmp(o, "--early-stop")) { if (cli_parse_int(o, NEXT(), 1, 1 << 30, &early_stop)) return 2; }
        else if (!strcmp(o, "--schedule") && v) {
            const char *s = NEXT();
            if (!strcmp(s, "constant")) a.schedule = TUNA_SCHED_CONSTANT;
            else if (!strcmp(s, "linear")) a.schedule = TUNA_SCHED_LINEAR;
            else if (!strcmp(s, "cosine")) a.schedule = TUNA_SCHED_COSINE;
            else return cli_usage_error("--schedule must be constant, linear or cosine (got '%s')", s);
        }
        else if (!strcmp(o, "--loss-norm") && v) {
            const char *s = NEXT();
            if (!strcmp(s, "token")) a.loss_norm = TUNA_LOSS_NORM_TOKEN;
            else if (!strcmp(s, "sequence")) a.loss_norm = TUNA_LOSS_NORM_SEQUENCE;
            else return cli_usage_error("--loss-norm must be token or sequence (got '%s')", s);
        }
        else if (!strcmp(o, "--no-shuffle")) a.shuffle = 0;
        else if (!strcmp(o, "--grad-checkpoint")) a.grad_checkpoint = 1;
        else if (!strcmp(o, "--pack")) pack = 1;
        else if (!strcmp(o, "--quiet")) quiet = 1;
        else return cli_usage_error("%s: unknown option or missing value '%s' (see tuna %s --help)", cmd, o, cmd);
#undef NEXT
    }
    if (pretrain && (!config_path || !tok_dir || !data_path || !out_dir))
        return cli_usage_error("pretrain: --config, --tokenizer, --data and --out are required");
    if (!pretrain && (!model_dir || !data_path || !out_dir)) return cli_usage_error("%s: --model, --data and --out are required", cmd);
    {   /* --out may not be or hold an input (--resume OUT/checkpoint-N aside) */
        const cli_path named[] = {{"--model", model_dir, CLI_DIR}, {"--ref-model", ref_model, CLI_DIR}, {"--adapter", adapter_dir, CLI_DIR},
                                  {"--resume", resume, CLI_DIR | CLI_NESTED_OK}, {"--tokenizer", tok_dir, CLI_DIR},
                                  {"--config", config_path, CLI_FILE}, {"--general-eval", general, CLI_FILE}, {"--template", template_arg, CLI_FILE}};
        cli_path ins[2 * MAX_DATA + 8], outs[] = {{"--out", out_dir, CLI_DIR}};
        int n_in = 0;
        for (size_t k = 0; k < sizeof named / sizeof *named; k++) ins[n_in++] = named[k];
        for (int k = 0; k < n_data; k++) ins[n_in++] = (cli_path){"--data", data_paths[k], CLI_FILE};
        for (int k = 0; k < n_val; k++) ins[n_in++] = (cli_path){"--val", val_paths[k], CLI_FILE};
        int prc = cli_check_paths(cmd, ins, n_in, outs, 1);
        if (prc) return prc;
    }
    /* data-parallel under mpirun: rank 0 alone prints and writes files */
    tuna_status dst = tuna_dist_init();
    if (dst != TUNA_OK) return cli_status_error(dst);
    const int writer = tuna_dist_rank() == 0;
    if (!writer) quiet = 1;
    cli_read_progress(&dso.data, quiet);
    if (writer && (iv = cli_run_dir_check(out_dir, resume, overwrite, &in_place)) != 0) { cli_abort_job(iv); return iv; }
    if (!pretrain && tuna_is_gguf(model_dir))
        return cli_usage_error("%s: %s is a GGUF file; training starts from a Hugging Face model folder (GGUF is read for info, eval and generate)",
                               cmd, model_dir);
    int is_full = !strcmp(method, "full"), is_qlora = !strcmp(method, "qlora");
    if (dpo) {
        if (!is_full && !is_qlora && strcmp(method, "lora"))
            return cli_usage_error("dpo: --method '%s' is not available (full, lora, qlora)", method);
        if (n_data > 1) return cli_usage_error("dpo: one --data file (multi-task mixing is for sft)");
        if (pack) return cli_usage_error("dpo: --pack is not available (a pair's rows are scored whole)");
        if (a.loss_norm != TUNA_LOSS_NORM_TOKEN) return cli_usage_error("dpo: --loss-norm does not apply (the loss is per pair)");
        if (dargs.label_smoothing > 0 && dargs.type != TUNA_DPO_SIGMOID)
            return cli_usage_error("--label-smoothing applies to --loss sigmoid only");
        if (max_prompt_len && max_prompt_len >= a.seq_len)
            return cli_usage_error("--max-prompt-len %d leaves no room for a response in --max-len %d", max_prompt_len, a.seq_len);
        a.dpo = &dargs;
    }
    if (!is_full && (pretrain || (strcmp(method, "lora") && !is_qlora && strcmp(method, "ia3") && strcmp(method, "prompt"))))
        return cli_usage_error("%s: --method '%s' is not available (%s)", cmd, method,
                               pretrain ? "pretraining trains every weight: full" : "full, lora, qlora, ia3, prompt");
    if (is_full && adapter_dir) return cli_usage_error("--adapter needs --method lora, qlora, ia3 or prompt");
    pc.type = !strcmp(method, "ia3") ? TUNA_PEFT_IA3 : !strcmp(method, "prompt") ? TUNA_PEFT_PROMPT : TUNA_PEFT_LORA;
    {
        const char *tg = pc.type == TUNA_PEFT_IA3 ? ia3_targets : pc.type == TUNA_PEFT_LORA ? lora_targets : NULL;
        if (tg && strlen(tg) >= sizeof pc.targets) return cli_usage_error("target list too long");
        if (tg) snprintf(pc.targets, sizeof pc.targets, "%s", tg);
        if (ia3_ff) snprintf(pc.feedforward, sizeof pc.feedforward, "%s", ia3_ff);
        if (pc.type == TUNA_PEFT_PROMPT && strcmp(prompt_init, "random")) {
            pc.init_from_text = 1;
            snprintf(pc.init_text, sizeof pc.init_text, "%s", prompt_init);
        }
    }
    if (!is_full && !lr_given)
        a.lr = pc.type == TUNA_PEFT_PROMPT ? 3e-2f : pc.type == TUNA_PEFT_IA3 ? 3e-3f : 2e-4f;
    if (dpo && !lr_given) a.lr = is_full ? 1e-6f : 5e-6f; /* TRL's DPOConfig; the alignment handbook's QLoRA DPO */
    const char *files_dir = pretrain ? tok_dir : model_dir; /* tokenizer files copied to the output */
    tuna_dtype sdt = !strcmp(save_dtype, "bf16") ? TUNA_DTYPE_BF16 : !strcmp(save_dtype, "f16") ? TUNA_DTYPE_F16 : TUNA_DTYPE_F32;
    if (strcmp(save_dtype, "f32") && strcmp(save_dtype, "bf16") && strcmp(save_dtype, "f16"))
        return cli_usage_error("--save-dtype must be f32, bf16 or f16");
    if (!mb_given) a.micro_batch = a.batch;
    if (a.batch % a.micro_batch) return cli_usage_error("--batch %d is not a multiple of --micro-batch %d", a.batch, a.micro_batch);
    if (val_path && val_split > 0) return cli_usage_error("give --val or --val-split, not both");
    if (n_val > 1 && n_val != n_data)
        return cli_usage_error("several --val files must match the --data files one to one (%d --data, %d --val)", n_data, n_val);
    if (any_weight)
        for (int k = 0; k < n_data; k++)
            if (data_w[k] < 0) return cli_usage_error("--data %s: give a weight to every file or to none", data_paths[k]);

    tuna_model *m = NULL;
    tuna_trainer *tr = NULL;
    tuna_tokenizer *tok = NULL;
    tuna_pretok data = {0}, val = {0}, parts[MAX_DATA], vparts[MAX_DATA];
    memset(parts, 0, sizeof parts);
    memset(vparts, 0, sizeof vparts);
    FILE *metrics = NULL;
    cli_run_dir rd; /* rank 0's output folder: staged, then --out */
    memset(&rd, 0, sizeof rd);
    int rc = 0;
    double gen_before = NAN, gen_after = NAN;
    int64_t gen_tokens = 0;
    double *ref_train = NULL, *ref_val = NULL; /* dpo: reference log-probabilities per sequence */
    char ref_fp[17] = "";                      /* dpo: the reference model's fingerprint */
    tuna_status st = TUNA_OK;
    if (pretrain) {
        tuna_config cfg;
        st = tuna_config_load(&cfg, config_path);
        if (st == TUNA_OK) st = tuna_tokenizer_load(&tok, tok_dir);
        if (st == TUNA_OK && tuna_tokenizer_vocab_size(tok) > cfg.V)
            st = core_fail(TUNA_ERR_ARG, "%s: vocab_size %d is smaller than the tokenizer's %d ids", config_path, cfg.V,
                           tuna_tokenizer_vocab_size(tok));
        if (st == TUNA_OK) st = tuna_model_create(&m, &cfg);
        if (st == TUNA_OK) st = tuna_model_init_random(m, a.seed);
        for (int k = 0; st == TUNA_OK && k < n_data; k++) st = tuna_text_chunks(tok, data_paths[k], a.seq_len, &parts[k]);
        for (int k = 0; st == TUNA_OK && k < n_val; k++) st = tuna_text_chunks(tok, val_paths[k], a.seq_len, &vparts[k]);
        model_dir = config_path;
    } else if (dpo) {
        /* data first, then the reference pass (its own model when --ref-model
         * names one, freed before the policy loads), then the policy */
        if (has_tokenizer(model_dir)) st = tuna_tokenizer_load(&tok, model_dir);
        tuna_template *tmpl = NULL;
        char *tsrc = NULL;
        if (st == TUNA_OK && tok) st = tuna_dataset_template(&tmpl, tok, template_arg, &tsrc);
        if (st == TUNA_OK)
            st = cli_dpo_load(data_path, val_path, val_split, a.seed, tok, tmpl, a.seq_len, max_prompt_len, &dso.data, quiet,
                              &parts[0], &vparts[0]);
        tuna_template_free(tmpl);
        free(tsrc);
        if (st == TUNA_OK && vparts[0].n > 0) n_val = 1;
        val_split = 0; /* done per record above */
        if (st == TUNA_OK) {
            ref_train = malloc((size_t)parts[0].n * sizeof(double));
            ref_val = malloc((size_t)(vparts[0].n + 1) * sizeof(double));
            if (!ref_train || !ref_val) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
        }
        const char *val_name = val_path ? val_path : data_path;
        if (st == TUNA_OK && ref_model) {
            tuna_model *rm = NULL;
            st = tuna_model_load(&rm, ref_model);
            if (st == TUNA_OK) st = check_vocab(&parts[0], tuna_model_config(rm)->V, data_path);
            if (st == TUNA_OK) st = check_vocab(&vparts[0], tuna_model_config(rm)->V, val_name);
            if (st == TUNA_OK && !quiet)
                fprintf(stderr, "reference: %s (log-probabilities of %lld sequences, computed once)\n", ref_model,
                        (long long)(parts[0].n + vparts[0].n));
            if (st == TUNA_OK) st = reference_logps(rm, &parts[0], &vparts[0], 2 * a.micro_batch, ref_train, ref_val);
            if (st == TUNA_OK) train_model_fingerprint(rm, ref_fp);
            tuna_model_free(rm);
        }
        if (st == TUNA_OK) st = tuna_model_load_quantized(&m, model_dir, cli_load_mode(method));
        if (st == TUNA_OK) st = check_vocab(&parts[0], tuna_model_config(m)->V, data_path);
        if (st == TUNA_OK) st = check_vocab(&vparts[0], tuna_model_config(m)->V, val_name);
        if (st == TUNA_OK && !is_full) st = attach_adapter(m, tok, &pc, adapter_dir, model_dir, method, a.seed, quiet);
        if (st == TUNA_OK && !ref_model) {
            if (!quiet) fprintf(stderr, "reference: the starting model (log-probabilities of %lld sequences, computed once)\n",
                                (long long)(parts[0].n + vparts[0].n));
            st = reference_logps(m, &parts[0], &vparts[0], 2 * a.micro_batch, ref_train, ref_val);
            train_model_fingerprint(m, ref_fp);
        }
        a.ref_logps = ref_train;
    } else {
        st = tuna_model_load_quantized(&m, model_dir, cli_load_mode(method));
        if (st == TUNA_OK && has_tokenizer(model_dir)) st = tuna_tokenizer_load(&tok, model_dir);
        if (st == TUNA_OK && !is_full) st = attach_adapter(m, tok, &pc, adapter_dir, model_dir, method, a.seed, quiet);
        if (st == TUNA_OK && tok) {
            /* any record format: rendered, tokenized and masked, through the token cache */
            char cache_buf[PATH_MAX];
            if (!no_cache) {
                const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
                if (cache_dir) snprintf(cache_buf, sizeof cache_buf, "%s", cache_dir);
                else if (xdg) snprintf(cache_buf, sizeof cache_buf, "%s/tuna", xdg);
                else snprintf(cache_buf, sizeof cache_buf, "%s/.cache/tuna", home ? home : "/tmp");
                if (!cache_dir && !xdg && home) {
                    char parent[PATH_MAX];
                    snprintf(parent, sizeof parent, "%s/.cache", home);
                    mkdir(parent, 0755);
                }
                dso.cache_dir = cache_buf;
            }
            tuna_template *tmpl = NULL;
            char *tsrc = NULL;
            dso.seq_len = a.seq_len;
            dso.vocab_size = tuna_model_config(m)->V;
            st = tuna_dataset_template(&tmpl, tok, template_arg, &tsrc);
            for (int k = 0; st == TUNA_OK && k < n_data + n_val; k++) {
                const char *fp = k < n_data ? data_paths[k] : val_paths[k - n_data];
                tuna_dataset_stats ds;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                load_progress lp = {fp, isatty(2), -1, ts.tv_sec + ts.tv_nsec * 1e-9};
                if (!quiet) {
                    dso.on_progress = on_load_progress;
                    dso.progress_ctx = &lp;
                }
                st = tuna_dataset_load(fp, tok, tmpl, tsrc, model_dir, &dso, k < n_data ? &parts[k] : &vparts[k - n_data], &ds);
                if (ds.cache_note[0]) fprintf(stderr, "tuna: note: %s\n", ds.cache_note);
                if (st == TUNA_OK && !quiet) {
                    fprintf(stderr, "%s: %ld examples%s, %lld tokens, %lld counted (%.1f%%)", fp, ds.examples,
                            ds.from_cache ? " (token cache)" : "", (long long)ds.tokens, (long long)ds.counted,
                            ds.tokens ? 100.0 * ds.counted / ds.tokens : 0.0);
                    if (ds.data.bad) fprintf(stderr, "; %ld bad records skipped", ds.data.bad);
                    if (ds.truncated) fprintf(stderr, "; %ld truncated to %d tokens", ds.truncated, a.seq_len);
                    if (ds.dropped) fprintf(stderr, "; %ld longer than %d tokens dropped", ds.dropped, a.seq_len);
                    if (ds.no_counted) fprintf(stderr, "; %ld with no counted token", ds.no_counted);
                    fputc('\n', stderr);
                }
            }
            tuna_template_free(tmpl);
            free(tsrc);
            for (int k = 0; st == TUNA_OK && k < n_data + n_val; k++)
                st = check_vocab(k < n_data ? &parts[k] : &vparts[k - n_data], tuna_model_config(m)->V,
                                 k < n_data ? data_paths[k] : val_paths[k - n_data]);
        } else {
            for (int k = 0; st == TUNA_OK && k < n_data; k++) st = tuna_pretok_load(&parts[k], data_paths[k], tuna_model_config(m)->V);
            for (int k = 0; st == TUNA_OK && k < n_val; k++) st = tuna_pretok_load(&vparts[k], val_paths[k], tuna_model_config(m)->V);
        }
    }
    for (int k = 0; st == TUNA_OK && val_split > 0 && k < n_data; k++) {
        /* the split is per file, so each task keeps its own validation share */
        st = split_val(&parts[k], &vparts[k], val_split);
        n_val = n_data;
    }
    /* examples whose counted tokens were all truncated away cost time and teach nothing */
    for (int k = 0; st == TUNA_OK && !dpo && k < n_data + n_val; k++) {
        tuna_pretok *pp = k < n_data ? &parts[k] : &vparts[k - n_data];
        int64_t before = pp->n, removed = tuna_pretok_drop_uncounted(pp);
        if (removed < 0) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
        else if (removed > 0 && !quiet)
            fprintf(stderr, "%s%s: %lld of %lld examples have no counted token (response truncated away at --seq-len %d?): left out\n",
                    part_file(k, n_data, data_paths, val_path ? val_paths : NULL), k >= n_data && !val_path ? " (--val-split share)" : "",
                    (long long)removed, (long long)before, a.seq_len);
    }
    for (int k = 0; st == TUNA_OK && k < n_data; k++)
        if (parts[k].n == 0) st = core_fail(TUNA_ERR_FORMAT, "%s: no training records with counted tokens", data_paths[k]);
    for (int k = 0; st == TUNA_OK && k < n_data + n_val; k++)
        st = check_context(k < n_data ? &parts[k] : &vparts[k - n_data], tuna_model_config(m), virtual_tokens(m),
                           part_file(k, n_data, data_paths, val_path ? val_paths : NULL));
    for (int k = 0; st == TUNA_OK && pack && k < n_data; k++) {
        tuna_pretok packed;
        int64_t examples = parts[k].n;
        st = tuna_pretok_pack(&parts[k], a.seq_len, &packed);
        if (st == TUNA_OK) {
            tuna_pretok_free(&parts[k]);
            parts[k] = packed;
            if (!quiet) fprintf(stderr, "%s: packed %lld examples into %lld rows of up to %d tokens\n", data_paths[k],
                                (long long)examples, (long long)parts[k].n, a.seq_len);
        }
    }
    if (st == TUNA_OK && n_data == 1) { data = parts[0]; memset(&parts[0], 0, sizeof parts[0]); }
    else if (st == TUNA_OK) st = tuna_pretok_concat(parts, n_data, &data);
    if (st == TUNA_OK && n_val == 1) { val = vparts[0]; memset(&vparts[0], 0, sizeof vparts[0]); }
    else if (st == TUNA_OK && n_val > 1) st = tuna_pretok_concat(vparts, n_val, &val);
    if (any_weight) a.task_weights = data_w;
    /* validation and general-text rows are evaluated whole, not cut to the longest training row */
    a.eval_max_len = val.max_len > (general ? a.seq_len : 0) ? val.max_len : (general ? a.seq_len : 0);
    if (st == TUNA_OK) st = tuna_trainer_create(&tr, m, &data, &a);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    int total = tuna_trainer_total_steps(tr);
    if (tuna_dist_size() > 1 && !quiet)
        fprintf(stderr, "data-parallel: %d ranks, each takes %d of every %d %s; gradients summed %s\n", tuna_dist_size(),
                a.batch / tuna_dist_size(), a.batch, dpo ? "pairs" : "sequences",
                tuna_trainer_overlaps_comm(tr) ? "block by block during backward" : "after backward");
    int have_val = val.n > 0;
    if (have_val && !eval_every) eval_every = total / 10 > 0 ? total / 10 : 1;
    double best = INFINITY;
    int bad_evals = 0, saved_best = 0;
    train_progress pg; /* best, bad_evals and saved_best as checkpoints record them */
    train_progress_init(&pg, &val);
    char prev_ck[PATH_MAX] = "";
    /* the driver's own settings, recorded in checkpoints: a resume lists those that changed */
    char run_settings[200];
    snprintf(run_settings, sizeof run_settings, "{\"eval_every\":%d,\"early_stop\":%d,\"save_every\":%d,\"save_dtype\":\"%s\"}",
             eval_every, early_stop, save_every, save_dtype);
    st = tuna_trainer_set_run_settings(tr, run_settings);
    if (st == TUNA_OK && dpo) st = train_set_reference(tr, ref_fp); /* a resume needs the same reference model */
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    if (resume) {
        char *extra = NULL;
        st = tuna_trainer_resume(tr, resume, &extra);
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
        if (writer && tuna_trainer_resume_notice(tr)[0]) fprintf(stderr, "tuna: note: %s\n", tuna_trainer_resume_notice(tr));
        char note[512] = "";
        st = extra ? train_progress_resume(&pg, extra, resume, note, sizeof note) : TUNA_OK;
        free(extra);
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
        if (writer && note[0]) fprintf(stderr, "tuna: note: %s\n", note);
        /* the best weights saved so far are in the checkpoint's own folder:
         * a run going on elsewhere writes its own at the end */
        best = pg.best, bad_evals = pg.bad_evals, saved_best = pg.saved_best && in_place;
        if (writer) adopt_resumed_checkpoint(resume, out_dir, tuna_trainer_step_count(tr), prev_ck, sizeof prev_ck);
        if (!quiet) fprintf(stderr, "resumed from %s at step %d\n", resume, tuna_trainer_step_count(tr));
    }
    /* nothing is written before a resume was accepted; then in --out itself
     * (a resume of its own checkpoint) or in a staging folder (run_staging.h) */
    if (writer && (st = cli_run_dir_begin(&rd, out_dir, in_place)) != TUNA_OK) { rc = cli_status_error(st); goto done; }
    char path[PATH_MAX];
    const char *sched[] = {"constant", "linear", "cosine"};
    json_t *ja = json_object();
    json_object_set_new(ja, "command", json_string(cmd));
    json_object_set_new(ja, pretrain ? "config" : "model", json_string(model_dir));
    if (pretrain) json_object_set_new(ja, "tokenizer", json_string(tok_dir));
    json_t *jd = json_array(), *jv = json_array();
    for (int k = 0; k < n_data; k++)
        json_array_append_new(jd, data_w[k] >= 0 ? json_pack("{s:s,s:f}", "path", data_paths[k], "weight", data_w[k])
                                                 : json_string(data_paths[k]));
    for (int k = 0; k < n_val && val_path; k++) json_array_append_new(jv, json_string(val_paths[k]));
    json_object_set_new(ja, "data", n_data == 1 && data_w[0] < 0 ? json_string(data_path) : jd);
    if (n_data == 1 && data_w[0] < 0) json_decref(jd);
    json_object_set_new(ja, "val", !val_path ? json_null() : n_val == 1 ? json_string(val_path) : jv);
    if (!val_path || n_val == 1) json_decref(jv);
    json_object_set_new(ja, "val_split", json_real(val_split));
    json_object_set_new(ja, "general_eval", general ? json_string(general) : json_null());
    json_object_set_new(ja, "method", json_string(method));
    if (tuna_peft_get(m)) {
        const tuna_peft_config *c = tuna_peft_get(m);
        if (adapter_dir) json_object_set_new(ja, "adapter", json_string(adapter_dir));
        if (c->type == TUNA_PEFT_LORA) {
            json_object_set_new(ja, "lora_r", json_integer(c->r));
            json_object_set_new(ja, "lora_alpha", json_real(c->alpha));
            json_object_set_new(ja, "lora_dropout", json_real(c->dropout));
            json_object_set_new(ja, "rslora", json_boolean(c->rslora));
        }
        if (c->type != TUNA_PEFT_PROMPT) json_object_set_new(ja, "targets", json_string(c->targets));
        if (c->type == TUNA_PEFT_PROMPT) json_object_set_new(ja, "num_virtual_tokens", json_integer(c->num_virtual_tokens));
        json_object_set_new(ja, "trainable_parameters", json_integer(tuna_peft_num_trainable(m)));
    }
    json_object_set_new(ja, "lr", json_real(a.lr));
    json_object_set_new(ja, "schedule", json_string(sched[a.schedule]));
    json_object_set_new(ja, "warmup", json_real(a.warmup));
    json_object_set_new(ja, "warmup_steps", json_integer(tuna_warmup_steps(&a, total)));
    json_object_set_new(ja, "weight_decay", json_real(a.weight_decay));
    json_object_set_new(ja, "betas", json_pack("[f,f]", (double)a.beta1, (double)a.beta2));
    json_object_set_new(ja, "eps", json_real(a.eps));
    json_object_set_new(ja, "grad_clip", json_real(a.grad_clip));
    json_object_set_new(ja, "batch", json_integer(a.batch));
    json_object_set_new(ja, "micro_batch", json_integer(a.micro_batch));
    json_object_set_new(ja, "seq_len", json_integer(a.seq_len));
    json_object_set_new(ja, "steps", json_integer(total));
    json_object_set_new(ja, "epochs", json_real(a.epochs));
    json_object_set_new(ja, "seed", json_integer((json_int_t)a.seed));
    json_object_set_new(ja, "shuffle", json_boolean(a.shuffle));
    json_object_set_new(ja, "loss_norm", json_string(a.loss_norm == TUNA_LOSS_NORM_TOKEN ? "token" : "sequence"));
    json_object_set_new(ja, "grad_checkpoint", json_boolean(a.grad_checkpoint));
    json_object_set_new(ja, "pack", json_boolean(pack));
    json_object_set_new(ja, "eval_every", json_integer(eval_every));
    json_object_set_new(ja, "early_stop", json_integer(early_stop));
    json_object_set_new(ja, "save_every", json_integer(save_every));
    json_object_set_new(ja, "save_dtype", json_string(save_dtype));
    json_object_set_new(ja, "train_sequences", json_integer(data.n));
    if (dpo) {
        const char *lt[] = {"sigmoid", "ipo", "hinge"};
        json_object_set_new(ja, "loss_type", json_string(lt[dargs.type]));
        json_object_set_new(ja, "beta", json_real(dargs.beta));
        json_object_set_new(ja, "label_smoothing", json_real(dargs.label_smoothing));
        json_object_set_new(ja, "ref_model", json_string(ref_model ? ref_model : model_dir));
        json_object_set_new(ja, "max_prompt_len", json_integer(max_prompt_len));
        json_object_set_new(ja, "train_pairs", json_integer(data.n / 2));
        json_object_set_new(ja, "val_pairs", json_integer(val.n / 2));
    }
    json_object_set_new(ja, "val_sequences", json_integer(val.n));
    json_object_set_new(ja, "parameters", json_integer(tuna_model_param_count(m)));
    json_object_set_new(ja, "ranks", json_integer(tuna_dist_size()));
    cli_run_dir_path(&rd, "train_args.json", path, sizeof path);
    if (writer) atomic_file_write_json(path, ja, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(ja);
    cli_run_dir_path(&rd, "metrics.jsonl", path, sizeof path);
    metrics = writer ? fopen(path, resume ? "a" : "w") : fopen("/dev/null", "w");
    if (!metrics) { rc = cli_usage_error("%s: cannot create: %s", path, strerror(errno)); goto done; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int tty = isatty(2) && !quiet;
    int log_every = total / 20 > 0 ? total / 20 : 1;
    const char *copy_names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt"};
    for (size_t k = 0; writer && k < sizeof copy_names / sizeof copy_names[0]; k++) cli_copy_file(files_dir, rd.dir, copy_names[k]);
    /* general text is measured by rank 0 alone: no collectives, and the
     * other ranks may not see the output folder it reloads from */
    if (general && !resume && writer) {
        st = general_eval(tr, tok, general, a.seq_len, &gen_before, &gen_tokens);
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
        if (!quiet) fprintf(stderr, "general text before training: loss %.4f, ppl %.3f (%lld tokens)\n", gen_before,
                            exp(gen_before), (long long)gen_tokens);
    }
    tuna_step_info info = {0};
    char extra[160];
    for (int s = tuna_trainer_step_count(tr); s < total; s++) {
        st = agree_stop();
        if (st != TUNA_OK || stop_requested) break;
        st = tuna_trainer_step(tr, &info);
        if (st != TUNA_OK) break;
        cli_metrics_write(metrics, cli_metrics_step(&info, tuna_dist_size(), dpo));
        char el[32], eta[32];
        fmt_time(el, sizeof el, info.elapsed_seconds);
        fmt_time(eta, sizeof eta, info.elapsed_seconds / info.step * (total - info.step));
        char pref[96] = "";
        if (dpo) snprintf(pref, sizeof pref, " | acc %.2f | margin %.3f", info.dpo.rewards_accuracies, info.dpo.rewards_margins);
        if (tty)
            fprintf(stderr, "\r\033[Kstep %d/%d | epoch %.2f | loss %.4f%s | lr %.2e | %.0f tok/s | %s elapsed | ETA %s",
                    info.step, total, info.epoch, info.loss, pref, info.lr, info.tokens_per_second, el, eta);
        else if (!quiet && (info.step % log_every == 0 || info.step == total))
            fprintf(stderr, "step %d/%d epoch %.2f loss %.4f%s lr %.2e grad_norm %.3f %.0f tok/s elapsed %s eta %s\n",
                    info.step, total, info.epoch, info.loss, pref, info.lr, info.grad_norm, info.tokens_per_second, el, eta);
        if (have_val && (info.step % eval_every == 0 || info.step == total)) {
            double vl;
            int64_t vt = 0;
            tuna_dpo_stats es = {0};
            if (dpo) {
                st = tuna_trainer_eval_dpo(tr, &val, ref_val, &es);
                vl = es.loss;
            } else st = tuna_trainer_eval(tr, &val, &vl, &vt);
            if (st != TUNA_OK) break;
            if (tuna_dist_size() > 1) { /* rank 0's value on every rank: the same best / early-stop decisions */
                double v = writer ? vl : 0;
                st = tuna_dist_sum_f64(&v, 1);
                if (st != TUNA_OK) break;
                vl = v;
            }
            json_t *ev = json_object();
            json_object_set_new(ev, "step", json_integer(info.step));
            json_object_set_new(ev, "eval_loss", cli_json_num(vl));
            if (dpo) {
                json_object_set_new(ev, "eval_pairs", json_integer(val.n / 2));
                cli_metrics_dpo(ev, "eval_", &es);
            } else json_object_set_new(ev, "eval_tokens", json_integer(vt));
            char per_task[1024] = "";
            for (int k = 0; val.n_tasks > 1 && k < val.n_tasks && st == TUNA_OK; k++) {
                /* a view of task k's sequences (offsets index the shared token arrays) */
                tuna_pretok view = val;
                view.n = val.task_off[k + 1] - val.task_off[k];
                view.off = val.off + val.task_off[k];
                view.n_tasks = 0;
                if (view.n == 0) continue; /* a --val-split share with no sequence: nothing to report */
                double tl;
                int64_t tt;
                st = tuna_trainer_eval(tr, &view, &tl, &tt);
                /* named by the --val file, or by the --data file it was split from */
                const char *base = val_path ? val_paths[k] : data_paths[k];
                cli_json_set_named(ev, "eval_loss/", base, cli_json_num(tl));
                size_t used = strlen(per_task);
                snprintf(per_task + used, sizeof per_task - used, "%s%s %.4f", used ? ", " : " [", base, tl);
            }
            if (st != TUNA_OK) { json_decref(ev); break; }
            if (per_task[0]) strncat(per_task, "]", sizeof per_task - strlen(per_task) - 1);
            cli_metrics_write(metrics, ev);
            if (tty) fputc('\n', stderr);
            if (!quiet && dpo)
                fprintf(stderr, "eval at step %d: val loss %.4f, preference accuracy %.3f, margin %.3f%s\n", info.step, vl,
                        es.rewards_accuracies, es.rewards_margins, vl < best ? " (best)" : "");
            else if (!quiet) fprintf(stderr, "eval at step %d: val loss %.4f (ppl %.3f)%s%s\n", info.step, vl, exp(vl),
                                vl < best ? " (best)" : "", per_task);
            if (vl < best) {
                best = vl;
                bad_evals = 0;
                st = writer ? save_result(m, &rd, sdt) : TUNA_OK;
                if (st != TUNA_OK) break;
                saved_best = 1;
            } else if (early_stop && ++bad_evals >= early_stop) {
                if (!quiet) fprintf(stderr, "early stop: %d evaluations without improvement; keeping step with val loss %.4f\n",
                                    bad_evals, best);
                break;
            }
        }
        if (save_every && info.step % save_every == 0 && info.step < total) {
            pg.best = best, pg.bad_evals = bad_evals, pg.saved_best = saved_best;
            train_progress_json(&pg, extra, sizeof extra);
            st = writer ? write_checkpoint(tr, &rd, extra, prev_ck, sizeof prev_ck, files_dir) : TUNA_OK;
            if (st != TUNA_OK) break;
        }
    }
    if (tty) fputc('\n', stderr);
    /* a signal during the last step reaches the ranks' flags at different times: agree once more */
    if (st == TUNA_OK) st = agree_stop();
    if (st == TUNA_ERR_NUMERIC) {
        fprintf(stderr, "tuna: error: %s; %s\n", tuna_last_error(),
                saved_best ? "the best weights so far are in the output folder" : "no weights were written");
        rc = 1;
        goto done;
    }
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    if (!saved_best && writer) {
        st = save_result(m, &rd, sdt);
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    }
    if (stop_requested) {
        pg.best = best, pg.bad_evals = bad_evals, pg.saved_best = saved_best;
        train_progress_json(&pg, extra, sizeof extra);
        st = writer ? write_checkpoint(tr, &rd, extra, prev_ck, sizeof prev_ck, files_dir) : TUNA_OK;
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
        if (writer) fprintf(stderr, "tuna: interrupted at step %d; checkpoint saved: resume with --resume %s/%s\n",
                tuna_trainer_step_count(tr), rd.dir, prev_ck);
        rc = 1;
        goto done;
    }
    if (general && writer) {
        /* measured on the weights written to the output (the best ones when validating) */
        if (saved_best) st = tuna_peft_get(m) ? tuna_peft_load_weights(m, rd.dir) : tuna_model_load_weights(m, rd.dir);
        if (st == TUNA_OK) st = general_eval(tr, tok, general, a.seq_len, &gen_after, &gen_tokens);
        if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
        json_t *g = json_pack("{s:{s:f,s:f,s:I},s:{s:f,s:f,s:I},s:f}", "before", "loss", gen_before, "ppl", exp(gen_before),
                              "tokens", (json_int_t)gen_tokens, "after", "loss", gen_after, "ppl", exp(gen_after), "tokens",
                              (json_int_t)gen_tokens, "ppl_change_pct", (exp(gen_after) / exp(gen_before) - 1) * 100);
        cli_run_dir_path(&rd, "general_eval.json", path, sizeof path);
        if (writer && isfinite(gen_before) && g) atomic_file_write_json(path, g, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        json_decref(g);
        if (!quiet)
            fprintf(stderr, "general text after training: loss %.4f, ppl %.3f (%+.1f%%)\n", gen_after, exp(gen_after),
                    (exp(gen_after) / exp(gen_before) - 1) * 100);
    }
    if (data.n_tasks > 1) {
        int64_t counts[MAX_DATA], sum = 0;
        double wsum = 0;
        tuna_trainer_task_counts(tr, counts);
        for (int k = 0; k < data.n_tasks; k++) {
            sum += counts[k];
            wsum += any_weight ? data_w[k] : (double)(data.task_off[k + 1] - data.task_off[k]);
        }
        json_t *mix = json_object();
        if (!quiet) fprintf(stderr, "mixture (actual vs target share of sequences):");
        for (int k = 0; k < data.n_tasks; k++) {
            double target = (any_weight ? data_w[k] : (double)(data.task_off[k + 1] - data.task_off[k])) / wsum;
            double actual = sum ? (double)counts[k] / sum : 0;
            cli_json_set_named(mix, "", data_paths[k], json_pack("{s:o,s:o,s:I}", "target", cli_json_num(target), "actual",
                                                                 cli_json_num(actual), "sequences", (json_int_t)counts[k]));
            if (!quiet) fprintf(stderr, " %s %.1f%% (%.1f%%)", data_paths[k], actual * 100, target * 100);
        }
        cli_metrics_write(metrics, json_pack("{s:o}", "mixture", mix));
        if (!quiet) fputc('\n', stderr);
    }
    if (!quiet)
        fprintf(stderr, "done after %d steps: %s/%s\n", tuna_trainer_step_count(tr), out_dir,
                tuna_peft_get(m) ? "adapter_model.safetensors (PEFT adapter)" : "model.safetensors");
done:;
    /* a run that failed before its first result leaves --out as it was */
    int report = metrics && writer && cli_run_dir_committed(&rd);
    if (metrics) fclose(metrics);
    cli_run_dir_abort(&rd);
    if (report) {
        /* the report is written whenever there are metrics, also after a stop */
        char rpath[PATH_MAX];
        cli_run_dir_path(&rd, "report.html", rpath, sizeof rpath);
        if (tuna_report_write(rd.dir) == TUNA_OK) {
            if (!quiet) fprintf(stderr, "report: %s\n", rpath);
        } else fprintf(stderr, "tuna: warning: report not written: %s\n", tuna_last_error());
    }
    /* a failure on one rank ends the job instead of leaving the others in a
     * collective (after rank 0's report, which a failure agreed by all ranks
     * would otherwise lose) */
    if (rc != 0 && !stop_requested) cli_abort_job(rc);
    tuna_trainer_free(tr);
    tuna_tokenizer_free(tok);
    for (int k = 0; k < MAX_DATA; k++) { tuna_pretok_free(&parts[k]); tuna_pretok_free(&vparts[k]); }
    tuna_pretok_free(&data);
    tuna_pretok_free(&val);
    tuna_model_free(m);
    free(ref_train);
    free(ref_val);
    return rc;
}

int cmd_sft(int argc, char **argv) { return cli_train_command(argc, argv, CLI_TRAIN_SFT); }
int cmd_pretrain(int argc, char **argv) { return cli_train_command(argc, argv, CLI_TRAIN_PRETRAIN); }
