/* train_grpo.c — `tuna grpo`'s entry in the table of training modes:
 * GRPO as TRL's GRPOTrainer defines it. The driver (cmd_train.c) parses the
 * shared options and runs the loop; here are the help text, grpo's own
 * options and checks, and its loader: the model (and adapter), the groups
 * (--completions FILE.jsonl, or prompts from --data records sampled by
 * grpo_sample.c), the frozen reference for full training with --beta, and
 * the GRPO step (src/train/grpo_step.c) handed to the trainer as its
 * caller-driven step. Each step's metrics.jsonl line gets TRL's keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_model.h"
#include "cli/commands.h"
#include "cli/grpo_sample.h"
#include "cli/train_data.h"
#include "cli/train_metrics.h"
#include "cli/train_optab.h"
#include "core/error.h"
#include "core/mix.h"
#include "train/grpo_data.h"
#include "train/grpo_step.h"

static const char grpo_help[] =
    "usage: tuna grpo --model DIR (--data RECORDS.jsonl | --completions GROUPS.jsonl) --out DIR [options]\n"
    "       tuna grpo --config RECIPE.yaml [options]\n"
    "\n"
    "Group Relative Policy Optimization (Shao et al. 2024) as TRL's GRPOTrainer:\n"
    "per prompt G completions are sampled, scored by reward functions, and each\n"
    "completion's advantage is its reward minus its group's mean (divided by the\n"
    "group's std); the policy maximises the clipped surrogate of PPO with those\n"
    "advantages, minus beta times the k3 estimate of the KL to the reference.\n"
    "Prompts: --data JSONL records: {\"prompt\": TEXT or [messages]} alone (TRL's GRPO\n"
    "data), or chat, instruction and prompt-completion records as tuna eval reads\n"
    "them: the prompt through the chat template; the record's answer is the\n"
    "reference given to reward functions, never to the model.\n"
    "  --completions FILE     given groups instead of sampling, one JSON object a line\n"
    "                         {\"prompt_ids\":[..],\"completion_ids\":[[..],..G],\"rewards\":[..G]}\n"
    "                         (a completion's tokens all count, its EOS included), consumed\n"
    "                         in file order (no shuffling), --batch lines a step\n"
    "  --num-generations G    completions per prompt (default 8; --completions: the file's)\n"
    "  --temperature X, --top-p X, --top-k K, --min-p X   sampling (default 1, 1, off, off);\n"
    "                         the loss's log-probabilities are those of softmax(logits / X),\n"
    "                         as TRL's (top-p, top-k and min-p are not applied to them)\n"
    "  --max-new-tokens N     longest completion (default 256); also dr_grpo's constant\n"
    "  --max-prompt-len N     --data prompts keep their last N tokens (default 512, TRL's)\n"
    "  --reward SPEC[:WEIGHT] a reward function, repeatable (the reward is the weighted\n"
    "                         sum): json_valid, json_fields, exact, contains, regex:PATTERN,\n"
    "                         length:MIN-MAX, cmd:PROGRAM, model:DIR\n"
    "  --reward-timeout S     seconds a cmd: program may take per call (default 60)\n"
    "  --scale-rewards group|batch|none   advantages divided by the group's std (default),\n"
    "                         the batch's, or not\n"
    "  --epsilon X            clip range low side (default 0.2); --epsilon-high X (default\n"
    "                         --epsilon)\n"
    "  --beta X               KL coefficient (default 0: no reference). With beta > 0 the\n"
    "                         reference is the starting model: with --method lora/qlora the\n"
    "                         adapter switched off (no second copy); full training keeps a\n"
    "                         frozen copy of the starting model (its memory again)\n"
    "  --num-iterations N     optimizer steps per generation batch (default 1); the old\n"
    "                         policy's log-probabilities are kept for them\n"
    "  --loss-type grpo|bnpo|dr_grpo|dapo   TRL's aggregations (default dapo), over the\n"
    "                         whole step (TRL's grpo and bnpo are per micro-batch)\n"
    "  --method full|lora|qlora and the LoRA options of tuna sft\n"
    "  --batch N              prompts (groups) per optimizer step (default 8);\n"
    "                         --micro-batch N prompts per forward (N x G rows)\n"
    "  --lr X                 default 1e-6 full (TRL), 1e-5 lora/qlora\n"
    "  --save-every N         must be a multiple of --num-iterations (a resume starts a\n"
    "                         generation batch; sampling is seeded by seed, batch and row)\n"
    "Every other option (--schedule, --warmup, --weight-decay, --grad-clip, --steps,\n"
    "--epochs, --seed, --no-shuffle, --resume, --overwrite, --save-dtype, --template,\n"
    "--quiet, --bf16, ...) is as in `tuna sft --help`.\n"
    "metrics.jsonl per step (TRL's names): loss, reward, reward_std, rewards/NAME/mean,\n"
    "rewards/NAME/std, frac_reward_zero_std, kl (beta > 0), completions/mean_length,\n"
    "completions/min_length, completions/max_length, completions/clipped_ratio,\n"
    "clip_ratio/low_mean, clip_ratio/high_mean, clip_ratio/region_mean, num_tokens;\n"
    "report.html draws the reward curve. Writes OUT/model.safetensors (or the adapter).\n";

/* what the loader keeps for the steps */
typedef struct {
    grpo_completions *comp;
    grpo_sampler *smp;
    tuna_model *ref;
    grpo_step *step;
    const char *names[TRAIN_MAX_DATA];
    char keys[TRAIN_MAX_DATA][160]; /* "NAME", or "NAME_2" ... for a name given again */
    int K;
    double beta;
} grpo_state;

static void state_free(void *p) {
    grpo_state *s = p;
    if (!s) return;
    grpo_step_free(s->step);
    grpo_completions_free(s->comp);
    grpo_sampler_free(s->smp);
    tuna_model_free(s->ref);
    free(s);
}

static int choice(const char *opt, const char *v, int (*from)(const char *), int *out, const char *names) {
    int k = from(v);
    if (k < 0) return cli_usage_error("%s must be %s (got '%s')", opt, names, v);
    *out = k;
    return 0;
}

/* grpo's own options (and --model, --adapter) */
static int grpo_option(train_opts *o, const char *opt, const char *v, int *i) {
    int r = train_model_option(o, opt, v, i);
    if (r) return r;
    if (!v && strcmp(opt, "--completions")) return 0;
    if (!strcmp(opt, "--completions") && v) o->grpo.completions = v;
    else if (!strcmp(opt, "--num-generations")) r = cli_parse_int(opt, v, 1, 4096, &o->grpo.G);
    else if (!strcmp(opt, "--temperature")) r = cli_parse_double(opt, v, 1e-6, 100, &o->grpo.temperature);
    else if (!strcmp(opt, "--top-p")) r = cli_parse_double(opt, v, 1e-6, 1, &o->grpo.top_p);
    else if (!strcmp(opt, "--top-k")) r = cli_parse_int(opt, v, 0, 1 << 30, &o->grpo.top_k);
    else if (!strcmp(opt, "--min-p")) r = cli_parse_double(opt, v, 0, 1, &o->grpo.min_p);
    else if (!strcmp(opt, "--max-new-tokens")) r = cli_parse_int(opt, v, 1, 1 << 20, &o->grpo.max_new);
    else if (!strcmp(opt, "--reward")) {
        if (o->grpo.n_rewards == TRAIN_MAX_DATA) return cli_usage_error("at most %d --reward functions", TRAIN_MAX_DATA);
        o->grpo.rewards[o->grpo.n_rewards++] = v;
    } else if (!strcmp(opt, "--reward-timeout")) r = cli_parse_double(opt, v, 1e-3, 1e6, &o->grpo.reward_timeout);
    else if (!strcmp(opt, "--scale-rewards")) r = choice(opt, v, grpo_scale_from_name, &o->grpo.scale, "group, batch or none");
    else if (!strcmp(opt, "--loss-type"))
        r = choice(opt, v, grpo_loss_type_from_name, &o->grpo.loss_type, "grpo, bnpo, dr_grpo or dapo");
    else if (!strcmp(opt, "--epsilon")) r = cli_parse_double(opt, v, 0, 1, &o->grpo.epsilon);
    else if (!strcmp(opt, "--epsilon-high")) r = cli_parse_double(opt, v, 0, 1e6, &o->grpo.epsilon_high);
    else if (!strcmp(opt, "--beta")) r = cli_parse_double(opt, v, 0, 1e6, &o->grpo.beta);
    else if (!strcmp(opt, "--num-iterations")) r = cli_parse_int(opt, v, 1, 1 << 20, &o->grpo.num_iterations);
    else if (!strcmp(opt, "--max-prompt-len")) r = cli_parse_int(opt, v, 1, 1 << 20, &o->max_prompt_len);
    else return 0;
    (*i)++;
    return r ? 2 : 1;
}

/* GRPOConfig's defaults */
static void grpo_defaults(train_opts *o) {
    o->grpo.G = 0; /* not given: 8, or the --completions file's */
    o->grpo.max_new = 256;
    o->grpo.num_iterations = 1;
    o->grpo.loss_type = GRPO_LOSS_DAPO;
    o->grpo.scale = GRPO_SCALE_GROUP;
    o->grpo.temperature = 1;
    o->grpo.top_p = 1;
    o->grpo.epsilon = 0.2;
    o->grpo.epsilon_high = -1; /* as --epsilon */
    o->grpo.reward_timeout = 60;
    o->max_prompt_len = 512; /* GRPOConfig's max_prompt_length */
}

static int grpo_required(const train_opts *o) {
    if (!o->model_dir || !o->out_dir || (!o->data_path && !o->grpo.completions))
        return cli_usage_error("grpo: --model, --out and --data (or --completions) are required");
    if (o->data_path && o->grpo.completions) return cli_usage_error("grpo: give --data or --completions, not both");
    if (!o->grpo.completions && o->grpo.n_rewards == 0)
        return cli_usage_error("grpo: sampling from --data needs at least one --reward function");
    return 0;
}

static int grpo_check(train_opts *o) {
    if (o->n_data > 1) return cli_usage_error("grpo: one --data file");
    if (o->val_path || o->val_split > 0) return cli_usage_error("grpo: no validation data (--val, --val-split)");
    if (o->pack) return cli_usage_error("grpo: --pack is not available (each completion is scored on its own)");
    if (o->grpo.epsilon_high < 0) o->grpo.epsilon_high = o->grpo.epsilon;
    o->grpo.G_given = o->grpo.G > 0;
    if (!o->grpo.G && !o->grpo.completions) o->grpo.G = 8; /* GRPOConfig's num_generations */
    if (o->save_every && o->save_every % o->grpo.num_iterations)
        return cli_usage_error("grpo: --save-every %d must be a multiple of --num-iterations %d (a resume starts a generation batch)",
                               o->save_every, o->grpo.num_iterations);
    if (o->grpo.completions) o->a.shuffle = 0; /* groups in file order */
    o->a.step_rows = o->grpo.G; /* the memory check's rows (the loader sets the rest of the step) */
    return 0;
}

/* TRL's GRPOConfig learning rate; adapters: 1e-5 */
static float grpo_default_lr(const train_opts *o) { return o->is_full ? 1e-6f : 1e-5f; }

/* the prompts of the groups as the trainer's items (each a sequence; the
 * fingerprint a resume checks) */
static tuna_status prompts_of_groups(const grpo_completions *c, tuna_pretok **out) {
    tuna_status st = tuna_pretok_new(out);
    for (int i = 0; st == TUNA_OK && i < c->n; i++) {
        int64_t p0 = c->p_off[i];
        /* the labels count nothing the trainer reads: the ids themselves, so no step drops them */
        st = tuna_pretok_append(*out, c->p_ids + p0, c->p_ids + p0, c->p_off[i + 1] - p0);
    }
    return st;
}

/* --completions: the groups, their prompts as items, G and the row length */
static tuna_status load_completions(train_opts *o, train_data *d, grpo_state *s) {
    const tuna_config *cfg = tuna_model_config(d->m);
    tuna_status st = grpo_completions_read(o->grpo.completions, o->grpo.G_given ? o->grpo.G : 0, cfg->V, &s->comp);
    if (st != TUNA_OK) return st;
    s->comp->eos = cfg->eos_token_id;
    o->grpo.G = s->comp->G;
    o->a.seq_len = s->comp->max_len;
    s->names[0] = "given";
    s->K = 1;
    st = prompts_of_groups(s->comp, &d->parts[0]);
    /* the driver's data steps read the groups' file as the data */
    o->data_paths[0] = o->data_path = o->grpo.completions;
    o->data_w[0] = -1;
    o->n_data = 1;
    if (st == TUNA_OK && !o->quiet)
        fprintf(stderr, "%s: %d groups of %d completions, longest row %d tokens\n", o->grpo.completions, s->comp->n, s->comp->G,
                s->comp->max_len);
    return st;
}

/* a hash of the groups' completions and rewards (their prompts are the
 * trainer's data, fingerprinted by it) */
static uint64_t groups_hash(const grpo_completions *c) {
    uint64_t h = 0x243F6A8885A308D3ULL;
    int64_t n = c->c_off[(int64_t)c->n * c->G];
    for (int64_t k = 0; k <= (int64_t)c->n * c->G; k++) h = core_splitmix64(h ^ (uint64_t)c->c_off[k]);
    for (int64_t k = 0; k < n; k++) h = core_splitmix64(h ^ (uint64_t)c->c_ids[k]);
    for (int64_t k = 0; k < (int64_t)c->n * c->G; k++) {
        uint64_t b;
        memcpy(&b, &c->rewards[k], sizeof b);
        h = core_splitmix64(h ^ b);
    }
    return h;
}

/* the exact settings a resume must share (with the groups' file's identity) */
static void exact_settings(const train_opts *o, train_data *d, const grpo_state *s) {
    json_t *e = json_pack("{s:i,s:f,s:f,s:f,s:s,s:s,s:i,s:i,s:f,s:f,s:s}", "grpo_G", o->grpo.G, "grpo_beta", o->grpo.beta,
                          "grpo_epsilon", o->grpo.epsilon, "grpo_epsilon_high", o->grpo.epsilon_high, "grpo_loss_type",
                          grpo_loss_type_name(o->grpo.loss_type), "grpo_scale_rewards", grpo_scale_name(o->grpo.scale),
                          "grpo_num_iterations", o->grpo.num_iterations, "grpo_max_new_tokens", o->grpo.max_new,
                          "grpo_temperature", o->grpo.temperature, "grpo_top_p", o->grpo.top_p, "grpo_completions",
                          o->grpo.completions ? o->grpo.completions : "");
    json_t *rw = json_array();
    for (int k = 0; k < o->grpo.n_rewards; k++) json_array_append_new(rw, json_string(o->grpo.rewards[k]));
    json_object_set_new(e, "grpo_rewards", rw);
    json_object_set_new(e, "grpo_max_prompt_len", json_integer(o->max_prompt_len));
    json_object_set_new(e, "grpo_top_k", json_integer(o->grpo.top_k));
    json_object_set_new(e, "grpo_min_p", json_real(o->grpo.min_p));
    if (s->comp) {
        char hx[17];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)groups_hash(s->comp));
        json_object_set_new(e, "grpo_groups", json_string(hx));
    }
    char *txt = e ? json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (txt && strlen(txt) < sizeof d->exact) snprintf(d->exact, sizeof d->exact, "%s", txt);
    free(txt);
    json_decref(e);
}

/* the reference: a frozen copy of the starting model (full training with beta) */
static tuna_status load_reference(const train_opts *o, grpo_state *s) {
    if (!o->is_full || o->grpo.beta == 0) return TUNA_OK;
    tuna_status st = tuna_model_load_quantized(&s->ref, o->model_dir, cli_load_mode(NULL)); /* frozen: as stored */
    if (st == TUNA_OK) st = train_apply_bf16(s->ref, o);
    if (st == TUNA_OK) st = tuna_model_prepare(s->ref, o->a.micro_batch * o->grpo.G, o->a.seq_len, TUNA_MODE_EVAL);
    if (st == TUNA_OK && !o->quiet) fprintf(stderr, "reference: a frozen copy of %s (--beta %g)\n", o->model_dir, o->grpo.beta);
    return st;
}

/* the functions' metric names, a name given again numbered (length, length_2) */
static void reward_keys(grpo_state *s) {
    for (int k = 0; k < s->K; k++) {
        int same = 1;
        for (int j = 0; j < k; j++) same += !strcmp(s->names[j], s->names[k]);
        if (same > 1) snprintf(s->keys[k], sizeof s->keys[k], "%s_%d", s->names[k], same);
        else snprintf(s->keys[k], sizeof s->keys[k], "%s", s->names[k]);
    }
}

/* rows (prompt + completion) the model's positions cannot hold: an error
 * where positions are learned, else a warning */
static tuna_status check_rows(const train_opts *o, const tuna_model *m) {
    const tuna_config *c = tuna_model_config(m);
    if (o->a.seq_len <= c->max_positions) return TUNA_OK;
    const char *src = o->grpo.completions ? o->grpo.completions : o->data_path;
    if (c->learned_positions)
        return core_fail(TUNA_ERR_ARG, "%s: rows of up to %d tokens (prompt + completion) but the model has %d learned positions%s", src,
                         o->a.seq_len, c->max_positions, o->grpo.completions ? "" : ": lower --max-new-tokens");
    cli_warn_context(src, 1, 1, "rows (prompt + completion) may be", o->a.seq_len, c->max_positions);
    return TUNA_OK;
}

/* the GRPO step as the trainer's caller-driven step */
static tuna_status make_step(train_opts *o, grpo_state *s) {
    grpo_step_config c = {
        .loss = {.epsilon = o->grpo.epsilon, .epsilon_high = o->grpo.epsilon_high, .beta = o->grpo.beta,
                 .loss_type = (grpo_loss_type)o->grpo.loss_type, .max_completion_length = o->grpo.max_new},
        .scale = (grpo_scale)o->grpo.scale, .G = o->grpo.G, .batch = o->a.batch, .micro_batch = o->a.micro_batch,
        .num_iterations = o->grpo.num_iterations, .T = o->a.seq_len, .K = s->K, .ref = s->ref,
        .temperature = o->grpo.temperature,
        .fill = s->comp ? grpo_completions_fill : grpo_sampler_fill, .fill_ctx = s->comp ? (void *)s->comp : (void *)s->smp};
    tuna_status st = grpo_step_new(&s->step, &c);
    if (st != TUNA_OK) return st;
    o->a.step_fn = grpo_step_run;
    o->a.step_ctx = s->step;
    o->a.step_rows = o->grpo.G;
    o->a.step_reuse = o->grpo.num_iterations;
    return TUNA_OK;
}

static tuna_status grpo_load(train_opts *o, train_data *d) {
    grpo_state *s = calloc(1, sizeof *s);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    d->mode_state = s;
    d->mode_free = state_free;
    tuna_status st = TUNA_OK;
    if (train_has_tokenizer(o->model_dir)) st = tuna_tokenizer_load(&d->tok, o->model_dir);
    if (st == TUNA_OK) st = train_load_model(&d->m, o);
    if (st == TUNA_OK && !o->is_full) st = train_attach_adapter(d->m, d->tok, o);
    if (st == TUNA_OK && o->grpo.completions) st = load_completions(o, d, s);
    else if (st == TUNA_OK) st = grpo_sampler_load(&s->smp, o, d, s->names, &s->K);
    if (st == TUNA_OK) st = check_rows(o, d->m);
    reward_keys(s);
    if (st == TUNA_OK) st = load_reference(o, s);
    if (st == TUNA_OK) st = make_step(o, s);
    if (st == TUNA_OK) exact_settings(o, d, s);
    s->beta = o->grpo.beta;
    return st;
}

static void grpo_args_json(json_t *ja, const train_opts *o, const train_data *d) {
    (void)d;
    json_object_set_new(ja, "completions", o->grpo.completions ? json_string(o->grpo.completions) : json_null());
    json_object_set_new(ja, "num_generations", json_integer(o->grpo.G));
    json_object_set_new(ja, "loss_type", json_string(grpo_loss_type_name(o->grpo.loss_type)));
    json_object_set_new(ja, "scale_rewards", json_string(grpo_scale_name(o->grpo.scale)));
    json_object_set_new(ja, "beta", json_real(o->grpo.beta));
    json_object_set_new(ja, "epsilon", json_real(o->grpo.epsilon));
    json_object_set_new(ja, "epsilon_high", json_real(o->grpo.epsilon_high));
    json_object_set_new(ja, "num_iterations", json_integer(o->grpo.num_iterations));
    json_object_set_new(ja, "temperature", json_real(o->grpo.temperature));
    json_object_set_new(ja, "top_p", json_real(o->grpo.top_p));
    json_object_set_new(ja, "top_k", json_integer(o->grpo.top_k));
    json_object_set_new(ja, "min_p", json_real(o->grpo.min_p));
    json_object_set_new(ja, "max_new_tokens", json_integer(o->grpo.max_new));
    json_object_set_new(ja, "max_prompt_len", json_integer(o->max_prompt_len));
    json_t *rw = json_array();
    for (int k = 0; k < o->grpo.n_rewards; k++) json_array_append_new(rw, json_string(o->grpo.rewards[k]));
    json_object_set_new(ja, "rewards", rw);
}

/* TRL's keys of the step just taken */
static void grpo_line_metrics(json_t *line, const tuna_step_info *info, const train_data *d) {
    const grpo_state *s = d->mode_state;
    const grpo_metrics *g = grpo_step_metrics(s->step);
    char key[300];
    json_object_set_new(line, "reward", cli_json_num(g->rs.reward));
    json_object_set_new(line, "reward_std", cli_json_num(g->rs.reward_std));
    for (int k = 0; k < s->K; k++) {
        snprintf(key, sizeof key, "rewards/%s/mean", s->keys[k]);
        cli_json_set_named(line, "", key, cli_json_num(g->fmean[k]));
        snprintf(key, sizeof key, "rewards/%s/std", s->keys[k]);
        cli_json_set_named(line, "", key, cli_json_num(g->fstd[k]));
    }
    json_object_set_new(line, "frac_reward_zero_std", cli_json_num(g->rs.frac_zero_std));
    if (s->beta != 0) json_object_set_new(line, "kl", cli_json_num(g->kl));
    json_object_set_new(line, "completions/mean_length", cli_json_num(g->len_mean));
    json_object_set_new(line, "completions/min_length", cli_json_num(g->len_min));
    json_object_set_new(line, "completions/max_length", cli_json_num(g->len_max));
    json_object_set_new(line, "completions/clipped_ratio", cli_json_num(g->clipped_ratio));
    json_object_set_new(line, "clip_ratio/low_mean", cli_json_num(g->clip_low));
    json_object_set_new(line, "clip_ratio/high_mean", cli_json_num(g->clip_high));
    json_object_set_new(line, "clip_ratio/region_mean", cli_json_num(g->clip_region));
    /* prompt + completion tokens of the generation batches so far (the trainer's count, exact across a resume) */
    json_object_set_new(line, "num_tokens", json_integer(info->tokens_seen));
}

/* the progress line's reward and KL */
static void grpo_step_note(char *buf, size_t n, const train_data *d) {
    const grpo_state *s = d->mode_state;
    const grpo_metrics *g = grpo_step_metrics(s->step);
    if (s->beta != 0) snprintf(buf, n, " | reward %.3f | kl %.4f", g->rs.reward, g->kl);
    else snprintf(buf, n, " | reward %.3f", g->rs.reward);
}

static const train_optdef grpo_options[] = {
    OPTDEFS_MODEL,
    {"completions", OPT_VALUE, REC_STR, OPT_AT(grpo.completions), NULL},
    {"num-generations", OPT_VALUE, REC_INT_SET, OPT_AT(grpo.G), NULL},
    {"temperature", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.temperature), NULL},
    {"top-p", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.top_p), NULL},
    {"top-k", OPT_VALUE, REC_INT, OPT_AT(grpo.top_k), NULL},
    {"min-p", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.min_p), NULL},
    {"max-new-tokens", OPT_VALUE, REC_INT, OPT_AT(grpo.max_new), NULL},
    {"reward", OPT_LIST, REC_REWARDS, 0, NULL},
    {"reward-timeout", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.reward_timeout), NULL},
    {"scale-rewards", OPT_VALUE, REC_CHOICE, OPT_AT(grpo.scale), "group|batch|none"},
    {"loss-type", OPT_VALUE, REC_CHOICE, OPT_AT(grpo.loss_type), "grpo|bnpo|dr_grpo|dapo"},
    {"epsilon", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.epsilon), NULL},
    {"epsilon-high", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.epsilon_high), NULL},
    {"beta", OPT_VALUE, REC_DOUBLE, OPT_AT(grpo.beta), NULL},
    {"num-iterations", OPT_VALUE, REC_INT, OPT_AT(grpo.num_iterations), NULL},
    {"max-prompt-len", OPT_VALUE, REC_INT, OPT_AT(max_prompt_len), NULL},
    {NULL, OPT_FLAG, REC_NONE, 0, NULL},
};

const train_mode train_mode_grpo = {
    .name = "grpo",
    .help = grpo_help,
    .methods = "full, lora, qlora",
    .items = 1,
    .job = MEM_GRPO,
    .options = grpo_options,
    .defaults = grpo_defaults,
    .option = grpo_option,
    .required = grpo_required,
    .check = grpo_check,
    .default_lr = grpo_default_lr,
    .load = grpo_load,
    .args_json = grpo_args_json,
    .step_metrics = grpo_line_metrics,
    .step_note = grpo_step_note,
};
