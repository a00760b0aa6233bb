/* tok_config.c — tokenizer_config.json's special tokens and chat template,
 * read strictly (tok_config.h). */
#include "tokenizer/tok_config.h"

#include <string.h>

const char *tk_config_token(jkeys *r, const char *key) {
    json_t *v = jkeys_get(r, key);
    if (!v || json_is_string(v)) return json_string_value(v);
    json_t *c = json_is_object(v) ? json_object_get(v, "content") : NULL;
    if (json_is_string(c)) return json_string_value(c);
    jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be a string or an object with a \"content\" string");
    return NULL;
}

const char *tk_config_template(jkeys *r) {
    json_t *ct = jkeys_get(r, "chat_template");
    if (!ct || json_is_string(ct)) return json_string_value(ct);
    const char *pick = NULL;
    size_t i;
    json_t *e;
    if (json_is_array(ct)) {
        json_array_foreach(ct, i, e) {
            json_t *name = json_object_get(e, "name"), *t = json_object_get(e, "template");
            if (!json_is_string(name) || !json_is_string(t)) { pick = NULL; break; }
            if (!strcmp(json_string_value(name), "default")) pick = json_string_value(t);
        }
        if (i == json_array_size(ct)) return pick;
    }
    jkeys_fail(r, TUNA_ERR_FORMAT, "chat_template", ct, "must be a string or a list of {\"name\": string, \"template\": string} objects");
    return NULL;
}
