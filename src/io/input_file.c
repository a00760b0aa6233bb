/* input_file.c — data inputs opened once (see input_file.h). A regular file
 * is handed over as a stream; anything else that is readable is copied whole
 * into a memory file (memfd; an unlinked temporary file where memfd is
 * missing) while the copy's size and its longest line are checked, so a
 * stream without end (/dev/zero, `yes`) stops at a limit with one clear line
 * instead of filling memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/input_file.h"
#include "core/error.h"

int input_file_is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* a byte count from the environment, or def when unset */
static tuna_status env_bytes(const char *name, uint64_t def, uint64_t *out) {
    const char *s = getenv(name);
    *out = def;
    if (!s || !*s) return TUNA_OK;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-' || v == 0)
        return core_fail(TUNA_ERR_ARG, "%s='%s': expected a positive number of bytes", name, s);
    *out = v;
    return TUNA_OK;
}

/* an anonymous file in memory (or, without memfd, an unlinked temporary) */
static int memory_file(void) {
    int fd = memfd_create("tuna-input", MFD_CLOEXEC);
    if (fd >= 0) return fd;
    FILE *t = tmpfile();
    fd = t ? dup(fileno(t)) : -1;
    if (t) fclose(t);
    return fd;
}

typedef struct {
    const char *path;
    uint64_t max_bytes, max_line;
    uint64_t total, line_len; /* bytes so far; bytes of the current line */
    long line;                /* current line, from 1 */
    const input_progress *progress; /* may be NULL */
    uint64_t step, next_report;     /* report every step bytes; the next at */
} copy_state;

/* tells progress about the bytes copied so far: at each step, and at the end
 * (done) only when something was said before */
static void report(copy_state *c, int done) {
    if (!c->progress || !c->progress->on_read) return;
    if (done ? c->next_report > c->step : c->total >= c->next_report) {
        c->progress->on_read(c->progress->ctx, c->path, c->total, done);
        c->next_report = (c->total / c->step + 1) * c->step;
    }
}

/* the limits over one block read from the stream */
static tuna_status check_block(copy_state *c, const char *p, size_t n) {
    if (c->total + n > c->max_bytes)
        return core_fail(TUNA_ERR_ARG, "%s: more than %llu bytes from a pipe or device (TUNA_INPUT_MAX_BYTES); save it to a file "
                         "or raise the limit", c->path, (unsigned long long)c->max_bytes);
    const char *end = p + n, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
        c->line_len += (uint64_t)(nl - p);
        if (c->line_len > c->max_line) break;
        c->line_len = 0;
        c->line++;
        p = nl + 1;
    }
    if (!nl) c->line_len += (uint64_t)(end - p);
    if (c->line_len > c->max_line)
        return core_fail(TUNA_ERR_ARG, "%s:%ld: a line longer than %llu bytes from a pipe or device (TUNA_INPUT_MAX_LINE)",
                         c->path, c->line, (unsigned long long)c->max_line);
    c->total += n;
    return TUNA_OK;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

/* copies src (up to prefix bytes when > 0) into the memory file dst */
static tuna_status copy_stream(copy_state *c, int src, int dst, uint64_t prefix) {
    static _Thread_local char buf[1 << 16];
    for (;;) {
        size_t want = sizeof buf;
        if (prefix && prefix - c->total < want) want = (size_t)(prefix - c->total);
        if (want == 0) return TUNA_OK;
        ssize_t k = read(src, buf, want);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return core_fail(TUNA_ERR_IO, "%s: read error: %s", c->path, strerror(errno));
        if (k == 0) return TUNA_OK;
        tuna_status st = check_block(c, buf, (size_t)k);
        if (st != TUNA_OK) return st;
        if (!write_all(dst, buf, (size_t)k))
            return core_fail(TUNA_ERR_NOMEM, "%s: cannot hold the input in memory: %s", c->path, strerror(errno));
        report(c, 0);
    }
}

/* reads the stream src whole into memory; *out reads the copy from its start */
static tuna_status slurp(const char *path, int src, uint64_t prefix, const input_progress *p, FILE **out) {
    copy_state c = {path, 0, 0, 0, 0, 1, p, 0, 0};
    tuna_status st = env_bytes("TUNA_INPUT_MAX_BYTES", INPUT_MAX_BYTES_DEFAULT, &c.max_bytes);
    if (st == TUNA_OK) st = env_bytes("TUNA_INPUT_MAX_LINE", INPUT_MAX_LINE_DEFAULT, &c.max_line);
    if (st == TUNA_OK) st = env_bytes("TUNA_INPUT_PROGRESS_BYTES", INPUT_PROGRESS_BYTES_DEFAULT, &c.step);
    if (st != TUNA_OK) return st;
    c.next_report = c.step;
    int mem = memory_file();
    if (mem < 0) return core_fail(TUNA_ERR_IO, "%s: cannot create a memory file: %s", path, strerror(errno));
    st = copy_stream(&c, src, mem, prefix);
    if (st == TUNA_OK) report(&c, 1);
    if (st == TUNA_OK && lseek(mem, 0, SEEK_SET) != 0) st = core_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == TUNA_OK && !(*out = fdopen(mem, "rb"))) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st != TUNA_OK) close(mem);
    return st;
}

tuna_status input_file_open(const char *path, uint64_t prefix, FILE **out) {
    return input_file_open_ex(path, prefix, NULL, out);
}

tuna_status input_file_open_ex(const char *path, uint64_t prefix, const input_progress *p, FILE **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    tuna_status st = TUNA_OK;
    if (fstat(fd, &sb) != 0) st = core_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    else if (S_ISDIR(sb.st_mode)) st = core_fail(TUNA_ERR_ARG, "%s: is a directory", path);
    else if (S_ISREG(sb.st_mode)) {
        if ((*out = fdopen(fd, "rb"))) return TUNA_OK;
        st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    } else st = slurp(path, fd, prefix, p, out);
    close(fd);
    return st;
}
