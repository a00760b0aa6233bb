/* test_data_format.c — record formats, bad-record reports (exact FILE:LINE:
 * reason texts), the skip / max-bad / strict policy, `data clean` (exact and
 * near duplicates, invalid UTF-8, empty responses, determinism) and `data
 * split` (deterministic, disjoint, complete, fraction, order independence),
 * the policy replayed from a remembered read (token cache hits), data read
 * from a pipe (whole) and refused inputs (a directory, /dev/zero, a pipe over
 * the limit), plus the real shared files (parse with the counts MANIFEST.md states). */
#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "data/reader_internal.h"
#include "tuna.h"

static char tmpdir[256];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static long count_lines(const char *path) {
    char *s = read_all(path, NULL);
    if (!s) return -1;
    long n = 0;
    for (char *p = s; *p; p++) n += *p == '\n';
    free(s);
    return n;
}

/* parses one line; returns status, *why the kind */
static tuna_status parse1(tuna_record *r, const char *line, tuna_bad_kind *why) {
    return tuna_record_parse(r, line, strlen(line), NULL, why);
}

/* ---- formats ---- */
static void test_formats(void) {
    tuna_record r;
    memset(&r, 0, sizeof r);
    tuna_bad_kind why;

    CHECK(parse1(&r, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                     "{\"role\":\"assistant\",\"content\":\"Hello!\"}]}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_CHAT && r.format == TUNA_FORMAT_MESSAGES && r.n_messages == 3);
    CHECK(r.messages[0].role == TUNA_ROLE_SYSTEM && !strcmp(r.messages[2].content, "Hello!") && r.messages[2].len == 6);
    CHECK(r.messages[1].loss_weight == -1 && r.label == -1);
    json_t *j = tuna_messages_to_json(r.messages, r.n_messages);
    char *js = json_dumps(j, JSON_COMPACT);
    CHECK(js && !strcmp(js, "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                            "{\"role\":\"assistant\",\"content\":\"Hello!\"}]"));
    free(js);
    json_decref(j);

    CHECK(parse1(&r, "{\"conversations\":[{\"from\":\"human\",\"value\":\"2+2?\"},{\"from\":\"gpt\",\"value\":\"4\"}]}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_CHAT && r.format == TUNA_FORMAT_SHAREGPT && r.n_messages == 2);
    CHECK(r.messages[0].role == TUNA_ROLE_USER && r.messages[1].role == TUNA_ROLE_ASSISTANT && !strcmp(r.messages[1].content, "4"));

    /* Alpaca: instruction + "\n" + input (LLaMA-Factory), system and history */
    CHECK(parse1(&r, "{\"instruction\":\"Translate\",\"input\":\"chat\",\"output\":\"cat\",\"system\":\"S\","
                     "\"history\":[[\"u1\",\"a1\"]]}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_CHAT && r.format == TUNA_FORMAT_ALPACA && r.n_messages == 5);
    CHECK(r.messages[0].role == TUNA_ROLE_SYSTEM && !strcmp(r.messages[1].content, "u1") && !strcmp(r.messages[2].content, "a1"));
    CHECK(!strcmp(r.messages[3].content, "Translate\nchat") && !strcmp(r.messages[4].content, "cat"));
    CHECK(parse1(&r, "{\"instruction\":\"Say hi\",\"input\":\"\",\"output\":\"hi\"}", &why) == TUNA_OK);
    CHECK(r.n_messages == 2 && !strcmp(r.messages[0].content, "Say hi"));
    tuna_data_options o;
    tuna_data_options_init(&o);
    o.instruction_sep = "\n\n";
    const char *al = "{\"instruction\":\"A\",\"input\":\"B\",\"output\":\"C\"}";
    CHECK(tuna_record_parse(&r, al, strlen(al), &o, &why) == TUNA_OK && !strcmp(r.messages[0].content, "A\n\nB"));

    /* content parts (HF multimodal / LLaMA-Factory v1), loss_weight */
    CHECK(parse1(&r, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"value\":\"b\"}],"
                     "\"loss_weight\":0.0},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"value\":\"c\"}],\"loss_weight\":1.0}]}",
                 &why) == TUNA_OK);
    CHECK(!strcmp(r.messages[0].content, "ab") && r.messages[0].loss_weight == 0 && r.messages[1].loss_weight == 1);

    CHECK(parse1(&r, "{\"prompt\":\"The sky is\",\"completion\":\" blue.\"}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_PROMPT_COMPLETION && !r.prompt.is_messages && !strcmp(r.completion.text, " blue."));
    CHECK(parse1(&r, "{\"prompt\":[{\"role\":\"user\",\"content\":\"q\"}],\"completion\":[{\"role\":\"assistant\",\"content\":\"a\"}],\"label\":false}", &why) == TUNA_OK);
    CHECK(r.prompt.is_messages && r.prompt.n == 1 && r.completion.n == 1 && r.label == 0);

    CHECK(parse1(&r, "{\"text\":\"Once upon a time.\"}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_TEXT && !strcmp(r.text, "Once upon a time.") && r.text_len == 17);

    CHECK(parse1(&r, "{\"prompt\":\"Q?\",\"chosen\":\"good\",\"rejected\":\"bad\"}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_PREFERENCE && r.format == TUNA_FORMAT_PREFERENCE && !strcmp(r.prompt.text, "Q?"));
    CHECK(!strcmp(r.chosen.text, "good") && !strcmp(r.rejected.text, "bad"));

    /* implicit prompt, strings: longest common prefix, the space stays with the responses */
    CHECK(parse1(&r, "{\"chosen\":\"\\n\\nHuman: hi\\n\\nAssistant: hello\",\"rejected\":\"\\n\\nHuman: hi\\n\\nAssistant: go away\"}", &why) == TUNA_OK);
    CHECK(r.format == TUNA_FORMAT_PREFERENCE_IMPLICIT && !strcmp(r.prompt.text, "\n\nHuman: hi\n\nAssistant:"));
    CHECK(!strcmp(r.chosen.text, " hello") && !strcmp(r.rejected.text, " go away"));
    /* never split a UTF-8 character: \u00e9 (C3 A9) vs \u00e8 (C3 A8) */
    CHECK(parse1(&r, "{\"chosen\":\"caf\\u00e9\",\"rejected\":\"caf\\u00e8\"}", &why) == TUNA_OK);
    CHECK(!strcmp(r.prompt.text, "caf") && !strcmp(r.chosen.text, "\xC3\xA9"));

    /* implicit prompt, messages: longest common prefix of whole messages */
    CHECK(parse1(&r, "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"yes\"}],"
                     "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"no\"}]}", &why) == TUNA_OK);
    CHECK(r.prompt.is_messages && r.prompt.n == 1 && !strcmp(r.prompt.msgs[0].content, "q"));
    CHECK(r.chosen.n == 1 && !strcmp(r.chosen.msgs[0].content, "yes") && r.rejected.n == 1 && !strcmp(r.rejected.msgs[0].content, "no"));
    /* LLaMA-Factory: conversations + chosen/rejected message objects */
    CHECK(parse1(&r, "{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}],\"chosen\":{\"from\":\"gpt\",\"value\":\"A\"},"
                     "\"rejected\":{\"from\":\"gpt\",\"value\":\"B\"}}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_PREFERENCE && r.prompt.n == 1 && r.chosen.n == 1 && !strcmp(r.rejected.msgs[0].content, "B"));
    /* UltraFeedback: string prompt + full conversations -> TRL extracts the prompt */
    CHECK(parse1(&r, "{\"prompt\":\"q\",\"messages\":[],\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"y\"}],"
                     "\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"n\"}]}", &why) == TUNA_OK);
    CHECK(r.format == TUNA_FORMAT_PREFERENCE_IMPLICIT && r.prompt.n == 1 && r.chosen.n == 1);

    CHECK(parse1(&r, "{\"input_ids\":[1,2,3],\"labels\":[-100,2,3]}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_PRETOKENIZED && r.n_ids == 3 && r.input_ids[2] == 3 && r.labels[0] == -100);
    CHECK(parse1(&r, "{\"input_ids\":[5]}\r\n", &why) == TUNA_OK && r.labels == NULL && r.raw_len == 17);

    /* pre-tokenized preference: ids as given */
    CHECK(parse1(&r, "{\"prompt_ids\":[1,7],\"chosen_ids\":[4,5,2],\"rejected_ids\":[6]}", &why) == TUNA_OK);
    CHECK(r.kind == TUNA_RECORD_PREFERENCE_TOKENS && r.format == TUNA_FORMAT_PREFERENCE_PRETOKENIZED);
    CHECK(r.n_ids == 2 && r.input_ids[1] == 7 && r.n_chosen == 3 && r.chosen_ids[2] == 2 && r.n_rejected == 1 && r.rejected_ids[0] == 6);
    CHECK(!strcmp(tuna_record_format_name(r.format), "preference_pretokenized"));
    {
        char *ct = NULL;
        size_t cl = 0;
        CHECK(tuna_record_text(&r, 0, &ct, &cl) == TUNA_OK && ct && !strcmp(ct, "\x1f" "1 7\x1e\x1f" "4 5 2\x1e\x1f" "6\x1e"));
        free(ct);
    }
    CHECK(parse1(&r, "{\"prompt_ids\":[1],\"chosen_ids\":[4]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_KEYS);
    CHECK(strstr(tuna_last_error(), "rejected_ids") != NULL);
    CHECK(parse1(&r, "{\"prompt_ids\":[],\"chosen_ids\":[4],\"rejected_ids\":[5]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_VALUE);
    CHECK(parse1(&r, "{\"prompt_ids\":[1],\"chosen_ids\":[],\"rejected_ids\":[5]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_EMPTY);
    CHECK(parse1(&r, "{\"prompt_ids\":[1],\"chosen_ids\":[4,5],\"rejected_ids\":[4,5]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_VALUE);
    CHECK(parse1(&r, "{\"prompt_ids\":[1],\"chosen_ids\":[4,-1],\"rejected_ids\":[5]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_VALUE);
    CHECK(parse1(&r, "{\"prompt_ids\":[1],\"chosen_ids\":\"4\",\"rejected_ids\":[5]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_TYPE);
    CHECK(parse1(&r, "{\"input_ids\":[1],\"chosen_ids\":[4],\"rejected_ids\":[5]}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_KEYS);

    /* canonical text and its normalisation */
    char *t;
    size_t tl;
    CHECK(parse1(&r, "{\"messages\":[{\"role\":\"user\",\"content\":\"  Hello \\t World \"},{\"role\":\"assistant\",\"content\":\"\\uFF21b\"}]}", &why) == TUNA_OK);
    CHECK(tuna_record_text(&r, 1, &t, &tl) == TUNA_OK);
    CHECK(t && !strcmp(t, "user\x1fhello world\x1e" "assistant\x1f" "ab\x1e") && tl == strlen(t));
    free(t);
    CHECK(tuna_record_text(&r, 0, &t, &tl) == TUNA_OK);
    CHECK(t && !strcmp(t, "user\x1f  Hello \t World \x1e" "assistant\x1f\xEF\xBC\xA1" "b\x1e"));
    free(t);
    tuna_record_clear(&r);
    tuna_record_clear(NULL);
}

static void test_utf8(void) {
    struct { const char *s; size_t n, bad; } c[] = {
        {"plain", 5, 5},
        {"\xC3\xA9", 2, 2},
        {"\xF0\x9F\x98\x80", 4, 4},            /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, 4},            /* U+10FFFF */
        {"a\xC0\xAF", 3, 1},                   /* overlong '/' */
        {"\xE0\x80\xAF", 3, 0},                /* overlong, 3 bytes */
        {"\xF0\x80\x80\xAF", 4, 0},            /* overlong, 4 bytes */
        {"\xED\xA0\x80", 3, 0},                /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", 4, 0},            /* U+110000 */
        {"ab\xC3", 3, 2},                      /* truncated */
        {"\x80", 1, 0},                        /* stray continuation */
        {"\xFF", 1, 0},
        {"\xE2\x82", 2, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        CHECKF(tuna_utf8_check(c[i].s, c[i].n) == c[i].bad, "case %zu", i);
}

/* a \u0000 escape is named as what it is, not by the JSON library's flag */
static void test_nul_escape(void) {
    tuna_record r = {0};
    tuna_bad_kind why;
    CHECK(parse1(&r, "{\"text\": \"a\\u0000b\"}", &why) == TUNA_ERR_FORMAT && why == TUNA_BAD_JSON);
    const char *e = tuna_last_error();
    CHECKF(strstr(e, "NUL characters (\\u0000) are not allowed") && !strstr(e, "JSON_ALLOW_NUL"), "%s", e);
    tuna_record_clear(&r);
}

/* ---- malformed records: every reason, with FILE:LINE ---- */
typedef struct {
    char msgs[64][400];
    tuna_bad_kind kinds[64];
    int n;
} collected;

static void collect(void *ctx, const tuna_bad_record *b) {
    collected *c = ctx;
    if (c->n < 64) {
        snprintf(c->msgs[c->n], sizeof c->msgs[0], "%s", b->message);
        c->kinds[c->n++] = b->kind;
    }
}

static void test_malformed(void) {
    struct { const char *line, *reason; tuna_bad_kind kind; } cases[] = {
        {"{\"messages\": [", NULL, TUNA_BAD_JSON},
        {"{\"text\": \"a\", \"text\": \"b\"}", NULL, TUNA_BAD_JSON},
        {"{\"text\": \"caf\xC3\"}", "invalid UTF-8 (byte 0xC3 at column 14)", TUNA_BAD_UTF8},
        {"{\"text\": \"\xC0\xAF\"}", "invalid UTF-8 (byte 0xC0 at column 11)", TUNA_BAD_UTF8},
        {"{\"text\": \"\xED\xA0\x80\"}", "invalid UTF-8 (byte 0xED at column 11)", TUNA_BAD_UTF8},
        {"[1, 2]", "record is an array, expected a JSON object", TUNA_BAD_TYPE},
        {"{\"foo\": 1}", "no known keys (expected messages, conversations, instruction/output, prompt/completion, text, chosen/rejected, input_ids or chosen_ids/rejected_ids)", TUNA_BAD_KEYS},
        {"{\"instruction\": \"x\"}", "missing key \"output\" (an Alpaca record needs instruction and output)", TUNA_BAD_KEYS},
        {"{\"output\": \"x\"}", "missing key \"instruction\" (an Alpaca record needs instruction and output)", TUNA_BAD_KEYS},
        {"{\"prompt\": \"x\"}", "\"prompt\" without \"completion\" (or \"chosen\"/\"rejected\")", TUNA_BAD_KEYS},
        {"{\"chosen\": \"x\"}", "missing key \"rejected\" (a preference record needs chosen and rejected)", TUNA_BAD_KEYS},
        {"{\"messages\": \"hi\"}", "\"messages\" is a string, expected a list of messages", TUNA_BAD_TYPE},
        {"{\"messages\": []}", "\"messages\" is empty", TUNA_BAD_VALUE},
        {"{\"messages\": [{\"content\": \"hi\"}]}", "messages[0]: missing \"role\"", TUNA_BAD_KEYS},
        {"{\"messages\": [{\"role\": \"bot\", \"content\": \"hi\"}]}", "messages[0]: unknown role \"bot\" (expected system, user or assistant)", TUNA_BAD_VALUE},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0]: \"content\" is an integer, expected a string or a list of text parts", TUNA_BAD_TYPE},
        {"{\"messages\": [{\"role\": \"user\"}]}", "messages[0]: missing \"content\"", TUNA_BAD_KEYS},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}]}]}", "messages[0]: content[0] has type \"image\" (only text parts are supported)", TUNA_BAD_VALUE},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}",
         "role order: messages[1] is a system message (only the first message may be system)", TUNA_BAD_ROLE},
        {"{\"messages\": [{\"role\": \"assistant\", \"content\": \"a\"}]}", "role order: messages[0] is \"assistant\" but the conversation must start with a user turn", TUNA_BAD_ROLE},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}", "role order: messages[1] is \"user\" after \"user\" (user and assistant must alternate)", TUNA_BAD_ROLE},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", "role order: the last message (messages[0]) is \"user\"; a training conversation must end with an assistant turn", TUNA_BAD_ROLE},
        {"{\"messages\": [{\"role\": \"system\", \"content\": \"a\"}]}", "role order: no user or assistant turn (only a system message)", TUNA_BAD_ROLE},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \" \\n\"}]}", "empty response (messages[1])", TUNA_BAD_EMPTY},
        {"{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"\"}]}", "empty response (conversations[1])", TUNA_BAD_EMPTY},
        {"{\"instruction\": \"a\", \"input\": \"\", \"output\": \"\"}", "empty response (\"output\")", TUNA_BAD_EMPTY},
        {"{\"instruction\": \"\", \"output\": \"b\"}", "empty prompt (\"instruction\" and \"input\" are empty)", TUNA_BAD_VALUE},
        {"{\"instruction\": 1, \"output\": \"b\"}", "\"instruction\" is an integer, expected a string", TUNA_BAD_TYPE},
        {"{\"instruction\": \"a\", \"output\": \"b\", \"history\": [[\"u\"]]}", "\"history\"[0] is not a [user, assistant] pair of strings", TUNA_BAD_TYPE},
        {"{\"prompt\": \"a\", \"completion\": \"\"}", "empty response (\"completion\")", TUNA_BAD_EMPTY},
        {"{\"prompt\": \"a\", \"completion\": [{\"role\": \"assistant\", \"content\": \"b\"}]}", "\"prompt\" is a string but \"completion\" is a message list (both strings or both message lists)", TUNA_BAD_TYPE},
        {"{\"text\": \"\"}", "empty text (\"text\")", TUNA_BAD_EMPTY},
        {"{\"text\": null}", "\"text\" is null, expected a string", TUNA_BAD_TYPE},
        {"{\"prompt\": \"q\", \"chosen\": \"same\", \"rejected\": \"same\"}", "\"chosen\" and \"rejected\" are identical", TUNA_BAD_VALUE},
        {"{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": [{\"role\": \"assistant\", \"content\": \"b\"}]}", "\"chosen\" is a string but \"rejected\" is a message list (both strings or both message lists)", TUNA_BAD_TYPE},
        {"{\"chosen\": \"Human: hi Assistant: ok\", \"rejected\": \"Human: hi Assistant:\"}", "empty response (\"rejected\")", TUNA_BAD_EMPTY},
        {"{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": [{\"role\": \"user\", \"content\": \"a\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"b\"}]}",
         "role order: chosen[0] is \"user\" after \"user\" (user and assistant must alternate)", TUNA_BAD_ROLE},
        {"{\"chosen\": \"a\", \"rejected\": \"b\", \"label\": \"yes\"}", "\"label\" is a string, expected true or false", TUNA_BAD_TYPE},
        {"{\"input_ids\": [1, \"2\"]}", "\"input_ids\"[1] is a string, expected an integer", TUNA_BAD_TYPE},
        {"{\"input_ids\": [1, 2], \"labels\": [1]}", "\"labels\" has 1 entries but \"input_ids\" has 2", TUNA_BAD_VALUE},
        {"{\"input_ids\": [-5]}", "\"input_ids\"[0] = -5 is not a token id", TUNA_BAD_VALUE},
        {"{\"input_ids\": []}", "empty sequence (\"input_ids\" is empty)", TUNA_BAD_EMPTY},
        {"{\"labels\": [1]}", "missing key \"input_ids\" (\"labels\" alone is not a record)", TUNA_BAD_KEYS},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"loss_weight\": \"x\"}]}", "messages[0]: \"loss_weight\" is a string, expected a number", TUNA_BAD_TYPE},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    CHECK(n >= 20);
    char path[512];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmpdir);
    FILE *f = fopen(path, "wb");
    /* good line first, then each case, with a blank line in between to check
     * that line numbers count every physical line */
    fputs("{\"text\": \"good\"}\n\n", f);
    for (int i = 0; i < n; i++) fprintf(f, "%s\n", cases[i].line);
    fclose(f);

    collected col;
    memset(&col, 0, sizeof col);
    tuna_data_options o;
    tuna_data_options_init(&o);
    o.max_bad = 1.0;
    o.on_bad = collect;
    o.ctx = &col;
    tuna_data_reader *rd = NULL;
    CHECK(tuna_data_reader_open(&rd, path, &o) == TUNA_OK);
    tuna_record rec;
    memset(&rec, 0, sizeof rec);
    int got, good = 0;
    tuna_status s;
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) good++;
    CHECK(s == TUNA_OK && good == 1);
    CHECK(col.n == n);
    for (int i = 0; i < n && i < col.n; i++) {
        char want[1200];
        if (cases[i].reason) {
            snprintf(want, sizeof want, "%s:%d: %s", path, i + 3, cases[i].reason);
            CHECKF(!strcmp(col.msgs[i], want), "case %d:\n  got  %s\n  want %s", i, col.msgs[i], want);
        } else {
            snprintf(want, sizeof want, "%s:%d: not valid JSON: ", path, i + 3);
            CHECKF(!strncmp(col.msgs[i], want, strlen(want)), "case %d: got %s", i, col.msgs[i]);
        }
        CHECKF(col.kinds[i] == cases[i].kind, "case %d: kind %d, want %d", i, col.kinds[i], cases[i].kind);
    }
    tuna_data_stats st;
    tuna_data_reader_stats(rd, &st);
    CHECK(st.records == n + 1 && st.good == 1 && st.bad == n);
    CHECK(st.bad_by_kind[TUNA_BAD_UTF8] == 3 && st.bad_by_kind[TUNA_BAD_JSON] == 2);
    tuna_data_reader_free(rd);
    tuna_record_clear(&rec);

    /* JSON array file: FILE:LINE: record N: reason */
    snprintf(path, sizeof path, "%s/bad_array.json", tmpdir);
    write_file(path, "[\n  {\"text\": \"ok\"},\n  {\"text\": \"\"},\n  {\n    \"messages\": [{\"role\": \"user\", \"content\": \"a\"}]\n  }\n]\n");
    memset(&col, 0, sizeof col);
    CHECK(tuna_data_reader_open(&rd, path, &o) == TUNA_OK && tuna_data_reader_is_array(rd));
    good = 0;
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) {
        good++;
        CHECK(rec.line == 2 && rec.index == 0 && !strcmp(rec.raw, "{\"text\":\"ok\"}"));
    }
    CHECK(s == TUNA_OK && good == 1 && col.n == 2);
    char want[1200];
    snprintf(want, sizeof want, "%s:3: record 1: empty text (\"text\")", path);
    CHECKF(!strcmp(col.msgs[0], want), "got %s", col.msgs[0]);
    snprintf(want, sizeof want, "%s:4: record 2: role order: the last message (messages[0]) is \"user\"; a training conversation must end with an assistant turn", path);
    CHECKF(!strcmp(col.msgs[1], want), "got %s", col.msgs[1]);
    tuna_data_reader_free(rd);
    tuna_record_clear(&rec);

    /* JSONL details: a UTF-8 BOM, CRLF line ends and blank lines (not
     * records, but counted as lines) */
    snprintf(path, sizeof path, "%s/crlf.jsonl", tmpdir);
    write_file(path, "\xEF\xBB\xBF{\"text\": \"a\"}\r\n\r\n   \n{\"text\": \"b\"}\r\n{\"text\": \"c\"}");
    CHECK(tuna_data_reader_open(&rd, path, NULL) == TUNA_OK && !tuna_data_reader_is_array(rd));
    good = 0;
    long lines[3] = {0};
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) {
        if (good < 3) lines[good] = rec.line;
        CHECK(rec.raw_len == 13 && rec.raw[12] == '}' && rec.index == good);
        good++;
    }
    CHECK(s == TUNA_OK && good == 3 && lines[0] == 1 && lines[1] == 4 && lines[2] == 5);
    tuna_data_reader_free(rd);
    tuna_record_clear(&rec);

    /* a broken array cannot skip one record: fails at open with FILE:LINE */
    snprintf(path, sizeof path, "%s/broken_array.json", tmpdir);
    write_file(path, "[\n {\"text\": \"a\"},\n {\"text\": }\n]\n");
    CHECK(tuna_data_reader_open(&rd, path, NULL) == TUNA_ERR_FORMAT && rd == NULL);
    snprintf(want, sizeof want, "%s:3: not valid JSON", path);
    CHECKF(!strncmp(tuna_last_error(), want, strlen(want)), "got %s", tuna_last_error());
    snprintf(path, sizeof path, "%s/utf8_array.json", tmpdir);
    write_file(path, "[\n {\"text\": \"a\"},\n {\"text\": \"\xFF\"}\n]\n");
    CHECK(tuna_data_reader_open(&rd, path, NULL) == TUNA_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:3: invalid UTF-8 (byte 0xFF at column 12)", path);
    CHECKF(!strncmp(tuna_last_error(), want, strlen(want)), "got %s", tuna_last_error());
    /* gzip refused with a hint; a missing file is an I/O error */
    snprintf(path, sizeof path, "%s/x.jsonl.gz", tmpdir);
    write_file(path, "\x1f\x8b\x08");
    CHECK(tuna_data_reader_open(&rd, path, NULL) == TUNA_ERR_UNSUPPORTED && strstr(tuna_last_error(), "gzip"));
    CHECK(tuna_data_reader_open(&rd, "/nonexistent/x.jsonl", NULL) == TUNA_ERR_IO);
}

/* ---- policy: default 1% max-bad checked at the end, strict stops at the first ---- */
static void test_policy(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/policy.jsonl", tmpdir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 200; i++) {
        if (i == 50 || i == 120) fputs("{\"text\": 1}\n", f);
        else fprintf(f, "{\"text\": \"record %d\"}\n", i);
    }
    fclose(f);
    tuna_record rec;
    memset(&rec, 0, sizeof rec);
    int got, good;
    tuna_status s;
    /* 2 of 200 = 1%: allowed (fail only when more) */
    tuna_data_reader *rd = NULL;
    CHECK(tuna_data_reader_open(&rd, path, NULL) == TUNA_OK);
    good = 0;
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) good++;
    CHECK(s == TUNA_OK && good == 198);
    tuna_data_reader_free(rd);
    /* max_bad 0.5%: fails at the end, after all good records were read */
    tuna_data_options o;
    tuna_data_options_init(&o);
    o.max_bad = 0.005;
    CHECK(tuna_data_reader_open(&rd, path, &o) == TUNA_OK);
    good = 0;
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) good++;
    CHECK(s == TUNA_ERR_FORMAT && good == 198);
    char want[1600];
    snprintf(want, sizeof want, "%s: 2 of 200 records are bad (1.00%%), more than the 0.5%% allowed (--max-bad); first: %s:51: \"text\" is an integer, expected a string",
             path, path);
    CHECKF(!strcmp(tuna_last_error(), want), "got %s", tuna_last_error());
    tuna_data_reader_free(rd);
    /* strict: stops at line 51 */
    tuna_data_options_init(&o);
    o.strict = 1;
    CHECK(tuna_data_reader_open(&rd, path, &o) == TUNA_OK);
    good = 0;
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) good++;
    CHECK(s == TUNA_ERR_FORMAT && good == 50);
    snprintf(want, sizeof want, "%s:51: \"text\" is an integer, expected a string", path);
    CHECKF(!strcmp(tuna_last_error(), want), "got %s", tuna_last_error());
    tuna_data_reader_free(rd);
    /* the policy replayed from a remembered read (a token cache hit) fails
     * with the same lines as reading again */
    tuna_data_options_init(&o);
    o.max_bad = 1.0;
    CHECK(tuna_data_reader_open(&rd, path, &o) == TUNA_OK);
    while ((s = tuna_data_reader_next(rd, &rec, &got)) == TUNA_OK && got) {}
    tuna_data_stats st;
    tuna_data_reader_stats(rd, &st);
    const data_bad_note *notes;
    int n_notes = data_reader_notes(rd, &notes);
    CHECK(n_notes == 2 && notes[0].line == 51 && notes[1].line == 121 && st.bad == 2 && st.records == 200);
    CHECK(data_policy_replay(path, &o, 0, &st, notes, n_notes) == TUNA_OK);
    o.strict = 1;
    CHECK(data_policy_replay(path, &o, 0, &st, notes, n_notes) == TUNA_ERR_FORMAT);
    CHECKF(!strcmp(tuna_last_error(), want), "got %s", tuna_last_error());
    o.strict = 0;
    o.max_bad = 0.005;
    collected c = {0};
    o.on_bad = collect;
    o.ctx = &c;
    CHECK(data_policy_replay(path, &o, 0, &st, notes, n_notes) == TUNA_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: 2 of 200 records are bad (1.00%%), more than the 0.5%% allowed (--max-bad); first: %s:51: \"text\" is an integer, expected a string",
             path, path);
    CHECKF(!strcmp(tuna_last_error(), want), "got %s", tuna_last_error());
    snprintf(want, sizeof want, "%s:121: \"text\" is an integer, expected a string", path);
    CHECKF(c.n == 2 && !strcmp(c.msgs[1], want), "%d reports, %s", c.n, c.msgs[1]);
    tuna_data_reader_free(rd);
    tuna_record_clear(&rec);
}

/* /dev/fd/N of a pipe fed by a child process with text (then EOF) */
static pid_t pipe_from(const char *text, char *path, size_t cap, int *fd) {
    int p[2];
    if (pipe(p) != 0) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        size_t n = strlen(text);
        _exit(write(p[1], text, n) == (ssize_t)n ? 0 : 1);
    }
    close(p[1]);
    *fd = p[0];
    snprintf(path, cap, "/dev/fd/%d", p[0]);
    return pid;
}

/* records read from path (max_bad 1); -1 when it does not open */
static long count_good(const char *path, long *bad) {
    tuna_data_options o;
    tuna_data_options_init(&o);
    o.max_bad = 1.0;
    tuna_data_reader *rd = NULL;
    if (tuna_data_reader_open(&rd, path, &o) != TUNA_OK) return -1;
    tuna_record rec = {0};
    int got;
    long n = 0;
    while (tuna_data_reader_next(rd, &rec, &got) == TUNA_OK && got) n++;
    tuna_data_stats st;
    tuna_data_reader_stats(rd, &st);
    *bad = st.bad;
    tuna_record_clear(&rec);
    tuna_data_reader_free(rd);
    return n;
}

/* a pipe is read once, whole (the format sniff used to lose its first 4 KB);
 * a directory, an endless device and a pipe over the limit are refused */
static void test_pipes(void) {
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap), path[64];
    for (int i = 0; i < 400; i++) len += (size_t)snprintf(text + len, cap - len, "{\"text\": \"record %d\"}\n", i);
    CHECK(len > 8192);
    int fd;
    long bad = -1;
    pid_t pid = pipe_from(text, path, sizeof path, &fd);
    long n = count_good(path, &bad);
    CHECKF(n == 400 && bad == 0, "%ld records, %ld bad from a pipe: %s", n, bad, n < 0 ? tuna_last_error() : "");
    close(fd);
    waitpid(pid, NULL, 0);
    tuna_data_reader *rd = NULL;
    tuna_status st = tuna_data_reader_open(&rd, tmpdir, NULL);
    char want[600];
    snprintf(want, sizeof want, "%s: is a directory", tmpdir);
    CHECKF(st == TUNA_ERR_ARG && !strcmp(tuna_last_error(), want), "%s", tuna_last_error());
    tuna_pretok *p;
    CHECK(tuna_pretok_load(&p, tmpdir, 0) == TUNA_ERR_ARG && strstr(tuna_last_error(), "is a directory") && !p);
    setenv("TUNA_INPUT_MAX_LINE", "4096", 1);
    st = tuna_data_reader_open(&rd, "/dev/zero", NULL);
    CHECKF(st == TUNA_ERR_ARG && !strcmp(tuna_last_error(), "/dev/zero:1: a line longer than 4096 bytes from a pipe or device (TUNA_INPUT_MAX_LINE)"),
           "%s", tuna_last_error());
    unsetenv("TUNA_INPUT_MAX_LINE");
    setenv("TUNA_INPUT_MAX_BYTES", "4096", 1);
    pid = pipe_from(text, path, sizeof path, &fd);
    st = tuna_data_reader_open(&rd, path, NULL);
    CHECKF(st == TUNA_ERR_ARG && strstr(tuna_last_error(), "more than 4096 bytes") && strstr(tuna_last_error(), path),
           "%s", tuna_last_error());
    close(fd);
    waitpid(pid, NULL, 0);
    unsetenv("TUNA_INPUT_MAX_BYTES");
    free(text);
}

/* the reads of a pipe reported through on_read */
typedef struct { int n; uint64_t bytes[16]; int done[16]; } read_log;

static void log_read(void *ctx, const char *file, uint64_t bytes, int done) {
    read_log *l = ctx;
    (void)file;
    if (l->n < 16) { l->bytes[l->n] = bytes; l->done[l->n] = done; }
    l->n++;
}

/* records of path counted with on_read logging to l */
static long count_logged(const char *path, read_log *l) {
    tuna_data_options o;
    tuna_data_options_init(&o);
    CHECK(o.on_read == NULL && o.read_ctx == NULL);
    o.on_read = log_read;
    o.read_ctx = l;
    tuna_data_reader *rd = NULL;
    if (tuna_data_reader_open(&rd, path, &o) != TUNA_OK) return -1;
    tuna_record rec = {0};
    int got;
    long n = 0;
    while (tuna_data_reader_next(rd, &rec, &got) == TUNA_OK && got) n++;
    tuna_record_clear(&rec);
    tuna_data_reader_free(rd);
    return n;
}

/* a pipe read into memory reports once per TUNA_INPUT_PROGRESS_BYTES crossed
 * (reads are at most 64 KiB, under the 100000-byte step: exactly 2 for
 * 250000 bytes) and once more at the end; a small pipe and a regular file
 * report nothing */
static void test_read_progress(void) {
    size_t cap = 300000, len = 0;
    char *text = malloc(cap), path[64];
    for (int i = 0; len < 250000; i++) len += (size_t)snprintf(text + len, cap - len, "{\"text\": \"record %d\"}\n", i);
    setenv("TUNA_INPUT_PROGRESS_BYTES", "100000", 1);
    int fd;
    read_log l = {0};
    pid_t pid = pipe_from(text, path, sizeof path, &fd);
    long n = count_logged(path, &l);
    CHECKF(n > 10000, "%ld records: %s", n, tuna_last_error());
    CHECKF(l.n == 3, "%d reports", l.n);
    CHECKF(l.n == 3 && l.bytes[0] >= 100000 && l.bytes[0] < 200000 && !l.done[0] && l.bytes[1] >= 200000 &&
               l.bytes[1] > l.bytes[0] && !l.done[1] && l.bytes[2] == len && l.done[2],
           "reports %llu/%d %llu/%d %llu/%d of %zu bytes", (unsigned long long)l.bytes[0], l.done[0],
           (unsigned long long)l.bytes[1], l.done[1], (unsigned long long)l.bytes[2], l.done[2], len);
    close(fd);
    waitpid(pid, NULL, 0);
    text[99000] = 0; /* a small pipe: under one step */
    text[98999] = '\n';
    memset(&l, 0, sizeof l);
    pid = pipe_from(text, path, sizeof path, &fd);
    CHECK(count_logged(path, &l) > 0 && l.n == 0);
    close(fd);
    waitpid(pid, NULL, 0);
    char file[300];
    snprintf(file, sizeof file, "%s/progress.jsonl", tmpdir);
    write_file(file, text);
    CHECK(count_logged(file, &l) > 0 && l.n == 0);
    setenv("TUNA_INPUT_PROGRESS_BYTES", "0", 1); /* a step must be positive */
    pid = pipe_from(text, path, sizeof path, &fd);
    CHECK(count_logged(path, &l) == -1 && strstr(tuna_last_error(), "TUNA_INPUT_PROGRESS_BYTES='0'"));
    close(fd);
    waitpid(pid, NULL, 0);
    unsetenv("TUNA_INPUT_PROGRESS_BYTES");
    free(text);
}

/* ---- real files ---- */
static long read_count(const char *path, long *bad, long by_format[TUNA_FORMAT_COUNT]) {
    tuna_data_options o;
    tuna_data_options_init(&o);
    o.max_bad = 1.0;
    tuna_data_reader *rd = NULL;
    if (tuna_data_reader_open(&rd, path, &o)) { fprintf(stderr, "%s\n", tuna_last_error()); return -1; }
    tuna_record rec;
    memset(&rec, 0, sizeof rec);
    int got;
    long n = 0;
    while (tuna_data_reader_next(rd, &rec, &got) == TUNA_OK && got) n++;
    tuna_data_stats st;
    tuna_data_reader_stats(rd, &st);
    *bad = st.bad;
    if (by_format) memcpy(by_format, st.by_format, sizeof st.by_format);
    tuna_record_clear(&rec);
    tuna_data_reader_free(rd);
    return n;
}

static void test_real_files(void) {
    struct { const char *rel; long n; tuna_record_format fmt; } files[] = {
        {"sft/lima/lima_train.json", 1029, TUNA_FORMAT_ALPACA},
        {"sft/llamafactory_demo/alpaca_en_demo.json", 999, TUNA_FORMAT_ALPACA},
        {"sft/llamafactory_demo/v1_sft_demo.jsonl", 500, TUNA_FORMAT_MESSAGES},
        {"preference/llamafactory_demo/dpo_en_demo.json", 300, TUNA_FORMAT_PREFERENCE},
        {"preference/llamafactory_demo/kto_en_demo.json", 300, TUNA_FORMAT_MESSAGES},
        {"preference/llamafactory_demo/v1_dpo_demo.jsonl", 10, TUNA_FORMAT_PREFERENCE_IMPLICIT},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *p = test_shared_path(files[i].rel, files[i].rel);
        if (!p) continue;
        long bad = -1, byf[TUNA_FORMAT_COUNT];
        long n = read_count(p, &bad, byf);
        CHECKF(n == files[i].n && bad == 0 && byf[files[i].fmt] == n, "%s: %ld good, %ld bad", files[i].rel, n, bad);
    }
    /* LIMA: 29 multi-turn records through "history" */
    const char *p = test_shared_path("sft/lima/lima_train.json", "LIMA history");
    if (p) {
        tuna_data_reader *rd = NULL;
        tuna_record rec;
        memset(&rec, 0, sizeof rec);
        int got, multi = 0, first = 1;
        CHECK(tuna_data_reader_open(&rd, p, NULL) == TUNA_OK);
        while (rd && tuna_data_reader_next(rd, &rec, &got) == TUNA_OK && got) {
            if (first) CHECK(!strncmp(rec.messages[0].content, "Can brain cells move?", 21) && rec.line == 2);
            first = 0;
            multi += rec.n_messages > 2;
        }
        CHECK(multi == 29);
        tuna_record_clear(&rec);
        tuna_data_reader_free(rd);
    }
    /* clean on a real JSON array file: its 14 exact duplicates (after
     * normalisation) go, nothing else; kept records become compact JSONL */
    p = test_shared_path("sft/llamafactory_demo/alpaca_en_demo.json", "clean alpaca_en_demo");
    if (p) {
        char out[512], dr[512];
        snprintf(out, sizeof out, "%s/alpaca_clean.jsonl", tmpdir);
        snprintf(dr, sizeof dr, "%s/alpaca_dropped.jsonl", tmpdir);
        tuna_clean_stats st;
        CHECK(tuna_data_clean(p, out, dr, NULL, &st) == TUNA_OK);
        CHECKF(st.kept == 985 && st.by_reason[TUNA_DROP_EXACT_DUP] == 14 && st.dropped == 14, "kept %ld", st.kept);
        CHECK(count_lines(out) == 985 && count_lines(dr) == 14);
        long bad = -1;
        CHECK(read_count(out, &bad, NULL) == 985 && bad == 0);
    }
    /* KTO labels: 150 true / 150 false */
    p = test_shared_path("preference/llamafactory_demo/kto_en_demo.json", "KTO labels");
    if (p) {
        tuna_data_reader *rd = NULL;
        tuna_record rec;
        memset(&rec, 0, sizeof rec);
        int got, t = 0, fl = 0;
        CHECK(tuna_data_reader_open(&rd, p, NULL) == TUNA_OK);
        while (rd && tuna_data_reader_next(rd, &rec, &got) == TUNA_OK && got) { t += rec.label == 1; fl += rec.label == 0; }
        CHECK(t == 150 && fl == 150);
        tuna_record_clear(&rec);
        tuna_data_reader_free(rd);
    }
    /* HH-RLHF (gzip; decompressed here): implicit prompts. A few pairs are
     * genuinely unusable and are reported: one response is a prefix of the
     * other, so after the shared prompt it is empty, or both are identical. */
    struct { const char *rel; long records, bad; } hh[] = {
        {"preference/hh-rlhf/helpful-base_test.jsonl.gz", 2354, 17},
        {"preference/hh-rlhf/harmless-base_test.jsonl.gz", 2312, 5},
    };
    for (int i = 0; i < 2; i++) {
        p = test_shared_path(hh[i].rel, hh[i].rel);
        if (!p) continue;
        char out[512], cmd[1200];
        snprintf(out, sizeof out, "%s/hh%d.jsonl", tmpdir, i);
        snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s'", p, out);
        int unzipped = system(cmd) == 0;
        CHECKF(unzipped, "%s", cmd);
        if (!unzipped) continue;
        long bad = -1, byf[TUNA_FORMAT_COUNT];
        long n = read_count(out, &bad, byf);
        CHECKF(n + bad == hh[i].records && bad == hh[i].bad && byf[TUNA_FORMAT_PREFERENCE_IMPLICIT] == n, "%s: %ld good, %ld bad",
               hh[i].rel, n, bad);
        CHECK(bad * 100 <= n + bad); /* within the default 1% policy */
    }
}

/* ---- clean ---- */
static const char *WORDS[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                              "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"};

/* n words of a pseudo-random sentence for seed */
static void sentence(char *out, size_t cap, unsigned seed, int n) {
    size_t o = 0;
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int i = 0; i < n && o + 20 < cap; i++) {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        o += (size_t)snprintf(out + o, cap - o, "%s%s%u", i ? " " : "", WORDS[((x * 0x2545F4914F6CDD1DULL) >> 40) % 20], (unsigned)(x % 97));
    }
}

static void test_clean(void) {
    char in[512], out[512], dropped[512];
    snprintf(in, sizeof in, "%s/clean_in.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/clean_out.jsonl", tmpdir);
    snprintf(dropped, sizeof dropped, "%s/clean_dropped.jsonl", tmpdir);
    char base[4000], near[4000], far[4000], other[9000];
    sentence(base, sizeof base, 7, 200);
    sentence(other, sizeof other, 8, 500);
    /* near: one word of 200 changed -> Jaccard of 5-shingles about 0.95 */
    strcpy(near, base);
    char *sp = strchr(near + 1000, ' ');
    memcpy(sp + 1, "ZZZZ", 4);
    /* far: every 8th word changed -> Jaccard well below 0.9 */
    strcpy(far, base);
    int w = 0;
    for (char *q = far; *q; q++)
        if (*q == ' ' && ++w % 8 == 0) q[1] = 'Q';
    FILE *f = fopen(in, "wb");
    fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"%s\"}]}\n", base); /* 1 kept */
    fprintf(f, "{\"text\":  \"Hello   World\"}\n");                                                                          /* 2 kept */
    fprintf(f, "{\"text\":\"hello world\"}\n");                                                                              /* 3 exact dup of 2 */
    fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"%s\"}]}\n", near); /* 4 near dup of 1 */
    fprintf(f, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"%s\"}]}\n", far);  /* 5 kept */
    fprintf(f, "{\"text\":\"caf\xC3\"}\n");                                                                                  /* 6 invalid UTF-8 */
    fprintf(f, "{\"instruction\":\"x\",\"output\":\"\"}\n");                                                                 /* 7 empty response */
    fprintf(f, "{\"text\":\"tiny\"}\n");                                                                                     /* 8 too short */
    fprintf(f, "{\"prompt\":\"p\",\"completion\":\"%s\"}\n", other);                                                          /* 9 too long */
    fprintf(f, "{\"text\":\"hello world\"}\n");                                                                              /* 10 exact dup of 2 */
    fclose(f);
    tuna_clean_options o;
    tuna_clean_options_init(&o);
    o.min_chars = 5;
    o.max_chars = 3000;
    tuna_clean_stats st;
    CHECK(tuna_data_clean(in, out, dropped, &o, &st) == TUNA_OK);
    CHECK(st.data.records == 10 && st.kept == 3 && st.dropped == 7);
    CHECK(st.by_reason[TUNA_DROP_EXACT_DUP] == 2 && st.by_reason[TUNA_DROP_NEAR_DUP] == 1 && st.by_reason[TUNA_DROP_BAD] == 2);
    CHECK(st.by_reason[TUNA_DROP_TOO_SHORT] == 1 && st.by_reason[TUNA_DROP_TOO_LONG] == 1);
    CHECK(st.data.bad_by_kind[TUNA_BAD_UTF8] == 1 && st.data.bad_by_kind[TUNA_BAD_EMPTY] == 1);
    CHECK(st.rows > 0 && st.bands * st.rows <= 128);
    /* kept lines are byte-identical (the double spaces of line 2 survive) */
    char *src = read_all(in, NULL), *kept = read_all(out, NULL);
    char expect[20000];
    char *l1 = src, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1,
         *l5 = strchr(l4, '\n') + 1, *l6 = strchr(l5, '\n') + 1;
    snprintf(expect, sizeof expect, "%.*s%.*s", (int)(l3 - l1), l1, (int)(l6 - l5), l5);
    CHECK(kept && !strcmp(kept, expect));
    free(kept);
    /* dropped file: one JSON object per dropped record, with line and reason */
    char *d = read_all(dropped, NULL);
    CHECK(d && count_lines(dropped) == 7);
    const char *want_reasons[] = {"exact_duplicate", "near_duplicate", "invalid_utf8", "empty_response", "too_short", "too_long", "exact_duplicate"};
    const long want_lines[] = {3, 4, 6, 7, 8, 9, 10};
    char *line = d;
    for (int i = 0; i < 7 && line && *line; i++) {
        char *nl = strchr(line, '\n');
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, &je);
        CHECKF(j && !strcmp(json_string_value(json_object_get(j, "reason")), want_reasons[i]) &&
                   json_integer_value(json_object_get(j, "line")) == want_lines[i],
               "dropped %d", i);
        if (i == 0) CHECK(!strcmp(json_string_value(json_object_get(j, "detail")), "same normalised text as line 2"));
        if (i == 0) CHECK(!strcmp(json_string_value(json_object_get(j, "raw")), "{\"text\":\"hello world\"}"));
        if (i == 1) CHECK(strstr(json_string_value(json_object_get(j, "detail")), "with line 1"));
        if (i == 2) CHECK(!strcmp(json_string_value(json_object_get(j, "raw_hex")), "7b2274657874223a22636166c3227d"));
        json_decref(j);
        line = nl ? nl + 1 : NULL;
    }
    /* deterministic: a second run writes identical files */
    char out2[512], dropped2[512];
    snprintf(out2, sizeof out2, "%s/clean_out2.jsonl", tmpdir);
    snprintf(dropped2, sizeof dropped2, "%s/clean_dropped2.jsonl", tmpdir);
    CHECK(tuna_data_clean(in, out2, dropped2, &o, &st) == TUNA_OK);
    char *k1 = read_all(out, NULL), *k2 = read_all(out2, NULL), *d2 = read_all(dropped2, NULL);
    CHECK(k1 && k2 && !strcmp(k1, k2));
    CHECK(d && d2 && !strcmp(d, d2));
    free(k1); free(k2); free(d); free(d2);
    /* near-duplicate detection off: the near pair is kept */
    o.near_dup = 2.0;
    CHECK(tuna_data_clean(in, out2, dropped2, &o, &st) == TUNA_OK && st.by_reason[TUNA_DROP_NEAR_DUP] == 0 && st.kept == 4);
    /* a threshold below the far pair's similarity (about 0.23) catches it too */
    o.near_dup = 0.1;
    CHECK(tuna_data_clean(in, out2, dropped2, &o, &st) == TUNA_OK && st.by_reason[TUNA_DROP_NEAR_DUP] == 2 && st.kept == 2);
    o.near_dup = 0;
    CHECK(tuna_data_clean(in, out2, dropped2, &o, &st) == TUNA_ERR_ARG);
    /* no temporary files left behind */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", tmpdir);
    CHECK(system(cmd) != 0);
    free(src);
}

/* ---- split ---- */
static void test_split(void) {
    char in[512], rev[512], tr[512], va[512], tr2[512], va2[512];
    snprintf(in, sizeof in, "%s/split.jsonl", tmpdir);
    snprintf(rev, sizeof rev, "%s/split_rev.jsonl", tmpdir);
    snprintf(tr, sizeof tr, "%s/split.train.jsonl", tmpdir);
    snprintf(va, sizeof va, "%s/split.val.jsonl", tmpdir);
    snprintf(tr2, sizeof tr2, "%s/rev.train.jsonl", tmpdir);
    snprintf(va2, sizeof va2, "%s/rev.val.jsonl", tmpdir);
    const int N = 1000;
    FILE *f = fopen(in, "wb"), *g = fopen(rev, "wb");
    char lines[1000][80];
    for (int i = 0; i < N; i++) snprintf(lines[i], sizeof lines[i], "{\"prompt\":\"question %d\",\"completion\":\"answer %d\"}", i, i * 7);
    for (int i = 0; i < N; i++) fprintf(f, "%s\n", lines[i]);
    for (int i = N - 1; i >= 0; i--) fprintf(g, "%s\n", lines[i]);
    fclose(f);
    fclose(g);
    tuna_split_stats st;
    CHECK(tuna_data_split(in, tr, va, 0.1, 42, NULL, &st) == TUNA_OK);
    CHECK(st.train + st.val == N && st.data.good == N);
    /* fraction within tolerance: binomial sd = sqrt(1000*0.1*0.9) = 9.5; allow 4 sd */
    CHECKF(st.val >= 62 && st.val <= 138, "val %ld", st.val);
    CHECK(count_lines(tr) == st.train && count_lines(va) == st.val);
    /* disjoint, and union = all: every input line is in exactly one output */
    char *t = read_all(tr, NULL), *v = read_all(va, NULL);
    int ok = 1;
    for (int i = 0; i < N && ok; i++) {
        char key[200];
        snprintf(key, sizeof key, "%.150s\n", lines[i]);
        int in_t = strstr(t, key) != NULL, in_v = strstr(v, key) != NULL;
        ok = in_t + in_v == 1;
    }
    CHECK(ok);
    /* deterministic and independent of order: the reversed file gives the same
     * sets (each output reversed) */
    CHECK(tuna_data_split(rev, tr2, va2, 0.1, 42, NULL, &st) == TUNA_OK);
    char *v2 = read_all(va2, NULL);
    long nv = 0;
    ok = 1;
    for (char *p = v2; p && *p;) {
        char *nl = strchr(p, '\n');
        *nl = 0;
        char key[200];
        snprintf(key, sizeof key, "%.150s\n", p);
        ok &= strstr(v, key) != NULL;
        nv++;
        p = nl + 1;
    }
    CHECK(ok && nv == count_lines(va));
    /* the per-record decision agrees with the file split */
    tuna_record r;
    memset(&r, 0, sizeof r);
    tuna_bad_kind why;
    CHECK(tuna_record_parse(&r, lines[0], strlen(lines[0]), NULL, &why) == TUNA_OK);
    char key[200];
    snprintf(key, sizeof key, "%.150s\n", lines[0]);
    CHECK(tuna_record_is_val(&r, 0.1, 42) == (strstr(v, key) != NULL));
    tuna_record_clear(&r);
    /* another seed gives another split */
    CHECK(tuna_data_split(in, tr2, va2, 0.1, 43, NULL, &st) == TUNA_OK);
    char *v3 = read_all(va2, NULL);
    CHECK(v3 && strcmp(v3, v) != 0);
    /* fraction 0 and 1 */
    CHECK(tuna_data_split(in, tr2, va2, 0.0, 42, NULL, &st) == TUNA_OK && st.val == 0 && st.train == N);
    CHECK(tuna_data_split(in, tr2, va2, 1.0, 42, NULL, &st) == TUNA_OK && st.val == N);
    CHECK(tuna_data_split(in, tr2, va2, 1.5, 42, NULL, &st) == TUNA_ERR_ARG);
    free(t); free(v); free(v2); free(v3);
}

/* ---- CLI ---- */
static int run(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", test_cli, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_data(void) {
    if (!test_need_cli("tuna data CLI")) return;
    char a[1600];
    CHECK(run("data --help") == 0);
    CHECK(run("data clean --help") == 0);
    CHECK(run("data split --help") == 0);
    CHECK(run("data") == 2);
    CHECK(run("data frobnicate") == 2);
    CHECK(run("data clean") == 2);
    snprintf(a, sizeof a, "data clean %s/clean_in.jsonl", tmpdir);
    CHECK(run(a) == 2); /* --out missing */
    snprintf(a, sizeof a, "data clean %s/clean_in.jsonl --out %s/cli_out.jsonl --near-dup 7", tmpdir, tmpdir);
    CHECK(run(a) == 2);
    snprintf(a, sizeof a, "data clean %s/clean_in.jsonl --out %s/cli_out.jsonl --min-chars 5 --max-chars 3000", tmpdir, tmpdir);
    CHECK(run(a) == 0);
    char p[600];
    snprintf(p, sizeof p, "%s/cli_out.jsonl", tmpdir);
    CHECK(count_lines(p) == 3);
    snprintf(p, sizeof p, "%s/cli_out.jsonl.dropped.jsonl", tmpdir);
    CHECK(count_lines(p) == 7);
    /* --json output parses and carries the counts */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s data clean %s/clean_in.jsonl --out %s/cli_out.jsonl --json 2>/dev/null > %s/clean.json",
             test_cli, tmpdir, tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(p, sizeof p, "%s/clean.json", tmpdir);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    CHECK(j && json_integer_value(json_object_get(j, "records")) == 10 &&
          json_integer_value(json_object_get(json_object_get(j, "reasons"), "exact_duplicate")) == 2);
    json_decref(j);
    /* split: default outputs, strict and max-bad exit codes */
    snprintf(a, sizeof a, "data split %s/split.jsonl --val 0.05 --seed 3", tmpdir);
    CHECK(run(a) == 0);
    snprintf(p, sizeof p, "%s/split.train.jsonl", tmpdir);
    long nt = count_lines(p);
    snprintf(p, sizeof p, "%s/split.val.jsonl", tmpdir);
    CHECK(nt + count_lines(p) == 1000);
    snprintf(a, sizeof a, "data split %s/policy.jsonl --out-train %s/p.t --out-val %s/p.v", tmpdir, tmpdir, tmpdir);
    CHECK(run(a) == 0); /* 2 of 200 bad: within 1% */
    snprintf(a, sizeof a, "data split %s/policy.jsonl --out-train %s/p.t --out-val %s/p.v --max-bad 0.5", tmpdir, tmpdir, tmpdir);
    CHECK(run(a) == 2);
    snprintf(a, sizeof a, "data split %s/policy.jsonl --out-train %s/p.t --out-val %s/p.v --strict", tmpdir, tmpdir, tmpdir);
    CHECK(run(a) == 2);
    snprintf(a, sizeof a, "data split %s/policy.jsonl --val 2", tmpdir);
    CHECK(run(a) == 2);
    /* the bad records are named on stderr as FILE:LINE: reason */
    snprintf(cmd, sizeof cmd, "%s data split %s/policy.jsonl --out-train %s/p.t --out-val %s/p.v 2>&1 >/dev/null | grep -c 'policy.jsonl:\\(51\\|121\\): \"text\" is an integer'",
             test_cli, tmpdir, tmpdir, tmpdir);
    FILE *pp = popen(cmd, "r");
    int cnt = 0;
    if (pp) { if (fscanf(pp, "%d", &cnt) != 1) cnt = -1; pclose(pp); }
    CHECK(cnt == 2);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna_test_data_%d", (int)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", tmpdir, tmpdir);
    if (system(cmd) != 0) return 1;
    test_formats();
    test_utf8();
    test_nul_escape();
    test_malformed();
    test_policy();
    test_pipes();
    test_read_progress();
    test_real_files();
    test_clean();
    test_split();
    test_cli_data();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (!getenv("TUNA_TEST_KEEP") && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    return test_done();
}
