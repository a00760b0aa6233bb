/* check_model.h — model helpers shared by tests (include after check.h and
 * tuna.h). */
#ifndef TUNA_TEST_CHECK_MODEL_H
#define TUNA_TEST_CHECK_MODEL_H
#include <string.h>
#include "tuna.h"

/* Logits of one row of T ids (out[T * V]); 0 when the forward fails. */
static inline int test_logits(tuna_model *m, const int32_t *ids, int T, float *out) {
    if (tuna_model_prepare(m, 1, T, TUNA_MODE_EVAL) != TUNA_OK) return 0;
    tuna_batch bt = {.B = 1, .T = T, .input_ids = ids};
    if (tuna_model_forward(m, &bt, NULL) != TUNA_OK) return 0;
    memcpy(out, tuna_model_logits(m), (size_t)T * tuna_model_config(m)->V * sizeof(float));
    return 1;
}
#endif
