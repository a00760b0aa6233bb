/* train_kto.c — `tuna kto`'s entry in the table of training modes: TRL's
 * KTOTrainer on unpaired items. The help text, kto's own options and
 * checks, and its loader: items read and encoded with their KL rows
 * (tuna_dataset_load_kto), then the reference log-probabilities and the
 * policy as dpo loads them (train_pref_models). The trainer runs it as a
 * preference run whose pairs are (item, KL row). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/cli_model.h"
#include "cli/train_data.h"
#include "cli/train_optab.h"
#include "cli/train_pref.h"
#include "core/error.h"
#include "tuna_dataset.h"
#include "tuna_dist.h"

static const char kto_help[] =
    "usage: tuna kto --model DIR --data ITEMS.jsonl --out DIR [options]\n"
    "       tuna kto --config RECIPE.yaml [options]\n"
    "\n"
    "Kahneman-Tversky Optimisation (Ethayarajh et al. 2024) as TRL's KTOTrainer\n"
    "(loss_type kto): unpaired completions, each labelled desirable or not, pulled\n"
    "up or down relative to a frozen reference model. Data (JSONL or a JSON array):\n"
    "  {\"prompt\",\"completion\",\"label\": true|false}   strings, or message lists\n"
    "                                   rendered with the chat template (as tuna dpo\n"
    "                                   renders a prompt and its chosen response)\n"
    "  {\"prompt_ids\":[..],\"completion_ids\":[..],\"label\": true|false}   pre-tokenized\n"
    "                                   (used as given)\n"
    "A record without a label stops the run (FILE:LINE); one whose label is not true\n"
    "or false, or that lacks a prompt or completion, is a bad record: counted and\n"
    "skipped up to --max-bad (default 1% of the records; --strict: none), its\n"
    "FILE:LINE named.\n"
    "Per micro-batch, with r = policy minus reference log-probability of an item's\n"
    "completion (a sum over its tokens) and z the KL estimate:\n"
    "  desirable    desirable_weight x (1 - sigmoid(beta (r - z)))\n"
    "  undesirable  undesirable_weight x (1 - sigmoid(beta (z - r)))\n"
    "  z = max(0, mean over the micro-batch of the policy minus reference\n"
    "      log-probability of each prompt with a mismatched completion), no gradient\n"
    "The mismatched completions are TRL's: the items in file order, in consecutive\n"
    "chunks of --batch, each takes the previous item's completion in its chunk (the\n"
    "chunk's first the chunk's last); --batch must be at least 2. The loss is the\n"
    "mean over the step's items (TRL: per micro-batch; the same with --micro-batch\n"
    "equal to --batch, where TRL's per-device batch is --batch).\n"
    "  --beta X               strength of the pull towards the reference (default 0.1)\n"
    "  --desirable-weight X   weight of the desirable items' losses (default 1)\n"
    "  --undesirable-weight X weight of the undesirable items' losses (default 1); TRL\n"
    "                         advises weights so that desirable x count over undesirable x\n"
    "                         count is within [1, 4/3]\n"
    "  --ref-model DIR        reference model (default: the starting model; lora/qlora: the\n"
    "                         base with the adapter as it starts). Reference\n"
    "                         log-probabilities of every row are computed once, before\n"
    "                         training\n"
    "  --method full|lora|qlora  and the LoRA options of tuna sft (--lora-r, --lora-alpha,\n"
    "                         --lora-targets, --lora-dropout, --rslora, --adapter DIR)\n"
    "  --batch N              items per optimizer step (default 8); --micro-batch N items\n"
    "                         per forward (2 N rows: the completion and the KL row)\n"
    "  --max-len N            prompt + completion tokens (also --seq-len; default 512)\n"
    "  --max-prompt-len N     a longer prompt keeps its last N tokens (default: no limit)\n"
    "  --lr X                 default 1e-6 full (TRL's KTOConfig), 5e-6 lora/qlora\n"
    "No validation data (--val, --val-split): KTO's evaluation needs labels.\n"
    "Every other option (--config RECIPE.yaml, --dry-run, --schedule, --warmup, --weight-decay,\n"
    "--grad-clip, --steps, --epochs, --seed, --no-shuffle, --save-every, --resume, --overwrite,\n"
    "--save-dtype, --template, --max-bad, --strict, --quiet, --bf16, ...) is as in `tuna sft --help`.\n"
    "metrics.jsonl per step: loss, kl, rewards/chosen, rewards/rejected (beta x r, means\n"
    "over the desirable / undesirable items), rewards/margins, logps/chosen,\n"
    "logps/rejected, count/chosen, count/rejected (TRL's names); report.html draws them.\n"
    "Writes OUT/model.safetensors (or the adapter) like tuna sft.\n";

static void kto_defaults(train_opts *o) { o->dargs.type = TUNA_DPO_KTO; }

/* --beta, --desirable-weight, --undesirable-weight, --ref-model,
 * --max-prompt-len, --max-len (and --model, --adapter) */
static int kto_option(train_opts *o, const char *opt, const char *v, int *i) {
    int r = train_model_option(o, opt, v, i);
    if (r) return r;
    if (!strcmp(opt, "--beta")) r = cli_parse_double(opt, v, 1e-9, 1e9, &o->dargs.beta);
    else if (!strcmp(opt, "--desirable-weight")) r = cli_parse_double(opt, v, 0, 1e9, &o->dargs.desirable_weight);
    else if (!strcmp(opt, "--undesirable-weight")) r = cli_parse_double(opt, v, 0, 1e9, &o->dargs.undesirable_weight);
    else if (!strcmp(opt, "--ref-model") && v) o->ref_model = v;
    else if (!strcmp(opt, "--max-prompt-len")) r = cli_parse_int(opt, v, 1, 1 << 20, &o->max_prompt_len);
    else if (!strcmp(opt, "--max-len")) r = cli_parse_int(opt, v, 2, 1 << 20, &o->a.seq_len);
    else return 0;
    (*i)++;
    return r ? 2 : 1;
}

static int kto_check(train_opts *o) {
    if (o->n_data > 1) return cli_usage_error("kto: one --data file (multi-task mixing is for sft)");
    if (o->pack) return cli_usage_error("kto: --pack is not available (an item's rows are scored whole)");
    if (o->a.loss_norm != TUNA_LOSS_NORM_TOKEN) return cli_usage_error("kto: --loss-norm does not apply (the loss is per item)");
    if (o->val_path || o->val_split > 0) return cli_usage_error("kto: no validation data (--val, --val-split): KTO's evaluation needs labels");
    if (tuna_dist_size() > 1)
        return cli_usage_error("kto: data-parallel runs are not available (the KL estimate and the per-label metrics are per process)");
    if (o->a.batch < 2)
        return cli_usage_error("kto: --batch %d: KTO needs at least 2 items per batch (each item's KL row takes another's completion)", o->a.batch);
    if (!(o->dargs.desirable_weight > 0 || o->dargs.undesirable_weight > 0))
        return cli_usage_error("kto: --desirable-weight and --undesirable-weight are both 0");
    if (o->max_prompt_len && o->max_prompt_len >= o->a.seq_len)
        return cli_usage_error("--max-prompt-len %d leaves no room for a completion in --max-len %d", o->max_prompt_len, o->a.seq_len);
    o->dargs.type = TUNA_DPO_KTO;
    o->a.dpo = &o->dargs;
    return 0;
}

/* TRL's KTOConfig (1e-6); adapters as dpo */
static float kto_default_lr(const train_opts *o) { return o->is_full ? 1e-6f : 5e-6f; }

static void report_load(const char *path, const tuna_kto_stats *s, int max_len, int max_prompt_len) {
    fprintf(stderr, "%s: %ld items (%ld desirable, %ld undesirable), %lld tokens, %lld counted", path, s->items, s->desirable,
            s->undesirable, (long long)s->tokens, (long long)s->counted);
    if (s->data.bad) fprintf(stderr, "; %ld bad records skipped", s->data.bad);
    if (s->prompts_truncated) fprintf(stderr, "; %ld prompts cut to their last %d tokens", s->prompts_truncated, max_prompt_len);
    if (s->completions_truncated) fprintf(stderr, "; %ld completions cut to fit --max-len %d", s->completions_truncated, max_len);
    if (s->dropped) fprintf(stderr, "; %ld items left out (prompt fills --max-len %d)", s->dropped, max_len);
    fputc('\n', stderr);
}

/* the items and their KL rows, through the chat template when the model
 * folder has a tokenizer; the labels kept in d */
static tuna_status kto_load_data(train_opts *o, train_data *d) {
    tuna_status st = TUNA_OK;
    if (train_has_tokenizer(o->model_dir)) st = tuna_tokenizer_load(&d->tok, o->model_dir);
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    if (st == TUNA_OK && d->tok) st = tuna_dataset_template(&tmpl, d->tok, o->template_arg, &tsrc);
    tuna_kto_options ko = {.max_len = o->a.seq_len, .max_prompt_len = o->max_prompt_len, .chunk = o->a.batch, .data = o->dso.data};
    tuna_kto_stats s;
    if (st == TUNA_OK) st = tuna_dataset_load_kto(o->data_path, d->tok, tmpl, &ko, &d->parts[0], &d->kto_desirable, &s);
    tuna_template_free(tmpl);
    free(tsrc);
    if (st != TUNA_OK) return st;
    if (!o->quiet) report_load(o->data_path, &s, o->a.seq_len, o->max_prompt_len);
    if ((st = tuna_pretok_new(&d->vparts[0])) != TUNA_OK) return st; /* no validation items */
    o->a.kto_desirable = d->kto_desirable;
    d->ref_train = malloc((size_t)tuna_pretok_count(d->parts[0]) * sizeof(double));
    d->ref_val = malloc(sizeof(double));
    return d->ref_train && d->ref_val ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
}

static tuna_status kto_load(train_opts *o, train_data *d) {
    d->n_val = 0;
    tuna_status st = kto_load_data(o, d);
    return st == TUNA_OK ? train_pref_models(o, d) : st;
}

static void kto_args_json(json_t *ja, const train_opts *o, const train_data *d) {
    json_object_set_new(ja, "loss_type", json_string("kto"));
    json_object_set_new(ja, "beta", json_real(o->dargs.beta));
    json_object_set_new(ja, "desirable_weight", json_real(o->dargs.desirable_weight));
    json_object_set_new(ja, "undesirable_weight", json_real(o->dargs.undesirable_weight));
    json_object_set_new(ja, "ref_model", json_string(o->ref_model ? o->ref_model : o->model_dir));
    json_object_set_new(ja, "max_prompt_len", json_integer(o->max_prompt_len));
    json_object_set_new(ja, "train_items", json_integer(tuna_pretok_count(d->data) / 2));
}

static const train_optdef kto_options[] = {
    OPTDEFS_MODEL,
    {"ref-model", OPT_VALUE, REC_STR, OPT_AT(ref_model), NULL},
    {"beta", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.beta), NULL},
    {"desirable-weight", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.desirable_weight), NULL},
    {"undesirable-weight", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.undesirable_weight), NULL},
    {"max-prompt-len", OPT_VALUE, REC_INT_SET, OPT_AT(max_prompt_len), NULL},
    {"max-len", OPT_VALUE, REC_NONE, 0, NULL}, /* --seq-len's other name: recorded as seq_len */
    {NULL, OPT_FLAG, REC_NONE, 0, NULL},
};

const train_mode train_mode_kto = {
    .name = "kto",
    .help = kto_help,
    .methods = "full, lora, qlora",
    .pairs = 1,
    .job = MEM_DPO,
    .options = kto_options,
    .defaults = kto_defaults,
    .option = kto_option,
    .required = train_model_required,
    .check = kto_check,
    .default_lr = kto_default_lr,
    .load = kto_load,
    .args_json = kto_args_json,
};
