/* test_serve.c — the server's core without HTTP: models sharing one copy of
 * the weights (each with its own adapter), the engine's continuous batching
 * (every request's text equals generating it alone, whatever runs beside
 * it), the bounded queue, cancellation, draining and stopping, and the
 * request-body checks with their OpenAI-style errors. The HTTP side is
 * driven by real clients in tests/test_serve.sh. Uses the shipped
 * models/tuna-stories. */
#include <jansson.h>
#include <omp.h>
#include <unistd.h>

#include "check.h"
#include "model_probe.h"
#include "serve/engine.h"
#include "serve/request.h"
#include "tuna_infer.h"
#include "tuna_peft.h"

static const char *MODEL = "models/tuna-stories";

static void perturb_lora(tuna_model *m, int salt) {
    int n = probe_adapter_tensors(m);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        tuna_param *t = probe_adapter_tensor(m, i);
        if (strstr(t->name, "lora_B"))
            for (int64_t j = 0; j < t->numel; j++) t->data[j] = 0.02f * (float)((j * 7 + i * 3 + salt) % 13 - 6);
    }
}

static tuna_status attach_lora(tuna_model *m, int salt) {
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_LORA);
    c.r = 4;
    snprintf(c.targets, sizeof c.targets, "all-linear");
    tuna_status st = tuna_peft_attach(m, &c, 11);
    if (st == TUNA_OK) perturb_lora(m, salt);
    return st;
}

static tuna_status attach_prompt(tuna_model *m) {
    tuna_peft_config c;
    tuna_peft_config_default(&c, TUNA_PEFT_PROMPT);
    c.num_virtual_tokens = 3;
    return tuna_peft_attach(m, &c, 5);
}

static int last_logits(tuna_model *m, const int32_t *ids, int n, float *out) {
    tuna_decoder *d = NULL;
    int row = 0;
    int ok = tuna_decoder_create(&d, m, 1, 64, 64) == TUNA_OK && tuna_decoder_step(d, &row, 1, ids, n, out) == TUNA_OK;
    tuna_decoder_free(d);
    return ok;
}

/* A share carries its own adapter over the base's memory; the base is unchanged. */
static void test_share(void) {
    tuna_model *base = NULL, *share = NULL, *alone = NULL, *plain = NULL;
    if (tuna_model_load(&base, MODEL) != TUNA_OK || tuna_model_load(&alone, MODEL) != TUNA_OK || tuna_model_load(&plain, MODEL) != TUNA_OK) {
        CHECKF(0, "cannot load %s: %s", MODEL, tuna_last_error());
        return;
    }
    CHECK(tuna_model_share(&share, base) == TUNA_OK);
    if (!share) return;
    int same = tuna_model_num_params(share) == tuna_model_num_params(base);
    for (int i = 0; same && i < tuna_model_num_params(base); i++) same = tuna_model_param(share, i)->data == tuna_model_param(base, i)->data;
    CHECKF(same, "a share's tensors are the base's memory");
    CHECK(attach_lora(share, 1) == TUNA_OK && attach_lora(alone, 1) == TUNA_OK);
    tuna_model *again = NULL;
    CHECK(tuna_model_share(&again, share) != TUNA_OK); /* a share (or a model with an adapter) cannot be shared */
    int V = tuna_model_config(base)->V;
    int32_t ids[12] = {0, 5, 17, 300, 42, 7, 1000, 64, 9, 2, 77, 150};
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float)), *c = malloc((size_t)V * sizeof(float));
    CHECK(last_logits(share, ids, 12, a) && last_logits(alone, ids, 12, b));
    CHECKF(!memcmp(a, b, (size_t)V * sizeof(float)), "LoRA on a share = the same LoRA on its own copy of the model");
    CHECK(last_logits(base, ids, 12, a) && last_logits(plain, ids, 12, c));
    CHECKF(!memcmp(a, c, (size_t)V * sizeof(float)), "the base is unchanged by the adapter on its share");
    CHECKF(memcmp(b, c, (size_t)V * sizeof(float)) != 0, "the adapter changes the logits");
    tuna_model_free(share); /* the base stays usable */
    CHECK(last_logits(base, ids, 12, a) && !memcmp(a, c, (size_t)V * sizeof(float)));
    free(a);
    free(b);
    free(c);
    tuna_model_free(base);
    tuna_model_free(alone);
    tuna_model_free(plain);
}

/* takes a request's text until it finishes */
static char *collect(srv_request *r, int *pieces, int cancel_after_first) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int n = 0;
    for (int guard = 0; guard < 4000; guard++) {
        size_t before = len;
        int fin = srv_request_take(r, 50, &buf, &len, &cap);
        if (len > before) n++;
        if (fin != 0) break;
        if (cancel_after_first && n) srv_request_cancel(r);
    }
    if (pieces) *pieces = n;
    if (!buf) buf = strdup("");
    return buf;
}

static int32_t *encode(tuna_tokenizer *tok, const char *text, int *n) {
    int32_t *ids = NULL;
    size_t m = 0;
    if (tuna_tokenizer_encode(tok, text, strlen(text), 1, &ids, &m) != TUNA_OK) return NULL;
    *n = (int)m;
    return ids;
}

/* Continuous batching: nine requests over three models (base, LoRA, prompt
 * tuning), greedy and seeded sampling, stop strings, submitted at once into
 * four rows: each text equals generating it alone with tuna_generate. */
static void test_engine_batching(void) {
    tuna_model *models[3] = {0};
    tuna_tokenizer *tok = NULL;
    if (tuna_model_load(&models[0], MODEL) != TUNA_OK || tuna_tokenizer_load(&tok, MODEL) != TUNA_OK) { CHECK(0); return; }
    CHECK(tuna_model_share(&models[1], models[0]) == TUNA_OK && attach_lora(models[1], 2) == TUNA_OK);
    CHECK(tuna_model_share(&models[2], models[0]) == TUNA_OK && attach_prompt(models[2]) == TUNA_OK);
    if (!models[1] || !models[2]) return;
    enum { NR = 9 };
    const char *prompts[NR] = {"Once upon a time", "The cat", "Tom and Sue went to the park. They", "One day, a little bird",
                               "Lily had a red ball.", "The sun was", "Max was a big dog who", "Mom said", "There was a tree"};
    const char *stops[1] = {" the"};
    int32_t eos[1] = {tuna_tokenizer_eos_id(tok)};
    tuna_gen_opts opts[NR];
    char *want[NR];
    int want_n[NR], want_stop[NR];
    for (int i = 0; i < NR; i++) {
        tuna_gen_opts o = {.max_new_tokens = 12 + 5 * i, .eos_ids = eos, .n_eos = 1};
        tuna_sample_args_default(&o.sample);
        o.sample.top_k = 0;
        o.sample.temperature = i % 2 ? 0.9f : 0.0f;
        o.sample.seed = 100 + (uint64_t)i;
        if (i == 4) { o.stop = stops; o.n_stop = 1; }
        opts[i] = o;
        int n = 0;
        int32_t *ids = encode(tok, prompts[i], &n);
        tuna_decoder *d = NULL;
        tuna_gen_result res = {0};
        CHECK(ids && tuna_decoder_create(&d, models[i % 3], 1, 128, 64) == TUNA_OK && tuna_generate(d, tok, ids, n, &o, &res) == TUNA_OK);
        want[i] = res.text ? strdup(res.text) : strdup("");
        want_n[i] = res.n;
        want_stop[i] = res.stopped;
        tuna_gen_result_free(&res);
        tuna_decoder_free(d);
        free(ids);
    }
    srv_engine *e = NULL;
    srv_engine_opts eo = {.parallel = 4, .queue = 16, .ctx = 128};
    CHECK(srv_engine_create(&e, models, 3, tok, &eo) == TUNA_OK);
    if (!e) return;
    srv_request *r[NR] = {0};
    for (int i = 0; i < NR; i++) {
        int n = 0;
        int32_t *ids = encode(tok, prompts[i], &n);
        CHECK(ids && srv_engine_submit(e, i % 3, ids, n, &opts[i], &r[i]) == SRV_SUBMITTED);
        free(ids);
    }
    int equal = 0, pieces_total = 0;
    for (int i = 0; i < NR; i++) {
        if (!r[i]) continue;
        int pieces = 0;
        char *got = collect(r[i], &pieces, 0);
        pieces_total += pieces;
        int pt, ct;
        const char *fin, *err;
        srv_request_result(r[i], &pt, &ct, &fin, &err);
        int ok = !err && !strcmp(got, want[i]) && ct == want_n[i] && !strcmp(fin, want_stop[i] ? "stop" : "length");
        CHECKF(ok, "request %d (model %d, %s): engine '%s' (%d tokens, %s) vs alone '%s' (%d tokens)", i, i % 3,
               opts[i].sample.temperature > 0 ? "sampled" : "greedy", got, ct, err ? err : fin, want[i], want_n[i]);
        equal += ok;
        free(got);
        srv_request_release(r[i]);
    }
    CHECKF(pieces_total > NR, "text arrives in pieces (%d pieces for %d requests)", pieces_total, NR);
    printf("engine: %d of %d requests over 3 models in 4 rows equal their generation alone\n", equal, NR);
    srv_engine_stats s;
    srv_engine_get_stats(e, &s);
    CHECK(s.completed == NR && s.active == 0 && s.queued == 0 && s.cancelled == 0 && s.failed == 0);
    srv_engine_free(e);
    for (int i = 0; i < NR; i++) free(want[i]);
    for (int i = 2; i >= 0; i--) tuna_model_free(models[i]);
    tuna_tokenizer_free(tok);
}

/* finite weights whose logits overflow (final norm weight 1e38): the request
 * fails with the step named, rather than finishing with an empty answer */
static void test_engine_nonfinite_logits(void) {
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    if (tuna_model_load(&m, MODEL) != TUNA_OK || tuna_tokenizer_load(&tok, MODEL) != TUNA_OK) { CHECK(0); return; }
    float *w = tuna_model_find_param(m, "model.norm.weight")->data;
    for (int i = 0; i < tuna_model_config(m)->C; i++) w[i] = 1e38f;
    srv_engine *e = NULL;
    srv_engine_opts eo = {.parallel = 1, .queue = 1, .ctx = 512};
    CHECK(srv_engine_create(&e, &m, 1, tok, &eo) == TUNA_OK);
    int n = 0;
    int32_t *ids = encode(tok, "Once upon a time", &n);
    tuna_gen_opts o = {.max_new_tokens = 8};
    tuna_sample_args_default(&o.sample);
    o.sample.temperature = 0;
    srv_request *a = NULL;
    CHECK(e && srv_engine_submit(e, 0, ids, n, &o, &a) == SRV_SUBMITTED);
    if (a) {
        free(collect(a, NULL, 0));
        int pt, ct;
        const char *fin, *err;
        srv_request_result(a, &pt, &ct, &fin, &err);
        CHECKF(err && strstr(err, "generation step 1") && strstr(err, "not finite"), "overflowing logits: %s", err ? err : fin);
        srv_request_release(a);
    }
    srv_engine_free(e);
    free(ids);
    tuna_tokenizer_free(tok);
    tuna_model_free(m);
}

/* one row and one queue place: the third request is refused; a cancelled
 * request frees its row; draining refuses new work; stopping fails the rest */
static void test_engine_limits(void) {
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    if (tuna_model_load(&m, MODEL) != TUNA_OK || tuna_tokenizer_load(&tok, MODEL) != TUNA_OK) { CHECK(0); return; }
    srv_engine *e = NULL;
    srv_engine_opts eo = {.parallel = 1, .queue = 1, .ctx = 512};
    CHECK(srv_engine_create(&e, &m, 1, tok, &eo) == TUNA_OK);
    if (!e) return;
    int n = 0;
    int32_t *ids = encode(tok, "Once upon a time", &n);
    tuna_gen_opts o = {.max_new_tokens = 400}; /* no EOS: runs to the limit unless cancelled */
    tuna_sample_args_default(&o.sample);
    o.sample.temperature = 0;
    srv_request *a = NULL, *b = NULL, *c = NULL;
    CHECK(srv_engine_submit(e, 0, ids, n, &o, &a) == SRV_SUBMITTED);
    tuna_gen_opts ob = o;
    ob.max_new_tokens = 5;
    CHECK(srv_engine_submit(e, 0, ids, n, &ob, &b) == SRV_SUBMITTED);
    CHECK(srv_engine_submit(e, 0, ids, n, &o, &c) == SRV_QUEUE_FULL && c == NULL);
    char *ta = a ? collect(a, NULL, 1) : NULL;
    int pt, ct;
    const char *fin, *err;
    if (a) {
        srv_request_result(a, &pt, &ct, &fin, &err);
        CHECKF(err && !strcmp(err, "cancelled"), "a cancelled request ends as cancelled (%s)", err ? err : fin);
        srv_request_release(a);
    }
    char *tb = b ? collect(b, NULL, 0) : NULL;
    if (b) {
        srv_request_result(b, &pt, &ct, &fin, &err);
        CHECKF(!err && ct == 5 && !strcmp(fin, "length"), "the queued request runs once the row is free (%d tokens, %s)", ct, err ? err : fin);
        srv_request_release(b);
    }
    srv_engine_stats s;
    srv_engine_get_stats(e, &s);
    CHECKF(s.cancelled == 1 && s.completed == 1 && s.active == 0, "stats: %ld cancelled, %ld completed, %d active", s.cancelled, s.completed, s.active);
    srv_engine_drain(e);
    CHECK(srv_engine_submit(e, 0, ids, n, &o, &c) == SRV_DRAINING);
    srv_engine_free(e);
    free(ta);
    free(tb);
    /* stop with work in flight: every waiter wakes with an error */
    e = NULL;
    eo.queue = 4;
    CHECK(srv_engine_create(&e, &m, 1, tok, &eo) == TUNA_OK);
    if (e) {
        srv_request *x[3] = {0};
        for (int i = 0; i < 3; i++) CHECK(srv_engine_submit(e, 0, ids, n, &o, &x[i]) == SRV_SUBMITTED);
        usleep(20000);
        srv_engine_stop(e);
        for (int i = 0; i < 3; i++) {
            if (!x[i]) continue;
            char *t = collect(x[i], NULL, 0);
            srv_request_result(x[i], &pt, &ct, &fin, &err);
            CHECKF(err && !strcmp(err, "server shutting down"), "request %d after stop: %s", i, err ? err : fin);
            free(t);
            srv_request_release(x[i]);
        }
        srv_engine_free(e);
    }
    free(ids);
    tuna_model_free(m);
    tuna_tokenizer_free(tok);
}

/* a queued request whose requester left frees its queue place at once */
static void test_queue_purge(void) {
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    if (tuna_model_load(&m, MODEL) != TUNA_OK || tuna_tokenizer_load(&tok, MODEL) != TUNA_OK) { CHECK(0); return; }
    srv_engine *e = NULL;
    /* more threads than this thread's default: the decoder's per-thread
     * scratch must be sized for the engine thread's team (ASan checks) */
    srv_engine_opts eo = {.parallel = 1, .queue = 1, .ctx = 512, .threads = omp_get_max_threads() + 3};
    CHECK(srv_engine_create(&e, &m, 1, tok, &eo) == TUNA_OK);
    if (!e) return;
    char text[4000] = "";
    for (int i = 0; i < 45; i++) strcat(text, "The cat sat on the mat. ");
    int n = 0;
    int32_t *ids = encode(tok, text, &n);
    tuna_gen_opts o = {.max_new_tokens = 150};
    tuna_sample_args_default(&o.sample);
    o.sample.temperature = 0;
    srv_request *a = NULL, *b = NULL, *c = NULL;
    CHECK(ids && n > 250 && n + 150 <= 512 && srv_engine_submit(e, 0, ids, n, &o, &a) == SRV_SUBMITTED);
    CHECK(srv_engine_submit(e, 0, ids, n, &o, &b) == SRV_SUBMITTED);
    if (b) srv_request_cancel(b);
    CHECKF(srv_engine_submit(e, 0, ids, n, &o, &c) == SRV_SUBMITTED, "a cancelled queued request leaves its place to the next");
    int pt, ct;
    const char *fin, *err;
    srv_request *all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (!all[i]) continue;
        char *t = collect(all[i], NULL, 0);
        srv_request_result(all[i], &pt, &ct, &fin, &err);
        if (i == 1) CHECKF(err && !strcmp(err, "cancelled"), "the purged request ends as cancelled");
        else CHECKF(!err && ct == 150, "request %d runs to its limit with %d threads (%d tokens, %s)", i, eo.threads, ct, err ? err : fin);
        free(t);
        srv_request_release(all[i]);
    }
    srv_engine_free(e);
    free(ids);
    tuna_model_free(m);
    tuna_tokenizer_free(tok);
}

/* a decoder stepped from a thread with a larger OpenMP team than the one
 * that created it: same logits, no write past its scratch (ASan tier), and
 * the caller's team size is left as it was */
static void test_decoder_larger_team(void) {
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    if (tuna_model_load(&m, MODEL) != TUNA_OK || tuna_tokenizer_load(&tok, MODEL) != TUNA_OK) { CHECK(0); return; }
    char text[3000] = "";
    for (int i = 0; i < 40; i++) strcat(text, "The dog ran to the park. ");
    int n = 0, row = 0, V = tuna_model_config(m)->V;
    int32_t *ids = encode(tok, text, &n);
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    tuna_decoder *d1 = NULL, *d2 = NULL;
    int base = omp_get_max_threads();
    CHECK(ids && tuna_decoder_create(&d1, m, 1, 512, 512) == TUNA_OK && tuna_decoder_create(&d2, m, 1, 512, 512) == TUNA_OK);
    if (d1 && d2) {
        CHECK(tuna_decoder_step(d1, &row, 1, ids, n, a) == TUNA_OK);
        omp_set_num_threads(base + 3);
        CHECK(tuna_decoder_step(d2, &row, 1, ids, n, b) == TUNA_OK);
        CHECKF(omp_get_max_threads() == base + 3, "the caller's team size is restored (%d)", omp_get_max_threads());
        omp_set_num_threads(base);
        CHECKF(rel_l2(b, a, V) < 1e-6, "logits with a larger calling team: rel %.3g", rel_l2(b, a, V));
    }
    tuna_decoder_free(d1);
    tuna_decoder_free(d2);
    free(a);
    free(b);
    free(ids);
    tuna_model_free(m);
    tuna_tokenizer_free(tok);
}

static int utf8_whole(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

typedef struct { int pieces, broken; } piece_check;
static void check_piece(void *ctx, const char *text, size_t len) {
    piece_check *pc = ctx;
    pc->pieces++;
    pc->broken += !utf8_whole(text, len);
}

/* streamed text with a stop string is held back by bytes, but handed out in
 * whole characters (a JSON string cannot carry half of one) */
static void test_stream_whole_chars(void) {
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    if (tuna_model_load(&m, MODEL) != TUNA_OK || tuna_tokenizer_load(&tok, MODEL) != TUNA_OK) { CHECK(0); return; }
    tuna_decoder *d = NULL;
    CHECK(tuna_decoder_create(&d, m, 1, 256, 64) == TUNA_OK);
    int n = 0;
    int32_t *ids = encode(tok, "She said \xe2\x80\x99hello\xe2\x80\x99 \xc3\xa9t\xc3\xa9 \xe2\x80\x94 caf\xc3\xa9", &n);
    const char *stops[1] = {"zzzz"};
    piece_check pc = {0, 0};
    int multibyte = 0;
    for (int seed = 1; d && ids && seed <= 30; seed++) {
        tuna_gen_opts o = {.max_new_tokens = 120, .stop = stops, .n_stop = 1, .on_text = check_piece, .ctx = &pc};
        tuna_sample_args_default(&o.sample);
        o.sample.temperature = 2.0f;
        o.sample.top_k = 0;
        o.sample.seed = (uint64_t)seed;
        tuna_gen_result res = {0};
        CHECK(tuna_generate(d, tok, ids, n, &o, &res) == TUNA_OK);
        for (size_t i = 0; i < res.text_len; i++) multibyte += (unsigned char)res.text[i] >= 0x80;
        tuna_gen_result_free(&res);
    }
    CHECKF(multibyte > 0, "the sampled text holds multi-byte characters (%d bytes)", multibyte);
    CHECKF(pc.broken == 0, "%d of %d streamed pieces split a UTF-8 character", pc.broken, pc.pieces);
    tuna_decoder_free(d);
    free(ids);
    tuna_model_free(m);
    tuna_tokenizer_free(tok);
}

static int parse(const char *body, int chat, srv_params *p, srv_error *e) { return srv_parse_request(body, strlen(body), chat, p, e); }

/* the request checks and their errors, known answers */
static void test_request_parse(void) {
    srv_params p;
    srv_error e;
    CHECK(parse("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi \"},"
                "{\"type\":\"text\",\"text\":\"there\"}]}],\"max_tokens\":7,\"temperature\":0,\"top_p\":0.5,\"seed\":3,\"stop\":[\"a\",\"b\"],"
                "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,\"presence_penalty\":0,\"user\":\"x\"}", 1, &p, &e) == 0);
    CHECK(p.model && !strcmp(p.model, "m") && p.max_tokens == 7 && p.temperature == 0 && p.top_p == 0.5 && p.has_seed && p.seed == 3);
    CHECK(p.n_stop == 2 && !strcmp(p.stop[1], "b") && p.stream && p.include_usage);
    CHECK(json_array_size(p.messages) == 2 && !strcmp(json_string_value(json_object_get(json_array_get(p.messages, 1), "content")), "Hi there"));
    srv_params_clear(&p);
    CHECK(parse("{\"messages\":[{\"role\":\"developer\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":null}],\"max_completion_tokens\":3}", 1, &p, &e) == 0);
    CHECK(!p.model && p.max_tokens == 3 && p.temperature == 1 && p.top_p == 1 && !p.has_seed && !p.stream);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(p.messages, 0), "role")), "system"));
    srv_params_clear(&p);
    CHECK(parse("{\"prompt\":[\"Once\"],\"stop\":\"\\n\"}", 0, &p, &e) == 0 && p.prompt && !strcmp(p.prompt, "Once") && p.n_stop == 1 && p.max_tokens == -1);
    srv_params_clear(&p);
    CHECK(parse("{\"prompt\":[1,2,3]}", 0, &p, &e) == 0 && p.n_prompt_ids == 3 && p.prompt_ids[2] == 3);
    srv_params_clear(&p);
    struct { const char *body; int chat; const char *param, *code, *in_message; } bad[] = {
        {"{\"messages\":[", 1, "", "invalid_json", "could not parse"},
        {"[1]", 1, "body", "invalid_type", "expected an object"},
        {"{\"model\":\"m\"}", 1, "messages", "missing_required_parameter", "'messages'"},
        {"{\"messages\":[]}", 1, "messages", "empty_array", "empty array"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"x\"}", 1, "max_tokens", "invalid_type", "expected an integer, but got a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"5\"}", 1, "max_tokens", "invalid_type", "expected an integer, but got a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", 1, "temperature", "invalid_type", "expected a number, but got a string"},
        {"{\"prompt\":\"x\",\"top_p\":\"0.9\"}", 0, "top_p", "invalid_type", "expected a number, but got a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", 1, "max_tokens", "invalid_value", "got 0"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 1, "n", "unsupported_value", "n = 1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", 1, "temperature", "invalid_value", "[0, 2]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":0}", 1, "top_p", "invalid_value", "greater than 0"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 1, "stream", "invalid_type", "a boolean"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 1, "stop", "array_above_max_length", "maximum length 4"},
        {"{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 1, "messages", "invalid_value", "'wizard'"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", 1, "messages[0].content", "unsupported_content", "image_url"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", 1, "logprobs", "unsupported_parameter", "not supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"frequency_penalty\":0.5}", 1, "frequency_penalty", "unsupported_parameter", "other than 0"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model\":5}", 1, "model", "invalid_type", "a string"},
        {"{\"prompt\":[\"a\",\"b\"]}", 0, "prompt", "invalid_value", "one prompt per request"},
        {"{\"prompt\":5}", 0, "prompt", "invalid_type", "a string or an array"},
        {"{\"prompt\":[1,-2]}", 0, "prompt", "invalid_value", "token id"},
        {"{\"prompt\":\"x\",\"echo\":true}", 0, "echo", "unsupported_parameter", "not supported"},
        {"{\"a\":1,\"a\":2,\"prompt\":\"x\"}", 0, "", "invalid_json", "duplicate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i].body, bad[i].chat, &p, &e);
        CHECKF(rc == 400 && e.status == 400 && !strcmp(e.param, bad[i].param) && e.code && !strcmp(e.code, bad[i].code) &&
                   strstr(e.message, bad[i].in_message),
               "%s -> %d param '%s' code %s: %s", bad[i].body, rc, e.param, e.code ? e.code : "-", e.message);
        CHECK(!p.model && !p.messages && !p.prompt && !p.n_stop); /* nothing left behind on error */
    }
    srv_fail(&e, 404, "invalid_request_error", "model", "model_not_found", "The model '%s' does not exist.", "x");
    char *js = srv_error_json(&e);
    json_t *o = js ? json_loads(js, 0, NULL) : NULL;
    json_t *eo = json_object_get(o, "error");
    CHECK(eo && !strcmp(json_string_value(json_object_get(eo, "message")), "The model 'x' does not exist.") &&
          !strcmp(json_string_value(json_object_get(eo, "type")), "invalid_request_error") &&
          !strcmp(json_string_value(json_object_get(eo, "param")), "model") && !strcmp(json_string_value(json_object_get(eo, "code")), "model_not_found"));
    json_decref(o);
    free(js);
    srv_fail(&e, 500, "server_error", NULL, NULL, "boom");
    js = srv_error_json(&e);
    o = js ? json_loads(js, 0, NULL) : NULL;
    CHECK(o && json_is_null(json_object_get(json_object_get(o, "error"), "param")) && json_is_null(json_object_get(json_object_get(o, "error"), "code")));
    json_decref(o);
    free(js);
}

int main(void) {
    test_share();
    test_engine_batching();
    test_engine_limits();
    test_engine_nonfinite_logits();
    test_queue_purge();
    test_decoder_larger_team();
    test_stream_whole_chars();
    test_request_parse();
    return test_done();
}
