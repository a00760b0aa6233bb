/* fuzz_reward_output.c — libFuzzer target for GRPO's outside reward program
 * (src/train/reward_cmd.c): the first byte picks how many numbers are
 * expected (0..15), the rest is what the program printed; the parser must
 * return, never crash or read past the bytes, whatever they are. The same
 * bytes, split at their first NUL into a prompt and a completion, also go
 * through the JSONL the program reads, which must always parse as JSON
 * (stray bytes sent as U+FFFD). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/reward_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int n = data[0] % 16;
    double out[16];
    char *buf = malloc(size); /* exactly the bytes: ASan sees any overread */
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    reward_cmd_parse("cmd:fuzz", buf, size - 1, n, out);
    free(buf);

    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    const char *prompt = s, *completion = s + strlen(s) + (strlen(s) < size), *ref = NULL;
    char *in;
    size_t len;
    if (reward_cmd_input(1, &prompt, &completion, &ref, &in, &len) == 0) {
        json_t *v = json_loadb(in, len, 0, NULL);
        if (!json_is_object(v)) abort();
        json_decref(v);
        free(in);
    }
    free(s);
    return 0;
}
