/* train_reward.c — `tuna reward`'s entry in the table of training modes: a
 * reward model (TRL's RewardTrainer) trained on preference pairs. The model
 * folder's causal LM becomes a …ForSequenceClassification model (lm_head
 * dropped, a one-row score head drawn from the seed: tuna_model_to_reward);
 * a pair's rows are prompt + chosen and prompt + rejected as dpo reads them,
 * each scored on its last token, and the pair loss is
 * -log sigmoid(r_chosen - r_rejected) (+ --center-rewards C times the mean
 * squared sum), trained through the preference machinery of the trainer
 * with no reference (all reference log-probabilities 0). The saved folder is
 * a Hugging Face sequence-classification model with num_labels 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/train_data.h"
#include "cli/train_optab.h"
#include "cli/train_resume.h"
#include "core/error.h"
#include "tuna_dataset.h"

static const char reward_help[] =
    "usage: tuna reward --model DIR --data PREFS.jsonl --out DIR [options]\n"
    "       tuna reward --config RECIPE.yaml [options]\n"
    "\n"
    "Trains a reward model as TRL's RewardTrainer does: the model (a causal LM folder,\n"
    "or a reward model to train further) gets a scalar head on its last token\n"
    "(score.weight, drawn from normal(0, initializer_range) for --seed; lm_head\n"
    "dropped), and each preference pair's loss is -log sigmoid(r_chosen - r_rejected).\n"
    "Data as for tuna dpo ({\"prompt\",\"chosen\",\"rejected\"}, implicit prompts, message\n"
    "lists through the chat template, or pre-tokenized {\"prompt_ids\",\"chosen_ids\",\n"
    "\"rejected_ids\"}): a pair's rows are prompt + chosen and prompt + rejected, each\n"
    "scored at its last response token (the appended EOS for text).\n"
    "  --center-rewards C     adds C x mean((r_chosen + r_rejected)^2) (TRL's\n"
    "                         center_rewards_coefficient; default 0: off)\n"
    "  --method full          every weight and the head are trained (LoRA is not available:\n"
    "                         the new head must be trained and saved whole)\n"
    "  --batch N              pairs per optimizer step (default 8); --micro-batch N pairs\n"
    "                         per forward (2 N rows)\n"
    "  --max-len N            prompt + response tokens (also --seq-len; default 512)\n"
    "  --max-prompt-len N     a longer prompt keeps its last N tokens\n"
    "  --lr X                 default 1e-5\n"
    "  --val FILE | --val-split X   validation pairs: loss and pairwise accuracy (the share\n"
    "                         of pairs scored r_chosen > r_rejected, TRL's eval accuracy)\n"
    "                         every --eval-every steps and in the last line; best kept by loss\n"
    "Every other option (--config, --dry-run, --schedule, --warmup, --weight-decay,\n"
    "--grad-clip, --steps, --epochs, --seed, --no-shuffle, --save-every, --resume,\n"
    "--overwrite, --save-dtype, --template, --max-bad, --strict, --quiet, ...) is as in\n"
    "`tuna sft --help`.\n"
    "metrics.jsonl per step: loss, rewards/chosen, rewards/rejected (mean scores),\n"
    "rewards/accuracies, rewards/margins, and the eval_ versions.\n"
    "Writes OUT as a Hugging Face …ForSequenceClassification folder (config.json with\n"
    "num_labels 1, model.safetensors with score.weight [1, hidden], the tokenizer files),\n"
    "which transformers' AutoModelForSequenceClassification loads and GRPO's\n"
    "--reward model:OUT scores with.\n";

static void report_load(const char *path, const tuna_pref_stats *s) {
    fprintf(stderr, "%s: %ld pairs", path, s->pairs);
    if (s->val_pairs) fprintf(stderr, " (+%ld held out for validation)", s->val_pairs);
    if (s->data.bad) fprintf(stderr, "; %ld bad records skipped", s->data.bad);
    if (s->prompts_truncated) fprintf(stderr, "; %ld prompts cut", s->prompts_truncated);
    if (s->responses_truncated) fprintf(stderr, "; %ld pairs' responses cut", s->responses_truncated);
    if (s->dropped) fprintf(stderr, "; %ld pairs left out (prompt fills --max-len)", s->dropped);
    fputc('\n', stderr);
}

/* one preference file into *out (and its --val-split share into *val) */
static tuna_status read_pairs(const train_opts *o, const char *path, double val_fraction, tuna_tokenizer *tok,
                              const tuna_template *tmpl, tuna_pretok **out, tuna_pretok **val) {
    tuna_pref_options po = {0};
    po.max_len = o->a.seq_len;
    po.max_prompt_len = o->max_prompt_len;
    po.val_fraction = val_fraction;
    po.val_seed = o->a.seed;
    po.data = o->dso.data;
    tuna_pref_stats s;
    tuna_status st = tuna_dataset_load_preferences(path, tok, tmpl, &po, out, val, &s);
    if (st == TUNA_OK && !o->quiet) report_load(path, &s);
    return st;
}

/* the training pairs and the validation pairs (--val FILE, or a --val-split share) */
static tuna_status load_pairs(train_opts *o, train_data *d) {
    tuna_status st = TUNA_OK;
    if (train_has_tokenizer(o->model_dir)) st = tuna_tokenizer_load(&d->tok, o->model_dir);
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    if (st == TUNA_OK && d->tok) st = tuna_dataset_template(&tmpl, d->tok, o->template_arg, &tsrc);
    double split = o->val_path ? 0 : o->val_split;
    if (st == TUNA_OK) st = read_pairs(o, o->data_path, split, d->tok, tmpl, &d->parts[0], &d->vparts[0]);
    if (st == TUNA_OK && split > 0 && tuna_pretok_count(d->vparts[0]) == 0)
        st = core_fail(TUNA_ERR_ARG, "%s: --val-split %g left no validation pairs", o->data_path, split);
    if (st == TUNA_OK && o->val_path) {
        tuna_pretok_free(d->vparts[0]);
        d->vparts[0] = NULL;
        st = read_pairs(o, o->val_path, 0, d->tok, tmpl, &d->vparts[0], NULL);
    }
    tuna_template_free(tmpl);
    free(tsrc);
    if (st == TUNA_OK && tuna_pretok_count(d->vparts[0]) > 0) d->n_val = 1;
    o->val_split = 0; /* taken per record above */
    return st;
}

/* --center-rewards, --max-prompt-len, --max-len (and --model, --adapter) */
static int reward_option(train_opts *o, const char *opt, const char *v, int *i) {
    int r = train_model_option(o, opt, v, i);
    if (r) return r;
    if (!strcmp(opt, "--center-rewards")) r = cli_parse_double(opt, v, 0, 1e9, &o->dargs.center_rewards);
    else if (!strcmp(opt, "--max-prompt-len")) r = cli_parse_int(opt, v, 1, 1 << 20, &o->max_prompt_len);
    else if (!strcmp(opt, "--max-len")) r = cli_parse_int(opt, v, 2, 1 << 20, &o->a.seq_len);
    else return 0;
    (*i)++;
    return r ? 2 : 1;
}

static int reward_check(train_opts *o) {
    if (o->n_data > 1) return cli_usage_error("reward: one --data file");
    if (o->pack) return cli_usage_error("reward: --pack is not available (each row is scored on its own last token)");
    if (o->a.loss_norm != TUNA_LOSS_NORM_TOKEN) return cli_usage_error("reward: --loss-norm does not apply (the loss is per pair)");
    if (o->general) return cli_usage_error("reward: --general-eval does not apply (a reward model has no vocabulary head)");
    if (o->max_prompt_len && o->max_prompt_len >= o->a.seq_len)
        return cli_usage_error("--max-prompt-len %d leaves no room for a response in --max-len %d", o->max_prompt_len, o->a.seq_len);
    o->dargs.type = TUNA_DPO_REWARD;
    o->a.dpo = &o->dargs;
    return 0;
}

static float reward_default_lr(const train_opts *o) {
    (void)o;
    return 1e-5f;
}

static tuna_status zeros(double **p, int64_t n) {
    *p = calloc((size_t)n + 1, sizeof **p);
    return *p ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
}

/* pairs, then the model turned into a reward model; no reference (zeros) */
static tuna_status reward_load(train_opts *o, train_data *d) {
    d->n_val = o->n_val;
    tuna_status st = load_pairs(o, d);
    if (st == TUNA_OK) st = train_load_model(&d->m, o);
    if (st == TUNA_OK) st = tuna_model_to_reward(&d->m, o->a.seed);
    int V = st == TUNA_OK ? tuna_model_config(d->m)->V : 0;
    if (st == TUNA_OK) st = train_check_vocab(d->parts[0], V, o->data_path);
    if (st == TUNA_OK) st = train_check_vocab(d->vparts[0], V, o->val_path ? o->val_path : o->data_path);
    if (st == TUNA_OK) st = zeros(&d->ref_train, tuna_pretok_count(d->parts[0]));
    if (st == TUNA_OK) st = zeros(&d->ref_val, tuna_pretok_count(d->vparts[0]));
    /* a resume must start from the same model and score head */
    if (st == TUNA_OK) train_model_fingerprint(d->m, d->ref_fp);
    o->a.ref_logps = d->ref_train;
    return st;
}

static void reward_args_json(json_t *ja, const train_opts *o, const train_data *d) {
    json_object_set_new(ja, "loss_type", json_string("reward"));
    json_object_set_new(ja, "center_rewards_coefficient", json_real(o->dargs.center_rewards));
    json_object_set_new(ja, "max_prompt_len", json_integer(o->max_prompt_len));
    json_object_set_new(ja, "train_pairs", json_integer(tuna_pretok_count(d->data) / 2));
    json_object_set_new(ja, "val_pairs", json_integer(tuna_pretok_count(d->val) / 2));
}

static const train_optdef reward_options[] = {
    OPTDEFS_MODEL,
    {"center-rewards", OPT_VALUE, REC_DOUBLE, OPT_AT(dargs.center_rewards), NULL},
    {"max-prompt-len", OPT_VALUE, REC_INT_SET, OPT_AT(max_prompt_len), NULL},
    {"max-len", OPT_VALUE, REC_NONE, 0, NULL}, /* --seq-len's other name: recorded as seq_len */
    {NULL, OPT_FLAG, REC_NONE, 0, NULL},
};

const train_mode train_mode_reward = {
    .name = "reward",
    .help = reward_help,
    .methods = "full",
    .methods_why = "a reward model trains every weight and its new score head: --method full",
    .pairs = 1,
    .job = MEM_DPO,
    .options = reward_options,
    .option = reward_option,
    .required = train_model_required,
    .check = reward_check,
    .default_lr = reward_default_lr,
    .load = reward_load,
    .args_json = reward_args_json,
};
