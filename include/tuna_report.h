/* tuna_report.h — the training report: one self-contained HTML page (inline
 * SVG charts and CSS, no network, no script needed to render) summarising a
 * training run folder written by `tuna sft` / `tuna pretrain`.
 *
 * Inputs in run_dir:
 *   metrics.jsonl      required; training lines {"step","loss","lr","grad_norm",
 *                      "tokens_per_s",...} and eval lines {"step","eval_loss",...}.
 *                      Any other numeric per-step key (e.g. DPO's
 *                      "rewards/accuracies") is drawn in a grid of small charts.
 *                      NaN/inf values (null, as tuna writes them, or nan, inf,
 *                      NaN, Infinity) are skipped and marked; unreadable lines
 *                      are counted and noted.
 *   train_args.json    optional; every setting is listed in a table.
 *   general_eval.json  optional; {"before":{"loss","ppl","tokens"},"after":{...}}
 *                      shown as a before/after table with the perplexity change.
 *   compare.json       optional; written by `tuna compare --report`: the
 *                      settings (zero-shot, k-shot, fine-tuned) as a table and
 *                      bars. A folder with compare.json and no metrics.jsonl
 *                      gets an evaluation report of the comparison alone. */
#ifndef TUNA_REPORT_H
#define TUNA_REPORT_H
#include "tuna.h"

/* Writes run_dir/report.html (under a temporary name, then renamed).
 * Returns TUNA_OK; TUNA_ERR_IO naming the file when metrics.jsonl (required
 * unless compare.json is there) cannot be
 * read or the report cannot be written; TUNA_ERR_NOMEM. */
tuna_status tuna_report_write(const char *run_dir);
#endif
