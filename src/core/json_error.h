/* json_error.h — the text of a jansson parse error as tuna shows it: jansson's
 * own words, except where they name its flags instead of the problem (a
 * \u0000 escape is refused "without JSON_ALLOW_NUL"). */
#ifndef TUNA_CORE_JSON_ERROR_H
#define TUNA_CORE_JSON_ERROR_H
#include <jansson.h>

static inline const char *tuna_json_error_text(const json_error_t *e) {
    if (json_error_code(e) == json_error_null_character) return "NUL characters (\\u0000) are not allowed in strings";
    return e->text;
}
#endif
