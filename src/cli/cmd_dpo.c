/* cmd_dpo.c — `tuna dpo`: what is particular to preference training. The
 * options, the training loop, checkpoints and the report are the shared
 * driver's (cli_train_command in cmd_train.c); here are the help text and the
 * preference data: pairs read and encoded (tuna_dataset_load_preferences),
 * validation pairs split off by record hash, and what was truncated or left
 * out said on stderr. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "tuna_dataset.h"
#include "core/error.h"

const char cli_dpo_help[] =
    "usage: tuna dpo --model DIR --data PREFS.jsonl --out DIR [options]\n"
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
    "  --loss sigmoid|ipo|hinge   DPO's -log sigmoid(beta h) (default), IPO's\n"
    "                         (h - 1/(2 beta))^2 on per-token averaged log-probabilities,\n"
    "                         or max(0, 1 - beta h); h = policy minus reference log-ratio\n"
    "  --label-smoothing E    conservative DPO (sigmoid): assumes a share E of the labels\n"
    "                         are flipped (0 to 0.5, default 0)\n"
    "  --ref-model DIR        reference model (default: the starting model). Reference\n"
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
    "Every other option (--schedule, --warmup, --weight-decay, --grad-clip, --steps,\n"
    "--epochs, --seed, --no-shuffle, --save-every, --resume, --overwrite, --save-dtype,\n"
    "--template,"
    " --max-bad, --strict, --quiet, --no-mem-check, ...) is as in `tuna sft --help`.\n"
    "metrics.jsonl per step: loss, rewards/chosen, rewards/rejected, rewards/accuracies,\n"
    "rewards/margins, logps/chosen, logps/rejected (TRL's names; rewards = beta x the\n"
    "policy-minus-reference log-probability), and the eval_ versions; report.html\n"
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

tuna_status cli_dpo_load(const char *data_path, const char *val_path, double val_split, uint64_t seed, tuna_tokenizer *tok,
                         const tuna_template *tmpl, int max_len, int max_prompt_len, const tuna_data_options *reader,
                         int quiet, tuna_pretok *train, tuna_pretok *val) {
    tuna_pref_options o = {0};
    o.max_len = max_len;
    o.max_prompt_len = max_prompt_len;
    o.val_fraction = val_path ? 0 : val_split;
    o.val_seed = seed;
    o.data = *reader;
    tuna_pref_stats s;
    tuna_status st = tuna_dataset_load_preferences(data_path, tok, tmpl, &o, train, val, &s);
    if (st != TUNA_OK) return st;
    if (!quiet) report_load(data_path, &s, max_len, max_prompt_len);
    if (val_split > 0 && !val_path && val->n == 0)
        return core_fail(TUNA_ERR_ARG, "%s: --val-split %g left no validation pairs (%ld pairs in all)", data_path, val_split,
                         s.pairs);
    if (!val_path) return TUNA_OK;
    tuna_pretok_free(val);
    o.val_fraction = 0;
    st = tuna_dataset_load_preferences(val_path, tok, tmpl, &o, val, NULL, &s);
    if (st == TUNA_OK && !quiet) report_load(val_path, &s, max_len, max_prompt_len);
    return st;
}

int cmd_dpo(int argc, char **argv) { return cli_train_command(argc, argv, CLI_TRAIN_DPO); }
