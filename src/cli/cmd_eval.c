/* cmd_eval.c — `tuna eval`: token-weighted mean loss and perplexity of a model
 * on pre-tokenized JSONL. Batches are right-padded; the loss is one mean over
 * all counted tokens of the file, never a mean of batch means. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tuna_peft.h"

static const char *eval_help =
    "usage: tuna eval --model DIR --data FILE.jsonl [--adapter DIR] [--quant nf4]\n"
    "                 [--batch N] [--seq-len N] [--json]\n"
    "\n"
    "Each line of FILE is {\"input_ids\":[...], \"labels\":[...]} (labels optional,\n"
    "default = input_ids, same length; -100 marks positions that do not count).\n"
    "The model shifts internally as Hugging Face does: the logits at position t\n"
    "are scored against labels[t+1]. Prints the mean loss over all counted tokens\n"
    "of the file, the number of counted tokens and perplexity = exp(loss).\n"
    "  --adapter DIR a PEFT adapter (LoRA, IA3, prompt tuning) applied unmerged\n"
    "  --quant nf4   the block linears stored as QLoRA stores them: NF4 with\n"
    "                double-quantized absmax (bitsandbytes' algorithm)\n"
    "  --batch N     sequences per forward pass (default 8)\n"
    "  --seq-len N   truncate longer sequences to N tokens (reported on stderr)\n"
    "  --json        print {\"loss\":..., \"tokens\":..., \"ppl\":...} only\n";

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *adapter = NULL, *quant = NULL;
    int json = 0, batch = 8, seq_len = 0;
    if (cli_wants_help(argc, argv)) { fputs(eval_help, stdout); return 0; }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--batch")) { if (cli_parse_int("--batch", i + 1 < argc ? argv[++i] : NULL, 1, 65536, &batch)) return 2; }
        else if (!strcmp(argv[i], "--seq-len")) { if (cli_parse_int("--seq-len", i + 1 < argc ? argv[++i] : NULL, 1, 1 << 20, &seq_len)) return 2; }
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--adapter") && i + 1 < argc) adapter = argv[++i];
        else if (!strcmp(argv[i], "--quant") && i + 1 < argc) quant = argv[++i];
        else return cli_usage_error("eval: unknown option '%s' (see tuna eval --help)", argv[i]);
    }
    if (!model || !data) return cli_usage_error("eval: --model DIR and --data FILE are required");
    if (quant && strcmp(quant, "nf4")) return cli_usage_error("eval: --quant must be nf4 (got '%s')", quant);
    tuna_model *m;
    tuna_status st = quant ? tuna_model_load_quantized(&m, model, TUNA_QUANT_NF4) : tuna_model_load(&m, model);
    if (st != TUNA_OK) return cli_status_error(st);
    if (adapter) {
        st = tuna_peft_load(m, adapter);
        if (st != TUNA_OK) { tuna_model_free(m); return cli_status_error(st); }
    }
    const tuna_config *c = tuna_model_config(m);
    tuna_pretok p;
    st = tuna_pretok_load(&p, data, c->V);
    if (st != TUNA_OK) { tuna_model_free(m); return cli_status_error(st); }
    if (p.n == 0) { tuna_model_free(m); tuna_pretok_free(&p); return cli_usage_error("%s: no records", data); }
    int T = seq_len > 0 && seq_len < p.max_len ? seq_len : p.max_len;
    int B = batch < p.n ? batch : (int)p.n;
    int32_t *ids = malloc((size_t)B * T * sizeof *ids), *labels = malloc((size_t)B * T * sizeof *labels);
    if (!ids || !labels) { st = tuna_fail(TUNA_ERR_NOMEM, "out of memory"); goto done; }
    st = tuna_model_prepare(m, B, T, 0);
    if (st != TUNA_OK) goto done;
    double loss_sum = 0;
    long long tokens = 0, truncated = 0;
    for (int64_t s0 = 0; s0 < p.n; s0 += B) {
        int b = (int)(p.n - s0 < B ? p.n - s0 : B), t = 1;
        for (int i = 0; i < b; i++) {
            int64_t len = p.off[s0 + i + 1] - p.off[s0 + i];
            if (len > T) { truncated++; len = T; }
            if (len > t) t = (int)len;
        }
        for (int i = 0; i < b; i++) {
            int64_t o = p.off[s0 + i], len = p.off[s0 + i + 1] - o;
            for (int j = 0; j < t; j++) {
                ids[i * t + j] = j < len ? p.ids[o + j] : 0;
                labels[i * t + j] = j < len ? p.labels[o + j] : -100;
            }
        }
        tuna_batch bt = {.B = b, .T = t, .input_ids = ids, .labels = labels};
        tuna_loss l;
        st = tuna_model_forward(m, &bt, &l);
        if (st != TUNA_OK) goto done;
        loss_sum += l.loss_sum;
        tokens += l.tokens;
    }
    if (truncated) fprintf(stderr, "tuna: %lld of %lld sequences truncated to %d tokens\n", truncated, (long long)p.n, T);
    if (tokens == 0) { st = tuna_fail(TUNA_ERR_FORMAT, "%s: no counted tokens (every label is -100)", data); goto done; }
    double loss = loss_sum / (double)tokens, ppl = exp(loss);
    if (json) printf("{\"loss\":%.17g,\"tokens\":%lld,\"ppl\":%.17g}\n", loss, tokens, ppl);
    else printf("loss    %.17g\ntokens  %lld\nppl     %.17g\n", loss, tokens, ppl);
done:
    free(ids);
    free(labels);
    tuna_pretok_free(&p);
    tuna_model_free(m);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
