/* test_tokenizer_train.c — byte-level BPE training (tuna_bpe_train and
 * `tuna tokenizer train`).
 *  - hand-computed merge order: highest count first, ties to the smallest
 *    (left id, right id), as HF's BpeTrainer (tools/tokenizer-train-check
 *    compares whole runs with HF's trainer);
 *  - an inline corpus (always runs) and 300 KB of TinyStories (skipped when
 *    ../shared is absent): the result loads with tuna_tokenizer_load, has the
 *    exact vocabulary size, frequent words become one token, and text never
 *    seen (emoji, CJK, control bytes, special tokens) encodes and decodes back
 *    exactly;
 *  - determinism (byte-identical files), JSONL input, --max-bytes, a custom
 *    Split regex, the written configs (special ids, ChatML template);
 *  - bad input: missing file, vocab too small, invalid UTF-8, bad JSONL,
 *    duplicate specials, and the CLI's exit codes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "tuna_template.h"
#include "tuna.h"
#include "tuna_tokenizer.h"
#include "tuna_tokenizer_train.h"

static char tmpdir[256];

static char *path_in(const char *name) {
    static char buf[8][512];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_text(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s, 1, n, f) != n) fprintf(stderr, "cannot write %s\n", path);
    if (f) fclose(f);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    if (p) { p[n] = '\0'; if (len) *len = (size_t)n; }
    return p;
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int eq = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return eq;
}

static tuna_status train(const char *const *files, int n_files, int vocab, const char *out, tuna_bpe_train_stats *s) {
    tuna_bpe_train_opts o;
    tuna_bpe_train_opts_default(&o);
    o.files = files;
    o.n_files = n_files;
    o.vocab_size = vocab;
    return tuna_bpe_train(&o, out, s);
}

/* Encode then decode; 1 when the text comes back byte for byte. */
static int round_trips(tuna_tokenizer *tok, const char *s, size_t n, size_t *ntok) {
    int32_t *ids = NULL;
    size_t k = 0;
    char *back = NULL;
    size_t bl = 0;
    int ok = tuna_tokenizer_encode(tok, s, n, 0, &ids, &k) == TUNA_OK &&
             tuna_tokenizer_decode(tok, ids, k, 0, &back, &bl) == TUNA_OK && bl == n && memcmp(back, s, n) == 0;
    if (!ok) fprintf(stderr, "  round trip failed for \"%.60s\" (%zu ids): \"%.60s\"\n", s, k, back ? back : "(none)");
    if (ntok) *ntok = k;
    free(ids);
    free(back);
    return ok;
}

/* Number of ids text encodes to (-1 on error). */
static long count_ids(tuna_tokenizer *tok, const char *s) {
    int32_t *ids = NULL;
    size_t k = 0;
    if (tuna_tokenizer_encode(tok, s, strlen(s), 0, &ids, &k)) return -1;
    free(ids);
    return (long)k;
}

static const char *const probes[] = {
    "Once upon a time, there was a little girl named Lily.",
    "Never seen: Zyxwvut quokka 'cause y'all'd've QUUX_42 foo.bar(baz) {}[]",
    "Emoji: \xF0\x9F\x99\x82\xF0\x9F\x9A\x80 \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 flags \xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",
    "CJK: \xE6\x88\x91\xE7\x88\xB1\xE8\x87\xAA\xE7\x84\xB6\xE8\xAF\xAD\xE8\xA8\x80 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
    "Control: \x01\x02\x03\x07\x1b[31mred\x1b[0m \x7f\x08 end",
    "Specials: <|im_start|>user\nhi<|im_end|>\n<|endoftext|>after <|im_start <|endoftext|",
    "Accents: caf\xC3\xA9 na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m Stra\xC3\x9F" "e \xCE\x91\xCE\x92\xCE\x93 \xD0\x9A\xD0\xB8",
    "  leading, trailing and\ttabs\t\t and\r\nCRLF and \n\n\n blank lines   ",
    "Numbers 3.14159 1,000,000 0x1F 2024-11-28 and \xE2\x91\xA0\xE2\x91\xA1",
    "\xC2\xA0nbsp\xE2\x80\x83" "em\xE3\x80\x80ideographic zero\xE2\x80\x8Bwidth",
    "",
};

/* A small corpus: repeated sentences (so merges have counts), story breaks. */
static void make_inline_corpus(const char *path) {
    static const char *const sent[] = {
        "The cat sat on the mat and the dog sat on the log.\n",
        "Once upon a time, there was a little girl who liked the sun.\n",
        "She played with the ball in the park, and then she went home.\n",
        "<|endoftext|>\n",
        "They were happy, and the little dog barked at the big tree.\n",
    };
    char *buf = malloc(64 * 1024);
    size_t n = 0;
    for (int r = 0; r < 60; r++)
        for (int i = 0; i < 5; i++) {
            size_t l = strlen(sent[(i + r) % 5]);
            memcpy(buf + n, sent[(i + r) % 5], l);
            n += l;
        }
    write_text(path, buf, n);
    free(buf);
}

/* Merge order on a corpus where every count is known. */
static void test_merge_order(void) {
    const char *corpus = path_in("order.txt");
    /* words "zz\n"? no: the GPT-2 regex gives "zz", "\n", ... per line.
     * (a,b) occurs 3 times; (y,y) and (z,z) twice each: (y,y) wins the tie
     * (smaller ids), then (z,z); "\n" is a word of its own. */
    write_text(corpus, "zz\nyy\nab\nab\nzz\nyy\nab\n", 21);
    const char *files[] = {corpus};
    tuna_bpe_train_opts o;
    tuna_bpe_train_opts_default(&o);
    o.files = files;
    o.n_files = 1;
    o.vocab_size = 3 + 256 + 10;
    tuna_bpe_train_stats s;
    CHECK(tuna_bpe_train(&o, path_in("order"), &s) == TUNA_OK);
    CHECKF(s.merges == 3 && s.vocab_size == 3 + 256 + 3, "merges %d vocab %d", s.merges, s.vocab_size);
    CHECK(s.sequences == 7 && s.words == 4);
    char *txt = slurp(path_in("order/tokenizer.json"), NULL);
    json_t *root = txt ? json_loads(txt, 0, NULL) : NULL;
    json_t *model = json_object_get(root, "model"), *m = json_object_get(model, "merges");
    static const char *const want[3][2] = {{"a", "b"}, {"y", "y"}, {"z", "z"}};
    CHECK(json_array_size(m) == 3);
    for (size_t i = 0; i < 3 && i < json_array_size(m); i++) {
        json_t *e = json_array_get(m, i);
        const char *l = json_string_value(json_array_get(e, 0)), *r = json_string_value(json_array_get(e, 1));
        CHECKF(l && r && !strcmp(l, want[i][0]) && !strcmp(r, want[i][1]), "merge %zu is %s %s", i, l, r);
    }
    /* ids: specials, then bytes by code point ("!" = 33 first), merges after */
    json_t *vocab = json_object_get(model, "vocab");
    CHECK(json_integer_value(json_object_get(vocab, "<|endoftext|>")) == 0);
    CHECK(json_integer_value(json_object_get(vocab, "!")) == 3);
    CHECK(json_integer_value(json_object_get(vocab, "\xC4\x8A")) == 3 + 256 - 68 + 10); /* "\n" -> U+010A */
    CHECK(json_integer_value(json_object_get(vocab, "ab")) == 259);
    CHECK(json_integer_value(json_object_get(vocab, "zz")) == 261);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(root, "pre_tokenizer"), "type")), "ByteLevel"));
    json_decref(root);
    free(txt);

    /* min_frequency 3 keeps only (a, b) */
    o.min_frequency = 3;
    CHECK(tuna_bpe_train(&o, path_in("order3"), &s) == TUNA_OK && s.merges == 1);
}

static void test_inline(void) {
    char corpus[512]; /* path_in's buffers are reused */
    snprintf(corpus, sizeof corpus, "%s", path_in("inline.txt"));
    make_inline_corpus(corpus);
    const char *files[] = {corpus};
    tuna_bpe_train_stats s;
    const int V = 3 + 256 + 60;
    CHECK(train(files, 1, V, path_in("inline"), &s) == TUNA_OK);
    CHECKF(s.vocab_size == V && s.merges == 60, "vocab %d merges %d", s.vocab_size, s.merges);
    CHECK(!s.truncated && s.sequences == 300);

    tuna_tokenizer *tok = NULL;
    CHECK(tuna_tokenizer_load(&tok, path_in("inline")) == TUNA_OK);
    if (!tok) { fprintf(stderr, "load: %s\n", tuna_last_error()); return; }
    CHECK(tuna_tokenizer_vocab_size(tok) == V);
    CHECK(tuna_tokenizer_token_to_id(tok, "<|endoftext|>") == 0);
    CHECK(tuna_tokenizer_token_to_id(tok, "<|im_start|>") == 1);
    CHECK(tuna_tokenizer_token_to_id(tok, "<|im_end|>") == 2);
    CHECK(tuna_tokenizer_bos_id(tok) == 0 && tuna_tokenizer_eos_id(tok) == 0 && tuna_tokenizer_pad_id(tok) == 0);
    CHECK(tuna_tokenizer_is_special(tok, 1) && tuna_tokenizer_is_special(tok, 2) && !tuna_tokenizer_is_special(tok, 3));
    /* the frequent words are single tokens; special text is its id */
    CHECK(count_ids(tok, " the") == 1);
    CHECK(count_ids(tok, " little") == 1);
    CHECK(count_ids(tok, "<|im_end|>") == 1);
    /* the post-processor adds nothing */
    int32_t *ids = NULL;
    size_t k = 0;
    CHECK(tuna_tokenizer_encode(tok, "hi", 2, 1, &ids, &k) == TUNA_OK && k == 2);
    free(ids);
    /* the training text comes out shorter than its bytes, and round-trips */
    size_t n;
    char *text = slurp(corpus, &n);
    size_t ntok = 0;
    CHECK(text && round_trips(tok, text, n, &ntok));
    CHECKF(ntok * 2 < n, "%zu tokens for %zu bytes", ntok, n);
    free(text);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) CHECK(round_trips(tok, probes[i], strlen(probes[i]), NULL));
    /* every byte value 1..255 that forms valid UTF-8 alone, and NUL */
    char all[128];
    for (int b = 0; b < 128; b++) all[b] = (char)b;
    CHECK(round_trips(tok, all, 128, NULL));

    /* ChatML template renders as expected */
    const char *ct = tuna_tokenizer_chat_template(tok);
    CHECK(ct != NULL);
    tuna_template *tpl = NULL;
    if (ct && tuna_template_compile(&tpl, ct, strlen(ct)) == TUNA_OK) {
        json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "user", "content", "Hi", "role", "assistant",
                                 "content", "Hello!");
        tuna_template_vars vars = {0};
        vars.add_generation_prompt = 1;
        char *out = NULL;
        CHECK(tuna_template_render(tpl, msgs, &vars, &out, NULL) == TUNA_OK && out &&
              !strcmp(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n"));
        free(out);
        json_decref(msgs);
        tuna_template_free(tpl);
    } else {
        CHECKF(0, "chat template does not compile: %s", tuna_last_error());
    }
    tuna_tokenizer_free(tok);

    /* determinism */
    CHECK(train(files, 1, V, path_in("inline2"), NULL) == TUNA_OK);
    static const char *const outs[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/inline/%s", tmpdir, outs[i]);
        snprintf(b, sizeof b, "%s/inline2/%s", tmpdir, outs[i]);
        CHECKF(files_equal(a, b), "%s differs between two runs", outs[i]);
    }

    /* JSONL input with the same text trains the same merges on these lines */
    text = slurp(corpus, &n);
    if (text) {
        FILE *f = fopen(path_in("inline.jsonl"), "wb");
        char *line = text;
        while (f && *line) {
            char *nl = strchr(line, '\n');
            json_t *rec = json_pack("{s:s%}", "text", line, (size_t)(nl - line + 1));
            char *js = json_dumps(rec, JSON_COMPACT);
            fprintf(f, "%s\n\n", js); /* blank lines are skipped */
            free(js);
            json_decref(rec);
            line = nl + 1;
        }
        if (f) fclose(f);
        free(text);
        const char *jfiles[] = {path_in("inline.jsonl")};
        CHECK(train(jfiles, 1, V, path_in("inline_jsonl"), &s) == TUNA_OK && s.sequences == 300);
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/inline/tokenizer.json", tmpdir);
        snprintf(b, sizeof b, "%s/inline_jsonl/tokenizer.json", tmpdir);
        CHECK(files_equal(a, b));
    }

    /* max_bytes: whole lines only */
    tuna_bpe_train_opts o;
    tuna_bpe_train_opts_default(&o);
    o.files = files;
    o.n_files = 1;
    o.vocab_size = V;
    o.max_bytes = 1000;
    CHECK(tuna_bpe_train(&o, path_in("inline_cut"), &s) == TUNA_OK);
    CHECK(s.truncated == 1 && s.bytes <= 1000 && s.bytes > 900);

    /* custom specials and a Llama-3-style Split regex */
    const char *spec[] = {"<s>", "</s>"};
    tuna_status st;
    tuna_bpe_train_opts_default(&o);
    o.files = files;
    o.n_files = 1;
    o.vocab_size = 2 + 256 + 40;
    o.special = spec;
    o.n_special = 2;
    o.split_regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    st = tuna_bpe_train(&o, path_in("custom"), &s);
    CHECKF(st == TUNA_OK && s.vocab_size == 2 + 256 + 40, "%d %s vocab %d", st, tuna_last_error(), s.vocab_size);
    tok = NULL;
    CHECK(tuna_tokenizer_load(&tok, path_in("custom")) == TUNA_OK);
    if (tok) {
        CHECK(tuna_tokenizer_token_to_id(tok, "</s>") == 1 && tuna_tokenizer_bos_id(tok) == 0);
        CHECK(tuna_tokenizer_chat_template(tok) == NULL); /* no ChatML markers */
        for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) CHECK(round_trips(tok, probes[i], strlen(probes[i]), NULL));
        tuna_tokenizer_free(tok);
    }
}

static void test_tinystories(void) {
    const char *path = test_shared_path("text/tinystories/tinystories_train_head_2MiB.txt", "tokenizer train on TinyStories");
    if (!path) return;
    tuna_bpe_train_opts o;
    tuna_bpe_train_opts_default(&o);
    const char *files[] = {path};
    o.files = files;
    o.n_files = 1;
    o.vocab_size = 1024;
    o.max_bytes = 300000;
    tuna_bpe_train_stats s;
    CHECK(tuna_bpe_train(&o, path_in("ts"), &s) == TUNA_OK);
    CHECK(s.vocab_size == 1024 && s.merges == 1024 - 259 && s.truncated);
    tuna_tokenizer *tok = NULL;
    CHECK(tuna_tokenizer_load(&tok, path_in("ts")) == TUNA_OK);
    if (!tok) return;
    CHECK(tuna_tokenizer_vocab_size(tok) == 1024);
    CHECK(count_ids(tok, " the") == 1 && count_ids(tok, " Lily") == 1 && count_ids(tok, " said") == 1);
    CHECK(tuna_tokenizer_token_to_id(tok, "\xC4\xA0the") >= 259); /* "Ġthe" */
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) CHECK(round_trips(tok, probes[i], strlen(probes[i]), NULL));
    /* unseen stories: validation text round-trips and compresses well */
    const char *val = test_shared_path("text/tinystories/tinystories_validation_head.txt", "TinyStories validation round trip");
    size_t n;
    char *text = val ? slurp(val, &n) : NULL;
    if (text) {
        size_t cut = n < 100000 ? n : 100000;
        while (cut < n && (text[cut] & 0xC0) == 0x80) cut++; /* whole UTF-8 characters */
        size_t ntok = 0;
        CHECK(round_trips(tok, text, cut, &ntok));
        CHECKF(ntok * 3 < cut, "%zu tokens for %zu bytes", ntok, cut);
        free(text);
    }
    tuna_tokenizer_free(tok);
}

static void test_bad_input(void) {
    char corpus[512]; /* path_in's buffers are reused */
    snprintf(corpus, sizeof corpus, "%s", path_in("inline.txt"));
    const char *files[] = {corpus};
    tuna_status st;
    const char *missing[] = {path_in("no-such-file.txt")};
    st = train(missing, 1, 1000, path_in("bad"), NULL);
    CHECKF(st == TUNA_ERR_IO && strstr(tuna_last_error(), "no-such-file.txt"), "%d %s", st, tuna_last_error());
    st = train(files, 1, 258, path_in("bad"), NULL);
    CHECKF(st == TUNA_ERR_ARG && strstr(tuna_last_error(), "vocab size 258"), "%d %s", st, tuna_last_error());
    CHECK(train(files, 1, 259, path_in("ok259"), NULL) == TUNA_OK); /* only the base vocabulary */
    CHECK(train(files, 0, 1000, path_in("bad"), NULL) == TUNA_ERR_ARG);
    write_text(path_in("bad_utf8.txt"), "fine line\nbad \xC3\x28 byte\n", 22);
    const char *bu[] = {path_in("bad_utf8.txt")};
    st = train(bu, 1, 1000, path_in("bad"), NULL);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "bad_utf8.txt:2"), "%d %s", st, tuna_last_error());
    write_text(path_in("bad.jsonl"), "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n", 30);
    const char *bj[] = {path_in("bad.jsonl")};
    st = train(bj, 1, 1000, path_in("bad"), NULL);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "bad.jsonl:2"), "%d %s", st, tuna_last_error());
    tuna_bpe_train_opts o;
    tuna_bpe_train_opts_default(&o);
    o.files = files;
    o.n_files = 1;
    o.vocab_size = 1000;
    const char *dup[] = {"<a>", "<a>"};
    o.special = dup;
    o.n_special = 2;
    CHECK(tuna_bpe_train(&o, path_in("bad"), NULL) == TUNA_ERR_ARG);
    const char *byte_sym[] = {"<a>", "\xC4\xA0"}; /* "Ġ" is the byte symbol of ' ' */
    o.special = byte_sym;
    CHECK(tuna_bpe_train(&o, path_in("bad"), NULL) == TUNA_ERR_ARG);
    o.special = NULL;
    o.n_special = 0;
    o.split_regex = "(unclosed";
    CHECK(tuna_bpe_train(&o, path_in("bad"), NULL) != TUNA_OK);
    /* an output path below a regular file cannot be created */
    CHECK(train(files, 1, 300, path_in("inline.txt/sub"), NULL) == TUNA_ERR_IO);
}

static int run(const char *fmt, const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, test_cli, a, b);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_cmd(void) {
    char corpus[512]; /* path_in's buffers are reused */
    snprintf(corpus, sizeof corpus, "%s", path_in("inline.txt"));
    CHECK(run("%s tokenizer train --data %s --vocab-size 300 --out %s >/dev/null", corpus, path_in("cli")) == 0);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/cli/tokenizer.json", tmpdir);
    snprintf(b, sizeof b, "%s/ok300/tokenizer.json", tmpdir);
    const char *files[] = {corpus};
    CHECK(train(files, 1, 300, path_in("ok300"), NULL) == TUNA_OK && files_equal(a, b));
    CHECK(run("%s tokenizer train --data %s --vocab-size 300 --out %s 2>/dev/null", path_in("missing.txt"), path_in("cli2")) == 2);
    CHECK(run("%s tokenizer train --data %s --vocab-size 100 --out %s 2>/dev/null", corpus, path_in("cli2")) == 2);
    CHECK(run("%s tokenizer train --data %s --frobnicate --out %s 2>/dev/null", corpus, path_in("cli2")) == 2);
    CHECK(run("%s tokenizer train --data %s --vocab-size 300 --max-bytes 1X --out %s 2>/dev/null", corpus, path_in("cli2")) == 2);
    /* --chat-template: a built-in's source lands in tokenizer_config.json; a bad one is refused */
    CHECK(run("%s tokenizer train --data %s --vocab-size 300 --special '<|endoftext|>' --chat-template alpaca --out %s >/dev/null", corpus,
              path_in("cli3")) == 0);
    tuna_tokenizer *tok = NULL;
    CHECK(tuna_tokenizer_load(&tok, path_in("cli3")) == TUNA_OK);
    CHECK(tok && tuna_tokenizer_chat_template(tok) && !strcmp(tuna_tokenizer_chat_template(tok), tuna_template_builtin("alpaca")));
    tuna_tokenizer_free(tok);
    CHECK(run("%s tokenizer train --data %s --vocab-size 300 --chat-template nosuch --out %s 2>/dev/null", corpus, path_in("cli4")) == 2);
    CHECK(run("%s tokenizer train --help >/dev/null%s%s", "", "") == 0);
    CHECK(run("%s tokenizer frob 2>/dev/null%s%s", "", "") == 2);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna-test-bpe-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_merge_order();
    test_inline();
    test_tinystories();
    test_bad_input();
    test_cli_cmd();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    return test_done();
}
