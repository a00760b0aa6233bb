/* cmd_train.c — `tuna sft` (fine-tuning a model folder on any record format),
 * `tuna pretrain` (a randomly initialised model on plain text), `tuna dpo`
 * (preference optimisation) and `tuna reward` (a reward model on preference pairs), one driver over the table of modes
 * (train_mode.h): options parsed and checked (train_opts.c), the mode's
 * loader (train_sft.c, train_pretrain.c, train_dpo.c), the data prepared for
 * every mode alike (train_data.c), the trainer created, then the run
 * (train_loop.c: live progress line, metrics.jsonl, train_args.json,
 * validation with early stopping keeping the best weights, checkpoints and
 * exact resume, the general-text perplexity check before and after, and an
 * output folder Hugging Face tools can load). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/run_staging.h"
#include "cli/train_data.h"
#include "cli/train_loop.h"
#include "cli/train_recipe.h"
#include "cli/train_resume.h"
#include "core/error.h"
#include "core/prof.h"
#include "tuna_dist.h"

/* The trainer over d's data, with the driver's own settings recorded in its
 * checkpoints (a resume lists those that changed) and, for pairs, the
 * reference model a resume must share. Sets the default --eval-every. */
static tuna_status create_trainer(train_opts *o, train_data *d, tuna_trainer **tr) {
    tuna_train_args *a = &o->a;
    if (o->any_weight) a->task_weights = o->data_w;
    /* validation and general-text rows are evaluated whole, not cut to the longest training row */
    int general = o->general ? a->seq_len : 0;
    int val_max = tuna_pretok_max_len(d->val);
    a->eval_max_len = val_max > general ? val_max : general;
    tuna_status st = tuna_trainer_create(tr, d->m, d->data, a);
    if (st != TUNA_OK) return st;
    int total = tuna_trainer_total_steps(*tr);
    if (tuna_dist_size() > 1 && !o->quiet)
        fprintf(stderr, "data-parallel: %d ranks, each takes %d of every %d %s; gradients summed %s\n", tuna_dist_size(),
                a->batch / tuna_dist_size(), a->batch, o->mode->pairs ? "pairs" : "sequences",
                tuna_trainer_overlaps_comm(*tr) ? "block by block during backward" : "after backward");
    if (tuna_pretok_count(d->val) > 0 && !o->eval_every) o->eval_every = total / 10 > 0 ? total / 10 : 1;
    json_t *rs = json_pack("{s:i,s:i,s:i,s:s}", "eval_every", o->eval_every, "early_stop", o->early_stop, "save_every",
                           o->save_every, "save_dtype", o->save_dtype);
    char *run_settings = rs ? json_dumps(rs, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(rs);
    st = run_settings ? tuna_trainer_set_run_settings(*tr, run_settings) : core_fail(TUNA_ERR_NOMEM, "out of memory");
    free(run_settings);
    if (st == TUNA_OK && o->mode->pairs) st = train_set_reference(*tr, d->ref_fp);
    if (st == TUNA_OK && d->exact[0]) st = tuna_trainer_set_exact_settings(*tr, d->exact);
    return st;
}

/* --dry-run: the checks that read no file, then the resolved recipe on stdout */
static int dry_run(train_opts *o) {
    int rc = train_opts_check(o);
    if (rc) return rc;
    char *text = train_recipe_text(o);
    if (!text) return cli_status_error(core_fail(TUNA_ERR_NOMEM, "out of memory"));
    fputs(text, stdout);
    free(text);
    return 0;
}

/* The checks before any work (o parsed), then data-parallel setup (rank 0
 * alone prints and writes files), the check of --out and the run's
 * resolved recipe. 0, or the exit code. */
static int start(train_opts *o, const train_mode *mode, int *in_place) {
    int rc = train_opts_resolve_hub(o);
    if (rc || (rc = train_opts_check_paths(o))) return rc;
    tuna_status st = tuna_dist_init();
    if (st != TUNA_OK) return cli_status_error(st);
    const int writer = tuna_dist_rank() == 0;
    if (!writer) o->quiet = 1;
    cli_read_progress(&o->dso.data, o->quiet);
    if (writer && (rc = cli_run_dir_check(o->out_dir, o->resume, o->overwrite, in_place)) != 0) {
        cli_abort_job(rc);
        return rc;
    }
    prof_enable(o->profile);
    if ((rc = train_opts_check(o)) != 0) return rc;
    /* a run that cannot fit is refused before any weight is read */
    if (!o->no_mem_check)
        rc = mem_check_train(o->cmd, mode->job == MEM_PRETRAIN ? o->config_path : o->model_dir, mode->job, o->method, &o->pc,
                             o->max_memory, o->quiet, &o->a);
    if (rc) cli_abort_job(rc);
    else if (!(o->recipe_text = train_recipe_text(o))) rc = cli_status_error(core_fail(TUNA_ERR_NOMEM, "out of memory"));
    return rc;
}

static int train_command(const train_mode *mode, int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(mode->help, stdout); return 0; }
    train_opts o;
    int in_place = 0;
    int rc = train_opts_parse(&o, mode, argc, argv);
    if (!rc) rc = o.dry_run ? dry_run(&o) : start(&o, mode, &in_place);
    if (rc || o.dry_run) {
        train_opts_free(&o);
        return rc;
    }
    train_data d;
    memset(&d, 0, sizeof d);
    tuna_trainer *tr = NULL;
    tuna_status st = mode->load(&o, &d);
    if (st == TUNA_OK) st = train_data_prepare(&o, &d);
    if (st == TUNA_OK) st = create_trainer(&o, &d, &tr);
    rc = st == TUNA_OK ? train_run(&o, &d, tr, in_place) : cli_status_error(st);
    /* a failure on one rank ends the job instead of leaving the others in a
     * collective (after rank 0's report, which a failure agreed by all ranks
     * would otherwise lose) */
    if (rc != 0 && !train_stop_requested()) cli_abort_job(rc);
    tuna_trainer_free(tr);
    train_data_free(&d);
    train_opts_free(&o);
    return rc;
}

int cmd_sft(int argc, char **argv) { return train_command(&train_mode_sft, argc, argv); }
int cmd_pretrain(int argc, char **argv) { return train_command(&train_mode_pretrain, argc, argv); }
int cmd_dpo(int argc, char **argv) { return train_command(&train_mode_dpo, argc, argv); }
int cmd_reward(int argc, char **argv) { return train_command(&train_mode_reward, argc, argv); }
int cmd_kto(int argc, char **argv) { return train_command(&train_mode_kto, argc, argv); }
int cmd_grpo(int argc, char **argv) { return train_command(&train_mode_grpo, argc, argv); }
