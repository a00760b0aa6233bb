/* train_metrics.c — the lines of metrics.jsonl that the training driver
 * (cmd_train.c) writes: one JSON object per line, built with jansson, so file
 * names used as keys (per-task validation losses, the mixture summary) are
 * escaped like any other string. Rules: a non-finite number is written as
 * null (JSON has no NaN; the report reads null as a non-finite value); a key
 * is never repeated in a line (a name given twice gets " #2", " #3", ...);
 * numbers keep 9 significant digits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/train_metrics.h"

json_t *cli_json_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

void cli_json_set_named(json_t *o, const char *prefix, const char *name, json_t *v) {
    size_t n = strlen(prefix) + strlen(name) + 24;
    char *key = malloc(n);
    if (!key) { json_decref(v); return; }
    snprintf(key, n, "%s%s", prefix, name);
    for (int k = 2; json_object_get(o, key); k++) snprintf(key, n, "%s%s #%d", prefix, name, k);
    json_object_set_new(o, key, v);
    free(key);
}

void cli_metrics_dpo(json_t *o, const char *prefix, const tuna_dpo_stats *d, int type) {
    /* TRL's metric names (KTOTrainer logs no accuracy; it adds kl and the counts) */
    const char *names[] = {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                           "logps/rejected", "nll_loss", "log_odds_ratio", "log_odds_chosen", "kl", "count/chosen",
                           "count/rejected"};
    const double v[] = {d->rewards_chosen, d->rewards_rejected, d->rewards_accuracies, d->rewards_margins, d->logps_chosen,
                        d->logps_rejected, d->nll_loss, d->log_odds_ratio, d->log_odds_chosen, d->kl,
                        d->count_chosen, d->count_rejected};
    int use[12] = {1, 1, type != TUNA_DPO_KTO, 1, 1, 1, type == TUNA_DPO_ORPO || type == TUNA_DPO_SIMPO,
                   type == TUNA_DPO_ORPO, type == TUNA_DPO_ORPO, type == TUNA_DPO_KTO, type == TUNA_DPO_KTO,
                   type == TUNA_DPO_KTO};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (use[i]) cli_json_set_named(o, prefix, names[i], cli_json_num(v[i]));
}

json_t *cli_metrics_step(const tuna_step_info *info, int ranks, int dpo_type) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "step", json_integer(info->step));
    json_object_set_new(o, "epoch", cli_json_num(info->epoch));
    json_object_set_new(o, "loss", cli_json_num(info->loss));
    json_object_set_new(o, "lr", cli_json_num(info->lr));
    json_object_set_new(o, "grad_norm", cli_json_num(info->grad_norm));
    json_object_set_new(o, "tokens", json_integer(info->tokens));
    json_object_set_new(o, "tokens_per_s", cli_json_num(info->tokens_per_second));
    json_object_set_new(o, "elapsed_s", cli_json_num(info->elapsed_seconds));
    if (ranks > 1) {
        json_object_set_new(o, "step_s", cli_json_num(info->step_seconds));
        json_object_set_new(o, "allreduce_s", cli_json_num(info->comm_seconds));
    }
    if (dpo_type >= 0) cli_metrics_dpo(o, "", &info->dpo, dpo_type);
    return o;
}

json_t *cli_metrics_profile(const prof_totals *p) {
    json_t *o = json_object();
    if (!o) return NULL;
    double gemm = p->seconds[PROF_GEMM];
    json_object_set_new(o, "steps", json_integer(p->steps));
    json_object_set_new(o, "step_s", cli_json_num(p->step_seconds));
    json_object_set_new(o, "tokens", json_integer(p->tokens));
    json_object_set_new(o, "tokens_per_s", cli_json_num(p->step_seconds > 0 ? p->tokens / p->step_seconds : NAN));
    for (int k = 0; k < PROF_KINDS; k++) cli_json_set_named(o, prof_kind_name(k), "_s", cli_json_num(p->seconds[k]));
    json_object_set_new(o, "rest_s", cli_json_num(prof_rest_seconds(p)));
    json_object_set_new(o, "gemm_gflop", cli_json_num(p->gemm_flops * 1e-9));
    json_object_set_new(o, "gemm_gflop_per_s", cli_json_num(gemm > 0 ? p->gemm_flops * 1e-9 / gemm : NAN));
    return json_pack("{s:o}", "profile", o);
}

int cli_metrics_write(FILE *f, json_t *o) {
    int bad = !o || json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) != 0 || fputc('\n', f) == EOF;
    bad |= fflush(f) != 0;
    json_decref(o);
    return bad ? -1 : 0;
}
