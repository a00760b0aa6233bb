/* fuzz_serve_request.c — libFuzzer target for the server's request bodies
 * (src/serve/request.c): any bytes, as a chat or a completions body, must
 * give parameters or a 4xx error whose JSON serialises, never a crash or a
 * leak. The first byte picks the endpoint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int chat = data[0] & 1;
    srv_params p;
    srv_error e;
    int rc = srv_parse_request((const char *)data + 1, size - 1, chat, &p, &e);
    if (rc) {
        if (rc < 400 || rc > 599 || !e.type) abort();
        char *js = srv_error_json(&e);
        if (!js) abort();
        free(js);
    } else {
        if (chat ? !p.messages : !p.prompt && !p.prompt_ids) abort();
        srv_params_clear(&p);
    }
    return 0;
}
