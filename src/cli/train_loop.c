/* train_loop.c — a training run from its trainer to its report (see
 * train_loop.h): rank 0 alone prints and writes files; every rank takes the
 * same decisions (a stop, the best loss, early stopping) from values agreed
 * across ranks. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/train_checkpoint.h"
#include "cli/train_loop.h"
#include "cli/train_metrics.h"
#include "cli/train_resume.h"
#include "io/atomic_file.h"
#include "tuna_dist.h"
#include "tuna_report.h"
#include "tuna_text.h"

typedef struct {
    train_opts *o;
    train_data *d;
    tuna_trainer *tr;
    cli_run_dir rd; /* rank 0's output folder: staged, then --out */
    FILE *metrics;
    int writer, in_place, total, tty, log_every;
    double best;            /* the best validation loss so far */
    int bad_evals;          /* evaluations since it improved */
    int saved_best;         /* the best weights are in the output folder */
    train_progress pg;      /* the three above as checkpoints record them */
    char prev_ck[PATH_MAX]; /* the run's latest checkpoint, a name in its folder */
    double gen_before;      /* --general-eval loss before training (NAN: not measured) */
    int64_t gen_tokens;
    double last_acc;        /* pairs: the last validation's pairwise accuracy (NAN: none) */
} train_loop;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

int train_stop_requested(void) { return stop_requested; }

/* a stop asked on any rank stops every rank at the same step */
static tuna_status agree_stop(void) {
    int any = 0;
    tuna_status st = tuna_dist_any(stop_requested, &any);
    if (any) stop_requested = 1;
    return st;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    long t = (long)s;
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static tuna_status general_eval(tuna_trainer *tr, tuna_tokenizer *tok, const char *path, int seq_len, double *loss,
                                int64_t *tokens) {
    tuna_pretok *g = NULL;
    tuna_status st = tuna_text_chunks(tok, path, seq_len, &g);
    if (st != TUNA_OK) return st;
    st = tuna_trainer_eval(tr, g, loss, tokens);
    tuna_pretok_free(g);
    return st;
}

/* --resume: the trainer's state and the driver's progress from the checkpoint */
static tuna_status resume_run(train_loop *L) {
    const char *resume = L->o->resume;
    char *extra = NULL;
    tuna_status st = tuna_trainer_resume(L->tr, resume, &extra);
    if (st != TUNA_OK) return st;
    if (L->writer && tuna_trainer_resume_notice(L->tr)[0]) fprintf(stderr, "tuna: note: %s\n", tuna_trainer_resume_notice(L->tr));
    char note[512] = "";
    st = extra ? train_progress_resume(&L->pg, extra, resume, note, sizeof note) : TUNA_OK;
    free(extra);
    if (st != TUNA_OK) return st;
    if (L->writer && note[0]) fprintf(stderr, "tuna: note: %s\n", note);
    /* the best weights saved so far are in the checkpoint's own folder:
     * a run going on elsewhere writes its own at the end */
    L->best = L->pg.best, L->bad_evals = L->pg.bad_evals, L->saved_best = L->pg.saved_best && L->in_place;
    int step = tuna_trainer_step_count(L->tr);
    if (L->writer) train_adopt_checkpoint(resume, L->o->out_dir, step, L->prev_ck, sizeof L->prev_ck);
    if (!L->o->quiet) fprintf(stderr, "resumed from %s at step %d\n", resume, step);
    return TUNA_OK;
}

/* The run's folder with train_args.json, recipe.yaml, metrics.jsonl and the tokenizer
 * files; nothing is written before a resume was accepted, then in --out
 * itself (a resume of its own checkpoint) or in a staging folder
 * (run_staging.h). Returns the exit code. */
static int open_output(train_loop *L) {
    static const char *const copy_names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                             "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt"};
    tuna_status st;
    if (L->writer && (st = cli_run_dir_begin(&L->rd, L->o->out_dir, L->in_place)) != TUNA_OK) return cli_status_error(st);
    char path[PATH_MAX];
    json_t *ja = train_opts_json(L->o, L->d, L->total);
    cli_run_dir_path(&L->rd, "train_args.json", path, sizeof path);
    if (L->writer) atomic_file_write_json(path, ja, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(ja);
    cli_run_dir_path(&L->rd, "recipe.yaml", path, sizeof path);
    if (L->writer && L->o->recipe_text) atomic_file_write(path, L->o->recipe_text, strlen(L->o->recipe_text));
    cli_run_dir_path(&L->rd, "metrics.jsonl", path, sizeof path);
    L->metrics = L->writer ? fopen(path, L->o->resume ? "a" : "w") : fopen("/dev/null", "w");
    if (!L->metrics) return cli_usage_error("%s: cannot create: %s", path, strerror(errno));
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (size_t k = 0; L->writer && k < sizeof copy_names / sizeof copy_names[0]; k++)
        cli_copy_file(L->o->files_dir, L->rd.dir, copy_names[k]);
    return 0;
}

/* the progress line: live on a terminal, else about 20 lines per run */
static void print_step(const train_loop *L, const tuna_step_info *info) {
    char el[32], eta[32], pref[96] = "";
    int total = L->total;
    fmt_time(el, sizeof el, info->elapsed_seconds);
    fmt_time(eta, sizeof eta, info->elapsed_seconds / info->step * (total - info->step));
    if (L->o->mode->pairs && L->o->dargs.type == TUNA_DPO_KTO)
        snprintf(pref, sizeof pref, " | kl %.3f | margin %.3f", info->dpo.kl, info->dpo.rewards_margins);
    else if (L->o->mode->pairs)
        snprintf(pref, sizeof pref, " | acc %.2f | margin %.3f", info->dpo.rewards_accuracies, info->dpo.rewards_margins);
    if (L->o->mode->step_note) L->o->mode->step_note(pref, sizeof pref, L->d);
    if (L->tty)
        fprintf(stderr, "\r\033[Kstep %d/%d | epoch %.2f | loss %.4f%s | lr %.2e | %.0f tok/s | %s elapsed | ETA %s",
                info->step, total, info->epoch, info->loss, pref, info->lr, info->tokens_per_second, el, eta);
    else if (!L->o->quiet && (info->step % L->log_every == 0 || info->step == total))
        fprintf(stderr, "step %d/%d epoch %.2f loss %.4f%s lr %.2e grad_norm %.3f %.0f tok/s elapsed %s eta %s\n", info->step,
                total, info->epoch, info->loss, pref, info->lr, info->grad_norm, info->tokens_per_second, el, eta);
}

/* The validation loss into *vl (rank 0's on every rank: the same best /
 * early-stop decisions) and its line ev of metrics.jsonl; es: the
 * preference statistics of a pairs mode. */
static tuna_status eval_loss(train_loop *L, int step, double *vl, tuna_dpo_stats *es, json_t *ev) {
    int64_t vt = 0;
    const tuna_pretok *val = L->d->val;
    tuna_status st = L->o->mode->pairs ? tuna_trainer_eval_dpo(L->tr, val, L->d->ref_val, es)
                                       : tuna_trainer_eval(L->tr, val, vl, &vt);
    if (L->o->mode->pairs) *vl = es->loss;
    if (st != TUNA_OK) return st;
    if (tuna_dist_size() > 1) {
        double v = L->writer ? *vl : 0;
        st = tuna_dist_sum_f64(&v, 1);
        if (st != TUNA_OK) return st;
        *vl = v;
    }
    json_object_set_new(ev, "step", json_integer(step));
    json_object_set_new(ev, "eval_loss", cli_json_num(*vl));
    if (L->o->mode->pairs) {
        json_object_set_new(ev, "eval_pairs", json_integer(tuna_pretok_count(val) / 2));
        cli_metrics_dpo(ev, "eval_", es, (int)L->o->dargs.type);
    } else json_object_set_new(ev, "eval_tokens", json_integer(vt));
    return TUNA_OK;
}

/* With several validation files (or --val-split shares): each task's loss
 * into ev (eval_loss/FILE) and per_task (" [FILE loss, ...]"). */
static tuna_status eval_tasks(train_loop *L, json_t *ev, char *per_task, size_t n) {
    const train_opts *o = L->o;
    const tuna_pretok *val = L->d->val;
    tuna_status st = TUNA_OK;
    int tasks = tuna_pretok_tasks(val);
    for (int k = 0; tasks > 1 && k < tasks && st == TUNA_OK; k++) {
        int64_t first, count;
        tuna_pretok_task(val, k, &first, &count);
        if (count == 0) continue; /* a --val-split share with no sequence: nothing to report */
        tuna_pretok *view = NULL; /* task k's sequences, sharing val's tokens */
        double tl;
        int64_t tt;
        st = tuna_pretok_view(val, first, count, &view);
        if (st == TUNA_OK) st = tuna_trainer_eval(L->tr, view, &tl, &tt);
        tuna_pretok_free(view);
        if (st != TUNA_OK) break;
        /* named by the --val file, or by the --data file it was split from */
        const char *base = o->val_path ? o->val_paths[k] : o->data_paths[k];
        cli_json_set_named(ev, "eval_loss/", base, cli_json_num(tl));
        size_t used = strlen(per_task);
        snprintf(per_task + used, n - used, "%s%s %.4f", used ? ", " : " [", base, tl);
    }
    if (per_task[0]) strncat(per_task, "]", n - strlen(per_task) - 1);
    return st;
}

/* Validation at this step: metrics line, printed result, the best weights
 * saved when improved; *stop set when early stopping ends the run. */
static tuna_status evaluate(train_loop *L, int step, int *stop) {
    const train_opts *o = L->o;
    double vl;
    tuna_dpo_stats es = {0};
    char per_task[1024] = "";
    json_t *ev = json_object();
    tuna_status st = eval_loss(L, step, &vl, &es, ev);
    if (st == TUNA_OK) st = eval_tasks(L, ev, per_task, sizeof per_task);
    if (st != TUNA_OK) { json_decref(ev); return st; }
    cli_metrics_write(L->metrics, ev);
    if (L->tty) fputc('\n', stderr);
    if (o->mode->pairs) L->last_acc = es.rewards_accuracies;
    if (!o->quiet && o->mode->pairs)
        fprintf(stderr, "eval at step %d: val loss %.4f, preference accuracy %.3f, margin %.3f%s\n", step, vl,
                es.rewards_accuracies, es.rewards_margins, vl < L->best ? " (best)" : "");
    else if (!o->quiet)
        fprintf(stderr, "eval at step %d: val loss %.4f (ppl %.3f)%s%s\n", step, vl, exp(vl), vl < L->best ? " (best)" : "", per_task);
    if (vl < L->best) {
        L->best = vl;
        L->bad_evals = 0;
        st = L->writer ? train_save_result(L->d->m, &L->rd, o->sdt) : TUNA_OK;
        if (st == TUNA_OK) L->saved_best = 1;
    } else if (o->early_stop && ++L->bad_evals >= o->early_stop) {
        if (!o->quiet)
            fprintf(stderr, "early stop: %d evaluations without improvement; keeping step with val loss %.4f\n", L->bad_evals,
                    L->best);
        *stop = 1;
    }
    return st;
}

/* a checkpoint with the driver's progress (rank 0 writes it) */
static tuna_status checkpoint(train_loop *L) {
    char extra[160];
    L->pg.best = L->best, L->pg.bad_evals = L->bad_evals, L->pg.saved_best = L->saved_best;
    train_progress_json(&L->pg, extra, sizeof extra);
    return L->writer ? train_write_checkpoint(L->tr, &L->rd, extra, L->prev_ck, sizeof L->prev_ck, L->o->files_dir) : TUNA_OK;
}

/* the steps to the end, an early stop, a signal or a failure */
static tuna_status run_steps(train_loop *L) {
    const train_opts *o = L->o;
    tuna_step_info info = {0};
    tuna_status st = TUNA_OK;
    int have_val = tuna_pretok_count(L->d->val) > 0, stop = 0;
    for (int s = tuna_trainer_step_count(L->tr); s < L->total && !stop; s++) {
        st = agree_stop();
        if (st != TUNA_OK || stop_requested) break;
        st = tuna_trainer_step(L->tr, &info);
        if (st != TUNA_OK) break;
        json_t *line = cli_metrics_step(&info, tuna_dist_size(), o->mode->pairs ? (int)o->dargs.type : -1);
        if (line && o->mode->step_metrics) o->mode->step_metrics(line, &info, L->d);
        cli_metrics_write(L->metrics, line);
        print_step(L, &info);
        if (have_val && (info.step % o->eval_every == 0 || info.step == L->total)) st = evaluate(L, info.step, &stop);
        if (st != TUNA_OK) break;
        if (!stop && o->save_every && info.step % o->save_every == 0 && info.step < L->total) st = checkpoint(L);
        if (st != TUNA_OK) break;
    }
    if (L->tty) fputc('\n', stderr);
    /* a signal during the last step reaches the ranks' flags at different times: agree once more */
    if (st == TUNA_OK) st = agree_stop();
    return st;
}

/* --general-eval after training, on the weights written to the output (the
 * best ones when validating), and general_eval.json */
static tuna_status general_after(train_loop *L) {
    tuna_model *m = L->d->m;
    double before = L->gen_before, after = NAN;
    tuna_status st = TUNA_OK;
    if (L->saved_best) st = tuna_peft_get(m) ? tuna_peft_load_weights(m, L->rd.dir) : tuna_model_load_weights(m, L->rd.dir);
    if (st == TUNA_OK) st = general_eval(L->tr, L->d->tok, L->o->general, L->o->a.seq_len, &after, &L->gen_tokens);
    if (st != TUNA_OK) return st;
    json_t *g = json_pack("{s:{s:f,s:f,s:I},s:{s:f,s:f,s:I},s:f}", "before", "loss", before, "ppl", exp(before), "tokens",
                          (json_int_t)L->gen_tokens, "after", "loss", after, "ppl", exp(after), "tokens",
                          (json_int_t)L->gen_tokens, "ppl_change_pct", (exp(after) / exp(before) - 1) * 100);
    char path[PATH_MAX];
    cli_run_dir_path(&L->rd, "general_eval.json", path, sizeof path);
    if (L->writer && isfinite(before) && g) atomic_file_write_json(path, g, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(g);
    if (!L->o->quiet)
        fprintf(stderr, "general text after training: loss %.4f, ppl %.3f (%+.1f%%)\n", after, exp(after),
                (exp(after) / exp(before) - 1) * 100);
    return TUNA_OK;
}

/* with several --data files: the share of sequences each actually gave,
 * against its target (the weights, else the files' sizes) */
/* sequences in task k of p */
static int64_t task_size(const tuna_pretok *p, int k) {
    int64_t first, count;
    tuna_pretok_task(p, k, &first, &count);
    return count;
}

static void report_mixture(train_loop *L) {
    const train_opts *o = L->o;
    const tuna_pretok *data = L->d->data;
    int tasks = tuna_pretok_tasks(data);
    int64_t counts[TRAIN_MAX_DATA], sum = 0;
    double wsum = 0;
    tuna_trainer_task_counts(L->tr, counts);
    for (int k = 0; k < tasks; k++) {
        sum += counts[k];
        wsum += o->any_weight ? o->data_w[k] : (double)task_size(data, k);
    }
    json_t *mix = json_object();
    if (!o->quiet) fprintf(stderr, "mixture (actual vs target share of sequences):");
    for (int k = 0; k < tasks; k++) {
        double target = (o->any_weight ? o->data_w[k] : (double)task_size(data, k)) / wsum;
        double actual = sum ? (double)counts[k] / sum : 0;
        cli_json_set_named(mix, "", o->data_paths[k], json_pack("{s:o,s:o,s:I}", "target", cli_json_num(target), "actual",
                                                                cli_json_num(actual), "sequences", (json_int_t)counts[k]));
        if (!o->quiet) fprintf(stderr, " %s %.1f%% (%.1f%%)", o->data_paths[k], actual * 100, target * 100);
    }
    cli_metrics_write(L->metrics, json_pack("{s:o}", "mixture", mix));
    if (!o->quiet) fputc('\n', stderr);
}

/* --profile: where the steps' time went, on stderr and as metrics.jsonl's
 * last line (core/prof.h; rank 0's own kernels) */
static void report_profile(train_loop *L) {
    prof_totals p;
    prof_get(&p);
    double T = p.step_seconds > 0 ? p.step_seconds : 1, g = p.seconds[PROF_GEMM], rest = prof_rest_seconds(&p);
    fprintf(stderr, "profile: %lld steps, %.3f s, %.0f tok/s\n", (long long)p.steps, p.step_seconds, p.tokens / T);
    fprintf(stderr, "  %-10s %9.3f s %5.1f%%  %.2f GFLOP/s (%.3f GFLOP)\n", "gemm", g, 100 * g / T,
            g > 0 ? p.gemm_flops * 1e-9 / g : 0, p.gemm_flops * 1e-9);
    for (int k = PROF_GEMM + 1; k < PROF_KINDS; k++)
        fprintf(stderr, "  %-10s %9.3f s %5.1f%%\n", prof_kind_name(k), p.seconds[k], 100 * p.seconds[k] / T);
    fprintf(stderr, "  %-10s %9.3f s %5.1f%%\n", "rest", rest, 100 * rest / T);
    cli_metrics_write(L->metrics, cli_metrics_profile(&p));
}

/* After the steps (st their outcome): the final weights unless the best are
 * saved, a checkpoint after a stop, the general-text check, the mixture.
 * Returns the exit code. */
static int finish(train_loop *L, tuna_status st) {
    const train_opts *o = L->o;
    if (st == TUNA_ERR_NUMERIC) {
        fprintf(stderr, "tuna: error: %s; %s\n", tuna_last_error(),
                L->saved_best ? "the best weights so far are in the output folder" : "no weights were written");
        return 1;
    }
    if (st == TUNA_OK && !L->saved_best && L->writer) st = train_save_result(L->d->m, &L->rd, o->sdt);
    if (st != TUNA_OK) return cli_status_error(st);
    if (stop_requested) {
        if ((st = checkpoint(L)) != TUNA_OK) return cli_status_error(st);
        if (L->writer)
            fprintf(stderr, "tuna: interrupted at step %d; checkpoint saved: resume with --resume %s/%s\n",
                    tuna_trainer_step_count(L->tr), L->rd.dir, L->prev_ck);
        return 1;
    }
    if (o->general && L->writer && (st = general_after(L)) != TUNA_OK) return cli_status_error(st);
    if (tuna_pretok_tasks(L->d->data) > 1) report_mixture(L);
    if (o->profile && L->writer) report_profile(L);
    char acc[64] = "";
    if (isfinite(L->last_acc)) snprintf(acc, sizeof acc, " (eval pairwise accuracy %.3f)", L->last_acc);
    if (!o->quiet)
        fprintf(stderr, "done after %d steps: %s/%s%s\n", tuna_trainer_step_count(L->tr), o->out_dir,
                tuna_peft_get(L->d->m) ? "adapter_model.safetensors (PEFT adapter)" : "model.safetensors", acc);
    return 0;
}

/* The metrics closed, a staging folder that never got a result removed
 * (--out left as it was), and report.html whenever there are metrics in
 * --out, also after a stop. */
static void close_output(train_loop *L) {
    int report = L->metrics && L->writer && cli_run_dir_committed(&L->rd);
    if (L->metrics) fclose(L->metrics);
    cli_run_dir_abort(&L->rd);
    if (!report) return;
    char rpath[PATH_MAX];
    cli_run_dir_path(&L->rd, "report.html", rpath, sizeof rpath);
    if (tuna_report_write(L->rd.dir) == TUNA_OK) {
        if (!L->o->quiet) fprintf(stderr, "report: %s\n", rpath);
    } else fprintf(stderr, "tuna: warning: report not written: %s\n", tuna_last_error());
}

/* resume, output, the general text before training, the steps, the end */
static int run(train_loop *L) {
    const train_opts *o = L->o;
    tuna_status st;
    if (o->resume && (st = resume_run(L)) != TUNA_OK) return cli_status_error(st);
    int rc = open_output(L);
    if (rc) return rc;
    /* general text is measured by rank 0 alone: no collectives, and the
     * other ranks may not see the output folder it reloads from */
    if (o->general && !o->resume && L->writer) {
        st = general_eval(L->tr, L->d->tok, o->general, o->a.seq_len, &L->gen_before, &L->gen_tokens);
        if (st != TUNA_OK) return cli_status_error(st);
        if (!o->quiet)
            fprintf(stderr, "general text before training: loss %.4f, ppl %.3f (%lld tokens)\n", L->gen_before,
                    exp(L->gen_before), (long long)L->gen_tokens);
    }
    return finish(L, run_steps(L));
}

int train_run(train_opts *o, train_data *d, tuna_trainer *tr, int in_place) {
    train_loop L;
    memset(&L, 0, sizeof L);
    L.o = o, L.d = d, L.tr = tr, L.in_place = in_place;
    L.writer = tuna_dist_rank() == 0;
    L.total = tuna_trainer_total_steps(tr);
    L.tty = isatty(2) && !o->quiet;
    L.log_every = L.total / 20 > 0 ? L.total / 20 : 1;
    L.best = INFINITY;
    L.gen_before = NAN;
    L.last_acc = NAN;
    train_progress_init(&L.pg, d->val);
    int rc = run(&L);
    close_output(&L);
    return rc;
}
