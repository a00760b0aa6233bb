/* fuzz_hub.c — libFuzzer target for what the Hub client reads from outside:
 * response header lines (hub_header_line: the status, X-Repo-Commit, ETags,
 * sizes, Location) and the checks the values then pass (ETag cleaning and
 * naming, commits, paths, URL escaping), a safetensors index's shard list,
 * and ids and revisions as the user types them. Any bytes: no crash, no
 * leak, no read past a line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub_http.h"
#include "hub/hub_id.h"
#include "hub/hub_select.h"

static void check_values(hub_resp *r) {
    char esc[64];
    hub_etag_clean(r->etag);
    hub_etag_clean(r->linked_etag);
    (void)hub_etag_ok(r->etag);
    (void)hub_is_hex(r->linked_etag, 64);
    (void)hub_is_hex(r->commit, 40);
    (void)hub_url_escape(esc, sizeof esc, r->location, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hub_resp r;
    memset(&r, 0, sizeof r);
    for (size_t s = 0; s < size;) { /* header lines, each handed over without a NUL as curl does */
        const uint8_t *nl = memchr(data + s, '\n', size - s);
        size_t n = nl ? (size_t)(nl - (data + s)) + 1 : size - s;
        char *line = malloc(n ? n : 1);
        memcpy(line, data + s, n);
        hub_header_line(&r, line, n);
        free(line);
        s += n;
    }
    check_values(&r);
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    hub_id id;
    char why[256];
    (void)hub_id_parse(s, &id, why, sizeof why);
    (void)hub_path_ok(s);
    hub_shards sh;
    if (hub_shards_parse(s, size, &sh) == TUNA_OK) {
        for (int k = 0; k < sh.n; k++)
            if (!hub_path_ok(sh.names[k])) abort(); /* the parser lets no bad name through */
        (void)hub_selected("model-00001-of-00002.safetensors", NULL, &sh);
        hub_shards_free(&sh);
    }
    free(s);
    return 0;
}
