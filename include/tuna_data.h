/* tuna_data.h — training records: the formats tuna reads, how each is
 * normalised into one plain-struct record model, how bad records are reported,
 * and the two whole-file tools built on it (clean, split).
 *
 * Formats (JSONL, or a file holding one top-level JSON array), detected per
 * record by its keys, following TRL / Hugging Face / LLaMA-Factory:
 *   {"messages":[{"role","content"}...]}            chat (TRL conversational)
 *   {"conversations":[{"from","value"}...]}         chat (ShareGPT; human->user,
 *                                                    gpt->assistant)
 *   {"instruction","input"?,"output","system"?,"history"?}
 *                                                    Alpaca / LIMA, stored as chat
 *   {"prompt","completion"}                          prompt-completion (strings or
 *                                                    message lists; prompt masked)
 *   {"text"}                                         plain text (loss on all tokens)
 *   {"prompt"?,"chosen","rejected"}                  preference (strings or message
 *                                                    lists; no prompt: implicit)
 *   {"conversations","chosen":{msg},"rejected":{msg}} LLaMA-Factory preference
 *   {"chosen_messages","rejected_messages"}          LLaMA-Factory v1 preference
 *   {"input_ids","labels"?}                          pre-tokenized
 *   {"prompt_ids","chosen_ids","rejected_ids"}       pre-tokenized preference (response
 *                                                    tokens only; used as given)
 *   {"prompt_ids","completion_ids","label"}          pre-tokenized KTO item (kind
 *                                                    PREFERENCE_TOKENS, rejected_ids NULL)
 * Choices (why, where it is not obvious):
 *  - Alpaca user turn = instruction + "\n" + input (input only when non-empty),
 *    as LLaMA-Factory's converter does ("\n".join([instruction, input])); the
 *    shared Alpaca/LIMA files come from LLaMA-Factory. The original Alpaca
 *    prompt puts input under its own "### Input:" header, which is a template
 *    matter: tuna_data_options.instruction_sep changes the joiner.
 *    "history" [[user, assistant], ...] gives earlier turns, "system" a first
 *    system message (empty "system" = none).
 *  - Content given as a list of parts ([{"type":"text","text"|"value":...}],
 *    HF multimodal / LLaMA-Factory v1) is joined: text parts concatenated with
 *    no separator. Any non-text part is a bad record (tuna trains text only, and
 *    dropping an image silently would change the meaning).
 *  - Messages use role/content; from/value is accepted in either list.
 *    Roles: system, user, assistant (human, gpt mapped). Others (tool,
 *    function_call, observation) are refused: the templates used for SFT masks
 *    do not define them uniformly.
 *  - Per-message "loss_weight" (LLaMA-Factory v1) and a record's boolean
 *    "label" (KTO / TRL unpaired preference) are kept; other keys are ignored.
 *  - A preference record without a prompt gets TRL's implicit prompt: the
 *    longest common prefix of chosen and rejected (messages compared whole; for
 *    strings by bytes, backed up to a character boundary, and a trailing space
 *    left with the responses as TRL's extract_prompt does).
 *  - Strings must be valid UTF-8 (strict: no overlongs, surrogates or code
 *    points above U+10FFFF) and may not contain U+0000. Nothing is repaired.
 *
 * Validation of SFT chats (CHAT kind, and prompt+chosen / prompt+rejected of
 * conversational preference): an optional system message first, then turns
 * alternating user, assistant, ..., ending with assistant; assistant turns
 * non-empty. Prompt-completion and preference responses must be non-empty.
 *
 * Bad records are reported as "FILE:LINE: reason" (JSON array files:
 * "FILE:LINE: record N: reason", N counted from 0, LINE where it starts).
 * Policy: bad records are skipped and counted; with strict the first one
 * stops reading; otherwise reading fails at the end when more than max_bad
 * (a fraction of all records) were bad. Nothing is dropped silently.
 *
 * Ownership: a tuna_record owns every pointer in it (except file, which
 * points into the reader and lives as long as it); tuna_record_clear frees
 * them. A zeroed record is a valid empty one. */
#ifndef TUNA_DATA_H
#define TUNA_DATA_H
#include <stddef.h>
#include <stdint.h>
#include "tuna.h"

#ifdef __cplusplus
extern "C" {
#endif

struct json_t; /* jansson */

/* ---- the record model ---- */
typedef enum { TUNA_ROLE_SYSTEM = 0, TUNA_ROLE_USER = 1, TUNA_ROLE_ASSISTANT = 2 } tuna_role;

typedef struct {
    tuna_role role;
    char *content;        /* UTF-8, NUL-terminated, no NUL inside */
    size_t len;           /* bytes of content */
    float loss_weight;    /* "loss_weight" when the file gives one, else -1 */
} tuna_message;

/* Either a string or a list of messages (TRL's "standard" vs "conversational"
 * forms of prompt, completion, chosen, rejected). */
typedef struct {
    int is_messages;      /* 1: msgs[n]; 0: text */
    char *text;           /* when !is_messages (NUL-terminated; "" if absent) */
    size_t len;
    tuna_message *msgs;   /* when is_messages */
    int n;
} tuna_part;

typedef enum {
    TUNA_RECORD_NONE = 0,
    TUNA_RECORD_CHAT,               /* messages[n_messages], an SFT conversation */
    TUNA_RECORD_PROMPT_COMPLETION,  /* prompt, completion */
    TUNA_RECORD_TEXT,               /* text */
    TUNA_RECORD_PREFERENCE,         /* prompt (may be empty), chosen, rejected */
    TUNA_RECORD_PRETOKENIZED,       /* input_ids, labels */
    TUNA_RECORD_PREFERENCE_TOKENS   /* input_ids = prompt ids, chosen_ids, rejected_ids */
} tuna_record_kind;

/* The layout a record came in, for messages and statistics. */
typedef enum {
    TUNA_FORMAT_MESSAGES = 0,       /* {"messages"} */
    TUNA_FORMAT_SHAREGPT,           /* {"conversations"} */
    TUNA_FORMAT_ALPACA,             /* {"instruction","output"} */
    TUNA_FORMAT_PROMPT_COMPLETION,
    TUNA_FORMAT_TEXT,
    TUNA_FORMAT_PREFERENCE,         /* explicit "prompt" */
    TUNA_FORMAT_PREFERENCE_IMPLICIT,/* prompt extracted from chosen/rejected */
    TUNA_FORMAT_PRETOKENIZED,
    TUNA_FORMAT_PREFERENCE_PRETOKENIZED, /* {"prompt_ids","chosen_ids","rejected_ids"} */
    TUNA_FORMAT_COUNT
} tuna_record_format;

typedef struct {
    tuna_record_kind kind;
    tuna_record_format format;
    const char *file;     /* source path (owned by the reader) */
    long line;            /* 1-based line where the record starts */
    long index;           /* 0-based record number in the file (bad ones included) */
    /* TUNA_RECORD_CHAT */
    tuna_message *messages;
    int n_messages;
    /* TUNA_RECORD_PROMPT_COMPLETION and TUNA_RECORD_PREFERENCE */
    tuna_part prompt, completion, chosen, rejected;
    int label;            /* "label": 1 true, 0 false, -1 absent (KTO) */
    /* TUNA_RECORD_TEXT */
    char *text;
    size_t text_len;
    /* TUNA_RECORD_PRETOKENIZED: labels NULL when the file has none */
    int32_t *input_ids, *labels;
    int64_t n_ids;
    /* TUNA_RECORD_PREFERENCE_TOKENS: input_ids/n_ids hold the prompt */
    int32_t *chosen_ids, *rejected_ids;
    int64_t n_chosen, n_rejected;
    /* the record's exact bytes (JSONL: the line without its newline; JSON
     * array files: the element re-serialised compactly) */
    char *raw;
    size_t raw_len;
} tuna_record;

/* Frees everything the record owns and zeroes it. NULL is a no-op. */
void tuna_record_clear(tuna_record *r);
const char *tuna_role_name(tuna_role r);
const char *tuna_record_kind_name(tuna_record_kind k);
const char *tuna_record_format_name(tuna_record_format f);

/* ---- why a record is bad: one list makes the enum, names and summaries ---- */
#define TUNA_BAD_LIST(X)                                          \
    X(TUNA_BAD_JSON, "not_json", "not valid JSON")                    \
    X(TUNA_BAD_UTF8, "invalid_utf8", "invalid UTF-8")                     \
    X(TUNA_BAD_KEYS, "bad_keys", "missing or unexpected keys")        \
    X(TUNA_BAD_TYPE, "wrong_type", "wrong types")                       \
    X(TUNA_BAD_VALUE, "bad_value", "bad values")                      \
    X(TUNA_BAD_ROLE, "role_order", "role order the template rejects")  \
    X(TUNA_BAD_EMPTY, "empty_response", "empty response")

typedef enum {
#define TUNA_X_BAD(name, key, msg) name,
    TUNA_BAD_LIST(TUNA_X_BAD)
#undef TUNA_X_BAD
    TUNA_BAD_COUNT
} tuna_bad_kind;

const char *tuna_bad_key(tuna_bad_kind k);     /* short name, e.g. "role_order" */
const char *tuna_bad_summary(tuna_bad_kind k); /* e.g. "role order the template rejects" */

/* One bad record, as given to the caller's callback. Pointers are valid only
 * during the call. */
typedef struct {
    const char *file;
    long line, index;
    tuna_bad_kind kind;
    const char *reason;   /* e.g. "messages[2]: unknown role \"bot\"" */
    const char *message;  /* the whole report: "FILE:LINE: reason" */
    const char *raw;      /* the record's bytes (may be invalid UTF-8) */
    size_t raw_len;
} tuna_bad_record;

/* ---- parsing one record (the format layer; no I/O) ---- */
typedef struct {
    int strict;                 /* stop at the first bad record */
    double max_bad;             /* fraction of records allowed bad (default 0.01) */
    const char *instruction_sep;/* Alpaca instruction/input joiner (default "\n") */
    /* Called for each bad record (may be NULL). */
    void (*on_bad)(void *ctx, const tuna_bad_record *bad);
    void *ctx;
    /* Called while an input that is not a regular file (a pipe, FIFO,
     * /dev/stdin, <(...)) is read into memory at open: after every 64 MiB
     * (TUNA_INPUT_PROGRESS_BYTES) with the bytes read so far, and once with
     * done = 1 at the end when it was called before (may be NULL). */
    void (*on_read)(void *read_ctx, const char *file, uint64_t bytes, int done);
    void *read_ctx;
} tuna_data_options;

/* Sets the defaults above. */
void tuna_data_options_init(tuna_data_options *o);

/* Parses one record from the bytes of a JSONL line (need not be
 * NUL-terminated; a trailing "\n" or "\r\n" is ignored). On success fills *rec
 * (cleared first; raw is a copy of the bytes; file/line/index are left to the
 * caller) and returns TUNA_OK. A bad record returns TUNA_ERR_FORMAT, sets
 * *why to its kind and records the reason (without FILE:LINE) as
 * tuna_last_error(); *rec is then empty. opts may be NULL. */
tuna_status tuna_record_parse(tuna_record *rec, const char *bytes, size_t len,
                              const tuna_data_options *opts, tuna_bad_kind *why);
/* Same for an already parsed JSON value (JSON array elements). */
tuna_status tuna_record_from_json(tuna_record *rec, const struct json_t *obj,
                                  const tuna_data_options *opts, tuna_bad_kind *why);

/* Returns the byte offset of the first invalid UTF-8 byte of s[0..n), or n
 * when all is valid (strict: overlongs, surrogates, > U+10FFFF refused). */
size_t tuna_utf8_check(const char *s, size_t n);

/* Messages as the JSON array chat templates take ([{"role","content"}...]),
 * for tuna_template_render / tuna_template_assistant_spans. New reference;
 * NULL when out of memory. */
struct json_t *tuna_messages_to_json(const tuna_message *msgs, int n);

/* The record's text content in one canonical form, used for hashing (clean,
 * split) and length limits: each message/part as "<role>\x1f<content>\x1e" (a
 * string part as "\x1f<text>\x1e"), the parts of a record in order (prompt,
 * completion / chosen, rejected); pre-tokenized records give their ids as
 * decimal text. With normalize: Unicode NFKC + case folding, runs of white
 * space made one space, trimmed (so "Hello  World" == "hello world").
 * *out is malloc'ed (caller frees), NUL-terminated, *len its length. */
tuna_status tuna_record_text(const tuna_record *rec, int normalize, char **out, size_t *len);

/* ---- streaming reader ---- */
typedef struct tuna_data_reader tuna_data_reader;

/* Opens path: JSONL (read line by line; memory bounded by the longest line) or
 * a file whose first non-blank byte is '[' (one JSON array, loaded whole). A
 * gzip file is refused (decompress it first). A pipe, FIFO or device is read
 * once, whole, into memory first (limits TUNA_INPUT_MAX_BYTES and
 * TUNA_INPUT_MAX_LINE, TUNA_ERR_ARG beyond them); a directory is refused
 * (TUNA_ERR_ARG "PATH: is a directory"). opts is copied (NULL =
 * defaults). On success *out owns the reader (free with
 * tuna_data_reader_free). A JSON array that does not parse fails here with
 * FILE:LINE (one broken element cannot be skipped in an array). */
tuna_status tuna_data_reader_open(tuna_data_reader **out, const char *path,
                                  const tuna_data_options *opts);
/* Reads the next good record into *rec (cleared first, so one record may be
 * reused for the whole file; clear it once at the end) and sets *got = 1.
 * Bad records on the way are reported (callback), counted and skipped. At the
 * end sets *got = 0 and returns TUNA_OK, or TUNA_ERR_FORMAT when more than
 * max_bad of the records were bad ("FILE: N of M records are bad ...").
 * With strict the first bad record returns TUNA_ERR_FORMAT "FILE:LINE: reason".
 * I/O errors return TUNA_ERR_IO. */
tuna_status tuna_data_reader_next(tuna_data_reader *r, tuna_record *rec, int *got);

typedef struct {
    long records;                 /* good + bad */
    long good, bad;
    long bad_by_kind[TUNA_BAD_COUNT];
    long by_format[TUNA_FORMAT_COUNT]; /* good records per layout */
} tuna_data_stats;

void tuna_data_reader_stats(const tuna_data_reader *r, tuna_data_stats *out);
int tuna_data_reader_is_array(const tuna_data_reader *r); /* 1 for a JSON array file */
void tuna_data_reader_free(tuna_data_reader *r);

/* ---- tuna data clean ---- */
typedef enum {
    TUNA_DROP_BAD = 0,      /* a bad record (see stats.data.bad_by_kind) */
    TUNA_DROP_EXACT_DUP,
    TUNA_DROP_NEAR_DUP,
    TUNA_DROP_TOO_SHORT,
    TUNA_DROP_TOO_LONG,
    TUNA_DROP_COUNT
} tuna_drop_reason;
const char *tuna_drop_reason_name(tuna_drop_reason r); /* "exact_duplicate", ... */

typedef struct {
    double near_dup;          /* Jaccard threshold in (0,1]; > 1 disables (default 0.9) */
    int shingle_words;        /* words per shingle (default 5) */
    int num_perm;             /* MinHash permutations (default 128, at most 256) */
    uint64_t seed;            /* seed of the MinHash functions (default 1) */
    long min_chars, max_chars;/* code points of the record's content (all message contents /
                               * strings, before normalisation; pre-tokenized: ids); 0 = no limit */
    tuna_data_options data;   /* reader policy; default max_bad = 1.0 (clean drops bad records) */
} tuna_clean_options;

typedef struct {
    tuna_data_stats data;
    long kept, dropped;
    long by_reason[TUNA_DROP_COUNT];
    int bands, rows;          /* LSH banding used */
} tuna_clean_stats;

void tuna_clean_options_init(tuna_clean_options *o);

/* Reads in_path, writes the kept records to out_path (JSONL; for JSONL input
 * each kept line byte for byte) and every dropped record to dropped_path
 * (JSONL {"file","line","reason","detail","raw"}; "raw_hex" instead of "raw"
 * when the bytes are not valid UTF-8), both through a temporary name and a
 * rename. Checks per good record, first match wins: length limits, exact
 * duplicate (normalised text, 128-bit hash), near duplicate (MinHash over
 * word shingles of the normalised text, LSH banding tuned so a pair at the
 * threshold becomes a candidate with probability >= 0.99, candidates kept only
 * when their estimated Jaccard >= threshold). The first occurrence is kept and
 * later records are compared against kept ones only. Deterministic. */
tuna_status tuna_data_clean(const char *in_path, const char *out_path, const char *dropped_path,
                            const tuna_clean_options *opts, tuna_clean_stats *stats);

/* ---- tuna data split ---- */
typedef struct {
    long train, val;
    tuna_data_stats data;
} tuna_split_stats;

/* Writes each good record of in_path (its bytes, as clean does) to val_path
 * when hash(seed, normalised text) / 2^64 < val_fraction, else to train_path.
 * Deterministic, independent of record order; identical records (after
 * normalisation) always land on the same side. opts: reader policy (NULL =
 * defaults). Files are written through a temporary name and a rename. */
tuna_status tuna_data_split(const char *in_path, const char *train_path, const char *val_path,
                            double val_fraction, uint64_t seed, const tuna_data_options *opts,
                            tuna_split_stats *stats);
/* The split decision for one record (1 = validation). */
int tuna_record_is_val(const tuna_record *rec, double val_fraction, uint64_t seed);

/* ---- tuna data synth ---- */
/* Writes out_dir/{train,val,eval}.jsonl (chat records, atomically) of a
 * synthetic task from tuna's own word lists, seeded and deterministic.
 * task "story-json": a short story -> {"who","animal","where","feeling"} as
 * JSON. Passages are distinct across all splits. "story-json-prefs":
 * preference records {"prompt","chosen","rejected"} (message lists) for the
 * same task on stories that also name a second child: chosen the correct
 * concise JSON, rejected the other child as "who" (60%), the answer wrapped in
 * chatter (20%) or malformed JSON (20%). */
tuna_status tuna_synth_task(const char *task, const char *out_dir, int n_train, int n_val, int n_eval, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
