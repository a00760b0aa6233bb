/* reward_cmd.c — GRPO's outside reward program (see reward_cmd.h): the JSONL
 * it reads, the process (posix_spawn of /bin/sh -c in a new process group),
 * the poll loop that writes its input while reading its output under one
 * deadline, and the parser of its numbers. The program's failures are the
 * user's input errors (TUNA_ERR_ARG, one line naming the program and what
 * went wrong); only failing to start it is TUNA_ERR_IO. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

#include "core/clock.h"
#include "core/error.h"
#include "train/reward_cmd.h"

extern char **environ;

/* ---- the input: JSONL ---- */

/* s as a JSON string at o (room for 6 bytes per input byte + 2); returns the
 * bytes written. UTF-8 is copied as is, invalid bytes become \ufffd. */
static size_t json_str(char *o, const char *s) {
    size_t j = 0, n = strlen(s);
    o[j++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { o[j++] = '\\'; o[j++] = (char)c; i++; continue; }
        if (c == '\n') { memcpy(o + j, "\\n", 2); j += 2; i++; continue; }
        if (c == '\t') { memcpy(o + j, "\\t", 2); j += 2; i++; continue; }
        if (c < 0x20 || c == 0x7f) { j += (size_t)sprintf(o + j, "\\u%04x", c); i++; continue; }
        if (c < 0x80) { o[j++] = (char)c; i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) { memcpy(o + j, "\\ufffd", 6); j += 6; i++; continue; }
        memcpy(o + j, s + i, (size_t)k);
        j += (size_t)k;
        i += (size_t)k;
    }
    o[j++] = '"';
    return j;
}

tuna_status reward_cmd_input(int n, const char *const *prompts, const char *const *completions,
                             const char *const *refs, char **buf, size_t *len) {
    size_t cap = 1;
    for (int i = 0; i < n; i++)
        cap += 64 + 6 * (strlen(prompts[i]) + strlen(completions[i]) + (refs && refs[i] ? strlen(refs[i]) : 0));
    char *o = malloc(cap);
    if (!o) return core_fail(TUNA_ERR_NOMEM, "reward program input: %zu bytes", cap);
    size_t j = 0;
    for (int i = 0; i < n; i++) {
        j += (size_t)sprintf(o + j, "{\"prompt\":");
        j += json_str(o + j, prompts[i]);
        j += (size_t)sprintf(o + j, ",\"completion\":");
        j += json_str(o + j, completions[i]);
        j += (size_t)sprintf(o + j, ",\"reference\":");
        if (refs && refs[i]) j += json_str(o + j, refs[i]);
        else j += (size_t)sprintf(o + j, "null");
        o[j++] = '}';
        o[j++] = '\n';
    }
    o[j] = 0;
    *buf = o;
    *len = j;
    return TUNA_OK;
}

/* ---- the output: one number a line ---- */

/* s[0..l) trimmed of spaces, tabs and CR as a finite number */
static int parse_number(const char *s, size_t l, double *v) {
    while (l && (*s == ' ' || *s == '\t' || *s == '\r')) { s++; l--; }
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r')) l--;
    char tmp[64];
    if (l == 0 || l >= sizeof tmp || memchr(s, 0, l)) return 0;
    memcpy(tmp, s, l);
    tmp[l] = 0;
    char *end;
    errno = 0;
    *v = strtod(tmp, &end);
    return end == tmp + l && isfinite(*v) && errno != ERANGE;
}

tuna_status reward_cmd_parse(const char *name, const char *buf, size_t len, int n, double *out) {
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - s) : len - pos;
        pos += l + (nl != NULL);
        if (++line > n)
            return core_fail(TUNA_ERR_ARG, "reward %s: its output has more than %d lines (one number per completion)",
                             name, n);
        if (!parse_number(s, l, &out[line - 1])) {
            char shown[48];
            size_t k = l < sizeof shown - 1 ? l : sizeof shown - 1;
            for (size_t i = 0; i < k; i++) shown[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
            shown[k] = 0;
            return core_fail(TUNA_ERR_ARG, "reward %s: line %d of its output: '%s%s' is not a number", name, line,
                             shown, l > k ? "..." : "");
        }
    }
    if (line < n)
        return core_fail(TUNA_ERR_ARG, "reward %s: its output has %d line%s for %d completions (one number per line)",
                         name, line, line == 1 ? "" : "s", n);
    return TUNA_OK;
}

/* ---- the process ---- */

typedef struct {
    pid_t pid;
    int in_fd, out_fd;           /* our ends: its stdin, its stdout; -1 closed */
    const char *in;              /* the JSONL and how much of it is written */
    size_t in_len, in_off;
    char *out;                   /* what it printed */
    size_t out_len, out_cap, out_max;
    double deadline;             /* core_now_s() */
} cmd_proc;

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static tuna_status spawn(cmd_proc *p, const char *name, const char *prog) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC)) return core_fail(TUNA_ERR_IO, "reward %s: pipe: %s", name, strerror(errno));
    if (pipe2(out, O_CLOEXEC)) {
        close(in[0]);
        close(in[1]);
        return core_fail(TUNA_ERR_IO, "reward %s: pipe: %s", name, strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawnattr_init(&at);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"sh", "-c", (char *)prog, NULL};
    int e = posix_spawn(&p->pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(out[1]);
    p->in_fd = in[1];
    p->out_fd = out[0];
    if (e) {
        close_fd(&p->in_fd);
        close_fd(&p->out_fd);
        return core_fail(TUNA_ERR_IO, "reward %s: cannot start /bin/sh: %s", name, strerror(e));
    }
    fcntl(p->in_fd, F_SETFL, fcntl(p->in_fd, F_GETFL) | O_NONBLOCK);
    return TUNA_OK;
}

/* more of the input into its stdin; closes it when all is written or the
 * program stopped reading (EPIPE: the SIGPIPE stays blocked, see run) */
static void feed(cmd_proc *p, int *epipe) {
    size_t left = p->in_len - p->in_off;
    ssize_t w = write(p->in_fd, p->in + p->in_off, left < 65536 ? left : 65536);
    if (w > 0) p->in_off += (size_t)w;
    if (w < 0 && errno == EPIPE) *epipe = 1;
    if ((w < 0 && errno != EAGAIN && errno != EINTR) || p->in_off == p->in_len) close_fd(&p->in_fd);
}

/* what it printed since; *eof at its end */
static tuna_status drain(cmd_proc *p, const char *name, int *eof) {
    if (p->out_len + 4096 > p->out_cap) {
        size_t cap = p->out_cap * 2 + 8192;
        char *o = realloc(p->out, cap);
        if (!o) return core_fail(TUNA_ERR_NOMEM, "reward %s: output buffer of %zu bytes", name, cap);
        p->out = o;
        p->out_cap = cap;
    }
    ssize_t r = read(p->out_fd, p->out + p->out_len, p->out_cap - p->out_len);
    if (r < 0 && errno != EINTR && errno != EAGAIN)
        return core_fail(TUNA_ERR_IO, "reward %s: read: %s", name, strerror(errno));
    *eof = r == 0;
    if (r > 0) p->out_len += (size_t)r;
    if (p->out_len > p->out_max)
        return core_fail(TUNA_ERR_ARG, "reward %s: printed more than %zu bytes (one number per completion expected)",
                         name, p->out_max);
    return TUNA_OK;
}

static tuna_status timed_out(const char *name, double timeout_s, int n) {
    return core_fail(TUNA_ERR_ARG, "reward %s: no answer for %d completion%s within %g s (--reward-timeout); "
                     "the program was killed", name, n, n == 1 ? "" : "s", timeout_s);
}

/* input out, output in, until its stdout closes; TUNA_OK or a failure */
static tuna_status exchange(cmd_proc *p, const char *name, double timeout_s, int n, int *epipe) {
    while (p->out_fd >= 0) {
        double left = p->deadline - core_now_s();
        if (left <= 0) return timed_out(name, timeout_s, n);
        struct pollfd fds[2] = {{.fd = p->out_fd, .events = POLLIN}, {.fd = p->in_fd, .events = POLLOUT}};
        int r = poll(fds, p->in_fd >= 0 ? 2 : 1, left > 1e6 ? 1000000000 : (int)ceil(left * 1000));
        if (r < 0 && errno != EINTR) return core_fail(TUNA_ERR_IO, "reward %s: poll: %s", name, strerror(errno));
        if (r <= 0) continue;
        if (p->in_fd >= 0 && fds[1].revents) feed(p, epipe);
        if (fds[0].revents) {
            int eof = 0;
            tuna_status s = drain(p, name, &eof);
            if (s != TUNA_OK) return s;
            if (eof) close_fd(&p->out_fd);
        }
    }
    close_fd(&p->in_fd);
    return TUNA_OK;
}

/* its exit status within the deadline (*status), or a timeout */
static tuna_status reap(cmd_proc *p, const char *name, double timeout_s, int n, int *status) {
    for (;;) {
        pid_t w = waitpid(p->pid, status, WNOHANG);
        if (w == p->pid) { p->pid = 0; return TUNA_OK; }
        if (w < 0 && errno != EINTR) return core_fail(TUNA_ERR_IO, "reward %s: waitpid: %s", name, strerror(errno));
        if (core_now_s() >= p->deadline) return timed_out(name, timeout_s, n);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

/* after a failure: the whole process group killed and the child reaped */
static void kill_and_reap(cmd_proc *p) {
    if (p->pid <= 0) return;
    kill(-p->pid, SIGKILL);
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {}
    p->pid = 0;
}

static tuna_status exit_status(const char *name, int st) {
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return TUNA_OK;
    if (WIFEXITED(st)) return core_fail(TUNA_ERR_ARG, "reward %s: the program exited with status %d", name, WEXITSTATUS(st));
    return core_fail(TUNA_ERR_ARG, "reward %s: the program was killed by signal %d (%s)", name, WTERMSIG(st),
                     strsignal(WTERMSIG(st)));
}

/* the exchange with SIGPIPE blocked in this thread; a SIGPIPE our writes
 * raised is taken back before the mask is restored */
static tuna_status run(cmd_proc *p, const char *name, const char *prog, double timeout_s, int n) {
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE), epipe = 0, st = 0;
    tuna_status s = spawn(p, name, prog);
    if (s == TUNA_OK) s = exchange(p, name, timeout_s, n, &epipe);
    if (s == TUNA_OK) s = reap(p, name, timeout_s, n, &st);
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    kill_and_reap(p);
    if (epipe && !was_pending) sigtimedwait(&pipe_set, NULL, &(struct timespec){0, 0});
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return s == TUNA_OK ? exit_status(name, st) : s;
}

tuna_status reward_cmd_run(const char *name, const char *prog, double timeout_s, int n, const char *const *prompts,
                           const char *const *completions, const char *const *refs, double *out) {
    /* room for n numbers of up to 63 characters with their padding, at least 1 MiB */
    size_t out_max = (size_t)n * 256 > (size_t)1 << 20 ? (size_t)n * 256 : (size_t)1 << 20;
    cmd_proc p = {.in_fd = -1, .out_fd = -1, .out_max = out_max};
    char *in;
    tuna_status s = reward_cmd_input(n, prompts, completions, refs, &in, &p.in_len);
    if (s != TUNA_OK) return s;
    p.in = in;
    p.deadline = core_now_s() + timeout_s;
    s = run(&p, name, prog, timeout_s, n);
    if (s == TUNA_OK) s = reward_cmd_parse(name, p.out ? p.out : "", p.out_len, n, out);
    free(in);
    free(p.out);
    return s;
}
