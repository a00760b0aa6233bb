/* fuzz_safetensors.c — libFuzzer target for the safetensors header parser:
 * any byte string must give TUNA_OK or an error status, never a crash, a read
 * outside the buffer or a leak. On success every tensor's bytes are touched
 * and converted, so a wrong bounds check would surface under ASan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    if (st_parse(&f, data, size, "fuzz") != TUNA_OK) return 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (t->numel > (1 << 20)) continue;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
            float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            st_to_f32(t, out);
            free(out);
        } else {
            volatile uint8_t acc = 0;
            for (size_t j = 0; j < t->nbytes; j++) acc ^= ((const uint8_t *)t->data)[j];
        }
    }
    st_close(&f);
    return 0;
}
