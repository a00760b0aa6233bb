/* train_dpo.c — `tuna dpo`'s entry in the table of training modes: what is
 * particular to preference training. The shared options, the loop,
 * checkpoints and the report are the driver's (cmd_train.c); here are the
 * help text, dpo's own options and checks, and its loader: pairs read and
 * encoded (tuna_dataset_load_preferences), validation pairs split off by
 * record hash, what was truncated or left out said on stderr, and the
 * reference log-probabilities computed once (the reference model loaded
 * and freed first when --ref-model names one), then the policy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/cli_model.h"
#include "cli/train_data.h"
#include "cli/train_optab.h"
#include "cli/train_pref.h"
#include "cli/train_resume.h"
#include "core/error.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"

static const char dpo_help[] =
    "usage: tuna dpo --model DIR --data PREFS.jsonl --out DIR [options]\n"
    "       tuna dpo --config RECIPE.yaml [options]\n"
    "\n"
    "Direct Preference Optimisation (Rafailov et al. 2023) with TRL's losses: the\n"
    "policy learns to prefer each pair's chosen response over its rejected one,\n"
    "relative to a frozen reference model. Data (JSONL or a JSON array):\n"
    "  {\"prompt\",\"chosen\",\"rejected\"}     strings, or message lists rendered with the\n"
    "                                   chat template (prompt with the generation prompt;\n"
    "                                   each response = the rest of its full rendering)\n"
    "  {\"chosen\",\"rejected\"}              implicit prompt: their common beginning (TRL)\n"
    "  {\"conversations\",\"chosen\":{msg},\"rejected\":{msg}}, {\"chosen_messages\",...}\n"
    "                                   LLaMA-Factory layouts\n"
    "  {\"prompt_ids\":[..],\"chosen_ids\":[..],\"rejected_ids\":[..]}   pre-tokenized: the\n"
    "                                   responses' tokens only, used as given (no template,\n"
    "                                   no BOS or EOS added)\n"
    "Text prompts get the tokenizer's BOS once (as sft encodes them); a response\n"
    "ends at its stop token (EOS, or the template's end-of-turn token), EOS being\n"
    "appended when it has none. The loss counts response tokens only.\n"
    "  --beta X               strength of the pull towards the reference (default 0.1)\n"
    "  --loss sigmoid|ipo|hinge|orpo|simpo   DPO's -log sigmoid(beta h) (default), IPO's\n"
    "                         (h - 1/(2 beta))^2 on per-token averaged log-probabilities,\n"
    "                         or max(0, 1 - beta h); h = policy minus reference log-ratio.\n"
    "                         Reference-free (no reference model, no reference pass; on\n"
    "                         log-probabilities averaged over the response's tokens):\n"
    "                         orpo   TRL's ORPOTrainer: NLL of the chosen sequences (prompt\n"
    "                                included, as TRL and the ORPO authors' code score it)\n"
    "                                minus beta x mean log sigmoid(log odds ratio); beta is\n"
    "                                ORPO's lambda (default 0.1, TRL's)\n"
    "                         simpo  TRL's CPOTrainer loss_type simpo: -log sigmoid(beta\n"
    "                                (avg logp chosen - avg logp rejected) - gamma), plus\n"
    "                                --cpo-alpha x the chosen NLL\n"
    "                         The NLL is the token mean over the optimizer step's chosen\n"
    "                         rows (simpo: their responses; TRL: per micro-batch, the\n"
    "                         same with --micro-batch equal to --batch)\n"
    "  --simpo-gamma X        simpo: target reward margin gamma (default 0.5, TRL's)\n"
    "  --cpo-alpha X          simpo: weight of the chosen NLL (default 0: SimPO as\n"
    "                         published; TRL's CPOConfig default 1.0 is CPO-SimPO)\n"
    "  --label-smoothing E    conservative DPO (sigmoid, simpo): assumes a share E of the\n"
    "                         labels are flipped (0 to 0.5, default 0)\n"
    "  --ref-model DIR        reference model (default: the starting model; not with orpo,\n"
    "                         simpo). Reference\n"
    "                         log-probabilities are computed once, before training, and\n"
    "                         kept: only one model is in memory while training. With\n"
    "                         --method lora/qlora the reference is the base with a fresh\n"
    "                         adapter, i.e. the adapter switched off; with --adapter DIR\n"
    "                         it is the base with that adapter as it starts (the SFT policy)\n"
    "  --method full|lora|qlora  and the LoRA options of tuna sft (--lora-r, --lora-alpha,\n"
    "                         --lora-targets, --lora-dropout, --rslora, --adapter DIR)\n"
    "  --batch N              pairs per optimizer step (default 8); --micro-batch N pairs\n"
    "                         per forward (2 N rows: chosen and rejected)\n"
    "  --max-len N            prompt + response tokens (also --seq-len; default 512): a\n"
    "                         longer response keeps its first tokens\n"
    "  --max-prompt-len N     a longer prompt keeps its last N tokens (default: no limit);\n"
    "                         pairs whose prompt leaves no room are left out (counted)\n"
    "  --lr X                 default 1e-6 full (TRL), 5e-6 lora/qlora\n"
    "  --val FILE | --val-split X   validation pairs (X: hash-based share of the records);\n"
    "                         evaluated every --eval-every steps, best kept by eval loss\n"
    "Every other option (--config RECIPE.yaml, --dry-run, --schedule, --warmup, --weight-decay, --grad-clip, --steps,\n"
    "--epochs, --seed, --no-shuffle, --save-every, --resume, --overwrite, --save-dtype,\n"
    "--template,"
    " --max-bad, --strict, --quiet, --no-mem-check, --profile, --bf16, ...) is as in `tuna sft --help`.\n"
    "metrics.jsonl per step: loss, rewards/chosen, rewards/rejected, rewards/accuracies,\n"
    "rewards/margins, logps/chosen, logps/rejected (TRL's names; rewards = beta x the\n"
    "policy-minus-reference log-probability; orpo, simpo: beta x the averaged\n"
    "log-probability), with orpo also nll_loss, log_odds_ratio, log_odds_chosen and\n"
    "with simpo nll_loss, and the eval_ versions; report.html\n"
    "draws them. Writes OUT/model.safetensors (or the adapter) like tuna sft.\n";

static void report_load(const char *path, const tuna_pref_stats *s, int max_len, int max_prompt_len) {
    fprintf(stderr, "%s: %ld pairs", path, s->pairs);
    if (s->val_pairs) fprintf(stderr, " (+%ld held out for validation)", s->val_pairs);
    fprintf(stderr, ", %lld tokens, %lld counted (%.1f%%)", (long long)s->tokens, (long long)s->counted,
            s->tokens ? 100.0 * s->counted / s->tokens : 0.0);
    if (s->data.bad) fprintf(stderr, "; %ld bad records skipped", s->data.bad);
    if (s->prompts_truncated) fprintf(stderr, "; %ld prompts cut to their last %d tokens", s->prompts_truncated, max_prompt_len);
    if (s->responses_truncated) fprintf(stderr, "; %ld pairs' responses cut to fit --max-len %d", s->responses_truncated, max_len);
    if (s->dropped) fprintf(stderr, "; %ld pairs left out (prompt fills --max-len %d)", s->dropped, max_len);
    fputc('\n', stderr);
}

/* the preference file (and --val FILE or a hash-based --val-split share of
 * it) as pairs into new *train and *val (*val empty: no validation) */
static tuna_status load_pairs(const train_opts *o, tuna_tokenizer *tok, const tuna_template *tmpl, tuna_pretok **train,
                              tuna_pretok **val) {
    int max_len = o->a.seq_len;
    tuna_pref_options po = {0};
    po.max_len = max_len;
    po.max_prompt_len = o->max_prompt_len;
    po.val_fraction = o->val_path ? 0 : o->val_split;
    po.val_seed = o->a.seed;
    po.data = o->dso.data;
    tuna_pref_stats s;
    tuna_status st = tuna_dataset_load_preferences(o->data_path, tok, tmpl, &po, train, val, &s);
    if (st != TUNA_OK) return st;
    if (!o->quiet) report_load(o->data_path, &s, max_len, o->max_prompt_len);
    if (o->val_split > 0 && !o->val_path && tuna_pretok_count(*val) == 0)
        return core_fail(TUNA_ERR_ARG, "%s: --val-split %g left no validation pairs (%ld pairs in all)", o->data_path,
                         o->val_split, s.pairs);
    if (!o->val_path) return TUNA_OK;
    tuna_pretok_free(*val);
    *val = NULL;
    po.val_fraction = 0;
    st = tuna_dataset_load_preferences(o->val_path, tok, tmpl, &po, val, NULL, &s);
    if (st == TUNA_OK && !o->quiet) report_load(o->val_path, &s, max_len, o->max_prompt_len);
    return st;
}

/* --beta, --label-smoothing, --loss, --ref-model, --max-prompt-len, --max-len
 * (and --model, --adapter) */
static int dpo_option(train_opts *o, const char *opt, const char *v, int *i) {
    int r = train_model_option(o, opt, v, i);
    if (r) return r;
    if (!strcmp(opt, "--beta")) r = cli_parse_double(opt, v, 1e-9, 1e9, &o->dargs.beta);
    else if (!strcmp(opt, "--label-smoothing")) r = cli_parse_double(opt, v, 0, 0.5, &o->dargs.label_smoothing);
    else if (!strcmp(opt, "--simpo-gamma")) r = cli_parse_double(opt, v, -1e9, 1e9, &o->dargs.simpo_gamma);
    else if (!strcmp(opt, "--cpo-alpha")) r = cli_parse_double(opt, v, 0, 1e9, &o->dargs.cpo_alpha);
    else if (!strcmp(opt, "--loss") && v) {
        int t = tuna_dpo_loss_from_name(v);
        if (t < 0) return cli_usage_error("--loss must be sigmoid, ipo, hinge, orpo or simpo (got '%s')", v);
        o->dargs.type = (tuna_dpo_loss_type)t;
    } else if (!strcmp(opt, "--ref-model") && v) o->ref_model = v;
    else if (!strcmp(opt, "--max-prompt-len")) r = cli_parse_int(opt, v, 1, 1 << 20, &o->max_prompt_len);
    else if (!strcmp(opt, "--max-len")) r = cli_parse_int(opt, v, 2, 1 << 20, &o->a.seq_len);
    else return 0;
    (*i)++;
    return r ? 2 : 1;
}

/* ORPO and SimPO: no reference model, no reference pass */
static int dpo_ref_free(const train_opts *o) { return o->dargs.type == TUNA_DPO_ORPO || o->dargs.type == TUNA_DPO_SIMPO; }

/* what a preference run cannot take; the trainer set to preference pairs */
static int dpo_check(train_opts *o) {
    if (o->n_data > 1) return cli_usage_error("dpo: one --data file (multi-task mixing is for sft)");
    if (o->pack) return cli_usage_error("dpo: --pack is not available (a pair's rows are scored whole)");
    if (o->a.loss_norm != TUNA_LOSS_NORM_TOKEN) return cli_usage_error("dpo: --loss-norm does not apply (the loss is per pair)");
    if (o->dargs.label_smoothing > 0 && o->dargs.type != TUNA_DPO_SIGMOID && o->dargs.type != TUNA_DPO_SIMPO)
        return cli_usage_error("--label-smoothing applies to --loss sigmoid and simpo only");
    if (o->ref_model && dpo_ref_free(o))
        return cli_usage_error("--ref-model: --loss %s is reference-free (no reference model)", o->dargs.type == TUNA_DPO_ORPO ? "orpo" : "simpo");
    if (o->max_prompt_len && o->max_prompt_len >= o->a.seq_len)
        return cli_usage_error("--max-prompt-len %d leaves no room for a response in --max-len %d", o->max_prompt_len, o->a.seq_len);
    o->a.dpo = &o->dargs;
    return 0;
}

/* TRL's DPOConfig; the alignment handbook's QLoRA DPO */
static float dpo_default_lr(const train_opts *o) { return o->is_full ? 1e-6f : 5e-6f; }

/* DPO's reference: the log-probability of every train and validation
 * sequence's counted tokens under m, as it is now (minus the row loss sums) */
static tuna_status reference_logps(tuna_model *m, const tuna_pretok *train, const tuna_pretok *val, int rows, double *ref_train,
                                   double *ref_val) {
    int64_t nt = tuna_pretok_count(train), nv = tuna_pretok_count(val);
    int64_t *tokens = malloc((size_t)(nt > nv ? nt : nv) * sizeof *tokens + 1);
    if (!tokens) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_status st = tuna_eval_losses(m, train, rows, ref_train, tokens, NULL, NULL);
    if (st == TUNA_OK && nv) st = tuna_eval_losses(m, val, rows, ref_val, tokens, NULL, NULL);
    for (int64_t i = 0; st == TUNA_OK && i < nt; i++) ref_train[i] = -ref_train[i];
    for (int64_t i = 0; st == TUNA_OK && i < nv; i++) ref_val[i] = -ref_val[i];
    free(tokens);
    return st;
}

/* the pairs of --data (and --val), through the chat template when the model
 * folder has a tokenizer */
static tuna_status dpo_load_data(train_opts *o, train_data *d) {
    tuna_status st = TUNA_OK;
    if (train_has_tokenizer(o->model_dir)) st = tuna_tokenizer_load(&d->tok, o->model_dir);
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    if (st == TUNA_OK && d->tok) st = tuna_dataset_template(&tmpl, d->tok, o->template_arg, &tsrc);
    if (st == TUNA_OK) st = load_pairs(o, d->tok, tmpl, &d->parts[0], &d->vparts[0]);
    tuna_template_free(tmpl);
    free(tsrc);
    if (st == TUNA_OK && tuna_pretok_count(d->vparts[0]) > 0) d->n_val = 1;
    /* the --val-split share was taken per record above (and train_args.json
     * records val_split 0 for it) */
    o->val_split = 0;
    if (st != TUNA_OK) return st;
    d->ref_train = malloc((size_t)tuna_pretok_count(d->parts[0]) * sizeof(double));
    d->ref_val = malloc((size_t)(tuna_pretok_count(d->vparts[0]) + 1) * sizeof(double));
    return d->ref_train && d->ref_val ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
}

/* the pairs' tokens inside m's vocabulary */
static tuna_status check_pairs(const train_opts *o, const train_data *d, tuna_model *m) {
    int V = tuna_model_config(m)->V;
    tuna_status st = train_check_vocab(d->parts[0], V, o->data_path);
    return st == TUNA_OK ? train_check_vocab(d->vparts[0], V, o->val_path ? o->val_path : o->data_path) : st;
}

/* the reference's log-probabilities under m ("reference: WHO (...)" unless quiet) */
static tuna_status reference_pass(const train_opts *o, train_data *d, tuna_model *m, const char *who) {
    if (!o->quiet)
        fprintf(stderr, "reference: %s (log-probabilities of %lld sequences, computed once)\n", who,
                (long long)(tuna_pretok_count(d->parts[0]) + tuna_pretok_count(d->vparts[0])));
    tuna_status st = reference_logps(m, d->parts[0], d->vparts[0], 2 * o->a.micro_batch, d->ref_train, d->ref_val);
    if (st == TUNA_OK || m == d->m) train_model_fingerprint(m, d->ref_fp);
    return st;
}

/* --ref-model: loaded, used and freed before the policy loads */
static tuna_status reference_model(const train_opts *o, train_data *d) {
    tuna_model *rm = NULL;
    tuna_status st = tuna_model_load_quantized(&rm, o->ref_model, cli_load_mode(NULL)); /* frozen: as stored */
    if (st == TUNA_OK) st = train_apply_bf16(rm, o);
    if (st == TUNA_OK) st = check_pairs(o, d, rm);
    if (st == TUNA_OK) st = reference_pass(o, d, rm, o->ref_model);
    tuna_model_free(rm);
    return st;
}

tuna_status train_pref_models(train_opts *o, train_data *d) {
    tuna_status st = TUNA_OK;
    if (o->ref_model) st = reference_model(o, d);
    if (st == TUNA_OK) st = train_load_model(&d->m, o);
    if (st == TUNA_OK) st = check_pairs(o, d, d->m);
    if (st == TUNA_OK && !o->is_full) st = train_attach_adapter(d->m, d->tok, o);
    if (st == TUNA_OK && !o->ref_model && !dpo_ref_free(o)) st = reference_pass(o, d, d->m, "the starting model");
    o->a.ref_logps = dpo_ref_free(o) ? NULL : d->ref_train;
    return st;
}

/* data first, then the reference pass (its own model when --ref-model names
 * one), then the policy (the starting model as the reference otherwise) */
static tuna_status dpo_load(train_opts *o, train_data *d) {
    d->n_val = o->n_val;
    tuna_status st = dpo_load_data(o, d);
    return st == TUNA_OK ? train_pref_models(o, d) : st;
}

/* the preference settings and pair counts in train_args.json */
static void dpo_args_json(json_t *ja, const train_opts *o, const train_data *d) {
    static const char *const lt[] = {"sigmoid", "ipo", "hinge", "orpo", "simpo"};
    json_object_set_new(ja, "loss_type", json_string(lt[o->dargs.type]));
    json_object_set_new(ja, "beta", json_real(o->dargs.beta));
    json_object_set_new(ja, "label_smoothing", json_real(o->dargs.label_smoothing));
    if (o->dargs.type == TUNA_DPO_SIMPO) {
        json_object_set_new(ja, "simpo_gamma", json_real(o->dargs.simpo_gamma));
        json_object_set_new(ja, "cpo_alpha", json_real(o->dargs.cpo_alpha));
    }
    json_object_set_new(ja, "ref_model", dpo_ref_free(o) ? json_null() : json_string(o->ref_model ? o->ref_model : o->model_dir));
    json_object_set_new(ja, "max_prompt_len", json_integer(o->max_prompt_len));
    json_object_set_new(ja, "train_pairs", json_integer(tuna_pretok_count(d->data) / 2));
    json_object_set_new(ja, "val_pairs", json_integer(tuna_pretok_count(d->val) / 2));
}

static const train_optdef dpo_options[] = {
    OPTDEFS_MODEL,
    {"ref-model", OPT_VALUE, REC_STR, OPT_AT(ref_model), NULL},
    {"loss", OPT_VALUE, REC_CHOICE, OPT_AT(dargs.type), "sigmoid|ipo|hinge|orpo|simpo"},
    {"simpo-gamma", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.simpo_gamma), NULL},
    {"cpo-alpha", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.cpo_alpha), NULL},
    {"beta", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.beta), NULL},
    {"label-smoothing", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.label_smoothing), NULL},
    {"max-prompt-len", OPT_VALUE, REC_INT_SET, OPT_AT(max_prompt_len), NULL},
    {"max-len", OPT_VALUE, REC_NONE, 0, NULL}, /* --seq-len's other name: recorded as seq_len */
    {NULL, OPT_FLAG, REC_NONE, 0, NULL},
};

const train_mode train_mode_dpo = {
    .name = "dpo",
    .help = dpo_help,
    .methods = "full, lora, qlora",
    .pairs = 1,
    .job = MEM_DPO,
    .options = dpo_options,
    .option = dpo_option,
    .required = train_model_required,
    .check = dpo_check,
    .default_lr = dpo_default_lr,
    .load = dpo_load,
    .args_json = dpo_args_json,
};
