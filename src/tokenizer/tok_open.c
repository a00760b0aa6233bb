/* tok_open.c — the public entry points that load a tokenizer: each decides
 * what it was given (a tokenizer.json file, a llama2.c tokenizer.bin, a GGUF
 * file, or a folder holding tokenizer.json, vocab.json + merges.txt or
 * tokenizer.bin, with tokenizer_config.json and config.json beside it) and
 * hands it to its reader (tok_llama2c.c, tok_gguf.c, tok_slow_bpe.c) or
 * straight to the builder (tok_build.c). The call graph goes one way:
 * tok_open.c -> readers -> tok_build.c; nothing calls back here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tok_internal.h"
#include "tuna_gguf.h"
#include "core/error.h"

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* config.json's bos_token_id / eos_token_id (the first of a list), read as
 * strictly as the model loader does, for what cfg leaves out; ids outside the
 * vocabulary are ignored, as before */
static tuna_status ids_from_model_config(tuna_tokenizer *t, const char *path, json_t *cfg) {
    tuna_status st;
    json_t *mc = tk_load_json_file(path, 0, &st);
    if (!mc) return st;
    jkeys r = {mc, path, "", json_is_object(mc) ? TUNA_OK : core_fail(TUNA_ERR_FORMAT, "%s: not a JSON object", path)};
    int32_t b = -1, e = -1;
    int nb = jkeys_token_ids(&r, "bos_token_id", &b, 1), ne = jkeys_token_ids(&r, "eos_token_id", &e, 1);
    json_decref(mc);
    if (r.st != TUNA_OK) return r.st;
    if (nb && b < t->vocab_size && (!cfg || !json_object_get(cfg, "bos_token"))) t->bos_id = b;
    if (ne && e < t->vocab_size && (!cfg || !json_object_get(cfg, "eos_token"))) t->eos_id = e;
    return TUNA_OK;
}

tuna_status tuna_tokenizer_load(tuna_tokenizer **out, const char *dir) {
    if (!out || !dir) return core_fail(TUNA_ERR_ARG, "tokenizer: load: NULL argument");
    *out = NULL;
    if (tk_is_file(dir)) {
        if (ends_with(dir, ".bin")) return tk_load_llama2c(out, dir);
        if (tuna_is_gguf(dir)) return tk_load_gguf(out, dir);
        tuna_status st;
        json_t *root = tk_load_json_file(dir, 0, &st);
        if (!root) return st;
        st = tk_load_from_json(out, root, NULL, dir);
        json_decref(root);
        return st;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) return core_fail(TUNA_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return core_fail(TUNA_ERR_IO, "%s: not a folder", dir);
    char *tj = tk_join_path(dir, "tokenizer.json"), *tc = tk_join_path(dir, "tokenizer_config.json");
    char *vj = tk_join_path(dir, "vocab.json"), *mt = tk_join_path(dir, "merges.txt");
    char *tb = tk_join_path(dir, "tokenizer.bin"), *cj = tk_join_path(dir, "config.json");
    tuna_status st = TUNA_OK;
    json_t *root = NULL, *cfg = NULL;
    if (!tj || !tc || !vj || !mt || !tb || !cj) { st = tk_nomem(); goto done; }
    if (tk_is_file(tc) && !(cfg = tk_load_json_file(tc, 1, &st))) goto done;
    if (tk_is_file(tj)) {
        if (!(root = tk_load_json_file(tj, 0, &st))) goto done;
    } else if (tk_is_file(vj) && tk_is_file(mt)) {
        if ((st = tk_slow_bpe_to_json(dir, cfg, &root))) goto done;
    } else if (tk_is_file(tb)) {
        st = tk_load_llama2c(out, tb);
        goto done;
    } else {
        st = core_fail(TUNA_ERR_IO, "%s: no tokenizer.json, vocab.json + merges.txt, or tokenizer.bin", dir);
        goto done;
    }
    if ((st = tk_load_from_json(out, root, cfg, tc))) goto done;
    /* config.json's ids fill in what tokenizer_config.json leaves out */
    if (tk_is_file(cj) && (!cfg || !json_object_get(cfg, "bos_token") || !json_object_get(cfg, "eos_token")) &&
        (st = ids_from_model_config(*out, cj, cfg))) {
        tuna_tokenizer_free(*out);
        *out = NULL;
    }
done:
    json_decref(root);
    json_decref(cfg);
    free(tj); free(tc); free(vj); free(mt); free(tb); free(cj);
    return st;
}

tuna_status tuna_tokenizer_load_json(tuna_tokenizer **out, const char *json, size_t len,
                                     const char *config_json, size_t config_len) {
    if (!out) return core_fail(TUNA_ERR_ARG, "tokenizer: load: NULL argument");
    *out = NULL;
    if (!json) return core_fail(TUNA_ERR_ARG, "tokenizer: load: NULL argument");
    json_error_t e;
    json_t *root = json_loadb(json, len, 0, &e);
    if (!root) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json:%d: invalid JSON: %s", e.line, e.text);
    json_t *cfg = NULL;
    if (config_json) {
        cfg = json_loadb(config_json, config_len, JSON_DECODE_INT_AS_REAL, &e);
        if (!cfg) { json_decref(root); return core_fail(TUNA_ERR_FORMAT, "tokenizer_config.json:%d: invalid JSON: %s", e.line, e.text); }
    }
    tuna_status st = tk_load_from_json(out, root, cfg, "tokenizer_config.json");
    json_decref(root);
    json_decref(cfg);
    return st;
}
