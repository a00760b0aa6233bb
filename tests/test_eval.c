/* test_eval.c — evaluation and the adaptation spectrum:
 *  - examples from every record format (prompt turns, reference), and the
 *    formats that have none;
 *  - few-shot prompts: the document layout byte for byte; turns equal the
 *    template's rendering of the expected conversation; BOS exactly once;
 *  - scores and totals with known answers (means, per-key JSON accuracy,
 *    token-weighted loss, missing metrics NaN);
 *  - per-example losses equal single-sequence forwards, whatever the batch;
 *  - batched generation equals one prompt at a time (greedy and sampled);
 *  - `tuna eval` on raw chat data: its loss equals eval of the same data
 *    pre-tokenized by `tuna data tokenize`; --generate, --out, --limit,
 *    bad input;
 *  - `tuna compare` end to end on the real stories260K (from ../shared) with a
 *    small instruction task written here: the fine-tuned model answers, the
 *    prompted base model does not; --json and --report. */
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "pretok_check.h"
#include "tuna.h"
#include "tuna_data.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"
#include "tuna_infer.h"
#include "tuna_text.h"
#include "tuna_tokenizer.h"

static char dir[256];

static void spit(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(s, f); fclose(f); }
}

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static tuna_status parse(tuna_record *r, const char *json) {
    tuna_bad_kind why;
    return tuna_record_parse(r, json, strlen(json), NULL, &why);
}

static void test_examples(void) {
    tuna_record r = {0};
    tuna_eval_example ex;
    CHECK(parse(&r, "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"u1\"},"
                    "{\"role\":\"assistant\",\"content\":\"a1\"},{\"role\":\"user\",\"content\":\"u2\"},"
                    "{\"role\":\"assistant\",\"content\":\"a2\"}]}") == TUNA_OK);
    CHECK(tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
    CHECK(ex.n_msgs == 4 && !ex.prompt_text && !strcmp(ex.reference, "a2"));
    CHECK(ex.n_msgs == 4 && ex.msgs[0].role == TUNA_ROLE_SYSTEM && !strcmp(ex.msgs[3].content, "u2") &&
          ex.msgs[2].role == TUNA_ROLE_ASSISTANT);
    tuna_eval_example_clear(&ex);
    CHECK(parse(&r, "{\"instruction\":\"Add\",\"input\":\"2 and 3\",\"output\":\"5\"}") == TUNA_OK);
    CHECK(tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
    CHECK(ex.n_msgs == 1 && !strcmp(ex.msgs[0].content, "Add\n2 and 3") && !strcmp(ex.reference, "5"));
    tuna_eval_example_clear(&ex);
    CHECK(parse(&r, "{\"prompt\":\"Q: 2+2?\\nA:\",\"completion\":\" 4\"}") == TUNA_OK);
    CHECK(tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
    CHECK(ex.n_msgs == 0 && ex.prompt_text && !strcmp(ex.prompt_text, "Q: 2+2?\nA:") && !strcmp(ex.reference, " 4"));
    tuna_eval_example_clear(&ex);
    CHECK(parse(&r, "{\"prompt\":[{\"role\":\"user\",\"content\":\"hi\"}],\"completion\":[{\"role\":\"assistant\",\"content\":\"yo\"}]}") == TUNA_OK);
    CHECK(tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
    CHECK(ex.n_msgs == 1 && !strcmp(ex.msgs[0].content, "hi") && !strcmp(ex.reference, "yo"));
    tuna_eval_example_clear(&ex);
    /* preference pairs: the prompt, answered by the chosen response */
    CHECK(parse(&r, "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}") == TUNA_OK);
    CHECK(tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
    CHECK(ex.n_msgs == 0 && ex.prompt_text && !strcmp(ex.prompt_text, "p") && !strcmp(ex.reference, "a"));
    tuna_eval_example_clear(&ex);
    CHECK(parse(&r, "{\"prompt\":[{\"role\":\"user\",\"content\":\"hi\"}],\"chosen\":[{\"role\":\"assistant\",\"content\":\"yo\"}],"
                    "\"rejected\":[{\"role\":\"assistant\",\"content\":\"no\"}]}") == TUNA_OK);
    CHECK(tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
    CHECK(ex.n_msgs == 1 && !strcmp(ex.msgs[0].content, "hi") && !strcmp(ex.reference, "yo"));
    tuna_eval_example_clear(&ex);
    const char *none[] = {"{\"text\":\"plain\"}", "{\"input_ids\":[1,2,3]}", "{\"prompt_ids\":[1],\"chosen_ids\":[2],\"rejected_ids\":[3]}"};
    for (int i = 0; i < 3; i++) {
        CHECK(parse(&r, none[i]) == TUNA_OK);
        CHECKF(tuna_eval_example_from_record(&r, &ex) == TUNA_ERR_UNSUPPORTED && ex.reference == NULL, "%s", none[i]);
    }
    tuna_record_clear(&r);
}

static void test_scores(void) {
    tuna_eval_scores s;
    CHECK(tuna_eval_score("  The  answer\n", "The answer", NULL, &s) == TUNA_OK);
    CHECK(s.exact == 1 && s.contains == 1 && fabs(s.rouge_l - 1) < 1e-12 && s.json_valid == -1 && s.json_total == 0 && s.regex == -1);
    CHECK(tuna_eval_score("it is The answer", "The answer", "^it", &s) == TUNA_OK);
    CHECK(s.exact == 0 && s.contains == 1 && s.regex == 1);
    /* rouge-L: LCS "the answer" (2 of 4 pred, 2 of 2 ref): F = 2*0.5*1/1.5 */
    CHECK(fabs(s.rouge_l - 2.0 / 3.0) < 1e-12);
    CHECK(tuna_eval_score("{\"a\":1,\"b\":\"x\"}", "{\"a\":1.0,\"b\":\"y\",\"c\":null}", NULL, &s) == TUNA_OK);
    CHECK(s.json_valid == 1 && s.json_correct == 1 && s.json_total == 3);
    CHECK(tuna_eval_score("{\"a\":1,", "{\"a\":1}", NULL, &s) == TUNA_OK);
    CHECK(s.json_valid == 0 && s.json_correct == 0 && s.json_total == 1);
    CHECK(tuna_eval_score("[1,2]", "[1, 2]", NULL, &s) == TUNA_OK && s.json_valid == 1 && s.json_total == 0);
    CHECK(tuna_eval_score("x", "y", "(", &s) == TUNA_ERR_ARG);

    /* totals: two generated examples with known scores, and losses */
    tuna_eval_tally *t = tuna_eval_tally_new();
    CHECK(t != NULL);
    if (!t) return;
    CHECK(isnan(tuna_eval_tally_metric(t, "exact_match")) && isnan(tuna_eval_tally_metric(t, "loss")));
    tuna_eval_tally_loss(t, 6.0, 3);
    tuna_eval_tally_loss(t, 2.0, 1);
    tuna_eval_scores a, b;
    tuna_eval_score("{\"k\":1,\"v\":2}", "{\"k\":1,\"v\":3}", NULL, &a);
    tuna_eval_score("{\"k\":2,\"v\":3}", "{\"k\":1,\"v\":3}", "v", &b);
    tuna_eval_tally_generation(t, "{\"k\":1,\"v\":2}", "{\"k\":1,\"v\":3}", &a, 10, 4, 0.5);
    tuna_eval_tally_generation(t, "{\"k\":2,\"v\":3}", "{\"k\":1,\"v\":3}", &b, 20, 6, 1.5);
    CHECK(fabs(tuna_eval_tally_metric(t, "loss") - 2.0) < 1e-12); /* (6 + 2) / 4 tokens, not the mean of 2 and 2 */
    CHECK(fabs(tuna_eval_tally_metric(t, "ppl") - exp(2.0)) < 1e-9);
    CHECK(tuna_eval_tally_metric(t, "exact_match") == 0 && tuna_eval_tally_metric(t, "json_valid") == 1);
    CHECK(fabs(tuna_eval_tally_metric(t, "json_fields") - 0.5) < 1e-12);
    CHECK(tuna_eval_tally_metric(t, "regex") == 1); /* only b had a pattern */
    json_t *o = tuna_eval_tally_json(t);
    json_t *pk = json_object_get(json_object_get(o, "json_fields"), "per_key");
    CHECK(fabs(json_real_value(json_object_get(pk, "k")) - 0.5) < 1e-12 && fabs(json_real_value(json_object_get(pk, "v")) - 0.5) < 1e-12);
    CHECK(json_integer_value(json_object_get(o, "examples")) == 2 && json_integer_value(json_object_get(o, "tokens")) == 4);
    CHECK(fabs(json_real_value(json_object_get(o, "mean_prompt_tokens")) - 15) < 1e-12);
    CHECK(fabs(json_real_value(json_object_get(o, "mean_latency_s")) - 1.0) < 1e-12);
    CHECK(fabs(json_real_value(json_object_get(o, "tokens_per_s")) - 5.0) < 1e-12); /* 10 tokens in 2 s */
    json_decref(o);
    tuna_eval_tally_free(t);
    CHECK(tuna_eval_metric_known("rouge_l") && !tuna_eval_metric_known("bleu"));
}

/* a small Llama model with a BPE tokenizer trained here (BOS added by default) */
static int make_model(void) {
    char cmd[2048], path[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/model", dir);
    if (run(cmd)) return 0;
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    const char *w[] = {"what", "is", "the", "color", "of", "sky", "blue", "grass", "green", "answer", "question", "red"};
    for (int i = 0; i < 300; i++) fprintf(f, "%s %s %s %s %s.\n", w[i % 12], w[(i + 1) % 12], w[(i * 5 + 2) % 12], w[(i * 7 + 3) % 12], w[(i + 4) % 12]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s tokenizer train --data %s --vocab-size 300 --out %s/model >/dev/null 2>&1", test_cli, path, dir);
    if (run(cmd)) return 0;
    snprintf(path, sizeof path, "%s/arch.json", dir);
    spit(path, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":300,\"hidden_size\":32,"
               "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
               "\"max_position_embeddings\":256,\"tie_word_embeddings\":true}\n");
    snprintf(cmd, sizeof cmd, "%s init --config %s --out %s/model --seed 3 >/dev/null", test_cli, path, dir);
    return run(cmd) == 0;
}

static void test_prompts(tuna_tokenizer *tok) {
    tuna_template *tmpl = NULL;
    CHECK(tuna_dataset_template(&tmpl, tok, "chatml", NULL) == TUNA_OK && tmpl);
    tuna_record r = {0};
    tuna_eval_example ex[3];
    const char *recs[3] = {"{\"instruction\":\"what is red\",\"output\":\"red\"}",
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"the sky\"},{\"role\":\"assistant\",\"content\":\"blue\"}]}",
                           "{\"messages\":[{\"role\":\"system\",\"content\":\"be short\"},{\"role\":\"user\",\"content\":\"grass\"},"
                           "{\"role\":\"assistant\",\"content\":\"green\"}]}"};
    for (int i = 0; i < 3; i++) {
        CHECK(parse(&r, recs[i]) == TUNA_OK);
        CHECK(tuna_eval_example_from_record(&r, &ex[i]) == TUNA_OK);
    }
    tuna_record_clear(&r);
    int32_t *ids = NULL, *want = NULL;
    size_t n = 0, nw = 0;
    char *text = NULL;
    /* this tokenizer (GPT-2 style) adds nothing by default; the BOS rule is
     * checked with stories260K's tokenizer in test_compare_stories */
    int32_t *pre = NULL;
    size_t npre = 0;
    CHECK(tuna_tokenizer_encode(tok, "", 0, 1, &pre, &npre) == TUNA_OK && npre == 0);
    free(pre);
    /* document: shots "prompt\nreference\n\n", then the query's prompt and "\n" */
    CHECK(tuna_eval_prompt(tok, tmpl, &ex[2], ex, 2, TUNA_SHOTS_DOCUMENT, &ids, &n, &text) == TUNA_OK);
    CHECKF(text && !strcmp(text, "what is red\nred\n\nthe sky\nblue\n\nbe short\ngrass\n"), "%s", text ? text : "(null)");
    CHECK(tuna_tokenizer_encode(tok, text, strlen(text), 1, &want, &nw) == TUNA_OK);
    CHECK(n == nw && n > 0 && !memcmp(ids, want, n * sizeof *ids));
    free(ids);
    free(want);
    free(text);
    /* turns: the system turn first, shots as earlier exchanges, generation prompt */
    CHECK(tuna_eval_prompt(tok, tmpl, &ex[2], ex, 2, TUNA_SHOTS_TURNS, &ids, &n, &text) == TUNA_OK);
    json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "role", "system", "content", "be short",
                             "role", "user", "content", "what is red", "role", "assistant", "content", "red", "role", "user", "content",
                             "the sky", "role", "assistant", "content", "blue", "role", "user", "content", "grass");
    tuna_template_vars vars = {.bos_token = tuna_tokenizer_bos_token(tok), .eos_token = tuna_tokenizer_eos_token(tok),
                               .add_generation_prompt = 1};
    char *expect = NULL;
    CHECK(tuna_template_render(tmpl, msgs, &vars, &expect, NULL) == TUNA_OK);
    CHECKF(text && expect && !strcmp(text, expect), "turns prompt:\n%s\nexpected:\n%s", text ? text : "", expect ? expect : "");
    CHECK(text && strstr(text, "<|im_start|>assistant\n") && text[strlen(text) - 1] == '\n');
    json_decref(msgs);
    free(expect);
    free(ids);
    free(text);
    /* zero-shot prompt_text (a completion prompt) is encoded as SFT does */
    tuna_eval_example pc = {0};
    pc.prompt_text = strdup("what is");
    pc.reference = strdup(" red");
    CHECK(tuna_eval_prompt(tok, NULL, &pc, NULL, 0, TUNA_SHOTS_TURNS, &ids, &n, &text) == TUNA_OK);
    CHECK(text && !strcmp(text, "what is") && n >= 1);
    free(ids);
    free(text);
    /* turns without a template: an error naming --template */
    CHECK(tuna_eval_prompt(tok, NULL, &ex[1], NULL, 0, TUNA_SHOTS_TURNS, &ids, &n, NULL) == TUNA_ERR_ARG &&
          strstr(tuna_last_error(), "--template"));
    tuna_eval_example_clear(&pc);
    for (int i = 0; i < 3; i++) tuna_eval_example_clear(&ex[i]);
    tuna_template_free(tmpl);
}

/* per-example losses: each equals a batch-of-one forward; batch size does not matter */
static void test_losses(tuna_model *m) {
    enum { N = 5 };
    int lens[N] = {7, 3, 12, 5, 9};
    int64_t off[N + 1] = {0};
    for (int i = 0; i < N; i++) off[i + 1] = off[i] + lens[i];
    int32_t ids[64], labels[64];
    for (int i = 0; i < off[N]; i++) {
        ids[i] = (int32_t)((i * 37 + 11) % 300);
        labels[i] = i % 4 == 1 ? -100 : ids[i];
    }
    tuna_pretok *p = NULL;
    CHECK(tuna_pretok_new(&p) == TUNA_OK);
    for (int i = 0; p && i < N; i++) CHECK(tuna_pretok_append(p, ids + off[i], labels + off[i], lens[i]) == TUNA_OK);
    if (!p) return;
    CHECK(tuna_pretok_count(p) == N && tuna_pretok_max_len(p) == 12);
    double l1[N], l3[N];
    int64_t t1[N], t3[N];
    CHECK(tuna_eval_losses(m, p, 1, l1, t1, NULL, NULL) == TUNA_OK);
    CHECK(tuna_eval_losses(m, p, 3, l3, t3, NULL, NULL) == TUNA_OK);
    tuna_pretok_free(p);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        tuna_batch bt = {.B = 1, .T = lens[i], .input_ids = ids + off[i], .labels = labels + off[i]};
        tuna_loss l;
        CHECK(tuna_model_prepare(m, 1, lens[i], 0) == TUNA_OK && tuna_model_forward(m, &bt, &l) == TUNA_OK);
        CHECK(t1[i] == l.tokens && t3[i] == l.tokens);
        worst = fmax(worst, fabs(l1[i] - l.loss_sum) / fmax(l.loss_sum, 1e-9));
        worst = fmax(worst, fabs(l3[i] - l.loss_sum) / fmax(l.loss_sum, 1e-9));
    }
    CHECKF(worst < 1e-5, "per-example loss vs single forward: rel %.3g", worst);
}

/* several prompts at once give what each gives alone, greedy and sampled */
static void test_batch_generation(tuna_model *m, tuna_tokenizer *tok) {
    const char *texts[3] = {"what is the color", "grass", "the sky is blue and the answer is"};
    int32_t *p[3];
    size_t np[3];
    for (int i = 0; i < 3; i++) CHECK(tuna_tokenizer_encode(tok, texts[i], strlen(texts[i]), 1, &p[i], &np[i]) == TUNA_OK);
    for (int sampled = 0; sampled < 2; sampled++) {
        tuna_gen_opts o = {.max_new_tokens = 10};
        tuna_sample_args_default(&o.sample);
        o.sample.temperature = sampled ? 1.0f : 0.0f;
        o.sample.seed = 42;
        const char *stop[1] = {"the"};
        o.stop = stop;
        o.n_stop = sampled; /* a stop string in the sampled run */
        tuna_gen_result together[3], alone;
        CHECK(tuna_eval_generate(m, tok, p, np, 3, 3, &o, together, NULL, NULL) == TUNA_OK);
        for (int i = 0; i < 3; i++) {
            tuna_gen_result one[1];
            CHECK(tuna_eval_generate(m, tok, &p[i], &np[i], 1, 1, &o, one, NULL, NULL) == TUNA_OK);
            /* eval_generate seeds prompt i with seed + i: the alone run needs that seed */
            tuna_gen_opts oi = o;
            oi.sample.seed = o.sample.seed + (uint64_t)i;
            tuna_decoder *d = NULL;
            CHECK(tuna_decoder_create(&d, m, 1, 64, 64) == TUNA_OK);
            CHECK(tuna_generate(d, tok, p[i], (int)np[i], &oi, &alone) == TUNA_OK);
            CHECKF(alone.n == together[i].n && !memcmp(alone.ids, together[i].ids, (size_t)alone.n * sizeof(int32_t)) &&
                       !strcmp(alone.text, together[i].text) && alone.stopped == together[i].stopped,
                   "prompt %d (%s): alone '%s' (%d ids), batched '%s' (%d ids)", i, sampled ? "sampled" : "greedy", alone.text,
                   alone.n, together[i].text, together[i].n);
            CHECK(alone.prompt_tokens == (int)np[i] && together[i].prompt_tokens == (int)np[i]);
            if (!sampled || i == 0) CHECK(one[0].n == alone.n && !strcmp(one[0].text, alone.text));
            if (o.n_stop) CHECK(!strstr(together[i].text, "the"));
            tuna_gen_result_free(&alone);
            tuna_gen_result_free(&one[0]);
            tuna_decoder_free(d);
        }
        for (int i = 0; i < 3; i++) tuna_gen_result_free(&together[i]);
    }
    for (int i = 0; i < 3; i++) free(p[i]);
}

static json_t *load_json(const char *path) { return json_load_file(path, 0, NULL); }

static void test_eval_cli(void) {
    char cmd[4096], data[600], tokd[600], out[600], per[600], err[600];
    snprintf(data, sizeof data, "%s/chat.jsonl", dir);
    FILE *f = fopen(data, "w");
    const char *ans[4] = {"blue", "green", "red", "{\"color\":\"blue\",\"n\":2}"};
    for (int i = 0; i < 12; i++) {
        json_t *js = json_string(ans[i % 4]);
        char *enc = json_dumps(js, JSON_ENCODE_ANY);
        fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"what is the color %d\"},{\"role\":\"assistant\",\"content\":%s}]}\n",
                i, enc);
        free(enc);
        json_decref(js);
    }
    fprintf(f, "{\"text\":\"the sky is blue\"}\n");
    fclose(f);
    snprintf(tokd, sizeof tokd, "%s/chat_tok.jsonl", dir);
    snprintf(out, sizeof out, "%s/eval.json", dir);
    snprintf(per, sizeof per, "%s/per.jsonl", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    /* the raw file's loss equals the pre-tokenized file's */
    snprintf(cmd, sizeof cmd, "%s data tokenize --model %s/model --template chatml --out %s %s >/dev/null 2>&1", test_cli, dir, tokd, data);
    CHECK(run(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --data %s --json --quiet > %s", test_cli, dir, tokd, out);
    CHECK(run(cmd) == 0);
    json_t *a = load_json(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --template chatml --data %s --json --batch 5 --generate --max-new-tokens 6 "
             "--regex '^[a-z]' --out %s 2>%s > %s", test_cli, dir, data, per, err, out);
    CHECK(run(cmd) == 0);
    json_t *b = load_json(out);
    CHECK(a && b);
    double la = json_real_value(json_object_get(a, "loss")), lb = json_real_value(json_object_get(b, "loss"));
    CHECKF(la > 0 && fabs(la - lb) < 1e-6 * la, "raw %.9g vs pre-tokenized %.9g", lb, la);
    CHECK(json_integer_value(json_object_get(a, "tokens")) == json_integer_value(json_object_get(b, "tokens")));
    CHECK(json_integer_value(json_object_get(b, "examples")) == 13 && json_integer_value(json_object_get(b, "generated")) == 12);
    static const char *keys[] = {"exact_match", "contains", "rouge_l", "regex", "json_valid", "mean_prompt_tokens", "tokens_per_s"};
    for (int k = 0; k < 7; k++) CHECKF(json_is_number(json_object_get(b, keys[k])), "summary has no %s", keys[k]);
    CHECK(json_integer_value(json_object_get(b, "json_examples")) == 3);
    CHECK(json_object_get(json_object_get(json_object_get(b, "json_fields"), "per_key"), "color") != NULL);
    /* per-example lines: one per record, generated ones with their scores */
    FILE *pf = fopen(per, "r");
    char line[8192];
    int lines = 0, with_pred = 0, ok_fields = 1;
    double sum_exact = 0;
    while (pf && fgets(line, sizeof line, pf)) {
        json_t *o = json_loads(line, 0, NULL);
        lines++;
        if (json_object_get(o, "prediction")) {
            with_pred++;
            sum_exact += json_is_true(json_object_get(o, "exact"));
            ok_fields &= json_is_string(json_object_get(o, "reference")) && json_is_integer(json_object_get(o, "completion_tokens")) &&
                         json_is_string(json_object_get(o, "finish_reason")) && json_is_real(json_object_get(o, "rouge_l"));
        }
        ok_fields &= json_is_integer(json_object_get(o, "line")) && json_object_get(o, "loss") != NULL;
        json_decref(o);
    }
    if (pf) fclose(pf);
    CHECK(lines == 13 && with_pred == 12 && ok_fields);
    CHECK(fabs(sum_exact / 12 - json_real_value(json_object_get(b, "exact_match"))) < 1e-12);
    json_decref(a);
    json_decref(b);
    /* plain text (*.txt): cut into --seq-len rows, every token but each row's first counted */
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --data %s/text.txt --seq-len 32 --json --quiet > %s", test_cli, dir, dir, out);
    CHECK(run(cmd) == 0);
    b = load_json(out);
    tuna_tokenizer *tk = NULL;
    char mp[600], tp[700];
    snprintf(mp, sizeof mp, "%s/model", dir);
    snprintf(tp, sizeof tp, "%s/text.txt", dir);
    tuna_pretok *chunks = NULL;
    CHECK(tuna_tokenizer_load(&tk, mp) == TUNA_OK && tuna_text_chunks(tk, tp, 32, &chunks) == TUNA_OK);
    CHECK(b && chunks && tuna_pretok_count(chunks) > 0 &&
          json_integer_value(json_object_get(b, "examples")) == tuna_pretok_count(chunks) &&
          json_integer_value(json_object_get(b, "tokens")) == pretok_tokens(chunks) - tuna_pretok_count(chunks));
    tuna_pretok_free(chunks);
    tuna_tokenizer_free(tk);
    json_decref(b);
    /* bf16 storage: half the bytes, nearly the same loss */
    snprintf(cmd, sizeof cmd, "%s convert dtype --model %s/model --dtype bf16 --out %s/model16 >/dev/null && "
             "%s eval --model %s/model16 --data %s/text.txt --seq-len 32 --json --quiet > %s.16", test_cli, dir, dir, test_cli, dir, dir, out);
    CHECK(run(cmd) == 0);
    snprintf(tp, sizeof tp, "%s.16", out);
    json_t *b16 = load_json(tp);
    b = NULL;
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --data %s/text.txt --seq-len 32 --json --quiet > %s", test_cli, dir, dir, out);
    CHECK(run(cmd) == 0);
    b = load_json(out);
    double l32 = json_real_value(json_object_get(b, "loss")), l16 = json_real_value(json_object_get(b16, "loss"));
    CHECKF(l32 > 0 && fabs(l16 - l32) < 1e-2 * l32 && l16 != l32, "bf16 loss %.6f vs f32 %.6f", l16, l32);
    snprintf(cmd, sizeof cmd, "test -f %s/model16/tokenizer.json && test $(stat -c %%s %s/model16/model.safetensors) -lt "
             "$(( $(stat -c %%s %s/model/model.safetensors) / 2 + 4096 ))", dir, dir, dir);
    CHECK(run(cmd) == 0);
    json_decref(b);
    json_decref(b16);
    /* --limit */
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --template chatml --data %s --json --limit 4 --quiet > %s", test_cli, dir, data, out);
    CHECK(run(cmd) == 0);
    b = load_json(out);
    CHECK(b && json_integer_value(json_object_get(b, "examples")) == 4);
    json_decref(b);
    /* bad input: a broken record names file:line; no template for chat data names --template */
    snprintf(cmd, sizeof cmd, "printf '{\"text\":\"ok\"}\\n{\"messages\":[}\\n' > %s/bad.jsonl && %s eval --model %s/model --data %s/bad.jsonl 2>%s >/dev/null",
             dir, test_cli, dir, dir, err);
    CHECK(run(cmd) == 2);
    FILE *ef = fopen(err, "r");
    char e[1024] = "";
    if (ef) { if (!fgets(e, sizeof e, ef)) e[0] = 0; fclose(ef); }
    CHECKF(!strncmp(e, "tuna: error: ", 13) && strstr(e, "bad.jsonl:2"), "%s", e);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --data %s --template nosuch --quiet 2>%s >/dev/null", test_cli, dir, data, err);
    CHECK(run(cmd) == 2);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --data %s --regex '(' --generate 2>/dev/null >/dev/null", test_cli, dir, data);
    CHECK(run(cmd) == 2);
}

/* stories260K fine-tuned on a task written here ("Who is in the story?" ->
 * the name) answers it; prompted, the base model does not */
static void test_compare_stories(void) {
    const char *ck = test_shared_path("llama2c/stories260K/stories260K.bin", "tuna compare on stories260K");
    const char *tk = test_shared_path("llama2c/stories260K/tok512.bin", "tuna compare on stories260K");
    if (!ck || !tk) return;
    char cmd[12000], path[600];
    snprintf(cmd, sizeof cmd, "%s convert llama2c --checkpoint %s --tokenizer %s --out %s/stories >/dev/null 2>&1", test_cli, ck, tk, dir);
    CHECK(run(cmd) == 0);
    /* BOS exactly once in a generation prompt, whether or not the template writes it */
    snprintf(path, sizeof path, "%s/stories", dir);
    tuna_tokenizer *tok = NULL;
    if (tuna_tokenizer_load(&tok, path) == TUNA_OK) {
        tuna_record r = {0};
        tuna_eval_example ex;
        CHECK(parse(&r, "{\"instruction\":\"Who is it?\",\"output\":\"Tom.\"}") == TUNA_OK &&
              tuna_eval_example_from_record(&r, &ex) == TUNA_OK);
        int32_t bos = tuna_tokenizer_bos_id(tok);
        const char *tn[2] = {"alpaca", "llama2"};
        for (int t = 0; t < 2; t++) {
            tuna_template *tmpl = NULL;
            int32_t *ids = NULL;
            size_t n = 0;
            char *text = NULL;
            CHECK(tuna_dataset_template(&tmpl, tok, tn[t], NULL) == TUNA_OK);
            CHECK(tuna_eval_prompt(tok, tmpl, &ex, NULL, 0, TUNA_SHOTS_TURNS, &ids, &n, &text) == TUNA_OK);
            int bos_count = 0;
            for (size_t i = 0; i < n; i++) bos_count += ids[i] == bos;
            CHECKF(bos >= 0 && n > 2 && ids[0] == bos && bos_count == 1, "%s: %d BOS, first id %d", tn[t], bos_count, n ? ids[0] : -1);
            CHECK(text && (t == 0 ? strncmp(text, "<s>", 3) != 0 : strncmp(text, "<s>", 3) == 0)); /* alpaca writes none, llama2 does */
            free(ids);
            free(text);
            tuna_template_free(tmpl);
        }
        tuna_eval_example_clear(&ex);
        tuna_record_clear(&r);
    }
    tuna_tokenizer_free(tok);
    const char *names[] = {"Lily", "Tom", "Ben", "Sue", "Max", "Anna", "Tim", "Mia", "Sam", "Lucy", "Jack", "Amy"};
    const char *did[] = {"played with a ball", "saw a big dog", "ate a red apple", "went to the park", "found a shiny rock", "made a cake"};
    for (int split = 0; split < 2; split++) {
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, split ? "eval" : "train");
        FILE *f = fopen(path, "w");
        unsigned s = split ? 99 : 7;
        for (int i = 0; i < (split ? 16 : 240); i++) {
            s = s * 1103515245u + 12345u;
            int n = (int)((s >> 8) % 12), d = (int)((s >> 20) % 6);
            fprintf(f, "{\"instruction\":\"Who is in the story? %s %s.\",\"output\":\"%s.\"}\n", names[n], did[d], names[n]);
        }
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s sft --model %s/stories --data %s/train.jsonl --template alpaca --steps 40 --batch 8 --lr 3e-3 "
             "--out %s/tuned --quiet >/dev/null 2>&1", test_cli, dir, dir, dir);
    CHECK(run(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s compare --model %s/stories --tuned %s/tuned --template alpaca --train %s/train.jsonl --eval %s/eval.jsonl "
             "--shots 0,3 --max-new-tokens 12 --json --report %s/cmp > %s/cmp.json 2>/dev/null && test -s %s/cmp/report.html",
             test_cli, dir, dir, dir, dir, dir, dir, dir);
    snprintf(path, sizeof path, "mkdir -p %s/cmp", dir);
    CHECK(run(path) == 0);
    CHECKF(run(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/cmp.json", dir);
    json_t *o = load_json(path), *rows = json_object_get(o, "rows");
    CHECK(json_array_size(rows) == 3);
    if (json_array_size(rows) == 3) {
        json_t *z = json_array_get(rows, 0), *k3 = json_array_get(rows, 1), *ft = json_array_get(rows, 2);
        CHECK(!strcmp(json_string_value(json_object_get(z, "name")), "zero-shot") &&
              !strcmp(json_string_value(json_object_get(k3, "name")), "3-shot") &&
              !strcmp(json_string_value(json_object_get(ft, "name")), "fine-tuned"));
        double mz = json_number_value(json_object_get(z, "metric")), mf = json_number_value(json_object_get(ft, "metric"));
        CHECKF(mf >= 0.9 && mz <= 0.1, "exact match: zero-shot %.3f, fine-tuned %.3f", mz, mf);
        /* stories260K ships no chat template: shots go in a completion document */
        CHECK(!strcmp(json_string_value(json_object_get(k3, "prompt")), "document") &&
              !strcmp(json_string_value(json_object_get(z, "prompt")), "chat template"));
        CHECK(json_number_value(json_object_get(k3, "mean_prompt_tokens")) != json_number_value(json_object_get(z, "mean_prompt_tokens")));
        CHECK(json_number_value(json_object_get(ft, "mean_latency_s")) > 0 && json_number_value(json_object_get(ft, "tokens_per_s")) > 0);
        CHECK(json_integer_value(json_object_get(o, "examples")) == 16);
    }
    json_decref(o);
    snprintf(cmd, sizeof cmd, "grep -q 'Prompting vs few-shot vs fine-tuning' %s/cmp/report.html && grep -q '<td>fine-tuned</td>' %s/cmp/report.html",
             dir, dir);
    CHECK(run(cmd) == 0);
    /* a LoRA adapter, unmerged: its base never learned to emit EOS (llama2.c
     * trains with BOS separators only), so a short LoRA run learns the
     * answer before it learns to stop: "contains" shows it */
    snprintf(cmd, sizeof cmd, "%s sft --model %s/stories --data %s/train.jsonl --template alpaca --method lora --lora-r 8 "
             "--lora-alpha 16 --lora-targets all-linear --steps 30 --batch 8 --lr 1e-2 --out %s/lora --quiet >/dev/null 2>&1",
             test_cli, dir, dir, dir);
    CHECK(run(cmd) == 0);
    /* base rows first, the adapter's row appended to them (the demo's order) */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cmp2 && %s compare --model %s/stories --template alpaca --eval %s/eval.jsonl --shots 0 "
             "--max-new-tokens 8 --metric contains --report %s/cmp2 >/dev/null 2>&1 && "
             "%s compare --model %s/stories --adapter %s/lora --template alpaca --eval %s/eval.jsonl --shots none "
             "--append %s/cmp2/compare.json --max-new-tokens 8 --metric contains --report %s/cmp2 --json > %s/cmp2.json 2>/dev/null",
             dir, test_cli, dir, dir, dir, test_cli, dir, dir, dir, dir, dir, dir);
    CHECK(run(cmd) == 0);
    snprintf(path, sizeof path, "%s/cmp2.json", dir);
    o = load_json(path);
    rows = json_object_get(o, "rows");
    CHECK(json_array_size(rows) == 2);
    double cz = json_number_value(json_object_get(json_array_get(rows, 0), "metric"));
    double cf = json_number_value(json_object_get(json_array_get(rows, 1), "metric"));
    CHECKF(cf >= 0.9 && cz <= 0.1, "contains: zero-shot %.3f, LoRA %.3f", cz, cf);
    /* sample answers: the first prompts with their references, each row's answers */
    json_t *sm = json_object_get(o, "samples");
    CHECK(json_array_size(sm) == 3 && strstr(json_string_value(json_object_get(json_array_get(sm, 0), "prompt")), "Who is in the story?"));
    CHECK(json_array_size(json_object_get(json_array_get(rows, 0), "samples")) == 3 &&
          json_array_size(json_object_get(json_array_get(rows, 1), "samples")) == 3);
    json_decref(o);
    snprintf(cmd, sizeof cmd, "grep -q 'Sample answers' %s/cmp2/report.html", dir);
    CHECK(run(cmd) == 0);
    /* --append refuses a comparison on another metric */
    snprintf(cmd, sizeof cmd, "%s compare --model %s/stories --adapter %s/lora --template alpaca --eval %s/eval.jsonl --shots none "
             "--append %s/cmp2/compare.json --metric exact_match 2>/dev/null >/dev/null", test_cli, dir, dir, dir, dir);
    CHECK(run(cmd) == 2);
    /* usage errors */
    snprintf(cmd, sizeof cmd, "%s compare --model %s/stories --eval %s/eval.jsonl --shots 2 2>/dev/null", test_cli, dir, dir);
    CHECK(run(cmd) == 2); /* shots need --train */
    snprintf(cmd, sizeof cmd, "%s compare --model %s/stories --eval %s/eval.jsonl --metric bleu 2>/dev/null", test_cli, dir, dir);
    CHECK(run(cmd) == 2);
}

/* tuna data synth: deterministic, distinct passages, answers that are the
 * passage's facts as JSON with the four keys */
static void test_synth(void) {
    char a[300], b[300], cmd[8192];
    snprintf(a, sizeof a, "%s/synth_a", dir);
    snprintf(b, sizeof b, "%s/synth_b", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && %s data synth --out %s --train 300 --val 20 --eval 30 --seed 5 >/dev/null && "
             "%s data synth --out %s --train 300 --val 20 --eval 30 --seed 5 >/dev/null && cmp -s %s/train.jsonl %s/train.jsonl && "
             "cmp -s %s/eval.jsonl %s/eval.jsonl", dir, test_cli, a, test_cli, b, a, b, a, b);
    CHECK(run(cmd) == 0);
    /* a larger train split leaves eval unchanged (written over b: --overwrite) */
    snprintf(cmd, sizeof cmd, "%s data synth --out %s --train 600 --val 20 --eval 30 --seed 5 --overwrite >/dev/null && cmp -s %s/eval.jsonl %s/eval.jsonl && "
             "! cmp -s %s/train.jsonl %s/train.jsonl", test_cli, b, a, b, a, b);
    CHECK(run(cmd) == 0);
    const char *splits[3] = {"train", "val", "eval"};
    int want[3] = {300, 20, 30}, lines = 0, good = 0, distinct = 1;
    json_t *seen = json_object();
    for (int sp = 0; sp < 3; sp++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s.jsonl", a, splits[sp]);
        tuna_data_reader *rd = NULL;
        tuna_record rec = {0};
        int n = 0;
        CHECK(tuna_data_reader_open(&rd, path, NULL) == TUNA_OK);
        for (int got = 1; rd && tuna_data_reader_next(rd, &rec, &got) == TUNA_OK && got;) {
            n++;
            lines++;
            tuna_eval_example ex;
            if (tuna_eval_example_from_record(&rec, &ex) != TUNA_OK) continue;
            const char *story = strstr(ex.msgs[0].content, "Story: ");
            json_t *ans = json_loads(ex.reference, 0, NULL);
            int ok = story && json_is_object(ans) && json_object_size(ans) == 4;
            static const char *keys[4] = {"who", "animal", "where", "feeling"};
            for (int k = 0; ok && k < 4; k++) {
                const char *v = json_string_value(json_object_get(ans, keys[k]));
                ok = v && strstr(story, v);
            }
            good += ok;
            if (story && json_object_get(seen, story)) distinct = 0;
            if (story) json_object_set_new(seen, story, json_true());
            json_decref(ans);
            tuna_eval_example_clear(&ex);
        }
        tuna_record_clear(&rec);
        tuna_data_reader_free(rd);
        CHECKF(n == want[sp], "%s: %d records", splits[sp], n);
    }
    json_decref(seen);
    CHECKF(good == lines && lines == 350, "%d of %d answers are the passage's facts as JSON", good, lines);
    CHECK(distinct);
    snprintf(cmd, sizeof cmd, "%s data synth --out %s --task nosuch 2>/dev/null", test_cli, a);
    CHECK(run(cmd) == 2);
}

int main(int argc, char **argv) {
    test_set_cli(argv[0]);
    (void)argc;
    snprintf(dir, sizeof dir, "/tmp/tuna_eval_%d", (int)getpid());
    test_examples();
    test_scores();
    if (make_model()) {
        char p[600];
        snprintf(p, sizeof p, "%s/model", dir);
        tuna_model *m = NULL;
        tuna_tokenizer *tok = NULL;
        CHECK(tuna_model_load(&m, p) == TUNA_OK && tuna_tokenizer_load(&tok, p) == TUNA_OK);
        if (m && tok) {
            test_prompts(tok);
            test_losses(m);
            test_batch_generation(m, tok);
        }
        tuna_tokenizer_free(tok);
        tuna_model_free(m);
        test_eval_cli();
    } else {
        CHECK(!"could not create the test model");
    }
    test_synth();
    test_compare_stories();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -n \"$KEEP\" || rm -rf %s", dir);
    if (system(cmd)) {}
    return test_done();
}
