/* reward_model.c — a trained reward model scoring texts (reward_model.h):
 * the …ForSequenceClassification folder loaded with its tokenizer, texts
 * encoded as sft encodes training text (BOS in front once, EOS appended),
 * forwarded in batches of rows padded on the right, and each row's score
 * read at its last token: the model's row loss is minus the score there
 * (model/head.c), so the labels mark every real token and no padding. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/reward_model.h"
#include "tuna_dataset.h"
#include "tuna_tokenizer.h"

#define RM_ROWS 8 /* rows per forward */

struct reward_model {
    tuna_model *m;
    tuna_tokenizer *tok;
    int prepared_T;            /* the activations' positions (0: none yet) */
    int32_t *ids, *labels;     /* [RM_ROWS, cap_T] */
    int cap_T;
    double loss[RM_ROWS];
};

tuna_status reward_model_open(reward_model **out, const char *dir) {
    *out = NULL;
    reward_model *rm = calloc(1, sizeof *rm);
    if (!rm) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_status st = tuna_model_load(&rm->m, dir);
    if (st == TUNA_OK && tuna_model_config(rm->m)->num_labels != 1)
        st = core_fail(TUNA_ERR_ARG, "%s: not a reward model (a …ForSequenceClassification folder with num_labels 1; it is a %s)",
                       dir, tuna_model_config(rm->m)->architecture);
    if (st == TUNA_OK) st = tuna_tokenizer_load(&rm->tok, dir);
    if (st != TUNA_OK) {
        reward_model_free(rm);
        return st;
    }
    *out = rm;
    return TUNA_OK;
}

void reward_model_free(reward_model *rm) {
    if (!rm) return;
    tuna_model_free(rm->m);
    tuna_tokenizer_free(rm->tok);
    free(rm->ids);
    free(rm->labels);
    free(rm);
}

/* text -> ids as sft encodes it, EOS appended; cut to the model's positions (keeping the end) */
static tuna_status encode(reward_model *rm, const char *text, int32_t **ids, size_t *n) {
    int32_t *t = NULL;
    size_t k = 0;
    tuna_status st = tuna_dataset_encode_text(rm->tok, text, strlen(text), &t, &k);
    if (st != TUNA_OK) return st;
    int32_t eos = tuna_tokenizer_eos_id(rm->tok);
    int32_t *g = realloc(t, (k + 1) * sizeof *g);
    if (!g) { free(t); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    if (eos >= 0 && (k == 0 || g[k - 1] != eos)) g[k++] = eos;
    size_t maxT = (size_t)tuna_model_config(rm->m)->max_positions;
    if (k > maxT) {
        memmove(g, g + (k - maxT), maxT * sizeof *g);
        k = maxT;
    }
    *ids = g;
    *n = k;
    return TUNA_OK;
}

/* room for RM_ROWS rows of T positions, and activations for them */
static tuna_status make_room(reward_model *rm, int T) {
    if (T > rm->cap_T) {
        int32_t *a = realloc(rm->ids, (size_t)RM_ROWS * T * sizeof *a), *b = a ? realloc(rm->labels, (size_t)RM_ROWS * T * sizeof *b) : NULL;
        if (a) rm->ids = a;
        if (b) rm->labels = b;
        if (!a || !b) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        rm->cap_T = T;
    }
    if (T <= rm->prepared_T) return TUNA_OK;
    tuna_status st = tuna_model_prepare(rm->m, RM_ROWS, T, TUNA_MODE_EVAL);
    if (st == TUNA_OK) rm->prepared_T = T;
    return st;
}

/* texts [0, nb) of one forward into out */
static tuna_status score_batch(reward_model *rm, int nb, const char *const *texts, double *out) {
    int32_t *enc[RM_ROWS] = {0};
    size_t len[RM_ROWS] = {0};
    int T = 1;
    tuna_status st = TUNA_OK;
    for (int i = 0; i < nb && st == TUNA_OK; i++) {
        st = encode(rm, texts[i], &enc[i], &len[i]);
        if (st == TUNA_OK && len[i] == 0) st = core_fail(TUNA_ERR_ARG, "reward model: text %d encodes to no token", i);
        if (st == TUNA_OK && (int)len[i] > T) T = (int)len[i];
    }
    if (st == TUNA_OK) st = make_room(rm, T);
    for (int i = 0; st == TUNA_OK && i < nb; i++)
        for (int t = 0; t < T; t++) {
            int real = t < (int)len[i];
            rm->ids[i * T + t] = real ? enc[i][t] : 0;
            rm->labels[i * T + t] = real ? enc[i][t] : -100; /* the score is read at the last real token */
        }
    for (int i = 0; i < nb; i++) free(enc[i]);
    if (st != TUNA_OK) return st;
    tuna_batch bt = {nb, T, rm->ids, rm->labels, NULL, NULL, NULL};
    st = tuna_model_forward(rm->m, &bt, NULL);
    if (st == TUNA_OK) st = tuna_model_row_losses(rm->m, nb, T, rm->loss);
    for (int i = 0; st == TUNA_OK && i < nb; i++) out[i] = -rm->loss[i];
    return st;
}

tuna_status reward_model_score(reward_model *rm, int n, const char *const *texts, double *out) {
    for (int i0 = 0; i0 < n; i0 += RM_ROWS) {
        int nb = n - i0 < RM_ROWS ? n - i0 : RM_ROWS;
        tuna_status st = score_batch(rm, nb, texts + i0, out + i0);
        if (st != TUNA_OK) return st;
    }
    return TUNA_OK;
}
