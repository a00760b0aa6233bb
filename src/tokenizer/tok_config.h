/* tok_config.h — the keys tuna takes from a tokenizer_config.json, read
 * strictly (core/json_keys.h): a special token is a string, an AddedToken
 * object with a "content" string, or null; chat_template a string or a list
 * of {"name", "template"} objects (the "default" one is used). A value of
 * another shape records one line naming the file, the key and the value in
 * r->st, as transformers refuses it (TypeError). Internal. */
#ifndef TUNA_TOKENIZER_TOK_CONFIG_H
#define TUNA_TOKENIZER_TOK_CONFIG_H
#include "core/json_keys.h"

/* bos_token, eos_token, ...: the token's text, or NULL (absent, null, or an error) */
const char *tk_config_token(jkeys *r, const char *key);
/* chat_template's source, or NULL (absent, no "default" entry, or an error) */
const char *tk_config_template(jkeys *r);
#endif
