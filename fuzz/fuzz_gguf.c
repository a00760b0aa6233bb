/* fuzz_gguf.c — libFuzzer target for the GGUF reader: arbitrary bytes as a
 * file to gguf_parse (header, typed key/values, string arrays, tensor infos,
 * alignment and offsets); when it parses, every key is read through the
 * getters and every tensor small enough is dequantized. A rejected file is an
 * expected outcome; crashes, leaks and reads outside the buffer are findings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file f;
    if (gguf_parse(&f, data, size, "fuzz.gguf") != TUNA_OK) return 0;
    for (size_t i = 0; i < f.n_kv; i++) {
        char key[256];
        size_t n = f.kv[i].key_len < sizeof key - 1 ? f.kv[i].key_len : sizeof key - 1;
        memcpy(key, f.kv[i].key, n);
        key[n] = 0;
        uint64_t u;
        double d;
        size_t len;
        (void)gguf_get_u64(&f, key, &u);
        (void)gguf_get_f64(&f, key, &d);
        const char *s = gguf_get_str(&f, key, &len);
        if (s && (const uint8_t *)s + len > data + size) abort();
        for (uint64_t j = 0; f.kv[i].strs && j < f.kv[i].arr_n && j < 64; j++) {
            s = gguf_arr_str(&f.kv[i], j, &len);
            if (!s || (const uint8_t *)s + len > data + size) abort();
        }
    }
    for (size_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        if (t->offset + t->nbytes > size) abort();
        if (t->numel > (1 << 16)) continue;
        float *out = malloc((size_t)t->numel * sizeof *out);
        if (out) (void)gguf_tensor_to_f32(&f, t, out);
        free(out);
    }
    gguf_close(&f);
    return 0;
}
