/* test_dataset.c — records to masked sequences: for every format and several
 * real tokenizers/templates, the tokens the loss counts must decode to exactly
 * the assistant turns (with their end-of-turn text) or the completion (+EOS);
 * at most one BOS, at position 0; truncation right/left/drop with counts; the
 * token cache returns identical data. Needs ../shared tokenizers (skipped with
 * a message when absent). */
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "pretok_check.h"
#include "tuna_dataset.h"

static char tmpdir[256];

static void spit(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

/* decodes the counted tokens (labels != -100), as one string */
static char *counted_text(tuna_tokenizer *tok, const int32_t *ids, const int32_t *labels, size_t n) {
    int32_t *c = malloc((n ? n : 1) * 4);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) /* labels[0] is never a target (HF shift) */
        if (labels[i] != -100) c[k++] = ids[i];
    char *text = NULL;
    size_t len;
    if (tuna_tokenizer_decode(tok, c, k, 0, &text, &len) != TUNA_OK) text = strdup("(decode failed)");
    free(c);
    return text;
}

static int count_id(const int32_t *ids, size_t n, int32_t id) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ids[i] == id;
    return c;
}

static const char *CHAT =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi there\"},"
    "{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\"},{\"role\":\"user\",\"content\":\"Name a colour.\"},"
    "{\"role\":\"assistant\",\"content\":\"Blue \\u00e9t\\u00e9 \\ud83c\\udf0a\"}]}";

static void check_record(const char *what, const char *json, tuna_tokenizer *tok, const tuna_template *tmpl,
                         const char *want_counted, int want_bos_first) {
    tuna_record rec = {0};
    tuna_bad_kind why;
    CHECKF(tuna_record_parse(&rec, json, strlen(json), NULL, &why) == TUNA_OK, "%s: parse: %s", what, tuna_last_error());
    int32_t *ids = NULL, *labels = NULL;
    size_t n = 0;
    tuna_status st = tuna_dataset_encode_record(&rec, tok, tmpl, 0, &ids, &labels, &n, NULL);
    CHECKF(st == TUNA_OK, "%s: %s", what, tuna_last_error());
    if (st == TUNA_OK) {
        char *got = counted_text(tok, ids, labels, n);
        CHECKF(!strcmp(got, want_counted), "%s: counted tokens decode to [%s], want [%s]", what, got, want_counted);
        free(got);
        int32_t bos = tuna_tokenizer_bos_id(tok);
        if (want_bos_first) {
            CHECKF(n > 0 && ids[0] == bos && count_id(ids, n, bos) == 1, "%s: want exactly one BOS at position 0", what);
        }
        free(ids);
        free(labels);
    }
    tuna_record_clear(&rec);
}

static void test_smollm(void) {
    const char *dir = test_shared_path("tokenizers/SmolLM2-135M-Instruct", "dataset: SmolLM2 (ChatML)");
    if (!dir) return;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    CHECK(tuna_tokenizer_load(&tok, dir) == TUNA_OK);
    CHECK(tuna_dataset_template(&tmpl, tok, NULL, NULL) == TUNA_OK && tmpl);
    if (!tok || !tmpl) return;
    /* both assistant turns up to their <|im_end|>; nothing of system/user, nor
     * the "\n" the template writes after <|im_end|> */
    check_record("smollm chat", CHAT, tok, tmpl,
                 "Hello! How can I help?<|im_end|>Blue \xc3\xa9t\xc3\xa9 \xf0\x9f\x8c\x8a<|im_end|>", 0);
    /* alpaca and sharegpt land in the same masks */
    check_record("smollm alpaca", "{\"instruction\":\"Say yes\",\"input\":\"\",\"output\":\"Yes.\"}", tok, tmpl,
                 "Yes.<|im_end|>", 0);
    check_record("smollm sharegpt",
                 "{\"conversations\":[{\"from\":\"human\",\"value\":\"Q?\"},{\"from\":\"gpt\",\"value\":\"A.\"}]}", tok, tmpl,
                 "A.<|im_end|>", 0);
    /* prompt/completion strings: completion + EOS (<|im_end|> is SmolLM2's eos) */
    check_record("smollm prompt/completion", "{\"prompt\":\"The sky is\",\"completion\":\" blue.\"}", tok, tmpl,
                 " blue.<|im_end|>", 0);
    /* conversational prompt/completion: only the completion's turn */
    check_record("smollm conv prompt/completion",
                 "{\"prompt\":[{\"role\":\"user\",\"content\":\"2+2?\"}],\"completion\":[{\"role\":\"assistant\",\"content\":\"4\"}]}",
                 tok, tmpl, "4<|im_end|>", 0);
    /* LLaMA-Factory loss_weight 0 turns are not counted */
    check_record("smollm loss_weight",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\",\"loss_weight\":0.0},"
                 "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\",\"loss_weight\":1.0}]}",
                 tok, tmpl, "d<|im_end|>", 0);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

/* Phi-3: its special tokens strip the white space after them (rstrip), so the
 * "\n" after <|user|> and <|end|> is in the text but not in any token; the
 * mask must still find the assistant's tokens (it found none but EOS before) */
static void test_phi3(void) {
    const char *dir = test_shared_path("tokenizers/phi-3-mini", "dataset: Phi-3 (rstrip special tokens)");
    if (!dir) return;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    CHECK(tuna_tokenizer_load(&tok, dir) == TUNA_OK);
    CHECK(tuna_dataset_template(&tmpl, tok, NULL, NULL) == TUNA_OK && tmpl);
    if (!tok || !tmpl) return;
    check_record("phi3 chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"Name a colour.\"},{\"role\":\"assistant\",\"content\":\"Red.\"}]}",
                 tok, tmpl, "Red.<|end|>", 0);
    check_record("phi3 chat 2", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\\n\\nthere\"},{\"role\":\"assistant\",\"content\":\"Hello,\\nfriend.\"}]}",
                 tok, tmpl, "Hello,\nfriend.<|end|>", 0);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

static void test_llama2(void) {
    const char *dir = test_shared_path("tokenizers/llama2", "dataset: Llama 2 tokenizer (BOS handling)");
    if (!dir) return;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    CHECK(tuna_tokenizer_load(&tok, dir) == TUNA_OK);
    if (!tok) return;
    /* the zephyr built-in (TinyLlama-chat style) writes eos_token "</s>" after
     * each turn; this tokenizer (like HF's) does not match "</s>" glued to a
     * word as the EOS token, so the text pieces are counted and a real EOS is
     * appended after the last turn for the model to learn to stop */
    CHECK(tuna_dataset_template(&tmpl, tok, "zephyr", NULL) == TUNA_OK && tmpl);
    check_record("llama2 zephyr", CHAT, tok, tmpl,
                 "Hello! How can I help?</s>\nBlue \xc3\xa9t\xc3\xa9 \xf0\x9f\x8c\x8a</s>\n</s>", 1);
    tuna_template_free(tmpl);
    /* the llama2 built-in starts with "<s>" itself: still exactly one BOS */
    CHECK(tuna_dataset_template(&tmpl, tok, "llama2", NULL) == TUNA_OK && tmpl);
    tuna_record rec = {0};
    tuna_bad_kind why;
    CHECK(tuna_record_parse(&rec, CHAT, strlen(CHAT), NULL, &why) == TUNA_OK);
    int32_t *ids = NULL, *labels = NULL;
    size_t n = 0;
    CHECKF(tuna_dataset_encode_record(&rec, tok, tmpl, 0, &ids, &labels, &n, NULL) == TUNA_OK, "%s", tuna_last_error());
    if (ids) {
        CHECKF(ids[0] == 1, "first id %d", ids[0]);
        CHECKF(ids[1] != 1, "second BOS at position 1");
        char *got = counted_text(tok, ids, labels, n);
        CHECKF(strstr(got, "Hello! How can I help?") && strstr(got, "Blue") && !strstr(got, "Hi there") &&
                   !strstr(got, "Be brief"),
               "llama2 template counted: [%s]", got);
        free(got);
    }
    free(ids);
    free(labels);
    tuna_record_clear(&rec);
    /* plain text: every token counts, BOS first, EOS last */
    check_record("llama2 text", "{\"text\":\"Once upon a time\"}", tok, NULL, "Once upon a time</s>", 1);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

static void test_file_level(void) {
    const char *dir = test_shared_path("tokenizers/SmolLM2-135M-Instruct", "dataset: file, truncation, cache");
    if (!dir) return;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    char *src = NULL;
    CHECK(tuna_tokenizer_load(&tok, dir) == TUNA_OK);
    CHECK(tuna_dataset_template(&tmpl, tok, NULL, &src) == TUNA_OK);
    char path[400], cache[400];
    snprintf(path, sizeof path, "%s/mixed.jsonl", tmpdir);
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    char buf[8192];
    snprintf(buf, sizeof buf,
             "%s\n{\"instruction\":\"Write a long answer\",\"output\":\"%s\"}\n{\"prompt\":\"a\",\"completion\":\"b\"}\n"
             "{\"text\":\"plain text here\"}\n{\"input_ids\":[1,2,3,4],\"labels\":[-100,-100,3,4]}\n",
             CHAT,
             "word word word word word word word word word word word word word word word word word word word word "
             "word word word word word word word word word word word word word word word word word word word word");
    spit(path, buf);
    int lens[3] = {0};
    tuna_truncate modes[3] = {TUNA_TRUNCATE_RIGHT, TUNA_TRUNCATE_LEFT, TUNA_TRUNCATE_DROP};
    for (int m = 0; m < 3; m++) {
        tuna_dataset_options o;
        tuna_dataset_options_init(&o);
        o.seq_len = 40;
        o.truncate = modes[m];
        tuna_pretok *p = NULL;
        tuna_dataset_stats s;
        CHECKF(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &p, &s) == TUNA_OK, "%s", tuna_last_error());
        if (!p) continue;
        CHECK(s.data.good == 5 && s.data.bad == 0);
        if (m < 2) CHECK(s.examples == 5 && s.truncated == 2 && s.dropped == 0 && tuna_pretok_max_len(p) == 40);
        else CHECK(s.examples == 3 && s.dropped == 2);
        lens[m] = (int)tuna_pretok_count(p);
        if (m == 1 && tuna_pretok_count(p) == 5) {
            /* left truncation keeps the end: the chat's final <|im_end|> (before its "\n") is counted */
            const int32_t *lab;
            int64_t n0 = tuna_pretok_seq(p, 0, NULL, &lab, NULL);
            CHECK(lab[n0 - 2] != -100 && lab[n0 - 1] == -100);
        }
        tuna_pretok_free(p);
    }
    CHECK(lens[0] == 5 && lens[2] == 3);
    /* cache: second load comes from the cache, identical */
    tuna_dataset_options o;
    tuna_dataset_options_init(&o);
    o.cache_dir = cache;
    tuna_pretok *a = NULL, *b = NULL;
    tuna_dataset_stats sa, sb;
    CHECK(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &a, &sa) == TUNA_OK && !sa.from_cache);
    CHECK(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &b, &sb) == TUNA_OK && sb.from_cache);
    CHECK(a && b && pretok_same(a, b));
    CHECK(sa.counted == sb.counted && sa.counted > 0 && sb.examples == 5);
    /* all five: chats end with <|im_end|>, prompt/completion and text get EOS, and
     * the pre-tokenized record ends with id 4, a special token of SmolLM2 */
    CHECK(sa.ends_with_eos == 5);
    /* options change the key */
    o.loss_on_all = 1;
    tuna_pretok *c = NULL;
    tuna_dataset_stats sc;
    CHECK(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &c, &sc) == TUNA_OK && !sc.from_cache && sc.counted > sa.counted);
    tuna_pretok_free(a);
    tuna_pretok_free(b);
    tuna_pretok_free(c);
    /* a preference record in SFT data: FILE:LINE error */
    spit(path, "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\n");
    tuna_dataset_options_init(&o);
    tuna_pretok *d = NULL;
    tuna_status st = tuna_dataset_load(path, tok, tmpl, src, dir, &o, &d, NULL);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "mixed.jsonl:1:") && strstr(tuna_last_error(), "dpo"),
           "%s", tuna_last_error());
    /* vocab_size: a label outside the model's vocabulary is FILE:LINE while reading */
    spit(path, "{\"input_ids\":[1,2,3],\"labels\":[-100,2,3]}\n{\"input_ids\":[1,2,3],\"labels\":[-100,2,500]}\n");
    o.vocab_size = 100;
    st = tuna_dataset_load(path, tok, tmpl, src, dir, &o, &d, NULL);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "mixed.jsonl:2: label 500"), "%s", tuna_last_error());
    tuna_pretok_free(d);
    free(src);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

/* the token cache keys a file by one read and tokenizes it in a second: a
 * file rewritten in between (here: from the progress callback, after the
 * first record, while the reader is past its first 4 KB buffer) must not be
 * stored under the first content's key */
typedef struct {
    const char *path, *text;
    int done;
} rewrite_ctx;

static void rewrite_once(void *ctx, uint64_t done, uint64_t total) {
    (void)done; (void)total;
    rewrite_ctx *c = ctx;
    if (!c->done) spit(c->path, c->text);
    c->done = 1;
}

/* lines {"text": "record N WORD ..."}, n of them (malloc'ed) */
static char *text_records(int n, const char *word) {
    char *s = malloc((size_t)n * 80 + 1), *p = s;
    for (int i = 0; i < n; i++) p += sprintf(p, "{\"text\":\"record %d %s %s of the story\"}\n", i, word, word);
    return s;
}

static void test_cache_changed_file(void) {
    const char *dir = test_shared_path("tokenizers/SmolLM2-135M-Instruct", "dataset: file changed while read");
    if (!dir) return;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    char *src = NULL;
    CHECK(tuna_tokenizer_load(&tok, dir) == TUNA_OK);
    CHECK(tuna_dataset_template(&tmpl, tok, NULL, &src) == TUNA_OK);
    char path[400], cache[400];
    snprintf(path, sizeof path, "%s/changing.jsonl", tmpdir);
    snprintf(cache, sizeof cache, "%s/cache-changed", tmpdir);
    char *a = text_records(2000, "alpha"), *b = text_records(2000, "omega"); /* ~100 KB each */
    spit(path, a);
    tuna_dataset_options o;
    tuna_dataset_options_init(&o);
    o.cache_dir = cache;
    rewrite_ctx rc = {path, b, 0};
    o.on_progress = rewrite_once;
    o.progress_ctx = &rc;
    tuna_pretok *p1 = NULL, *p2 = NULL, *ref = NULL;
    tuna_dataset_stats s1, s2, sr;
    CHECKF(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &p1, &s1) == TUNA_OK, "%s", tuna_last_error());
    CHECKF(rc.done && strstr(s1.cache_note, "changed while it was read: token cache not written"), "note '%s'", s1.cache_note);
    tuna_pretok_free(p1);
    /* the first content again: not a hit on tokens of the mixed read */
    spit(path, a);
    o.on_progress = NULL;
    CHECK(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &p2, &s2) == TUNA_OK);
    CHECKF(!s2.from_cache, "a cache hit after a read of a changing file ('%s')", s2.cache_note);
    o.cache_dir = NULL;
    CHECK(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &ref, &sr) == TUNA_OK);
    CHECK(p2 && ref && pretok_same(p2, ref));
    tuna_pretok_free(p2);
    /* an unchanged file is stored and hit as before */
    o.cache_dir = cache;
    CHECK(tuna_dataset_load(path, tok, tmpl, src, dir, &o, &p2, &s2) == TUNA_OK && s2.from_cache && !s2.cache_note[0]);
    CHECK(p2 && ref && pretok_same(p2, ref));
    tuna_pretok_free(p2);
    tuna_pretok_free(ref);
    free(a);
    free(b);
    free(src);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

/* the CLI: data tokenize writes what sft would train on; inspect's numbers */
static void test_data_cli(void) {
    const char *dir = test_shared_path("tokenizers/SmolLM2-135M-Instruct", "dataset: data tokenize/inspect CLI");
    if (!dir) return;
    char in[400], out[400], cmd[4096], js[400];
    snprintf(in, sizeof in, "%s/cli.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/cli.tok.jsonl", tmpdir);
    snprintf(js, sizeof js, "%s/inspect.json", tmpdir);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s\n{\"prompt\":\"a\",\"completion\":\"b\"}\nnot json\n", CHAT);
    spit(in, buf);
    snprintf(cmd, sizeof cmd, "%s data tokenize --model %s %s --out %s 2>/dev/null", test_cli, dir, in, out);
    /* 1 bad record of 3 is above the default 1%: refused, and no output left behind */
    CHECK(system(cmd) != 0);
    CHECK(access(out, F_OK) != 0);
    snprintf(buf, sizeof buf, "%s\n{\"prompt\":\"a\",\"completion\":\"b\"}\n", CHAT);
    spit(in, buf);
    CHECK(system(cmd) == 0);
    tuna_pretok *p = NULL;
    CHECKF(tuna_pretok_load(&p, out, 0) == TUNA_OK, "%s", tuna_last_error());
    CHECK(p && tuna_pretok_count(p) == 2);
    tuna_pretok_free(p);
    snprintf(cmd, sizeof cmd, "%s data inspect --model %s %s --json > %s", test_cli, dir, in, js);
    CHECK(system(cmd) == 0);
    FILE *f = fopen(js, "r");
    char line[8192] = "";
    if (f) { if (!fgets(line, sizeof line, f)) line[0] = 0; fclose(f); }
    CHECKF(strstr(line, "\"records\":2,\"good\":2") && strstr(line, "\"ends_with_stop_share\":1") &&
               strstr(line, "\"roles\":{\"system\":1,\"user\":2,\"assistant\":2}"),
           "inspect: %s", line);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna_test_dataset_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_smollm();
    test_phi3();
    test_llama2();
    test_file_level();
    test_cache_changed_file();
    test_data_cli();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return test_done();
}
