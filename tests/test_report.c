/* test_report.c — the training report (tuna_report_write and `tuna report`):
 * synthetic run folders written here (a normal run with evaluations and a
 * general-text before/after, NaN/inf values and a truncated line, a single
 * step, no steps, a constant loss, 20k steps with a spike and a DPO-style
 * extra metric, missing train_args.json, missing metrics.jsonl, a hostile
 * string in the settings), each checked for: the page exists, its <svg> tags
 * balance, every path's "d" is made of drawing commands and numbers only (no
 * nan/inf leaking into coordinates), nothing refers to the network, strings
 * are escaped, the expected numbers are shown, and the size stays bounded. */
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "train/polyline.h"
#include "tuna_report.h"

static char root[256];

static void make_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", root, name);
    mkdir(out, 0755);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) { CHECKF(0, "cannot create %s", p); return; }
    fputs(text, f);
    fclose(f);
}

/* The report of dir as a malloc'd string (NULL if absent). */
static char *read_report(const char *dir, size_t *size) {
    char p[512];
    snprintf(p, sizeof p, "%s/report.html", dir);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = '\0';
    fclose(f);
    *size = (size_t)n;
    return s;
}

static int count(const char *s, const char *needle) {
    int k = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) k++;
    return k;
}

/* Checks every report must pass; returns the page (caller frees) or NULL. */
static char *check_report(const char *dir, const char *what) {
    size_t n = 0;
    char *h = read_report(dir, &n);
    CHECKF(h != NULL, "%s: report.html not written", what);
    if (!h) return NULL;
    CHECKF(!strncmp(h, "<!DOCTYPE html>", 15), "%s: no doctype", what);
    CHECKF(n > 1 && !strcmp(h + n - 8, "</html>\n"), "%s: page not complete", what);
    CHECKF(count(h, "<svg") == count(h, "</svg>") && count(h, "<svg") >= 4, "%s: <svg> %d vs </svg> %d", what,
           count(h, "<svg"), count(h, "</svg>"));
    CHECKF(count(h, "<figure") == count(h, "</figure>"), "%s: unbalanced <figure>", what);
    CHECKF(!strstr(h, "http") && !strstr(h, "src=\"") && !strstr(h, "href") && !strstr(h, "url(") && !strstr(h, "@import"),
           "%s: refers to something outside the page", what);
    CHECKF(count(h, "<script") == 1 && count(h, "</script>") == 1, "%s: one inline script expected", what);
    int bad_d = 0;
    for (const char *p = h; (p = strstr(p, " d=\"")); ) {
        p += 4;
        size_t len = strcspn(p, "\"");
        if (strspn(p, "MLHVmhlvaz0123456789.- ") < len) bad_d++;
        p += len;
    }
    CHECKF(bad_d == 0, "%s: %d path(s) with something other than numbers in d", what, bad_d);
    /* written atomically: no temporary left beside it */
    DIR *d = opendir(dir);
    int tmp = 0;
    for (struct dirent *e; d && (e = readdir(d));) tmp += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    CHECKF(tmp == 0, "%s: temporary file left", what);
    return h;
}

static const char *args_json =
    "{\n  \"command\": \"sft\",\n  \"model\": \"models/tiny\",\n"
    "  \"data\": [{\"path\": \"a.jsonl\", \"weight\": 0.7}, {\"path\": \"b.jsonl\", \"weight\": 0.3}],\n"
    "  \"method\": \"full\",\n  \"lr\": 2e-05,\n  \"betas\": [0.90000000000000002, 0.999],\n"
    "  \"seq_len\": 512,\n  \"steps\": 51,\n  \"note\": \"</script><b>x & 'y'</b>\"\n}\n";

static void test_normal_run(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "normal");
    FILE *f;
    char p[600];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    f = fopen(p, "w");
    for (int s = 1; s <= 51; s++) {
        fprintf(f, "{\"step\":%d,\"epoch\":%.6g,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens\":100,"
                   "\"tokens_per_s\":%d,\"elapsed_s\":%d}\n",
                s, s / 51.0, 3.0 - s * 0.03, 2e-5 * s / 51, 1.0 / s, 1000 + s, s * 2);
        if (s % 10 == 0)
            fprintf(f, "{\"step\":%d,\"eval_loss\":%.9g,\"eval_tokens\":500,\"eval_loss/a.jsonl\":%.9g}\n", s,
                    s == 30 ? 1.5 : 2.0, 2.1);
    }
    fputs("{\"mixture\":{\"a.jsonl\":{\"target\":0.7,\"actual\":0.69,\"sequences\":69}}}\n", f);
    fclose(f);
    write_text(dir, "train_args.json", args_json);
    write_text(dir, "general_eval.json",
               "{\"before\":{\"loss\":3.0,\"ppl\":20.0855,\"tokens\":1234},\"after\":{\"loss\":3.08,\"ppl\":21.7584,"
               "\"tokens\":1234},\"ppl_change_pct\":8.33}");
    CHECKF(tuna_report_write(dir) == TUNA_OK, "normal: %s", tuna_last_error());
    char *h = check_report(dir, "normal");
    if (!h) return;
    CHECK(strstr(h, "1.4700"));                          /* final train loss 3 - 51*0.03 */
    CHECK(strstr(h, "1.5000") && strstr(h, "at step 30")); /* best val loss and its step */
    CHECK(strstr(h, ">1026<"));                          /* median tokens/s of 1001..1051 */
    CHECK(strstr(h, "1 min 42 s"));                      /* total time: elapsed 102 s */
    CHECK(strstr(h, "a.jsonl (0.7), b.jsonl (0.3)"));    /* data list */
    CHECK(strstr(h, "0.9, 0.999"));                      /* numbers compact, not binary expansions */
    CHECK(strstr(h, "+8.33%") && strstr(h, "class=\"bad\"")); /* perplexity went up: red */
    CHECK(strstr(h, "1234"));
    CHECK(strstr(h, "Settings") && strstr(h, "seq_len"));
    CHECK(strstr(h, ">val a.jsonl<"));                   /* per-task validation drawn with the loss */
    CHECK(!strstr(h, "Other metrics"));                  /* nothing beyond the standard series */
    CHECK(!strstr(h, "</script><b>") && strstr(h, "&lt;/script&gt;&lt;b&gt;x &amp; &#39;y&#39;&lt;/b&gt;"));
    CHECK(!strstr(h, "class=\"notes\""));                /* nothing to warn about */
    free(h);
    /* a lower perplexity after training is green */
    write_text(dir, "general_eval.json", "{\"before\":{\"loss\":3.0,\"ppl\":20.0855},\"after\":{\"loss\":2.9,\"ppl\":18.17}}");
    CHECK(tuna_report_write(dir) == TUNA_OK);
    h = check_report(dir, "normal, better general ppl");
    if (h) CHECK(strstr(h, "class=\"good\"") && strstr(h, "-9.54%") && !strstr(h, "class=\"bad\""));
    free(h);
}

static void test_nonfinite(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "nan");
    write_text(dir, "metrics.jsonl",
               "{\"step\":1,\"loss\":2.5,\"lr\":1e-5,\"grad_norm\":1.0,\"tokens_per_s\":100,\"elapsed_s\":1}\n"
               "{\"step\":2,\"loss\":nan,\"lr\":1e-5,\"grad_norm\":inf,\"tokens_per_s\":100,\"elapsed_s\":2}\n"
               "{\"step\":3,\"loss\":-nan,\"lr\":1e-5,\"grad_norm\":Infinity,\"tokens_per_s\":100,\"elapsed_s\":3}\n"
               "{\"step\":4,\"loss\":NaN,\"lr\":1e-5,\"grad_norm\":-inf,\"tokens_per_s\":100,\"elapsed_s\":4}\n"
               "{\"step\":5,\"loss\":2.25,\"lr\":1e-5,\"grad_norm\":0.5,\"tokens_per_s\":100,\"elapsed_s\":5,"
               "\"tag\":\"nan inf\",\"<img src=x onerror=alert(1)>\":0.5}\n"
               "{\"step\":6,\"eval_loss\":nan,\"eval_tokens\":10}\n"
               "{\"step\":7,\"loss\":2.0,\"lr\":1e-");
    CHECKF(tuna_report_write(dir) == TUNA_OK, "nan: %s", tuna_last_error());
    char *h = check_report(dir, "nan");
    if (!h) return;
    CHECK(strstr(h, "3 non-finite values of <b>loss</b>"));
    CHECK(strstr(h, "3 non-finite values of <b>grad_norm</b>"));
    CHECK(strstr(h, "1 non-finite value of <b>eval_loss</b>"));
    CHECK(strstr(h, "1 unreadable line skipped (first: line 7)"));
    CHECK(strstr(h, "class=\"nf\""));   /* marked on the chart */
    CHECK(strstr(h, "2.2500"));         /* final finite train loss */
    CHECK(strstr(h, "no validation"));  /* the only eval value was NaN */
    CHECK(!strstr(h, "<img") && strstr(h, "&lt;img src=x onerror=alert(1)&gt;")); /* a hostile metric name */
    free(h);
}

/* A resumed run logs steps again; unreadable side files are noted, not fatal. */
static void test_resumed_and_damaged(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "resumed");
    write_text(dir, "metrics.jsonl",
               "{\"step\":1,\"loss\":3}\n{\"step\":2,\"loss\":2.9}\n{\"step\":3,\"loss\":9}\n"
               "{\"step\":2,\"loss\":2.875}\n{\"step\":3,\"loss\":2.75}\n{\"step\":4,\"loss\":2.625}\n");
    write_text(dir, "train_args.json", "{\"command\": \"sft\", ");
    write_text(dir, "general_eval.json", "{\"before\": {\"loss\": 3}}");
    CHECKF(tuna_report_write(dir) == TUNA_OK, "resumed: %s", tuna_last_error());
    char *h = check_report(dir, "resumed");
    if (!h) return;
    CHECK(strstr(h, "2 steps logged twice"));
    CHECK(strstr(h, "2.6250") && strstr(h, ">4<"));
    CHECK(strstr(h, "train_args.json not readable") && !strstr(h, "<h2>Settings"));
    CHECK(strstr(h, "general_eval.json is present but not readable") && !strstr(h, "General-text"));
    free(h);
    /* values beyond what can be drawn */
    write_text(dir, "metrics.jsonl", "{\"step\":1,\"loss\":1e308}\n{\"step\":2,\"loss\":-1e308}\n");
    CHECKF(tuna_report_write(dir) == TUNA_OK, "huge: %s", tuna_last_error());
    h = check_report(dir, "huge values");
    if (h) CHECK(strstr(h, "values too large to plot"));
    free(h);
}

static void test_small_runs(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "one");
    write_text(dir, "metrics.jsonl",
               "{\"step\":1,\"epoch\":0.5,\"loss\":4.125,\"lr\":0,\"grad_norm\":2,\"tokens\":8,\"tokens_per_s\":50,"
               "\"elapsed_s\":0.5}\n");
    CHECKF(tuna_report_write(dir) == TUNA_OK, "one: %s", tuna_last_error());
    char *h = check_report(dir, "one step");
    if (h) {
        CHECK(strstr(h, "4.1250") && strstr(h, "0.5 s"));
        CHECK(strstr(h, "train_args.json not found") && !strstr(h, "<h2>Settings"));
        CHECK(strstr(h, "a2.5 2.5")); /* the single point is drawn as a ring */
    }
    free(h);

    make_dir(dir, sizeof dir, "zero");
    write_text(dir, "metrics.jsonl", "");
    write_text(dir, "train_args.json", args_json);
    CHECKF(tuna_report_write(dir) == TUNA_OK, "zero: %s", tuna_last_error());
    h = check_report(dir, "zero steps");
    if (h) CHECK(strstr(h, "no data") && strstr(h, "no training steps yet") && strstr(h, "of 51 planned"));
    free(h);

    make_dir(dir, sizeof dir, "flat");
    char p[600];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (int s = 1; s <= 300; s++)
        fprintf(f, "{\"step\":%d,\"loss\":2.5,\"lr\":0.001,\"grad_norm\":0,\"tokens_per_s\":7}\n", s);
    fclose(f);
    CHECKF(tuna_report_write(dir) == TUNA_OK, "flat: %s", tuna_last_error());
    h = check_report(dir, "constant");
    if (h) CHECK(strstr(h, ">2.5<") && strstr(h, ">0.001<")); /* the flat line's value is on the axis */
    free(h);
}

static void test_long_run(void) {
    char dir[512], p[600];
    make_dir(dir, sizeof dir, "long");
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    uint32_t r = 12345;
    for (int s = 1; s <= 20000; s++) {
        r = r * 1664525u + 1013904223u;
        double noise = (r >> 8) / 16777216.0 - 0.5;
        double loss = s == 12345 ? 100.0 : 2.0 + 3.0 / (1 + s / 100.0) + 0.2 * noise;
        fprintf(f, "{\"step\":%d,\"epoch\":%.6g,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens\":4096,"
                   "\"tokens_per_s\":%.6g,\"elapsed_s\":%.6g,\"rewards/accuracies\":%.4g}\n",
                s, s / 5000.0, loss, 1e-4 * (1 - s / 20000.0), 1 + noise, 20000 + 3000 * noise, s * 0.25,
                0.5 + 0.4 * s / 20000 + 0.1 * noise);
        if (s % 500 == 0) fprintf(f, "{\"step\":%d,\"eval_loss\":%.9g,\"eval_tokens\":9999}\n", s, 2.1 + 3.0 / (1 + s / 100.0));
    }
    fclose(f);
    write_text(dir, "train_args.json", args_json);
    CHECKF(tuna_report_write(dir) == TUNA_OK, "long: %s", tuna_last_error());
    size_t n = 0;
    char *h = check_report(dir, "20k steps");
    free(read_report(dir, &n));
    CHECKF(n > 20000 && n < 200000, "20k steps: report is %zu bytes", n);
    if (h) {
        CHECK(strstr(h, "Other metrics") && strstr(h, "rewards/accuracies"));
        CHECK(strstr(h, ">100<"));   /* the one-step spike is kept by the min/max reduction: the axis reaches it */
        CHECK(strstr(h, ">20k<"));   /* step axis */
        CHECK(strstr(h, "1 h 23 min")); /* 5000 s */
    }
    free(h);
}

/* ---- drawn lines against their data (the oracle here is independent of polyline.c) ---- */

/* Distance from (px, py) to segment a-b. */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
    double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(px - ax - t * dx, py - ay - t * dy);
}

/* A drawn path: its points, each flagged when it starts a subpath ("M"). */
enum { MAX_DRAWN = 8192 };
typedef struct { double x[MAX_DRAWN], y[MAX_DRAWN]; int start[MAX_DRAWN]; int n, overflow; } drawn;

/* Distance from (px, py) to the drawn path (a lone point counts as a point). */
static double drawn_dist(const drawn *d, double px, double py) {
    double best = INFINITY;
    for (int i = 0; i < d->n; i++) {
        int lone = d->start[i] && (i + 1 == d->n || d->start[i + 1]);
        if (!d->start[i]) best = fmin(best, seg_dist(px, py, d->x[i - 1], d->y[i - 1], d->x[i], d->y[i]));
        else if (lone) best = fmin(best, hypot(px - d->x[i], py - d->y[i]));
    }
    return best;
}

/* Parses the M/L points of d="..." (rings of lone points skipped). */
static void parse_d(const char *s, drawn *d) {
    d->n = d->overflow = 0;
    char cmd = 0;
    int fresh = 0;
    while (*s && *s != '"') {
        if (*s == ' ') { s++; continue; }
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) { cmd = *s++; fresh = cmd == 'M'; continue; }
        char *e;
        double x = strtod(s, &e);
        if (cmd != 'M' && cmd != 'L') { s = e; continue; }
        double y = strtod(e, &e);
        if (d->n < MAX_DRAWN) { d->x[d->n] = x; d->y[d->n] = y; d->start[d->n] = fresh; d->n++; }
        else d->overflow = 1;
        fresh = 0;
        s = e;
    }
}

/* Checks that a path of the chart with aria-label aria (the first one whose
 * tag holds marker) stays within 1 px of every (step, value) it was drawn
 * from, in the chart's own pixel frame (data-f). Returns the number of drawn
 * points, or -1 if the path is missing. */
static int check_drawn_line(const char *h, const char *aria, const char *marker, const double *steps, const double *vals,
                            int n) {
    char key[128];
    snprintf(key, sizeof key, "aria-label=\"%s\"", aria);
    const char *svg = strstr(h, key), *fr = svg ? strstr(svg, "data-f=\"") : NULL;
    const char *p = fr ? strstr(fr, marker) : NULL, *end = svg ? strstr(svg, "</svg>") : NULL;
    p = p && p < end ? strstr(p, " d=\"") : NULL;
    CHECKF(p != NULL, "%s: no path %s", aria, marker);
    if (!p) return -1;
    double f[9];
    CHECK(sscanf(fr + 8, "%lf %lf %lf %lf %lf %lf %lf %lf %lf", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7],
                 &f[8]) == 9);
    static drawn d;
    parse_d(p + 4, &d);
    CHECKF(!d.overflow, "%s: more than %d points drawn", aria, MAX_DRAWN);
    double worst = 0;
    int at = -1;
    for (int i = 0; i < n; i++) {
        double px = f[0] + (steps[i] - f[4]) / (f[5] - f[4]) * (f[1] - f[0]);
        double t = f[8] ? (log10(vals[i]) - log10(f[6])) / (log10(f[7]) - log10(f[6])) : (vals[i] - f[6]) / (f[7] - f[6]);
        double dist = drawn_dist(&d, px, f[3] - t * (f[3] - f[2]));
        if (dist > worst) { worst = dist; at = i; }
    }
    CHECKF(worst <= 1.0, "%s (%s): drawn %d points for %d; step %.0f is %.2f px from the line", aria, marker, d.n, n,
           at >= 0 ? steps[at] : 0, worst);
    return d.n;
}

/* Smooth and noisy curves are drawn within 1 px of every step: a cosine
 * learning rate (once drawn as 2 points, a straight line 13 px off) and a
 * noisy loss, over 500 steps (drawn point by point) and 6000 steps (reduced
 * per column first: a band). */
static void test_drawn_lines(void) {
    enum { N = 6000 };
    static double st[N], lr[N], loss[N];
    const int runs[] = {500, N};
    for (int run = 0; run < 2; run++) {
        int n = runs[run];
        char dir[512], p[600], name[32];
        snprintf(name, sizeof name, "cosine%d", n);
        make_dir(dir, sizeof dir, name);
        snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
        FILE *f = fopen(p, "w");
        if (!f) { CHECK(0); return; }
        uint32_t r = 777;
        for (int i = 0; i < n; i++) {
            r = r * 1664525u + 1013904223u;
            st[i] = i + 1;
            lr[i] = 1e-4 * 0.5 * (1 + cos(M_PI * i / n));
            loss[i] = 2 + 1 / (1 + i / (n / 10.0)) + 0.3 * ((r >> 8) / 16777216.0 - 0.5);
            fprintf(f, "{\"step\":%d,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":1,\"tokens_per_s\":100}\n", i + 1, loss[i], lr[i]);
        }
        fclose(f);
        CHECKF(tuna_report_write(dir) == TUNA_OK, "%s: %s", name, tuna_last_error());
        char *h = check_report(dir, name);
        if (!h) return;
        /* a long lr is drawn as a band (class raw) under its column means */
        int k = check_drawn_line(h, "learning rate per step", run ? "class=\"raw\"" : "data-n=\"lr\"", st, lr, n);
        printf("cosine lr of %d steps drawn with %d points\n", n, k);
        k = check_drawn_line(h, "training and validation loss per step", "data-n=\"train (raw)\"", st, loss, n);
        printf("noisy loss of %d steps drawn with %d points\n", n, k);
        free(h);
    }
}

/* The simplifier itself, in pixels: within eps of every point, a straight line
 * reduced to its ends, and a noisy 100k-point series handled. */
static void test_simplifier(void) {
    enum { N = 100000 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    unsigned char *keep = malloc(N);
    if (!x || !y || !keep) { CHECK(0); free(x); free(y); free(keep); return; }
    const char *names[] = {"cosine", "noisy", "straight", "noisy 100k"};
    const int sizes[] = {500, 500, 1000, N};
    for (int c = 0; c < 4; c++) {
        int n = sizes[c];
        uint32_t r = 4242;
        for (int i = 0; i < n; i++) {
            r = r * 1664525u + 1013904223u;
            double noise = (r >> 8) / 16777216.0 - 0.5;
            x[i] = 62 + 920.0 * i / (n - 1);
            y[i] = c == 0 ? 30 + 140 * (1 - 0.5 * (1 + cos(M_PI * i / n)))
                 : c == 2 ? 200 - 0.13 * i
                 : 100 + 150 / (1 + i / 50.0) + 40 * noise;
        }
        size_t kept = polyline_simplify(x, y, (size_t)n, 1.0, keep);
        size_t marked = 0;
        double worst = 0;
        for (int i = 0, a = 0; i < n; i++) {
            marked += keep[i];
            if (!keep[i]) continue;
            for (int j = a + 1; j < i; j++) worst = fmax(worst, seg_dist(x[j], y[j], x[a], y[a], x[i], y[i]));
            a = i;
        }
        CHECKF(kept == marked && keep[0] && keep[n - 1], "%s: %zu kept, %zu marked", names[c], kept, marked);
        CHECKF(worst <= 1.0, "%s: a dropped point is %.3f px from the line", names[c], worst);
        if (c == 2) CHECKF(kept == 2, "straight line kept %zu points", kept);
        printf("simplifier: %s, %d points -> %zu (max distance %.3f px)\n", names[c], n, kept, worst);
    }
    unsigned char k2[2];
    CHECK(polyline_simplify(x, y, 1, 1.0, k2) == 1 && k2[0] == 1);
    CHECK(polyline_simplify(x, y, 0, 1.0, k2) == 0);
    free(x);
    free(y);
    free(keep);
}

static void test_missing_metrics(void) {
    char dir[512];
    make_dir(dir, sizeof dir, "empty");
    write_text(dir, "train_args.json", args_json);
    tuna_status st = tuna_report_write(dir);
    CHECK(st == TUNA_ERR_IO);
    CHECKF(strstr(tuna_last_error(), "metrics.jsonl") != NULL, "error does not name the file: %s", tuna_last_error());
    size_t n;
    char *h = read_report(dir, &n);
    CHECK(h == NULL);
    free(h);
    CHECK(tuna_report_write("") == TUNA_ERR_ARG);
}

static int run_cli(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s report %s >%s/cli.out 2>%s/cli.err", test_cli, args, root, root);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_command(void) {
    if (!test_need_cli("tuna report CLI")) return;
    char a[600], out[600];
    snprintf(a, sizeof a, "%s/one", root);
    CHECK(run_cli(a) == 0);
    snprintf(out, sizeof out, "%s/cli.out", root);
    FILE *f = fopen(out, "r");
    char line[700] = "";
    if (f) { if (!fgets(line, sizeof line, f)) line[0] = '\0'; fclose(f); }
    char want[700];
    snprintf(want, sizeof want, "%s/report.html\n", a);
    CHECKF(!strcmp(line, want), "cli printed '%s'", line);
    snprintf(a, sizeof a, "%s/empty", root);
    CHECK(run_cli(a) == 2);
    snprintf(a, sizeof a, "%s/no-such-folder", root);
    CHECK(run_cli(a) == 2);
    snprintf(out, sizeof out, "%s/cli.err", root);
    f = fopen(out, "r");
    line[0] = '\0';
    if (f) { if (!fgets(line, sizeof line, f)) line[0] = '\0'; fclose(f); }
    CHECKF(!strncmp(line, "tuna: error: ", 13) && strstr(line, "no-such-folder"), "cli stderr '%s'", line);
    CHECK(run_cli("") == 2);
    CHECK(run_cli("--help") == 0);
}

/* GRPO's reward curve: a 40-step run gets its smoothed line (span 40 / 8 = 5:
 * a step's reward is noisy), the loss none (40 / 60 < 2); 8 steps get none */
static void test_reward_curve(void) {
    static const int steps[] = {40, 8};
    for (int k = 0; k < 2; k++) {
        char dir[512], p[600], name[32];
        snprintf(name, sizeof name, "reward%d", steps[k]);
        make_dir(dir, sizeof dir, name);
        snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
        FILE *f = fopen(p, "w");
        for (int s = 1; s <= steps[k]; s++)
            fprintf(f, "{\"step\":%d,\"loss\":%.4g,\"lr\":1e-4,\"grad_norm\":0.3,\"tokens_per_s\":3000,\"reward\":%.4g}\n", s,
                    0.01 * (s % 3 - 1), 0.6 + 0.002 * s + 0.05 * (s % 2 ? 1 : -1));
        fclose(f);
        write_text(dir, "train_args.json", args_json);
        CHECKF(tuna_report_write(dir) == TUNA_OK, "%s: %s", name, tuna_last_error());
        char *h = check_report(dir, name);
        if (h && k == 0) {
            CHECKF(strstr(h, "reward (EMA, span 5)") && strstr(h, "reward (raw)"), "%s: no smoothed reward", name);
            CHECKF(!strstr(h, "train (EMA"), "%s: the loss smoothed over 40 steps", name);
        }
        if (h && k == 1) CHECKF(strstr(h, "mean reward per step") && !strstr(h, "reward (EMA"), "%s: smoothed", name);
        free(h);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    snprintf(root, sizeof root, "/tmp/tuna_test_report_XXXXXX");
    if (!mkdtemp(root)) { fprintf(stderr, "cannot create a temporary folder\n"); return 1; }
    test_normal_run();
    test_nonfinite();
    test_resumed_and_damaged();
    test_small_runs();
    test_long_run();
    test_reward_curve();
    test_drawn_lines();
    test_simplifier();
    test_missing_metrics();
    test_cli_command();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_done();
}
