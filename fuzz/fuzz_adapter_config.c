/* fuzz_adapter_config.c — libFuzzer target for PEFT adapter_config.json: any
 * bytes must be read as a config or refused with an error status; a config
 * that reads is then attached to a small Llama and a GPT-2 model (target
 * matching, regexes, shapes) and detached, never crashing or leaking. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tuna.h"
#include "tuna_peft.h"

static char dir[64];
static tuna_config cfg[2];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/fuzz_adapter_XXXXXX");
    if (!mkdtemp(dir)) abort();
    const char *arch[2] = {
        "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":32,\"hidden_size\":16,"
        "\"intermediate_size\":32,\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
        "\"max_position_embeddings\":16}",
        "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\",\"vocab_size\":32,\"n_embd\":16,\"n_layer\":2,"
        "\"n_head\":2,\"n_positions\":16}"};
    char p[128];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/config%d.json", dir, i);
        FILE *f = fopen(p, "w");
        fputs(arch[i], f);
        fclose(f);
        if (tuna_config_load(&cfg[i], p) != TUNA_OK) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) setup();
    char p[128];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    FILE *f = fopen(p, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tuna_peft_config c;
    if (tuna_peft_read_config(&c, dir) != TUNA_OK) return 0;
    if (c.num_virtual_tokens > 64) c.num_virtual_tokens = 64; /* keep prompt tables small */
    if (c.r > 64) c.r = 64;
    for (int i = 0; i < 2; i++) {
        tuna_model *m = NULL;
        if (tuna_model_create(&m, &cfg[i]) != TUNA_OK) continue;
        if (tuna_peft_attach(m, &c, 1) == TUNA_OK) {
            int32_t ids[4] = {1, 2, 3, 4};
            tuna_batch bt = {.B = 1, .T = 4, .input_ids = ids, .labels = ids};
            tuna_loss l;
            if (tuna_model_prepare(m, 1, 4, TUNA_MODE_TRAIN) == TUNA_OK && tuna_model_forward(m, &bt, &l) == TUNA_OK)
                tuna_model_backward(m, &bt, 0.25f);
            tuna_peft_merge(m);
        }
        tuna_model_free(m);
    }
    return 0;
}
