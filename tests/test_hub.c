/* test_hub.c — the pure parts of the Hub client: SHA-256 against FIPS 180-4's
 * vectors (streamed in uneven pieces), ids and revisions as huggingface_hub
 * accepts them, file paths and ETags from the server, URL escaping, the
 * default file selection with and without an index, --include/--exclude,
 * the index parser and the cache's link targets. The protocol itself is
 * tests/test_hub.sh's, against a loopback server. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "hub/hub_cache.h"
#include "hub/hub_http.h"
#include "hub/hub_id.h"
#include "hub/hub_select.h"
#include "hub/sha256.h"

static void sha_of(const char *s, size_t n, size_t piece, char out[65]) {
    sha256_ctx c;
    CHECK(sha256_init(&c) == 0);
    for (size_t k = 0; k < n; k += piece) sha256_update(&c, s + k, n - k < piece ? n - k : piece);
    sha256_hex(&c, out);
}

static void test_sha256(void) {
    char h[65];
    sha_of("", 0, 1, h);
    CHECKF(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "%s", h);
    sha_of("abc", 3, 1, h);
    CHECKF(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "%s", h);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: padding spills */
    for (size_t piece = 1; piece <= 64; piece += 7) {
        sha_of(two, strlen(two), piece, h);
        CHECKF(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "piece %zu: %s", piece, h);
    }
    static char mil[1000000];
    memset(mil, 'a', sizeof mil);
    sha_of(mil, sizeof mil, 4093, h);
    CHECKF(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "a x 1e6: %s", h);
}

static void test_ids(void) {
    const char *good[] = {"HuggingFaceTB/SmolLM2-135M", "meta-llama/Llama-3.2-1B@main", "a/b@refs/pr/1",
                          "org_1/x.y@0123456789abcdef0123456789abcdef01234567", "unsloth/Qwen2.5-0.5B@v1.0"};
    const char *bad[] = {"gpt2", "a/b/c", "/abs/path", "./a/b", "a--b/c", "a/b..c", "a/-b", "a/b.", "a/b.git", "a/b@",
                         "a/b@../x", "a/b@x/../y", "a/b@x y", "a/ b", "", "~/a", "a/b@/x"};
    hub_id id;
    char why[256];
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) CHECKF(tuna_hub_is_id(good[k]), "%s", good[k]);
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) CHECKF(!tuna_hub_is_id(bad[k]), "%s", bad[k]);
    CHECK(hub_id_parse("a/b", &id, why, sizeof why) == 0 && !strcmp(id.repo, "a/b") && !strcmp(id.rev, "main"));
    CHECK(hub_id_parse("a/b@refs/pr/1", &id, why, sizeof why) == 0 && !strcmp(id.rev, "refs/pr/1"));
    CHECK(hub_id_parse("a/b@..", &id, why, sizeof why) == -1 && strstr(why, "not a revision"));
    char long_id[120];
    snprintf(long_id, sizeof long_id, "o/%0*d", 95, 7);
    CHECK(!tuna_hub_is_id(long_id));
}

static void test_names(void) {
    CHECK(hub_path_ok("onnx/model.onnx") && hub_path_ok("a.json"));
    CHECK(!hub_path_ok("../x") && !hub_path_ok("/etc/passwd") && !hub_path_ok("a//b") && !hub_path_ok("a/./b") &&
          !hub_path_ok("a/") && !hub_path_ok("a\\b") && !hub_path_ok("a\nb") && !hub_path_ok(""));
    CHECK(hub_etag_ok("e3b0c44298fc1c14") && !hub_etag_ok("../x") && !hub_etag_ok("a.b") && !hub_etag_ok(""));
    char e[64];
    snprintf(e, sizeof e, "W/\"abc\"");
    hub_etag_clean(e);
    CHECKF(!strcmp(e, "abc"), "%s", e);
    snprintf(e, sizeof e, "\"abc\"");
    hub_etag_clean(e);
    CHECK(!strcmp(e, "abc"));
    char u[64];
    CHECK(hub_url_escape(u, sizeof u, "refs/pr/1", 0) == 0 && !strcmp(u, "refs%2Fpr%2F1"));
    CHECK(hub_url_escape(u, sizeof u, "a b/c#d.json", 1) == 0 && !strcmp(u, "a%20b/c%23d.json"));
    CHECK(hub_url_escape(u, 4, "abcd", 1) == -1);
    CHECK(hub_is_hex("0123456789abcdefABCDEF0123456789abcdef01", 40) && !hub_is_hex("0123", 40));
}

static void test_selection(void) {
    const char *idx_json = "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                           "\"b\":\"model-00002-of-00002.safetensors\",\"c\":\"model-00001-of-00002.safetensors\"}}";
    hub_shards idx;
    CHECK(hub_shards_parse(idx_json, strlen(idx_json), &idx) == TUNA_OK && idx.n == 2);
    CHECK(hub_selected("model-00002-of-00002.safetensors", NULL, &idx) && !hub_selected("consolidated.safetensors", NULL, &idx));
    CHECK(hub_selected("consolidated.safetensors", NULL, NULL)); /* no index: every top-level safetensors */
    hub_shards_free(&idx);
    const char *in_default[] = {"config.json", "tokenizer.model", "adapter_model.safetensors", "chat_template.jinja",
                                "generation_config.json", "merges.txt"};
    const char *not_default[] = {"pytorch_model.bin", "model.pt", "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx",
                                 "README.md", "original/model.safetensors", "training_args.bin"};
    for (size_t k = 0; k < sizeof in_default / sizeof *in_default; k++) CHECKF(hub_selected(in_default[k], NULL, NULL), "%s", in_default[k]);
    for (size_t k = 0; k < sizeof not_default / sizeof *not_default; k++) CHECKF(!hub_selected(not_default[k], NULL, NULL), "%s", not_default[k]);
    const char *inc[] = {"*.bin", "onnx/"}, *exc[] = {"training*"};
    tuna_hub_opts o = {.include = inc, .n_include = 2, .exclude = exc, .n_exclude = 1};
    CHECK(hub_selected("pytorch_model.bin", &o, NULL) && hub_selected("onnx/model.onnx", &o, NULL));
    CHECK(!hub_selected("training_args.bin", &o, NULL) && !hub_selected("config.json", &o, NULL));
    const char *bad = "{\"weight_map\":{\"a\":\"../../x\"}}";
    CHECK(hub_shards_parse(bad, strlen(bad), &idx) == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "weight_map"));
    CHECK(hub_shards_parse("[]", 2, &idx) == TUNA_ERR_FORMAT);
}

static void header(hub_resp *r, const char *line) { hub_header_line(r, line, strlen(line)); }

static void test_headers(void) {
    hub_resp r;
    memset(&r, 0, sizeof r);
    header(&r, "HTTP/1.1 302 Found\r\n");
    header(&r, "x-repo-commit: 1111111111111111111111111111111111111111\r\n");
    header(&r, "X-Linked-Etag:   \"abc\"  \r\n");
    header(&r, "X-Linked-Size: 6302472\r\n");
    header(&r, "Content-Length: 12x\r\n");
    header(&r, "ETag: W/\"def\"\r\n");
    header(&r, "Location: https://cdn.example/x?y=1\r\n");
    CHECK(r.code == 302 && !strcmp(r.commit, "1111111111111111111111111111111111111111"));
    CHECKF(!strcmp(r.linked_etag, "\"abc\""), "%s", r.linked_etag);
    CHECK(r.linked_size == 6302472 && r.content_length == -1 && !strcmp(r.etag, "W/\"def\""));
    CHECK(!strcmp(r.location, "https://cdn.example/x?y=1"));
    char big[300];
    memset(big, 'a', sizeof big);
    memcpy(big, "X-Repo-Commit: ", 15);
    hub_header_line(&r, big, sizeof big); /* no NUL, longer than the field */
    CHECK(strlen(r.commit) == sizeof r.commit - 1);
    header(&r, "HTTP/2 404\r\n"); /* a new response: the old values gone */
    CHECK(r.code == 404 && !r.commit[0] && r.linked_size == -1);
    hub_header_line(&r, "HTTP/1.1 2", 10);
    CHECK(r.code == 0);
}

static void test_links(void) {
    char dir[] = "/tmp/tuna-test-hub.XXXXXX", p[PATH_MAX + 128], t[512];
    if (!mkdtemp(dir)) { CHECK(0); return; }
    hub_cache c;
    CHECK(hub_cache_init(&c, dir, "org/name") == TUNA_OK && strstr(c.repo_dir, "/models--org--name"));
    const char *commit = "0123456789abcdef0123456789abcdef01234567";
    CHECK(hub_cache_link(&c, commit, "a/b/c.json", "abc") == TUNA_OK);
    snprintf(p, sizeof p, "%s/snapshots/%s/a/b/c.json", c.repo_dir, commit);
    ssize_t n = readlink(p, t, sizeof t - 1);
    t[n > 0 ? n : 0] = '\0';
    CHECKF(!strcmp(t, "../../../../blobs/abc"), "%s", t);
    CHECK(!hub_cache_has(&c, commit, "a/b/c.json")); /* the blob is missing */
    char got[41];
    CHECK(hub_cache_ref(&c, "main", got) == -1);
    CHECK(hub_cache_set_ref(&c, "refs/pr/1", commit) == TUNA_OK && hub_cache_ref(&c, "refs/pr/1", got) == 0 && !strcmp(got, commit));
    CHECK(hub_cache_ref(&c, commit, got) == 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    test_sha256();
    test_ids();
    test_names();
    test_selection();
    test_headers();
    test_links();
    return test_done();
}
