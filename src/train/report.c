/* report.c — tuna_report_write: a training run folder -> report.html.
 *
 * The page is self-contained: CSS inline, charts as inline SVG paths
 * (svg_chart.h: no script, no fonts, no URLs), so it opens the same offline,
 * in a mail attachment or years later. Its data: metrics.jsonl read by
 * report_data.h, general_eval.json, train_args.json and compare.json (eval's
 * schema, parsed here). Rules:
 *  - every string that comes from a file is HTML-escaped (sb_esc);
 *  - series are drawn as read: non-finite values are marked, never dropped
 *    silently; each drawn line stays within 1 px of every step (svg_chart.h);
 *  - what could not be read (bad lines, missing files) is listed on the page.
 * The page is built in memory, written under a temporary name, then renamed. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "train/report_data.h"
#include "train/svg_chart.h"
#include "tuna_report.h"
#include "core/error.h"

/* Human duration: "42.0 s", "3 min 12 s", "2 h 05 min". */
static const char *fmt_dur(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "—");
    else if (s < 60) snprintf(buf, n, "%.1f s", s);
    else if (s < 3600) snprintf(buf, n, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}

/* ---- page pieces ---- */
static const char *page_css =
    "body{margin:0;background:#f6f7f9;color:#1d2230;font:14px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,Helvetica,Arial,sans-serif}"
    "main{max-width:1080px;margin:0 auto;padding:24px 28px 12px}"
    "h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:28px 0 8px;color:#2b3245}"
    ".sub{color:#667;margin:0 0 16px;word-break:break-all}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}"
    ".card{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:8px 12px;min-width:0}"
    ".card .k{font-size:12px;color:#667;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:18px;font-weight:600;overflow-wrap:anywhere}"
    ".card .v.s{font-size:14px;font-weight:500}"
    ".card .n{font-size:12px;color:#667}"
    "figure{margin:0 0 10px;background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:8px 10px 4px}"
    "figcaption{font-size:13px;color:#556;margin:0 0 2px}figcaption b{color:#1d2230}"
    "svg.chart{display:block;width:100%;height:auto}"
    ".grid .g,.grid path{stroke:#eceef2;stroke-width:1}"
    ".frame{fill:none;stroke:#c9ced8;stroke-width:1}"
    ".ylab text{font-size:11px;fill:#556;text-anchor:end}"
    ".xlab text{font-size:11px;fill:#556;text-anchor:middle}"
    ".axis{font-size:11px;fill:#889;text-anchor:end}"
    ".empty{font-size:14px;fill:#889;text-anchor:middle}"
    ".leg{font-size:12px;fill:#333}"
    "path.raw{fill:none;stroke-width:1;opacity:.45;stroke-linejoin:round;stroke-linecap:round}"
    "path.line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}"
    "path.dash{fill:none;stroke-width:1.6;stroke-dasharray:5 3;stroke-linecap:round}"
    "path.ref{fill:none;stroke:#888;stroke-width:1.2;stroke-dasharray:3 3}"
    ".nf,.nf path{fill:#d62728;stroke:none}"
    ".multi{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}"
    ".multi figure{margin:0}.multi svg .ylab text,.multi svg .xlab text{font-size:10px}"
    "table{border-collapse:collapse;background:#fff;border:1px solid #e2e5ea}"
    "td,th{padding:5px 12px;border-bottom:1px solid #eceef2;text-align:right}"
    "th{font-weight:600;color:#445;background:#fafbfc}td:first-child,th:first-child{text-align:left}"
    ".good{color:#17803d;background:#e7f6ec;font-weight:600}.bad{color:#b42318;background:#fdecea;font-weight:600}"
    ".ge{display:flex;gap:18px;align-items:center;flex-wrap:wrap}"
    "table.samples{max-width:100%;margin-bottom:12px}table.samples th{text-align:left;vertical-align:top;width:110px}"
    "td.txt{white-space:pre-wrap;text-align:left;font-family:ui-monospace,monospace;font-size:12px;max-width:760px}"
    ".kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:0 18px;background:#fff;"
    "border:1px solid #e2e5ea;border-radius:8px;padding:6px 14px}"
    ".kv div{display:flex;gap:12px;justify-content:space-between;border-bottom:1px solid #f0f1f4;padding:4px 0;"
    "min-width:0}"
    ".kv .k{color:#556}.kv .v{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;text-align:right;"
    "overflow-wrap:anywhere;min-width:0}"
    ".notes{background:#fff8e6;border:1px solid #f1dca7;border-radius:8px;padding:8px 14px 8px 30px;margin:14px 0 0}"
    ".tip{position:absolute;display:none;background:#fff;border:1px solid #cfd4dc;border-radius:6px;padding:4px 8px;"
    "font-size:12px;pointer-events:none;box-shadow:0 2px 8px rgba(0,0,0,.12);white-space:nowrap}"
    ".tip .sw{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:5px}"
    "path.cross{stroke:#9aa3b2;stroke-width:1;fill:none}"
    "footer{color:#889;font-size:12px;margin:28px 0 8px;border-top:1px solid #e2e5ea;padding-top:8px}";

/* Optional hover read-out: the charts are complete without it. It reads the
 * points back from each path's "d" and the frame from data-f, so the page
 * carries no second copy of the data. Text goes in with textContent only:
 * series names come from the run's files. */
static const char *page_js =
    "(function(){var tip=document.createElement('div');tip.className='tip';document.body.appendChild(tip);"
    "function pts(p){if(p._pts)return p._pts;var t=p.getAttribute('d').match(/[A-Za-z]|-?[0-9.]+/g)||[],r=[],c='',i=0;"
    "while(i<t.length){var k=t[i];if(/[A-Za-z]/.test(k)){c=k;i++;continue;}"
    "if(c=='M'||c=='L'){r.push([+t[i],+t[i+1]]);i+=2;}else if(c=='a'){i+=7;}else if(c=='m'){i+=2;}else i++;}"
    "r.sort(function(a,b){return a[0]-b[0]});return p._pts=r;}"
    "document.querySelectorAll('svg[data-f]').forEach(function(s){"
    "var f=s.getAttribute('data-f').split(' ').map(Number),L=Math.log10;"
    "var ln=document.createElementNS(s.namespaceURI,'path');ln.setAttribute('class','cross');s.appendChild(ln);"
    "function hide(){tip.style.display='none';ln.setAttribute('d','');}"
    "s.addEventListener('mousemove',function(e){var q=s.createSVGPoint();q.x=e.clientX;q.y=e.clientY;"
    "q=q.matrixTransform(s.getScreenCTM().inverse());if(q.x<f[0]||q.x>f[1]){hide();return;}"
    "tip.textContent='';var d=document.createElement('div');"
    "d.textContent='step '+Math.round(f[4]+(q.x-f[0])/(f[1]-f[0])*(f[5]-f[4]));tip.appendChild(d);"
    "s.querySelectorAll('path[data-n]').forEach(function(p){var r=pts(p);if(!r.length)return;"
    "var lo=0,hi=r.length-1;while(lo<hi){var m=(lo+hi)>>1;if(r[m][0]<q.x)lo=m+1;else hi=m;}"
    "if(lo>0&&q.x-r[lo-1][0]<r[lo][0]-q.x)lo--;if(Math.abs(r[lo][0]-q.x)>8)return;"
    "var t=(f[3]-r[lo][1])/(f[3]-f[2]),v=f[8]?Math.pow(10,L(f[6])+t*(L(f[7])-L(f[6]))):f[6]+t*(f[7]-f[6]);"
    "var row=document.createElement('div'),sw=document.createElement('span');sw.className='sw';"
    "sw.style.background=p.getAttribute('stroke');row.appendChild(sw);"
    "row.appendChild(document.createTextNode(p.getAttribute('data-n')+': '+v.toPrecision(4)));tip.appendChild(row);});"
    "ln.setAttribute('d','M'+q.x+' '+f[2]+'V'+f[3]);tip.style.display='block';"
    "tip.style.left=(e.pageX+14)+'px';tip.style.top=(e.pageY+12)+'px';});"
    "s.addEventListener('mouseleave',hide);});})();";

static void card(sbuf *o, const char *k, const char *v, const char *note, int small) {
    sb_printf(o, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v%s\">", k, small ? " s" : "");
    sb_esc(o, v && v[0] ? v : "—");
    sb_puts(o, "</div>");
    if (note && note[0]) {
        sb_puts(o, "<div class=\"n\">");
        sb_esc(o, note);
        sb_puts(o, "</div>");
    }
    sb_puts(o, "</div>");
}

/* A train_args value as text: strings as is, numbers compactly, data lists as
 * "a.jsonl (0.7), b.jsonl" ({"path","weight"} objects), anything else as JSON. malloc'd. */
static char *json_text(const json_t *v) {
    char nb[64];
    if (!v || json_is_null(v)) return strdup("—");
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v)) { snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(v)); return strdup(nb); }
    if (json_is_real(v)) return strdup(fmt_g(nb, sizeof nb, json_real_value(v), 6));
    if (json_is_true(v)) return strdup("true");
    if (json_is_false(v)) return strdup("false");
    if (json_is_array(v)) {
        sbuf b = {0};
        size_t i;
        json_t *e;
        int plain = 1;
        json_array_foreach(v, i, e) {
            if (json_is_object(e) && json_is_string(json_object_get(e, "path"))) {
                sb_printf(&b, "%s%s", i ? ", " : "", json_string_value(json_object_get(e, "path")));
                json_t *wt = json_object_get(e, "weight");
                if (json_is_number(wt)) sb_printf(&b, " (%s)", fmt_g(nb, sizeof nb, json_number_value(wt), 4));
            } else if (json_is_string(e)) {
                sb_printf(&b, "%s%s", i ? ", " : "", json_string_value(e));
            } else if (json_is_number(e)) { /* betas: "0.9, 0.999", not the binary expansion */
                sb_printf(&b, "%s%s", i ? ", " : "", fmt_g(nb, sizeof nb, json_number_value(e), 6));
            } else {
                plain = 0;
            }
        }
        if (plain && !b.oom && b.p) return b.p;
        free(b.p);
    }
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

static void header(sbuf *o, const metrics *m, const json_t *args) {
    char v[128], n2[128], nb[48];
    char *cmd = json_text(args ? json_object_get(args, "command") : NULL);
    const char *cmd_s = args ? json_string_value(json_object_get(args, "command")) : NULL;
    int is_dpo = cmd_s && (!strcmp(cmd_s, "dpo") || !strcmp(cmd_s, "kto"));
    const json_t *mj = args ? json_object_get(args, "model") : NULL;
    if (!mj && args) mj = json_object_get(args, "config");
    char *model = json_text(mj);
    char *data = json_text(args ? json_object_get(args, "data") : NULL);
    char *method = json_text(args ? json_object_get(args, "method") : NULL);
    sb_puts(o, "<section class=\"cards\">");
    card(o, "Command", cmd ? cmd : "", NULL, 0);
    card(o, mj && args && !json_object_get(args, "model") ? "Model config" : "Model", model ? model : "", NULL, 1);
    card(o, "Data", data ? data : "", NULL, 1);
    card(o, "Method", method ? method : "", NULL, 0);
    free(cmd);
    free(model);
    free(data);
    free(method);
    const series *loss = metrics_find(m, "loss");
    const point *last = series_last_finite(loss);
    double last_step = loss && loss->n ? loss->p[loss->n - 1].x : NAN;
    json_t *planned = args ? json_object_get(args, "steps") : NULL;
    snprintf(v, sizeof v, "%s", isfinite(last_step) ? fmt_g(nb, sizeof nb, last_step, 10) : "0");
    n2[0] = '\0';
    if (json_is_integer(planned) && (double)json_integer_value(planned) != last_step)
        snprintf(n2, sizeof n2, "of %lld planned", (long long)json_integer_value(planned));
    else if (isfinite(m->epoch))
        snprintf(n2, sizeof n2, "epoch %.2f", m->epoch);
    card(o, "Steps", v, n2, 0);
    if (last) snprintf(v, sizeof v, "%.4f", last->y);
    else snprintf(v, sizeof v, "—");
    n2[0] = '\0';
    if (last && last->x != last_step) snprintf(n2, sizeof n2, "at step %.0f (later values non-finite)", last->x);
    card(o, "Final train loss", v, n2, 0);
    const point *best = series_min(metrics_find(m, "eval_loss"));
    if (best) {
        snprintf(v, sizeof v, "%.4f", best->y);
        /* a preference loss is not a per-token cross-entropy: no perplexity for it */
        if (is_dpo) snprintf(n2, sizeof n2, "at step %.0f", best->x);
        else snprintf(n2, sizeof n2, "at step %.0f (ppl %s)", best->x, fmt_g(nb, sizeof nb, exp(best->y), 5));
    } else {
        snprintf(v, sizeof v, "—");
        snprintf(n2, sizeof n2, "no validation");
    }
    card(o, "Best val loss", v, n2, 0);
    card(o, "Total time", fmt_dur(v, sizeof v, m->elapsed), NULL, 0);
    double med = series_median(metrics_find(m, "tokens_per_s"));
    if (isfinite(med)) snprintf(v, sizeof v, "%.0f", med);
    else snprintf(v, sizeof v, "—");
    card(o, "Tokens/s (median)", v, NULL, 0);
    sb_puts(o, "</section>");
}

static void figure(sbuf *o, const char *title, const char *caption_html) {
    sb_printf(o, "<figure><figcaption><b>%s</b>%s%s</figcaption>", title, caption_html ? " — " : "",
              caption_html ? caption_html : "");
}

static const char *palette[] = {"#e8590c", "#2f9e44", "#ae3ec9", "#1098ad", "#f08c00", "#5c7cfa", "#c2255c", "#495057"};

enum { MAX_SMALL_CHARTS = 24 };

/* A per-step series beyond the four standard charts and the loss chart's layers. */
static int is_extra(const char *k) {
    return strcmp(k, "loss") && strcmp(k, "lr") && strcmp(k, "grad_norm") && strcmp(k, "tokens_per_s") &&
           strcmp(k, "eval_loss") && strncmp(k, "eval_loss/", 10) && strcmp(k, "reward");
}

/* GRPO's mean reward per step (TRL's "reward"), raw and smoothed, when logged */
static void reward_chart(sbuf *o, const metrics *m) {
    const series *r = metrics_find(m, "reward");
    if (!r) return;
    int span = 0;
    /* a step's reward is the mean of a few prompts' groups: noisier than a
     * loss, over fewer steps, so a longer span than the loss's */
    series ema = series_ema(r, 8, &span);
    char lab[64];
    snprintf(lab, sizeof lab, "reward (EMA, span %d)", span);
    chart_layer L[2] = {{series_chart(r), ema.n ? LAYER_RAW : LAYER_LINE, "#2b8a3e", ema.n ? "reward (raw)" : "reward"},
                        {series_chart(&ema), LAYER_SMOOTH, "#1b5e20", lab}};
    sb_puts(o, "<h2>Reward</h2>");
    figure(o, "Reward", "mean reward of each step's completions (the reward functions' weighted sum)");
    svg_chart(o, &(chart_opts){1000, 260, 3, 0, NAN, NULL, "mean reward per step", 0, "step"}, L, ema.n ? 2 : 1);
    sb_puts(o, "</figure>");
    free(ema.p);
}

static void charts(sbuf *o, const metrics *m) {
    const series *loss = metrics_find(m, "loss");
    const series *val = metrics_find(m, "eval_loss");
    int span = 0;
    series ema = series_ema(loss, 60, &span); /* a longer span lags visibly behind a fast early drop */
    chart_layer L[16];
    int nl = 0;
    char cap[256], lab[64];
    L[nl++] = (chart_layer){series_chart(loss), ema.n ? LAYER_RAW : LAYER_LINE, "#4c8bd6", ema.n ? "train (raw)" : "train"};
    snprintf(lab, sizeof lab, "train (EMA, span %d)", span);
    if (ema.n) L[nl++] = (chart_layer){series_chart(&ema), LAYER_SMOOTH, "#1c4f9c", lab};
    if (val) L[nl++] = (chart_layer){series_chart(val), LAYER_DOTS, "#e8590c", "val"};
    /* per-task validation losses ("eval_loss/<file>") share the axes, dashed */
    char task_labels[16][96];
    for (size_t i = 0, c = 1; i < m->n && nl < 16; i++)
        if (!strncmp(m->s[i].name, "eval_loss/", 10)) {
            snprintf(task_labels[nl], sizeof task_labels[nl], "val %s", m->s[i].name + 10);
            L[nl] = (chart_layer){series_chart(&m->s[i]), LAYER_DASH, palette[c++ % 8], task_labels[nl]};
            nl++;
        }
    sb_puts(o, "<h2>Loss</h2>");
    snprintf(cap, sizeof cap, "per optimizer step%s", val ? "; validation loss at each evaluation" : "");
    figure(o, "Training and validation loss", cap);
    svg_chart(o, &(chart_opts){1000, 330, 3, 0, NAN, NULL, "training and validation loss per step", 0, "step"}, L, nl);
    sb_puts(o, "</figure>");
    free(ema.p);
    reward_chart(o, m);

    sb_puts(o, "<h2>Optimisation</h2>");
    figure(o, "Learning rate", "as used by each step");
    svg_chart(o, &(chart_opts){1000, 200, 0, 1, NAN, NULL, "learning rate per step", 0, "step"},
              (chart_layer[]){{series_chart(metrics_find(m, "lr")), LAYER_LINE, "#2f9e44", "lr"}}, 1);
    sb_puts(o, "</figure>");
    figure(o, "Gradient norm", "global L2 norm before clipping");
    svg_chart(o, &(chart_opts){1000, 200, 10, 1, NAN, NULL, "gradient norm per step", 0, "step"},
              (chart_layer[]){{series_chart(metrics_find(m, "grad_norm")), LAYER_LINE, "#ae3ec9", "grad norm"}}, 1);
    sb_puts(o, "</figure>");
    double med = series_median(metrics_find(m, "tokens_per_s"));
    figure(o, "Throughput", "tokens per second of each step");
    svg_chart(o, &(chart_opts){1000, 200, 0, 1, med, "median", "tokens per second per step", 0, "step"},
              (chart_layer[]){{series_chart(metrics_find(m, "tokens_per_s")), LAYER_LINE, "#1098ad", "tokens/s"}}, 1);
    sb_puts(o, "</figure>");

    /* everything else that is numeric per step (DPO rewards, margins, ...): small multiples */
    int extra = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->s[i].name;
        if (!is_extra(k)) continue;
        if (extra == MAX_SMALL_CHARTS) { /* each chart costs up to ~10 KB: list the rest by name */
            sb_puts(o, "</div><p class=\"sub\">Not drawn: ");
            for (size_t j = i, c = 0; j < m->n; j++) {
                if (!is_extra(m->s[j].name)) continue;
                sb_puts(o, c++ ? ", " : "");
                sb_esc(o, m->s[j].name);
            }
            sb_puts(o, "</p>");
            return;
        }
        if (!extra++) sb_puts(o, "<h2>Other metrics</h2><div class=\"multi\">");
        sb_puts(o, "<figure><figcaption><b>");
        sb_esc(o, k);
        sb_puts(o, "</b>");
        const point *lp = series_last_finite(&m->s[i]);
        char nb[48];
        if (lp) sb_printf(o, " — last %s", fmt_g(nb, sizeof nb, lp->y, 4));
        if (m->s[i].nonfinite) sb_printf(o, " · <span class=\"bad\">%zu non-finite</span>", m->s[i].nonfinite);
        sb_puts(o, "</figcaption>");
        svg_chart(o, &(chart_opts){330, 190, 30, 0, NAN, NULL, k, 1, "step"},
                  (chart_layer[]){{series_chart(&m->s[i]), m->s[i].eval ? LAYER_DOTS : LAYER_LINE, palette[i % 8],
                                   k}}, 1);
        sb_puts(o, "</figure>");
    }
    if (extra) sb_puts(o, "</div>");
}

/* Before/after perplexity on general text, with the change coloured: lower is
 * better (green), higher means the model forgot some general language (red). */
static void general_eval(sbuf *o, const char *path, sbuf *notes) {
    if (access(path, F_OK) != 0) return;
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    json_t *b = g ? json_object_get(g, "before") : NULL, *a = g ? json_object_get(g, "after") : NULL;
    double bl = json_number_value(json_object_get(b, "loss")), al = json_number_value(json_object_get(a, "loss"));
    double bp = json_number_value(json_object_get(b, "ppl")), ap = json_number_value(json_object_get(a, "ppl"));
    if (!json_is_number(json_object_get(b, "ppl"))) bp = exp(bl);
    if (!json_is_number(json_object_get(a, "ppl"))) ap = exp(al);
    if (!json_is_object(b) || !json_is_object(a) || !json_is_number(json_object_get(b, "loss")) ||
        !json_is_number(json_object_get(a, "loss"))) {
        sb_puts(notes, "<li>general_eval.json is present but not readable (");
        sb_esc(notes, g ? "needs before.loss and after.loss" : je.text);
        sb_puts(notes, "): general-text perplexity not shown</li>");
        json_decref(g);
        return;
    }
    char nb[48], nb2[48];
    double pct = (ap / bp - 1) * 100;
    const char *cls = pct < 0 ? "good" : pct > 0 ? "bad" : "";
    sb_puts(o, "<h2>General-text perplexity</h2><div class=\"ge\"><table><tr><th></th><th>loss</th><th>perplexity</th>"
               "<th>tokens</th></tr>");
    const char *names[2] = {"before training", "after training"};
    json_t *rows[2] = {b, a};
    double L[2] = {bl, al}, P[2] = {bp, ap};
    for (int r = 0; r < 2; r++) {
        json_t *tk = json_object_get(rows[r], "tokens");
        sb_printf(o, "<tr><td>%s</td><td>%.4f</td><td>%s</td><td>%s</td></tr>", names[r], L[r],
                  fmt_g(nb, sizeof nb, P[r], 6), json_is_number(tk) ? fmt_g(nb2, sizeof nb2, json_number_value(tk), 12) : "—");
    }
    sb_printf(o, "<tr><td>change</td><td class=\"%s\">%+.4f</td><td class=\"%s\">%+.2f%%</td><td></td></tr></table>",
              cls, al - bl, cls, pct);
    /* the same two numbers as bars: the eye sees the change before reading it */
    double mx = fmax(bp, ap);
    if (isfinite(mx) && mx > 0) {
        sb_puts(o, "<svg class=\"chart\" style=\"max-width:460px\" viewBox=\"0 0 460 92\" role=\"img\" "
                   "aria-label=\"perplexity before and after\">");
        for (int r = 0; r < 2; r++) {
            double w = 300 * P[r] / mx;
            sb_printf(o, "<text class=\"leg\" x=\"0\" y=\"%d\">%s</text>", 28 + 40 * r, r ? "after" : "before");
            sb_printf(o, "<rect x=\"56\" y=\"%d\" width=\"%.1f\" height=\"26\" rx=\"3\" fill=\"%s\"/>", 12 + 40 * r,
                      isfinite(w) ? w : 0, r == 0 ? "#9aa5b8" : pct > 0 ? "#e03131" : "#2f9e44");
            sb_printf(o, "<text class=\"leg\" x=\"%.1f\" y=\"%d\">ppl %s</text>", 62 + (isfinite(w) ? w : 0), 30 + 40 * r,
                      fmt_g(nb, sizeof nb, P[r], 5));
        }
        sb_puts(o, "</svg>");
    }
    sb_puts(o, "</div>");
    json_decref(g);
}

/* The adaptation spectrum from compare.json (written by `tuna compare`): a
 * table of the settings and the metric as bars, so the step from prompting
 * to fine-tuning is seen at a glance. */
static void compare_section(sbuf *o, const char *path, sbuf *notes) {
    if (access(path, F_OK) != 0) return;
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    json_t *rows = c ? json_object_get(c, "rows") : NULL;
    const char *metric = json_string_value(c ? json_object_get(c, "metric") : NULL);
    if (!json_is_array(rows) || !metric) {
        sb_puts(notes, "<li>compare.json is present but not readable (");
        sb_esc(notes, c ? "needs rows and metric" : je.text);
        sb_puts(notes, "): comparison not shown</li>");
        json_decref(c);
        return;
    }
    char nb[48];
    sb_puts(o, "<h2>Prompting vs few-shot vs fine-tuning</h2><p class=\"sub\">");
    json_t *ex = json_object_get(c, "examples");
    sb_printf(o, "%lld eval examples from ", (long long)json_integer_value(ex));
    sb_esc(o, json_string_value(json_object_get(c, "eval")) ? json_string_value(json_object_get(c, "eval")) : "?");
    if (json_string_value(json_object_get(c, "train"))) {
        sb_puts(o, "; in-context examples from ");
        sb_esc(o, json_string_value(json_object_get(c, "train")));
    }
    sb_puts(o, "; metric <b>");
    sb_esc(o, metric);
    sb_printf(o, "</b>%s</p><div class=\"ge\"><table><tr><th>setting</th><th>prompt</th><th>", json_is_true(json_object_get(c, "greedy")) ? ", greedy decoding" : "");
    sb_esc(o, metric);
    int with_valid = !strcmp(metric, "json_fields");
    sb_puts(o, with_valid ? "</th><th>json_valid</th>" : "</th>");
    sb_puts(o, "<th>prompt tokens</th><th>latency (s)</th><th>tokens/s</th></tr>");
    size_t i, n = json_array_size(rows);
    json_t *r;
    double mx = 0;
    json_array_foreach(rows, i, r) {
        json_t *v = json_object_get(r, "metric");
        double x = json_number_value(v);
        if (json_is_number(v) && isfinite(x) && x > mx) mx = x;
        sb_puts(o, "<tr><td>");
        sb_esc(o, json_string_value(json_object_get(r, "name")) ? json_string_value(json_object_get(r, "name")) : "?");
        sb_puts(o, "</td><td>");
        sb_esc(o, json_string_value(json_object_get(r, "prompt")) ? json_string_value(json_object_get(r, "prompt")) : "");
        sb_printf(o, "</td><td>%s</td>", json_is_number(v) ? fmt_g(nb, sizeof nb, x, 4) : "—");
        if (with_valid) {
            json_t *jv = json_object_get(json_object_get(r, "summary"), "json_valid");
            sb_printf(o, "<td>%s</td>", json_is_number(jv) ? fmt_g(nb, sizeof nb, json_number_value(jv), 4) : "—");
        }
        sb_printf(o, "<td>%.1f</td>", json_number_value(json_object_get(r, "mean_prompt_tokens")));
        sb_printf(o, "<td>%.4f</td>", json_number_value(json_object_get(r, "mean_latency_s")));
        sb_printf(o, "<td>%.1f</td></tr>", json_number_value(json_object_get(r, "tokens_per_s")));
    }
    sb_puts(o, "</table>");
    if (n > 0) {
        /* bars on a 0..max scale (0..1 for rates that reach it) */
        double scale = mx > 0 ? (mx <= 1 ? 1 : mx) : 1;
        int h = 16 + 34 * (int)n;
        sb_printf(o, "<svg class=\"chart\" style=\"max-width:520px\" viewBox=\"0 0 520 %d\" role=\"img\" aria-label=\"metric per setting\">", h);
        json_array_foreach(rows, i, r) {
            json_t *v = json_object_get(r, "metric");
            double x = json_is_number(v) ? json_number_value(v) : 0, w = isfinite(x) && x > 0 ? 330 * x / scale : 0;
            int y = 10 + 34 * (int)i;
            const char *name = json_string_value(json_object_get(r, "name"));
            sb_printf(o, "<text class=\"leg\" x=\"0\" y=\"%d\">", y + 17);
            sb_esc(o, name ? name : "?");
            sb_printf(o, "</text><rect x=\"96\" y=\"%d\" width=\"%.1f\" height=\"24\" rx=\"3\" fill=\"%s\"/>", y, w,
                      name && !strcmp(name, "fine-tuned") ? "#2f9e44" : "#9aa5b8");
            sb_printf(o, "<text class=\"leg\" x=\"%.1f\" y=\"%d\">%s</text>", 102 + w, y + 17,
                      json_is_number(v) ? fmt_g(nb, sizeof nb, x, 4) : "n/a");
        }
        sb_puts(o, "</svg>");
    }
    sb_puts(o, "</div>");
    /* the first answers of every setting beside the reference */
    json_t *samples = json_object_get(c, "samples"), *sm;
    size_t si;
    if (json_array_size(samples) > 0) {
        sb_puts(o, "<h2>Sample answers</h2>");
        json_array_foreach(samples, si, sm) {
            sb_puts(o, "<div class=\"ge\"><table class=\"samples\"><tr><th>prompt</th><td class=\"txt\">");
            sb_esc(o, json_string_value(json_object_get(sm, "prompt")) ? json_string_value(json_object_get(sm, "prompt")) : "");
            sb_puts(o, "</td></tr><tr><th>reference</th><td class=\"txt\">");
            sb_esc(o, json_string_value(json_object_get(sm, "reference")) ? json_string_value(json_object_get(sm, "reference")) : "");
            sb_puts(o, "</td></tr>");
            json_array_foreach(rows, i, r) {
                const char *pred = json_string_value(json_array_get(json_object_get(r, "samples"), si));
                const char *name = json_string_value(json_object_get(r, "name"));
                if (!pred) continue;
                sb_puts(o, "<tr><th>");
                sb_esc(o, name ? name : "?");
                sb_puts(o, "</th><td class=\"txt\">");
                sb_esc(o, pred);
                sb_puts(o, "</td></tr>");
            }
            sb_puts(o, "</table></div>");
        }
    }
    json_decref(c);
}

static void settings(sbuf *o, const json_t *args) {
    sb_puts(o, "<h2>Settings</h2><div class=\"kv\">");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)args, key, v) {
        char *t = json_text(v);
        sb_puts(o, "<div><span class=\"k\">");
        sb_esc(o, key);
        sb_puts(o, "</span><span class=\"v\">");
        sb_esc(o, t ? t : "?");
        sb_puts(o, "</span></div>");
        free(t);
    }
    sb_puts(o, "</div>");
}

tuna_status tuna_report_write(const char *run_dir) {
    if (!run_dir || !run_dir[0]) return core_fail(TUNA_ERR_ARG, "report: no run folder given");
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir) >= sizeof path)
        return core_fail(TUNA_ERR_ARG, "report: run folder path too long");
    metrics m;
    char cpath[4096 + 32];
    snprintf(cpath, sizeof cpath, "%s/compare.json", run_dir);
    /* a folder with only a comparison (tuna compare --report) gets that page */
    int only_compare = access(path, F_OK) != 0 && access(cpath, F_OK) == 0;
    tuna_status st = TUNA_OK;
    if (only_compare) {
        memset(&m, 0, sizeof m);
        m.elapsed = m.epoch = NAN;
    } else {
        st = metrics_load(&m, path);
        if (st != TUNA_OK) return st;
    }

    sbuf notes = {0};
    json_t *args = NULL;
    snprintf(path, sizeof path, "%s/train_args.json", run_dir);
    if (access(path, F_OK) != 0) {
        if (!only_compare) sb_puts(&notes, "<li>train_args.json not found: settings not shown</li>");
    } else {
        json_error_t je;
        args = json_load_file(path, 0, &je);
        if (!json_is_object(args)) {
            sb_printf(&notes, "<li>train_args.json not readable (line %d: ", je.line);
            sb_esc(&notes, args ? "not an object" : je.text);
            sb_puts(&notes, "): settings not shown</li>");
            json_decref(args);
            args = NULL;
        }
    }
    if (m.bad_lines)
        sb_printf(&notes, "<li>metrics.jsonl: %ld unreadable line%s skipped (first: line %ld)</li>", m.bad_lines,
                  m.bad_lines == 1 ? "" : "s", m.first_bad);
    if (m.dup_steps)
        sb_printf(&notes, "<li>metrics.jsonl: %ld step%s logged twice (resumed run): the later values are shown</li>",
                  m.dup_steps, m.dup_steps == 1 ? "" : "s");
    for (size_t i = 0; i < m.n; i++)
        if (m.s[i].nonfinite) {
            sb_printf(&notes, "<li>%zu non-finite value%s of <b>", m.s[i].nonfinite, m.s[i].nonfinite == 1 ? "" : "s");
            sb_esc(&notes, m.s[i].name);
            sb_puts(&notes, "</b> (NaN/inf): not drawn, marked ▾ on the chart's top edge</li>");
        }
    if (!only_compare && !metrics_find(&m, "loss")) sb_puts(&notes, "<li>metrics.jsonl has no training steps yet</li>");

    sbuf o = {0};
    sb_puts(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>tuna report: ");
    sb_esc(&o, run_dir);
    sb_printf(&o, "</title><style>%s</style></head><body><main>\n<h1>%s</h1><p class=\"sub\">", page_css,
              only_compare ? "Evaluation report" : "Training report");
    sb_esc(&o, run_dir);
    sb_puts(&o, "</p>\n");
    if (!only_compare) header(&o, &m, args);
    if (notes.n) sb_printf(&o, "<ul class=\"notes\">%s</ul>", notes.p);
    sb_puts(&o, "\n");
    if (!only_compare) charts(&o, &m);
    sb_puts(&o, "\n");
    snprintf(path, sizeof path, "%s/general_eval.json", run_dir);
    sbuf gnotes = {0};
    general_eval(&o, path, &gnotes);
    compare_section(&o, cpath, &gnotes);
    if (gnotes.n) sb_printf(&o, "<ul class=\"notes\">%s</ul>", gnotes.p);
    if (args) settings(&o, args);
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    sb_printf(&o, "\n<footer>Generated by tuna on %s</footer></main><script>%s</script></body></html>\n", when,
              page_js);
    json_decref(args);
    metrics_free(&m);
    int oom = o.oom || notes.oom || gnotes.oom;
    free(notes.p);
    free(gnotes.p);
    if (oom) { free(o.p); return core_fail(TUNA_ERR_NOMEM, "report: out of memory"); }

    snprintf(path, sizeof path, "%s/report.html", run_dir);
    st = atomic_file_write(path, o.p, o.n);
    free(o.p);
    return st;
}

