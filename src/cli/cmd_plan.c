/* cmd_plan.c — `tuna plan`: the memory a command will need, from the model's
 * headers and the command's own options (mem_plan.c's estimator, the one the
 * training commands check themselves with). Options of sft / dpo / pretrain /
 * generate / eval / serve that do not change memory are accepted and
 * ignored, so a command line can be pasted as it is. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_model.h"
#include "cli/mem_plan.h"
#include "commands.h"
#include "tuna_dataset.h"

static const char *plan_help =
    "usage: tuna plan [sft|pretrain|dpo|generate|chat|eval|serve] --model DIR|CONFIG.json|FILE.gguf\n"
    "                 [--method full|lora|qlora|ia3|prompt] [--lora-r N] [--lora-targets LIST]\n"
    "                 [--ia3-targets LIST] [--num-virtual-tokens N] [--batch N] [--micro-batch N]\n"
    "                 [--seq-len N] [--grad-checkpoint] [--checkpoint-layers N] [--max-memory SIZE]\n"
    "                 [--data F.jsonl] [--quant nf4] [--dtype auto|bf16|f32] [--bf16] [--json]\n"
    "\n"
    "Prints the memory a command with these options will need (sft when no command\n"
    "is named): frozen weights as stored (block linears in NF4 for qlora or\n"
    "--quant nf4; every 2-D weight in bf16 with --dtype bf16), trained weights in\n"
    "fp32 with their gradients and AdamW moments, activations for one micro-batch\n"
    "(dpo: 2 rows per pair, and its reference pass), adapter buffers, token data\n"
    "(pre-tokenized --data), with training's --bf16 the bf16 copies of fp32 weights\n"
    "and rounded activations (where this CPU has bf16 GEMMs), and the predicted\n"
    "peak RSS. Only headers are read. The other options of the command (--out,\n"
    "--lr, --steps, ...) are accepted and ignored, so a command can be pasted as is.\n"
    "For generate, chat and serve: --seq-len is the context, --batch (or serve's\n"
    "--parallel) the rows decoded at once. With --max-memory (training), the plan\n"
    "is the one the run itself would choose under that limit: the fewest blocks\n"
    "checkpointed (--checkpoint-layers) that fit, when the run does not fit as is.\n";

/* Options of the commands plan stands for that do not change memory. */
static const char *const skip_value[] = {
    "--out", "--val", "--save-dtype", "--resume", "--save-every", "--lr", "--adapter", "--lora-alpha", "--lora-dropout",
    "--prompt-init", "--weight-decay", "--grad-clip", "--eps", "--warmup", "--epochs", "--val-split", "--betas", "--steps",
    "--seed", "--eval-every", "--early-stop", "--schedule", "--loss-norm", "--general-eval", "--template", "--cache-dir",
    "--max-bad", "--loss-on", "--truncate", "--beta", "--label-smoothing", "--loss", "--max-prompt-len", "--tokenizer",
    "--simpo-gamma", "--cpo-alpha", "--desirable-weight", "--undesirable-weight",
    "--ref-model", "--ia3-feedforward", "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--min-p",
    "--repetition-penalty", "--stop", "--prompt", "--system", "--host", "--port", "--api-key", "--queue", NULL};
static const char *const skip_flag[] = {"--rslora", "--overwrite", "--no-cache", "--strict", "--no-shuffle", "--pack",
                                        "--quiet", "--no-mem-check", "--stream", "--generate", "--profile", NULL};

static int listed(const char *const *list, const char *o) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], o)) return 1;
    return 0;
}

static int job_of(const char *s, mem_job *j) {
    static const struct { const char *n; mem_job j; } jobs[] = {{"sft", MEM_SFT}, {"pretrain", MEM_PRETRAIN}, {"dpo", MEM_DPO}, {"kto", MEM_DPO},
                                                               {"generate", MEM_GENERATE}, {"chat", MEM_GENERATE},
                                                               {"eval", MEM_EVAL}, {"serve", MEM_SERVE}};
    for (size_t i = 0; i < sizeof jobs / sizeof *jobs; i++)
        if (!strcmp(s, jobs[i].n)) { *j = jobs[i].j; return 1; }
    return 0;
}

typedef struct {
    const char *model, *lora_targets, *ia3_targets;
    cli_model_flags mf; /* --quant, --dtype */
    const char *data[16];
    int n_data, json;
    int64_t max_memory;
} plan_args;

/* One option at argv[*i]: 0 taken, 2 bad (printed). */
static int plan_option(mem_opts *o, plan_args *p, int argc, char **argv, int *i) {
    const char *s = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    const char *text = NULL;
    int *num = NULL, lo = 1, mf = cli_model_flag(&p->mf, "plan", argc, argv, i);
    if (mf) return mf < 0 ? 2 : 0;
    if ((!strcmp(s, "--model") || !strcmp(s, "--config")) && v) text = p->model = v;
    else if (!strcmp(s, "--method") && v) text = o->method = v;
    else if (!strcmp(s, "--lora-targets") && v) text = p->lora_targets = v;
    else if (!strcmp(s, "--ia3-targets") && v) text = p->ia3_targets = v;
    else if (!strcmp(s, "--data") && v) {
        if (p->n_data == 16) return cli_usage_error("plan: at most 16 --data files");
        text = p->data[p->n_data++] = v;
    } else if (!strcmp(s, "--batch") || !strcmp(s, "--parallel")) num = &o->batch;
    else if (!strcmp(s, "--micro-batch")) num = &o->micro;
    else if (!strcmp(s, "--seq-len") || !strcmp(s, "--max-len") || !strcmp(s, "--ctx")) { num = &o->seq_len; lo = 2; }
    else if (!strcmp(s, "--lora-r")) num = &o->pc.r;
    else if (!strcmp(s, "--num-virtual-tokens")) num = &o->pc.num_virtual_tokens;
    else if (!strcmp(s, "--checkpoint-layers")) { num = &o->ckpt_layers; lo = 0; }
    else if (!strcmp(s, "--grad-checkpoint")) o->grad_checkpoint = 1;
    else if (!strcmp(s, "--bf16")) o->bf16_compute = 1;
    else if (!strcmp(s, "--max-memory") && v) {
        if ((p->max_memory = mem_parse_bytes(v)) <= 0)
            return cli_usage_error("plan: --max-memory needs a size such as 16G or 12000M (got '%s')", v);
        (*i)++;
    } else if (!strcmp(s, "--json")) p->json = 1;
    else if (listed(skip_value, s) && v) (*i)++;
    else if (!listed(skip_flag, s)) return cli_usage_error("plan: unknown option or missing value '%s' (see tuna plan --help)", s);
    if (num && cli_parse_int(s, v, lo, 1 << 20, num)) return 2;
    if (num || text) (*i)++;
    return 0;
}

/* One --data file as the run holds it: pre-tokenized sequences (sft), or
 * pre-tokenized preference pairs as 2 rows each (dpo). */
static tuna_status load_tokens(const char *path, mem_job job, int V, int max_len, tuna_pretok **t) {
    if (job != MEM_DPO) return tuna_pretok_load(t, path, V);
    tuna_pref_options po = {0};
    tuna_data_options_init(&po.data);
    po.max_len = max_len;
    tuna_pref_stats ps;
    return tuna_dataset_load_preferences(path, NULL, NULL, &po, t, NULL, &ps);
}

/* Pre-tokenized --data files: their tokens are held during training and the
 * trainer sizes T by their longest row. Records that need the model's
 * tokenizer are tokenized by the run itself: not counted (a note says so),
 * and T stays --seq-len (an upper bound). */
static void count_data(const plan_args *p, const tuna_config *c, mem_opts *o) {
    int max_len = 0;
    for (int k = 0; k < p->n_data; k++) {
        tuna_pretok *t = NULL;
        if (load_tokens(p->data[k], o->job, c->V, o->seq_len, &t) != TUNA_OK) {
            fprintf(stderr, "tuna: note: %s is not pre-tokenized: its tokens are not counted, rows of --seq-len assumed\n", p->data[k]);
            o->data_tokens = 0;
            return;
        }
        for (int64_t i = 0; i < tuna_pretok_count(t); i++) o->data_tokens += tuna_pretok_seq(t, i, NULL, NULL, NULL);
        if (tuna_pretok_max_len(t) > max_len) max_len = tuna_pretok_max_len(t);
        tuna_pretok_free(t);
    }
    if (p->n_data && max_len < o->seq_len) o->seq_len = max_len < 2 ? 2 : max_len;
}

/* Blocks the training run checkpoints (0 for inference). */
static int checkpointed(const ckpt_info *ci, const mem_opts *o) {
    return o->job >= MEM_GENERATE ? 0 : o->grad_checkpoint ? ci->cfg.L : o->ckpt_layers;
}

static void print_json(const ckpt_info *ci, const mem_opts *o, const mem_est *e) {
    printf("{\"command\":\"%s\",\"method\":\"%s\",\"weights_bytes\":%.0f,\"frozen_bytes\":%.0f,\"trainable_bytes\":%.0f,"
           "\"gradients_bytes\":%.0f,\"optimizer_bytes\":%.0f,\"activation_bytes\":%.0f,\"adapter_bytes\":%.0f,"
           "\"nf4_tile_bytes\":%.0f,\"data_bytes\":%.0f,\"baseline_bytes\":%.0f,\"load_bytes\":%.0f,\"reference_bytes\":%.0f,"
           "\"bf16_bytes\":%.0f,\"peak_rss_bytes\":%.0f,\"micro_batch\":%d,\"rows\":%d,\"seq_len\":%d,\"checkpoint_layers\":%d}\n",
           o->job == MEM_DPO ? "dpo" : o->job == MEM_PRETRAIN ? "pretrain" : o->job == MEM_GENERATE ? "generate"
           : o->job == MEM_EVAL ? "eval" : o->job == MEM_SERVE ? "serve" : "sft",
           o->job >= MEM_GENERATE ? (o->nf4 ? "nf4" : o->bf16 ? "bf16" : "stored") : o->method, e->frozen + e->trainable, e->frozen, e->trainable,
           e->grads, e->moments, e->acts, e->adapter, e->scratch, e->data, e->baseline, e->load, e->reference, e->bf16, e->peak,
           o->micro > 0 && o->micro < o->batch ? o->micro : o->batch, e->rows, o->seq_len, checkpointed(ci, o));
}

static void print_text(const ckpt_info *ci, const mem_opts *o, const mem_est *e) {
    double mib = 1048576.0;
    if (o->job >= MEM_GENERATE)
        printf("plan for %s, %s, %s weights, %d rows x %d positions\n", ci->cfg.architecture,
               o->job == MEM_EVAL ? "eval" : o->job == MEM_SERVE ? "serve" : "generate", o->nf4 ? "NF4" : o->bf16 ? "bf16" : "stored", e->rows,
               e->T);
    else
        printf("plan for %s, %s --method %s, micro-batch %d x %d tokens", ci->cfg.architecture,
               o->job == MEM_DPO ? "dpo" : o->job == MEM_PRETRAIN ? "pretrain" : "sft", o->method, e->rows, e->T);
    if (o->job < MEM_GENERATE && checkpointed(ci, o)) printf(", %d of %d blocks checkpointed", checkpointed(ci, o), ci->cfg.L);
    if (o->job < MEM_GENERATE) printf("\n");
    const char *names[] = {"frozen weights", "trained weights (fp32)", "gradients", "AdamW moments",
                           o->job >= MEM_GENERATE && o->job != MEM_EVAL ? "decoder (KV cache)" : "activations",
                           "adapter buffers", "NF4 tile", "token data, batches", "bf16 copies, buffers", "process baseline"};
    double v[] = {e->frozen, e->trainable, e->grads, e->moments, e->acts, e->adapter, e->scratch, e->data, e->bf16, e->baseline};
    for (int i = 0; i < 10; i++)
        if (v[i] > 0 || i == 0 || i == 4) printf("  %-24s %10.2f MiB\n", names[i], v[i] / mib);
    printf("  %-24s %10.2f MiB\n", "while loading", (e->load + e->baseline) / mib);
    if (e->reference > 0) printf("  %-24s %10.2f MiB\n", "reference pass", (e->reference + e->baseline) / mib);
    printf("  %-24s %10.2f MiB\n", "predicted peak RSS", e->peak / mib);
}

int cmd_plan(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(plan_help, stdout); return 0; }
    mem_job job = MEM_SFT;
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        if (!job_of(argv[1], &job))
            return cli_usage_error("plan: '%s' is not a command plan knows (sft, pretrain, dpo, generate, chat, eval, serve)", argv[1]);
        first = 2;
    }
    mem_opts o;
    mem_opts_init(&o, job);
    o.batch = 0; /* not given: 8 sequences (training, eval), 1 row (decoding) */
    plan_args p = {0};
    for (int i = first; i < argc; i++) {
        int rc = plan_option(&o, &p, argc, argv, &i);
        if (rc) return rc;
    }
    if (!p.model) return cli_usage_error("plan: --model is required");
    if (mem_method_type(o.method) < 0)
        return cli_usage_error("plan: --method '%s' is not available (full, lora, qlora, ia3, prompt)", o.method);
    o.nf4 = p.mf.nf4;
    o.bf16 = p.mf.dtype == CLI_DTYPE_BF16;
    const char *tg = mem_method_type(o.method) == TUNA_PEFT_IA3 ? p.ia3_targets : p.lora_targets; /* as sft picks them */
    if (tg && strlen(tg) >= sizeof o.pc.targets) return cli_usage_error("plan: target list too long");
    if (tg) snprintf(o.pc.targets, sizeof o.pc.targets, "%s", tg);
    if (job == MEM_GENERATE || job == MEM_SERVE) o.rows = o.batch ? o.batch : 1;
    if (!o.batch) o.batch = 8;
    ckpt_info ci;
    tuna_status st = ckpt_scan(&ci, p.model);
    if (st != TUNA_OK) return cli_status_error(st);
    count_data(&p, &ci.cfg, &o);
    mem_est e;
    st = mem_estimate(&ci, &o, &e);
    if (st == TUNA_OK && p.max_memory > 0 && o.job < MEM_GENERATE && !o.grad_checkpoint && !o.ckpt_layers &&
        e.peak > (double)p.max_memory && mem_fit_checkpoint(&ci, &o, (double)p.max_memory) > 0)
        st = mem_estimate(&ci, &o, &e); /* what the run picks under that limit */
    if (st == TUNA_OK && p.json) print_json(&ci, &o, &e);
    else if (st == TUNA_OK) print_text(&ci, &o, &e);
    ckpt_free(&ci);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
