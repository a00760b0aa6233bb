/* fuzz_data_record.c — libFuzzer target for the record format layer: feeds
 * arbitrary bytes as one JSONL line to tuna_record_parse (UTF-8 check, JSON,
 * detection by keys, normalisation, validation) and, when a record comes
 * out, exercises what later stages use (canonical text, normalised text,
 * messages as template JSON). Bad records are expected outcomes, not
 * findings; crashes, leaks, and broken invariants (abort) are. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tuna.h"

static void check_msgs(const tuna_message *m, int n) {
    for (int i = 0; i < n; i++) {
        if (!m[i].content || strlen(m[i].content) != m[i].len) abort();
        if (tuna_utf8_check(m[i].content, m[i].len) != m[i].len) abort();
        if (m[i].role != TUNA_ROLE_SYSTEM && m[i].role != TUNA_ROLE_USER && m[i].role != TUNA_ROLE_ASSISTANT) abort();
    }
}

static void check_part(const tuna_part *p) {
    if (p->is_messages) check_msgs(p->msgs, p->n);
    else if (p->text && strlen(p->text) != p->len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tuna_record r;
    memset(&r, 0, sizeof r);
    tuna_bad_kind why = TUNA_BAD_COUNT;
    tuna_status s = tuna_record_parse(&r, (const char *)data, size, NULL, &why);
    if (s == TUNA_ERR_FORMAT) {
        if ((unsigned)why >= TUNA_BAD_COUNT || !tuna_last_error()[0]) abort();
        if (r.kind != TUNA_RECORD_NONE) abort(); /* a bad record leaves nothing behind */
        return 0;
    }
    if (s != TUNA_OK) return 0;
    if (!r.raw || r.raw_len > size) abort();
    check_msgs(r.messages, r.n_messages);
    check_part(&r.prompt);
    check_part(&r.completion);
    check_part(&r.chosen);
    check_part(&r.rejected);
    if (r.kind == TUNA_RECORD_CHAT) {
        if (r.n_messages < 2 || r.messages[r.n_messages - 1].role != TUNA_ROLE_ASSISTANT) abort();
        json_t *j = tuna_messages_to_json(r.messages, r.n_messages);
        if (!j || json_array_size(j) != (size_t)r.n_messages) abort();
        json_decref(j);
    }
    if (r.kind == TUNA_RECORD_PREFERENCE_TOKENS) {
        /* a pair, or a KTO item {"prompt_ids","completion_ids","label"}: no rejected ids, a label */
        int kto = !r.rejected_ids;
        if (r.n_ids < 1 || r.n_chosen < 1 || !r.chosen_ids) abort();
        if (kto ? r.n_rejected != 0 || (r.label != -1 && r.label != 0 && r.label != 1) : r.n_rejected < 1) abort();
        for (int64_t i = 0; i < r.n_chosen; i++)
            if (r.chosen_ids[i] < 0) abort();
    }
    for (int norm = 0; norm < 2; norm++) {
        char *t = NULL;
        size_t n = 0;
        if (tuna_record_text(&r, norm, &t, &n) == TUNA_OK) {
            if (strlen(t) != n || tuna_utf8_check(t, n) != n) abort();
            free(t);
        }
    }
    (void)tuna_record_is_val(&r, 0.5, 1);
    tuna_record_clear(&r);
    return 0;
}
