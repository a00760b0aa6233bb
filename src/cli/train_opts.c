/* train_opts.c — the options shared by sft, pretrain and dpo: read from argv
 * (a recipe's options first, train_recipe.c; each one looked up in the table
 * of train_optab.h, then parsed by the mode's own parser or one of four
 * groups: data, method, optimizer, run), checked, and recorded as
 * train_args.json (see train_opts.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_hub.h"
#include "cli/cli_paths.h"
#include "cli/commands.h"
#include "cli/train_mode.h"
#include "cli/train_recipe.h"
#include "core/error.h"
#include "tuna_dist.h"
#include "tuna_gguf.h"

/* the value of an option that takes one: consumed (i advanced) even when absent */
#define NEXT() ((*i)++, v)

/* --data FILE[:WEIGHT] (the weight after the last ':' when it parses as a number) */
static int add_data(train_opts *o, const char *arg) {
    if (o->n_data == TRAIN_MAX_DATA) return cli_usage_error("at most %d --data files", TRAIN_MAX_DATA);
    const char *colon = strrchr(arg, ':');
    char *end = NULL;
    double w = colon ? strtod(colon + 1, &end) : 0;
    int k = o->n_data;
    if (colon && end && *end == '\0' && end != colon + 1) {
        if (!(w >= 0)) return cli_usage_error("--data %s: weight must be >= 0", arg);
        snprintf(o->data_buf[k], sizeof o->data_buf[k], "%.*s", (int)(colon - arg), arg);
        o->data_w[k] = w;
        o->any_weight = 1;
    } else {
        snprintf(o->data_buf[k], sizeof o->data_buf[k], "%s", arg);
        o->data_w[k] = -1;
    }
    o->data_paths[k] = o->data_buf[k];
    o->n_data++;
    o->data_path = o->data_paths[0];
    return 0;
}

/* the data, its records and their tokens: 1 taken, 0 not one, 2 bad */
static int data_option(train_opts *o, const char *opt, const char *v, int *i) {
    double x;
    if (!strcmp(opt, "--data") && v) return add_data(o, NEXT()) ? 2 : 1;
    if (!strcmp(opt, "--val") && v) {
        if (o->n_val == TRAIN_MAX_DATA) return cli_usage_error("at most %d --val files", TRAIN_MAX_DATA);
        o->val_paths[o->n_val++] = NEXT();
        o->val_path = o->val_paths[0];
    } else if (!strcmp(opt, "--val-split")) { if (cli_parse_double(opt, NEXT(), 0, 0.5, &o->val_split)) return 2; }
    else if (!strcmp(opt, "--general-eval") && v) o->general = NEXT();
    else if (!strcmp(opt, "--template") && v) o->template_arg = NEXT();
    else if (!strcmp(opt, "--cache-dir") && v) o->cache_dir = NEXT();
    else if (!strcmp(opt, "--no-cache")) o->no_cache = 1;
    else if (!strcmp(opt, "--strict")) o->dso.data.strict = 1;
    else if (!strcmp(opt, "--max-bad")) { if (cli_parse_double(opt, NEXT(), 0, 1, &x)) return 2; o->dso.data.max_bad = x; }
    else if (!strcmp(opt, "--loss-on") && v) {
        const char *s = NEXT();
        if (!strcmp(s, "all")) o->dso.loss_on_all = 1;
        else if (!strcmp(s, "response")) o->dso.loss_on_all = 0;
        else return cli_usage_error("--loss-on must be response or all (got '%s')", s);
    } else if (!strcmp(opt, "--truncate") && v) {
        const char *s = NEXT();
        if (!strcmp(s, "right")) o->dso.truncate = TUNA_TRUNCATE_RIGHT;
        else if (!strcmp(s, "left")) o->dso.truncate = TUNA_TRUNCATE_LEFT;
        else if (!strcmp(s, "drop")) o->dso.truncate = TUNA_TRUNCATE_DROP;
        else return cli_usage_error("--truncate must be right, left or drop (got '%s')", s);
    } else if (!strcmp(opt, "--pack")) o->pack = 1;
    else return 0;
    return 1;
}

/* --method and its adapter's settings */
static int method_option(train_opts *o, const char *opt, const char *v, int *i) {
    double x;
    tuna_peft_config *pc = &o->pc;
    if (!strcmp(opt, "--method") && v) o->method = NEXT();
    else if (!strcmp(opt, "--lora-r")) { if (cli_parse_int(opt, NEXT(), 1, 65536, &pc->r)) return 2; }
    else if (!strcmp(opt, "--lora-alpha")) { if (cli_parse_double(opt, NEXT(), 1e-6, 1e6, &x)) return 2; pc->alpha = (float)x; }
    else if (!strcmp(opt, "--lora-dropout")) { if (cli_parse_double(opt, NEXT(), 0, 0.99, &x)) return 2; pc->dropout = (float)x; }
    else if (!strcmp(opt, "--rslora")) pc->rslora = 1;
    else if (!strcmp(opt, "--lora-targets") && v) o->lora_targets = NEXT();
    else if (!strcmp(opt, "--ia3-targets") && v) o->ia3_targets = NEXT();
    else if (!strcmp(opt, "--ia3-feedforward") && v) o->ia3_ff = NEXT();
    else if (!strcmp(opt, "--num-virtual-tokens")) { if (cli_parse_int(opt, NEXT(), 1, 4096, &pc->num_virtual_tokens)) return 2; }
    else if (!strcmp(opt, "--prompt-init") && v) o->prompt_init = NEXT();
    else return 0;
    return 1;
}

/* a choice among names: index into names, or -1 */
static int pick(const char *s, const char *const *names, int n) {
    for (int k = 0; k < n; k++)
        if (!strcmp(s, names[k])) return k;
    return -1;
}

/* --schedule and --loss-norm */
static int choice_option(train_opts *o, const char *opt, const char *v, int *i) {
    static const char *const sched[] = {"constant", "linear", "cosine"}, *const norm[] = {"token", "sequence"};
    static const tuna_schedule sv[] = {TUNA_SCHED_CONSTANT, TUNA_SCHED_LINEAR, TUNA_SCHED_COSINE};
    static const tuna_loss_norm nv[] = {TUNA_LOSS_NORM_TOKEN, TUNA_LOSS_NORM_SEQUENCE};
    int k;
    if (!strcmp(opt, "--schedule") && v) {
        const char *s = NEXT();
        if ((k = pick(s, sched, 3)) < 0) return cli_usage_error("--schedule must be constant, linear or cosine (got '%s')", s);
        o->a.schedule = sv[k];
    } else if (!strcmp(opt, "--loss-norm") && v) {
        const char *s = NEXT();
        if ((k = pick(s, norm, 2)) < 0) return cli_usage_error("--loss-norm must be token or sequence (got '%s')", s);
        o->a.loss_norm = nv[k];
    } else return 0;
    return 1;
}

/* the optimizer, the batches and the training length */
static int optim_option(train_opts *o, const char *opt, const char *v, int *i) {
    double x;
    int iv;
    tuna_train_args *a = &o->a;
    if (!strcmp(opt, "--lr")) { if (cli_parse_double(opt, NEXT(), 0, 10, &x)) return 2; a->lr = (float)x; o->lr_given = 1; }
    else if (!strcmp(opt, "--weight-decay")) { if (cli_parse_double(opt, NEXT(), 0, 10, &x)) return 2; a->weight_decay = (float)x; }
    else if (!strcmp(opt, "--grad-clip")) { if (cli_parse_double(opt, NEXT(), 0, 1e9, &x)) return 2; a->grad_clip = (float)x; }
    else if (!strcmp(opt, "--eps")) { if (cli_parse_double(opt, NEXT(), 1e-30, 1, &x)) return 2; a->eps = (float)x; }
    else if (!strcmp(opt, "--warmup")) { if (cli_parse_double(opt, NEXT(), 0, 1e9, &a->warmup)) return 2; }
    else if (!strcmp(opt, "--epochs")) { if (cli_parse_double(opt, NEXT(), 1e-9, 1e6, &a->epochs)) return 2; }
    else if (!strcmp(opt, "--betas")) {
        float b1, b2;
        if (!v || sscanf(NEXT(), "%f,%f", &b1, &b2) != 2 || !(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
            return cli_usage_error("--betas needs B1,B2 in [0,1)");
        a->beta1 = b1;
        a->beta2 = b2;
    } else if (!strcmp(opt, "--batch")) { if (cli_parse_int(opt, NEXT(), 1, 1 << 20, &a->batch)) return 2; }
    else if (!strcmp(opt, "--micro-batch")) { if (cli_parse_int(opt, NEXT(), 1, 1 << 20, &a->micro_batch)) return 2; o->mb_given = 1; }
    else if (!strcmp(opt, "--seq-len")) { if (cli_parse_int(opt, NEXT(), 2, 1 << 20, &a->seq_len)) return 2; }
    else if (!strcmp(opt, "--steps")) { if (cli_parse_int(opt, NEXT(), 1, 1 << 30, &a->steps)) return 2; }
    else if (!strcmp(opt, "--seed")) { if (cli_parse_int(opt, NEXT(), 0, 2147483647, &iv)) return 2; a->seed = (uint64_t)iv; }
    else if (!strcmp(opt, "--no-shuffle")) a->shuffle = 0;
    else if (!strcmp(opt, "--grad-checkpoint")) a->grad_checkpoint = 1;
    else if (!strcmp(opt, "--checkpoint-layers")) { if (cli_parse_int(opt, NEXT(), 0, 1 << 20, &a->checkpoint_layers)) return 2; }
    else if (!strcmp(opt, "--bf16")) a->bf16 = 1;
    else return choice_option(o, opt, v, i);
    return 1;
}

/* the output, its cadence and the run's own settings */
static int run_option(train_opts *o, const char *opt, const char *v, int *i) {
    if (!strcmp(opt, "--out") && v) o->out_dir = NEXT();
    else if (!strcmp(opt, "--save-dtype") && v) o->save_dtype = NEXT();
    else if (!strcmp(opt, "--resume") && v) o->resume = NEXT();
    else if (!strcmp(opt, "--overwrite")) o->overwrite = 1;
    else if (!strcmp(opt, "--save-every")) { if (cli_parse_int(opt, NEXT(), 1, 1 << 30, &o->save_every)) return 2; }
    else if (!strcmp(opt, "--eval-every")) { if (cli_parse_int(opt, NEXT(), 1, 1 << 30, &o->eval_every)) return 2; }
    else if (!strcmp(opt, "--early-stop")) { if (cli_parse_int(opt, NEXT(), 1, 1 << 30, &o->early_stop)) return 2; }
    else if (!strcmp(opt, "--quiet")) o->quiet = 1;
    else if (!strcmp(opt, "--no-mem-check")) o->no_mem_check = 1;
    else if (!strcmp(opt, "--max-memory") && v) {
        if ((o->max_memory = mem_parse_bytes(NEXT())) <= 0)
            return cli_usage_error("--max-memory needs a size such as 16G or 12000M (got '%s')", v);
    }
    else if (!strcmp(opt, "--profile")) o->profile = 1;
    else if (!strcmp(opt, "--dry-run")) o->dry_run = 1;
    else return 0;
    return 1;
}

static void opts_init(train_opts *o, const train_mode *mode) {
    memset(o, 0, sizeof *o);
    o->mode = mode;
    o->cmd = mode->name;
    tuna_dataset_options_init(&o->dso);
    o->method = "full";
    o->save_dtype = "f32";
    o->prompt_init = "random";
    const char *prof = getenv("TUNA_PROFILE");
    o->profile = prof && *prof && strcmp(prof, "0") != 0;
    tuna_peft_config_default(&o->pc, TUNA_PEFT_LORA);
    tuna_train_args_default(&o->a);
    o->dargs = (tuna_dpo_args){.type = TUNA_DPO_SIGMOID, .beta = 0.1, .simpo_gamma = 0.5, .desirable_weight = 1, .undesirable_weight = 1};
    if (mode->defaults) mode->defaults(o);
}

/* argv[*i], an option of the table with its value, into o (*i past the
 * value): 0, or 2 after printing why */
static int parse_one(train_opts *o, int argc, char **argv, int *i) {
    static int (*const groups[])(train_opts *, const char *, const char *, int *) = {data_option, method_option, optim_option,
                                                                                     run_option};
    const char *opt = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    const train_optdef *d = !strncmp(opt, "--", 2) ? optab_find(o->mode, opt + 2, 0) : NULL;
    if (!d || (d->arity != OPT_FLAG && !v))
        return cli_usage_error("%s: unknown option or missing value '%s' (see tuna %s --help)", o->cmd, opt, o->cmd);
    int i0 = *i, r = o->mode->option(o, opt, v, i);
    for (size_t g = 0; !r && g < sizeof groups / sizeof *groups; g++) r = groups[g](o, opt, v, i);
    if (r == 2) return 2;
    if (!r || *i - i0 != (d->arity != OPT_FLAG)) /* the table and the parsers disagree: a bug */
        return cli_usage_error("%s: internal: option '%s' is not parsed as train_optab.h says", o->cmd, opt);
    return 0;
}

int train_opts_parse(train_opts *o, const train_mode *mode, int argc, char **argv) {
    opts_init(o, mode);
    if (!(o->args = calloc(1, sizeof *o->args))) return cli_status_error(core_fail(TUNA_ERR_NOMEM, "out of memory"));
    int rc = train_recipe_expand(o->args, mode, argc, argv);
    for (int i = 1; !rc && i < o->args->argc; i++) {
        cli_error_where(o->args->where[i]);
        rc = parse_one(o, o->args->argc, o->args->argv, &i);
        cli_error_where(NULL);
    }
    return rc ? rc : mode->required(o);
}

void train_opts_free(train_opts *o) {
    if (o->args) train_argv_free(o->args);
    free(o->args);
    free(o->recipe_text);
    o->args = NULL;
    o->recipe_text = NULL;
}

/* model and adapter folders named by Hub id (a recipe file's, as the command
 * line's are resolved by main.c): each pulled into the cache, the option then
 * naming its snapshot folder; 0 or the exit code */
int train_opts_resolve_hub(train_opts *o) {
    int rc = cli_hub_path("--model", &o->model_dir, o->quiet);
    if (!rc) rc = cli_hub_path("--ref-model", &o->ref_model, o->quiet);
    if (!rc) rc = cli_hub_path("--adapter", &o->adapter_dir, o->quiet);
    if (!rc) rc = cli_hub_path("--tokenizer", &o->tok_dir, o->quiet);
    return rc;
}

int train_opts_check_paths(const train_opts *o) {
    const cli_path named[] = {{"--model", o->model_dir, CLI_DIR}, {"--ref-model", o->ref_model, CLI_DIR},
                              {"--adapter", o->adapter_dir, CLI_DIR}, {"--resume", o->resume, CLI_DIR | CLI_NESTED_OK},
                              {"--tokenizer", o->tok_dir, CLI_DIR}, {"--arch", o->config_path, CLI_FILE},
                              {"--general-eval", o->general, CLI_FILE}, {"--template", o->template_arg, CLI_FILE}};
    cli_path ins[2 * TRAIN_MAX_DATA + 8], outs[] = {{"--out", o->out_dir, CLI_DIR}};
    int n_in = 0;
    for (size_t k = 0; k < sizeof named / sizeof *named; k++) ins[n_in++] = named[k];
    for (int k = 0; k < o->n_data; k++) ins[n_in++] = (cli_path){"--data", o->data_paths[k], CLI_FILE};
    for (int k = 0; k < o->n_val; k++) ins[n_in++] = (cli_path){"--val", o->val_paths[k], CLI_FILE};
    return cli_check_paths(o->cmd, ins, n_in, outs, 1);
}

/* 1 when name is one of list's ", "-separated names */
static int in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list; p; p = strstr(p, ", ") ? strstr(p, ", ") + 2 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

/* the adapter's config from the method and its options */
static int adapter_config(train_opts *o) {
    tuna_peft_config *pc = &o->pc;
    if (o->is_full && o->adapter_dir) return cli_usage_error("--adapter needs --method lora, qlora, ia3 or prompt");
    pc->type = !strcmp(o->method, "ia3") ? TUNA_PEFT_IA3 : !strcmp(o->method, "prompt") ? TUNA_PEFT_PROMPT : TUNA_PEFT_LORA;
    const char *tg = pc->type == TUNA_PEFT_IA3 ? o->ia3_targets : pc->type == TUNA_PEFT_LORA ? o->lora_targets : NULL;
    if (tg && strlen(tg) >= sizeof pc->targets) return cli_usage_error("target list too long");
    if (tg) snprintf(pc->targets, sizeof pc->targets, "%s", tg);
    if (o->ia3_ff) snprintf(pc->feedforward, sizeof pc->feedforward, "%s", o->ia3_ff);
    if (pc->type == TUNA_PEFT_PROMPT && strcmp(o->prompt_init, "random")) {
        pc->init_from_text = 1;
        snprintf(pc->init_text, sizeof pc->init_text, "%s", o->prompt_init);
    }
    if (!o->is_full && !o->lr_given)
        o->a.lr = pc->type == TUNA_PEFT_PROMPT ? 3e-2f : pc->type == TUNA_PEFT_IA3 ? 3e-3f : 2e-4f;
    if (!o->lr_given && o->mode->default_lr) o->a.lr = o->mode->default_lr(o);
    return 0;
}

/* the batches, the validation data and the mixture weights */
static int data_checks(train_opts *o) {
    if (!o->mb_given) o->a.micro_batch = o->a.batch;
    if (o->a.batch % o->a.micro_batch)
        return cli_usage_error("--batch %d is not a multiple of --micro-batch %d", o->a.batch, o->a.micro_batch);
    if (o->val_path && o->val_split > 0) return cli_usage_error("give --val or --val-split, not both");
    if (o->n_val > 1 && o->n_val != o->n_data)
        return cli_usage_error("several --val files must match the --data files one to one (%d --data, %d --val)", o->n_data,
                               o->n_val);
    if (o->any_weight)
        for (int k = 0; k < o->n_data; k++)
            if (o->data_w[k] < 0) return cli_usage_error("--data %s: give a weight to every file or to none", o->data_paths[k]);
    return 0;
}

int train_opts_check(train_opts *o) {
    if (o->model_dir && tuna_is_gguf(o->model_dir))
        return cli_usage_error("%s: %s is a GGUF file; training starts from a Hugging Face model folder (GGUF is read for info, eval and generate)",
                               o->cmd, o->model_dir);
    o->is_full = !strcmp(o->method, "full");
    o->is_qlora = !strcmp(o->method, "qlora");
    if (!in_list(o->method, o->mode->methods))
        return cli_usage_error("%s: --method '%s' is not available (%s)", o->cmd, o->method,
                               o->mode->methods_why ? o->mode->methods_why : o->mode->methods);
    int rc = o->mode->check ? o->mode->check(o) : 0;
    if (rc || (rc = adapter_config(o))) return rc;
    o->files_dir = o->tok_dir ? o->tok_dir : o->model_dir; /* tokenizer files copied to the output */
    o->sdt = !strcmp(o->save_dtype, "bf16") ? TUNA_DTYPE_BF16 : !strcmp(o->save_dtype, "f16") ? TUNA_DTYPE_F16 : TUNA_DTYPE_F32;
    if (strcmp(o->save_dtype, "f32") && strcmp(o->save_dtype, "bf16") && strcmp(o->save_dtype, "f16"))
        return cli_usage_error("--save-dtype must be f32, bf16 or f16");
    return data_checks(o);
}

/* "data" and "val": a name, or a list (with weights) when several */
static void data_json(json_t *ja, const train_opts *o) {
    json_t *jd = json_array(), *jv = json_array();
    for (int k = 0; k < o->n_data; k++)
        json_array_append_new(jd, o->data_w[k] >= 0 ? json_pack("{s:s,s:f}", "path", o->data_paths[k], "weight", o->data_w[k])
                                                    : json_string(o->data_paths[k]));
    for (int k = 0; k < o->n_val && o->val_path; k++) json_array_append_new(jv, json_string(o->val_paths[k]));
    json_object_set_new(ja, "data", o->n_data == 1 && o->data_w[0] < 0 ? json_string(o->data_path) : jd);
    if (o->n_data == 1 && o->data_w[0] < 0) json_decref(jd);
    json_object_set_new(ja, "val", !o->val_path ? json_null() : o->n_val == 1 ? json_string(o->val_path) : jv);
    if (!o->val_path || o->n_val == 1) json_decref(jv);
}

/* the adapter's settings, when one is trained */
static void adapter_json(json_t *ja, const train_opts *o, tuna_model *m) {
    const tuna_peft_config *c = tuna_peft_get(m);
    if (!c) return;
    if (o->adapter_dir) json_object_set_new(ja, "adapter", json_string(o->adapter_dir));
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

/* the optimizer, the batches and the run's cadence */
static void trainer_json(json_t *ja, const train_opts *o, int total) {
    static const char *const sched[] = {"constant", "linear", "cosine"};
    const tuna_train_args *a = &o->a;
    json_object_set_new(ja, "lr", json_real(a->lr));
    json_object_set_new(ja, "schedule", json_string(sched[a->schedule]));
    json_object_set_new(ja, "warmup", json_real(a->warmup));
    json_object_set_new(ja, "warmup_steps", json_integer(tuna_warmup_steps(a, total)));
    json_object_set_new(ja, "weight_decay", json_real(a->weight_decay));
    json_object_set_new(ja, "betas", json_pack("[f,f]", (double)a->beta1, (double)a->beta2));
    json_object_set_new(ja, "eps", json_real(a->eps));
    json_object_set_new(ja, "grad_clip", json_real(a->grad_clip));
    json_object_set_new(ja, "batch", json_integer(a->batch));
    json_object_set_new(ja, "micro_batch", json_integer(a->micro_batch));
    json_object_set_new(ja, "seq_len", json_integer(a->seq_len));
    json_object_set_new(ja, "steps", json_integer(total));
    json_object_set_new(ja, "epochs", json_real(a->epochs));
    json_object_set_new(ja, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(ja, "shuffle", json_boolean(a->shuffle));
    json_object_set_new(ja, "loss_norm", json_string(a->loss_norm == TUNA_LOSS_NORM_TOKEN ? "token" : "sequence"));
    json_object_set_new(ja, "grad_checkpoint", json_boolean(a->grad_checkpoint));
    json_object_set_new(ja, "checkpoint_layers", json_integer(a->checkpoint_layers));
    json_object_set_new(ja, "bf16", json_boolean(a->bf16 && tuna_bf16_supported()));
    json_object_set_new(ja, "pack", json_boolean(o->pack));
    json_object_set_new(ja, "eval_every", json_integer(o->eval_every));
    json_object_set_new(ja, "early_stop", json_integer(o->early_stop));
    json_object_set_new(ja, "save_every", json_integer(o->save_every));
    json_object_set_new(ja, "save_dtype", json_string(o->save_dtype));
}

json_t *train_opts_json(const train_opts *o, const train_data *d, int total) {
    json_t *ja = json_object();
    json_object_set_new(ja, "command", json_string(o->cmd));
    if (o->config_path) { /* a model built from scratch */
        json_object_set_new(ja, "config", json_string(o->config_path));
        json_object_set_new(ja, "tokenizer", json_string(o->tok_dir));
    } else json_object_set_new(ja, "model", json_string(o->model_dir));
    data_json(ja, o);
    json_object_set_new(ja, "val_split", json_real(o->val_split));
    json_object_set_new(ja, "general_eval", o->general ? json_string(o->general) : json_null());
    json_object_set_new(ja, "method", json_string(o->method));
    adapter_json(ja, o, d->m);
    trainer_json(ja, o, total);
    json_object_set_new(ja, "train_sequences", json_integer(tuna_pretok_count(d->data)));
    if (o->mode->args_json) o->mode->args_json(ja, o, d);
    json_object_set_new(ja, "val_sequences", json_integer(tuna_pretok_count(d->val)));
    json_object_set_new(ja, "parameters", json_integer(tuna_model_param_count(d->m)));
    json_object_set_new(ja, "ranks", json_integer(tuna_dist_size()));
    return ja;
}

int train_model_option(train_opts *o, const char *opt, const char *v, int *i) {
    if (!strcmp(opt, "--model") && v) o->model_dir = NEXT();
    else if (!strcmp(opt, "--adapter") && v) o->adapter_dir = NEXT();
    else return 0;
    return 1;
}

int train_model_required(const train_opts *o) {
    if (!o->model_dir || !o->data_path || !o->out_dir) return cli_usage_error("%s: --model, --data and --out are required", o->cmd);
    return 0;
}
