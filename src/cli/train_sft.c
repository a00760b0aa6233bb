/* train_sft.c — `tuna sft`'s entry in the table of training modes: its
 * help, and its loader: a model folder and its adapter, then every --data and
 * --val file in any record format (rendered with the chat template,
 * tokenized and masked through the token cache), or pre-tokenized records
 * when the folder has no tokenizer. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/train_data.h"
#include "cli/train_optab.h"

static const char sft_help[] =
    "usage: tuna sft --model DIR --data FILE.jsonl --out DIR [options]\n"
    "       tuna sft --config RECIPE.yaml [options]\n"
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
    "  --config RECIPE.yaml   options from a recipe file (YAML or JSON): every option below\n"
    "                         is a key (lora_r: 16 or lora-r: 16; flags true/false; lists\n"
    "                         for --data/--val, data items also {path: F, weight: W}); the\n"
    "                         command line wins. The run writes OUT/recipe.yaml, all its\n"
    "                         options resolved: --config OUT/recipe.yaml repeats it\n"
    "  --dry-run              check the options (and the recipe), print the resolved\n"
    "                         recipe and stop; no file is read or written\n"
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
    "  --checkpoint-layers N  the same for the first N blocks only (gradients unchanged)\n"
    "  --bf16                 mixed precision as Transformers' bf16=True: the GEMMs of every\n"
    "                         linear layer take bf16 inputs and sum in fp32; weights,\n"
    "                         gradients, optimizer, norms, attention and loss stay fp32\n"
    "                         (needs AVX512-BF16 or AMX: `tuna --version`; else a note and fp32)\n"
    "  --max-memory SIZE      memory the run may use (e.g. 16G; default: what is available,\n"
    "                         MemAvailable or the cgroup limit). A run predicted (`tuna plan`)\n"
    "                         to need more checkpoints the fewest blocks that make it fit\n"
    "                         (a note says how many); one that cannot fit is refused\n"
    "  --no-mem-check         start even when `tuna plan`'s predicted peak RSS exceeds the\n"
    "                         memory available (refused by default: exit 2, options that fit)\n"
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
    "  --profile              at the end, where the steps' time went: GEMMs (with their\n"
    "                         GFLOP/s), dequantization of stored weights, attention, bf16\n"
    "                         rounding of activations (convert), the rest; tokens/s (also TUNA_PROFILE=1; metrics.jsonl: \"profile\")\n"
    "Started by mpirun -np N, the run is data-parallel: each rank takes 1/N of every\n"
    "--batch and the gradients are summed across ranks (README: Data-parallel training).\n"
    "Ctrl-C or SIGTERM saves a checkpoint and exits (status 1) with the resume command.\n"
    "Writes OUT/model.safetensors (or the adapter files), config.json, tokenizer files,\n"
    "metrics.jsonl, train_args.json, recipe.yaml. With validation, OUT holds the best weights seen.\n"
    "They are written in a hidden sibling, .OUT.run-PID, which takes OUT's place at the\n"
    "run's first checkpoint, best-weights save or final save: a run that fails before\n"
    "leaves OUT as it was (or absent).\n";

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


/* the token cache's folder: --cache-dir, else $XDG_CACHE_HOME/tuna or
 * ~/.cache/tuna (~/.cache made when missing); NULL with --no-cache */
static const char *cache_folder(const train_opts *o, char *buf, size_t n) {
    if (o->no_cache) return NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (o->cache_dir) snprintf(buf, n, "%s", o->cache_dir);
    else if (xdg) snprintf(buf, n, "%s/tuna", xdg);
    else snprintf(buf, n, "%s/.cache/tuna", home ? home : "/tmp");
    if (!o->cache_dir && !xdg && home) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s/.cache", home);
        mkdir(parent, 0755);
    }
    return buf;
}

/* "FILE: N examples, T tokens, C counted (P%); ..." */
static void report_file(const char *fp, const tuna_dataset_stats *ds, int seq_len) {
    fprintf(stderr, "%s: %ld examples%s, %lld tokens, %lld counted (%.1f%%)", fp, ds->examples,
            ds->from_cache ? " (token cache)" : "", (long long)ds->tokens, (long long)ds->counted,
            ds->tokens ? 100.0 * ds->counted / ds->tokens : 0.0);
    if (ds->data.bad) fprintf(stderr, "; %ld bad records skipped", ds->data.bad);
    if (ds->truncated) fprintf(stderr, "; %ld truncated to %d tokens", ds->truncated, seq_len);
    if (ds->dropped) fprintf(stderr, "; %ld longer than %d tokens dropped", ds->dropped, seq_len);
    if (ds->no_counted) fprintf(stderr, "; %ld with no counted token", ds->no_counted);
    fputc('\n', stderr);
}

/* one file of any record format into p, through the token cache */
static tuna_status load_file(train_opts *o, train_data *d, const tuna_template *tmpl, const char *tsrc, const char *fp,
                             tuna_pretok **p) {
    tuna_dataset_stats ds;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    load_progress lp = {fp, isatty(2), -1, ts.tv_sec + ts.tv_nsec * 1e-9};
    if (!o->quiet) {
        o->dso.on_progress = on_load_progress;
        o->dso.progress_ctx = &lp;
    }
    tuna_status st = tuna_dataset_load(fp, d->tok, tmpl, tsrc, o->model_dir, &o->dso, p, &ds);
    if (ds.cache_note[0]) fprintf(stderr, "tuna: note: %s\n", ds.cache_note);
    if (st == TUNA_OK && !o->quiet) report_file(fp, &ds, o->a.seq_len);
    return st;
}

/* every --data and --val file, rendered, tokenized and masked */
static tuna_status load_records(train_opts *o, train_data *d) {
    char cache_buf[PATH_MAX];
    const char *cache = cache_folder(o, cache_buf, sizeof cache_buf);
    if (cache) o->dso.cache_dir = cache;
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    int V = tuna_model_config(d->m)->V;
    o->dso.seq_len = o->a.seq_len;
    o->dso.vocab_size = V;
    tuna_status st = tuna_dataset_template(&tmpl, d->tok, o->template_arg, &tsrc);
    for (int k = 0; st == TUNA_OK && k < o->n_data + o->n_val; k++) {
        const char *fp = k < o->n_data ? o->data_paths[k] : o->val_paths[k - o->n_data];
        st = load_file(o, d, tmpl, tsrc, fp, k < o->n_data ? &d->parts[k] : &d->vparts[k - o->n_data]);
    }
    tuna_template_free(tmpl);
    free(tsrc);
    for (int k = 0; st == TUNA_OK && k < o->n_data + o->n_val; k++)
        st = train_check_vocab(k < o->n_data ? d->parts[k] : d->vparts[k - o->n_data], V,
                               k < o->n_data ? o->data_paths[k] : o->val_paths[k - o->n_data]);
    return st;
}

/* the model (and adapter), then the data: records, or pre-tokenized without a tokenizer */
static tuna_status sft_load(train_opts *o, train_data *d) {
    d->n_val = o->n_val;
    tuna_status st = train_load_model(&d->m, o);
    if (st == TUNA_OK && train_has_tokenizer(o->model_dir)) st = tuna_tokenizer_load(&d->tok, o->model_dir);
    if (st == TUNA_OK && !o->is_full) st = train_attach_adapter(d->m, d->tok, o);
    if (st != TUNA_OK) return st;
    if (d->tok) return load_records(o, d);
    int V = tuna_model_config(d->m)->V;
    for (int k = 0; st == TUNA_OK && k < o->n_data; k++) st = tuna_pretok_load(&d->parts[k], o->data_paths[k], V);
    for (int k = 0; st == TUNA_OK && k < o->n_val; k++) st = tuna_pretok_load(&d->vparts[k], o->val_paths[k], V);
    return st;
}

static const train_optdef sft_options[] = {OPTDEFS_MODEL, {NULL, OPT_FLAG, REC_NONE, 0, NULL}};

const train_mode train_mode_sft = {
    .name = "sft",
    .help = sft_help,
    .methods = "full, lora, qlora, ia3, prompt",
    .job = MEM_SFT,
    .options = sft_options,
    .option = train_model_option,
    .required = train_model_required,
    .load = sft_load,
};
