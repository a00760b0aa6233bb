/* fuzz_score.c — libFuzzer target for response scoring: the input split at
 * its first NUL byte is (prediction, reference); every scorer must return,
 * never crash or leak, whatever the bytes (model output is arbitrary text). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tuna_score.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = 0;
    char *pred = buf, *ref = buf + strlen(buf) + 1;
    if (ref > buf + size) ref = buf + size + 1;
    free(tuna_score_normalize(pred));
    tuna_score_exact(pred, ref);
    tuna_score_contains(pred, ref);
    tuna_score_regex(pred, ref);
    tuna_score_json_valid(pred);
    int c, t;
    tuna_score_json_fields(pred, ref, &c, &t);
    tuna_score_rouge_l(pred, ref);
    free(buf);
    return 0;
}
