/* cmd_serve.c — `tuna serve`: an OpenAI-compatible HTTP server for a model
 * and any number of adapters over its one copy of the weights. Loads them,
 * starts the engine (src/serve/engine.c) and the HTTP side
 * (src/serve/http.c), then waits for SIGTERM/SIGINT in the main thread:
 * the first one drains (no new requests; running and queued ones finish),
 * a second one, or --drain-timeout, stops at once. */
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli_model.h"
#include "commands.h"
#include "serve/server.h"
#include "tuna_dataset.h"
#include "tuna_peft.h"

extern const char tuna_chat_page[];
extern const size_t tuna_chat_page_len;

#define MAX_ADAPTERS 32

static const char *serve_help =
    "usage: tuna serve --model DIR [--adapter NAME=DIR ...] [options]\n"
    "\n"
    "Serves the model over HTTP with OpenAI's API: GET /v1/models,\n"
    "POST /v1/completions and /v1/chat/completions (the model's chat template;\n"
    "\"stream\": true for server-sent events), GET /health, and a chat page at /.\n"
    "The request's \"model\" picks the base (named after its folder, or --name)\n"
    "or an adapter by NAME; adapters are applied unmerged over one shared copy\n"
    "of the base weights. Up to --parallel requests are decoded together in\n"
    "one batched forward pass per step; more wait in a queue of --queue, and\n"
    "beyond that get 429. SIGTERM or Ctrl-C drains (new requests get 503,\n"
    "running ones finish) and exits.\n"
    "  --adapter NAME=DIR     a PEFT adapter (LoRA, IA3, prompt tuning); repeatable\n"
    "  --name NAME            the base model's id (default: the folder's name)\n"
    CLI_MODEL_FLAGS_HELP
    "  --template NAME|FILE   chat template for models that ship none\n"
    "  --host ADDR            address to bind (default 127.0.0.1: this machine only)\n"
    "  --port N               (default 8080; 0 = any free port, printed)\n"
    "  --api-key KEY          require 'Authorization: Bearer KEY' on /v1/ (also $TUNA_API_KEY)\n"
    "  --parallel N           sequences decoded together (default 4)\n"
    "  --queue N              requests waiting for a slot before 429 (default 64)\n"
    "  --ctx N                positions per sequence, prompt + completion\n"
    "                         (default: the model's, at most 4096)\n"
    "  --max-body BYTES       largest request body (default 1048576)\n"
    "  --threads N            threads of the forward passes (default: $OMP_NUM_THREADS or\n"
    "                         all cores); leave cores free for anything else on the machine\n"
    "  --drain-timeout S      on SIGTERM, wait at most S seconds for running requests (default 60)\n"
    "  --max-connections N    open connections served at once, one thread each (default\n"
    "                         4096, within the open-files limit); more wait to be accepted\n"
    "  --idle-timeout S       close a connection silent for S seconds (default 30)\n"
    "  --request-timeout S    close a connection whose request (headers and body) has not\n"
    "                         arrived whole S seconds after it opened or after its last\n"
    "                         response (default 60; slow senders cannot hold a connection)\n"
    "  --quiet                no line per request on stderr\n"
    "Sampling follows OpenAI's fields (temperature 1 and top_p 1 unless the\n"
    "request says otherwise; temperature 0 is greedy; seed for repeatable\n"
    "samples); generation stops at the model's EOS ids (generation_config.json)\n"
    "and the request's stop strings.\n";

/* Connections beyond what the open-files limit allows would fail in accept():
 * raises the soft limit to the hard one and clamps n to fit (64 kept for the
 * model files and the rest). */
static int fit_connections(int n) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return n;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)n + 64 > rl.rlim_cur) {
        int fit = rl.rlim_cur > 80 ? (int)(rl.rlim_cur - 64) : 16;
        fprintf(stderr, "tuna serve: --max-connections %d lowered to %d (open-files limit %llu)\n", n, fit, (unsigned long long)rl.rlim_cur);
        return fit;
    }
    return n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- options ---- */
typedef struct {
    const char *model_dir, *name, *tmpl_arg, *host, *api_key;
    const char *anames[MAX_ADAPTERS], *adirs[MAX_ADAPTERS];
    char *adapter_args[MAX_ADAPTERS]; /* NAME\0DIR, owned */
    int n_ad, port, parallel, queue, ctx, max_body, drain_timeout, quiet, threads;
    int max_conn, idle_timeout, request_timeout;
    cli_model_flags mf;
    char base_name[256];
    const char *names[MAX_ADAPTERS + 1]; /* model ids: the base, then the adapters */
} serve_opts;

/* one --adapter NAME=DIR; 0, or the exit code */
static int parse_adapter(serve_opts *o, const char *v) {
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1]) return cli_usage_error("serve: --adapter wants NAME=DIR, got '%s'", v);
    if (o->n_ad == MAX_ADAPTERS) return cli_usage_error("serve: at most %d adapters", MAX_ADAPTERS);
    char *a = o->adapter_args[o->n_ad] = strdup(v);
    if (!a) return cli_usage_error("out of memory");
    a[eq - v] = 0;
    o->anames[o->n_ad] = a;
    o->adirs[o->n_ad] = a + (eq - v) + 1;
    o->n_ad++;
    return 0;
}

/* argv into *o; 0, or the exit code */
static int serve_parse_argv(serve_opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, mf = cli_model_flag(&o->mf, "serve", argc, argv, &i);
        if (mf) { if (mf < 0) return 2; continue; }
        if (!strcmp(a, "--model") && v) o->model_dir = argv[++i];
        else if (!strcmp(a, "--adapter") && v) {
            int rc = parse_adapter(o, v);
            if (rc) return rc;
            i++;
        } else if (!strcmp(a, "--name") && v) o->name = argv[++i];
        else if (!strcmp(a, "--template") && v) o->tmpl_arg = argv[++i];
        else if (!strcmp(a, "--host") && v) o->host = argv[++i];
        else if (!strcmp(a, "--api-key") && v) o->api_key = argv[++i];
        else if (!strcmp(a, "--port")) bad = cli_parse_int(a, v, 0, 65535, &o->port), i++;
        else if (!strcmp(a, "--parallel")) bad = cli_parse_int(a, v, 1, 1024, &o->parallel), i++;
        else if (!strcmp(a, "--queue")) bad = cli_parse_int(a, v, 0, 1 << 20, &o->queue), i++;
        else if (!strcmp(a, "--ctx")) bad = cli_parse_int(a, v, 2, 1 << 20, &o->ctx), i++;
        else if (!strcmp(a, "--max-body")) bad = cli_parse_int(a, v, 1024, 1 << 30, &o->max_body), i++;
        else if (!strcmp(a, "--threads")) bad = cli_parse_int(a, v, 1, 1024, &o->threads), i++;
        else if (!strcmp(a, "--drain-timeout")) bad = cli_parse_int(a, v, 0, 1 << 20, &o->drain_timeout), i++;
        else if (!strcmp(a, "--max-connections")) bad = cli_parse_int(a, v, 1, 1 << 20, &o->max_conn), i++;
        else if (!strcmp(a, "--idle-timeout")) bad = cli_parse_int(a, v, 1, 1 << 20, &o->idle_timeout), i++;
        else if (!strcmp(a, "--request-timeout")) bad = cli_parse_int(a, v, 1, 1 << 20, &o->request_timeout), i++;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else return cli_usage_error("serve: unknown option or missing value '%s' (see tuna serve --help)", a);
        if (bad) return 2;
    }
    return 0;
}

/* model ids: the base's folder name unless --name; adapter names unique */
static int name_models(serve_opts *o) {
    const char *model_dir = o->model_dir;
    if (!o->name) {
        size_t len = strlen(model_dir);
        while (len > 1 && model_dir[len - 1] == '/') len--;
        const char *b = model_dir + len;
        while (b > model_dir && b[-1] != '/') b--;
        snprintf(o->base_name, sizeof o->base_name, "%.*s", (int)(model_dir + len - b), b);
    } else snprintf(o->base_name, sizeof o->base_name, "%s", o->name);
    o->names[0] = o->base_name;
    for (int k = 0; k < o->n_ad; k++) {
        o->names[k + 1] = o->anames[k];
        for (int j = 0; j <= k; j++)
            if (!strcmp(o->names[j], o->anames[k]))
                return cli_usage_error("serve: two models are named '%s' (use --name or other adapter names)", o->anames[k]);
    }
    return 0;
}

/* the options and the checks that need no model; 0, or the exit code */
static int serve_parse(serve_opts *o, int argc, char **argv) {
    *o = (serve_opts){.host = "127.0.0.1", .api_key = getenv("TUNA_API_KEY"), .port = 8080, .parallel = 4, .queue = 64,
                      .max_body = 1 << 20, .drain_timeout = 60, .max_conn = 4096, .idle_timeout = 30, .request_timeout = 60};
    cli_model_flags_init(&o->mf);
    int rc = serve_parse_argv(o, argc, argv);
    if (rc) return rc;
    if (!o->model_dir) return cli_usage_error("serve: --model DIR is required");
    if (o->api_key && !*o->api_key) return cli_usage_error("serve: --api-key is empty");
    return name_models(o);
}

/* ---- what a running server holds ---- */
typedef struct {
    tuna_model *models[MAX_ADAPTERS + 1]; /* the base, then one share per adapter */
    tuna_tokenizer *tok;
    tuna_template *tmpl;
    char *tsrc;
    int32_t eos[16];
    int n_eos;
    srv_engine *eng;
    srv_server *srv;
    sigset_t sigs; /* SIGTERM, SIGINT: waited for in the main thread */
} serve_state;

/* the base, a share of it per adapter (each computing in --dtype), the
 * tokenizer, the template and the EOS ids; 0, or the exit code */
static int serve_load(serve_state *s, const serve_opts *o) {
    tuna_status st = cli_load_base(o->model_dir, &o->mf, &s->models[0]);
    if (st == TUNA_OK) st = tuna_tokenizer_load(&s->tok, o->model_dir);
    if (st == TUNA_OK) st = cli_model_set_dtype(s->models[0], &o->mf, 0);
    for (int k = 0; st == TUNA_OK && k < o->n_ad; k++) {
        st = tuna_model_share(&s->models[k + 1], s->models[0]);
        if (st == TUNA_OK) st = tuna_peft_load(s->models[k + 1], o->adirs[k]);
        if (st == TUNA_OK) st = cli_model_set_dtype(s->models[k + 1], &o->mf, 1);
    }
    if (st == TUNA_OK) st = tuna_dataset_template(&s->tmpl, s->tok, o->tmpl_arg, &s->tsrc);
    if (st != TUNA_OK) return cli_status_error(st);
    if (!s->tmpl)
        fprintf(stderr, "tuna serve: %s has no chat template: /v1/chat/completions answers 400 (give --template NAME|FILE)\n", o->model_dir);
    cli_gen_flags gf;
    cli_gen_flags_init(&gf, 0);
    tuna_sample_args unused;
    st = cli_gen_setup(o->model_dir, s->tok, &gf, 0, s->eos, &s->n_eos, &unused);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}

/* the models, positions, threads and address on stderr */
static void print_banner(const serve_state *s, const serve_opts *o, const tuna_config *cfg) {
    double kv_mib = 2.0 * cfg->L * o->parallel * (double)srv_engine_ctx(s->eng) * cfg->NKV * cfg->HD * 4 / 1048576.0;
    fprintf(stderr, "tuna serve: models:");
    for (int k = 0; k <= o->n_ad; k++) fprintf(stderr, " %s%s", o->names[k], k ? "" : " (base)");
    fprintf(stderr, "; %d parallel x %d positions (KV cache %.1f MiB); queue %d; %d threads%s\n", o->parallel, srv_engine_ctx(s->eng),
            kv_mib, o->queue, o->threads ? o->threads : omp_get_max_threads(), o->api_key ? "; API key required" : "");
    const char *shown = strchr(o->host, ':') ? "[%s]" : "%s";
    char hostpart[300];
    snprintf(hostpart, sizeof hostpart, shown, o->host);
    fprintf(stderr, "tuna serve: listening on http://%s:%d\n", hostpart, srv_server_port(s->srv));
    fflush(stderr);
}

/* the engine and the HTTP side started; 0, or the exit code */
static int serve_start(serve_state *s, serve_opts *o) {
    const tuna_config *cfg = tuna_model_config(s->models[0]);
    if (!o->ctx) o->ctx = cfg->max_positions > 0 && cfg->max_positions < 4096 ? cfg->max_positions : 4096;
    if (cfg->max_positions > 0 && o->ctx > cfg->max_positions)
        return cli_usage_error("serve: --ctx %d exceeds the model's %d positions", o->ctx, cfg->max_positions);
    /* signals go to the main thread only: block them before any thread starts */
    sigemptyset(&s->sigs);
    sigaddset(&s->sigs, SIGTERM);
    sigaddset(&s->sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s->sigs, NULL);
    srv_engine_opts eo = {.parallel = o->parallel, .queue = o->queue, .ctx = o->ctx, .threads = o->threads};
    tuna_status st = srv_engine_create(&s->eng, s->models, o->n_ad + 1, s->tok, &eo);
    if (st != TUNA_OK) return cli_status_error(st);
    srv_config sc = {.host = o->host, .port = o->port, .api_key = o->api_key, .max_body = (size_t)o->max_body,
                     .max_connections = fit_connections(o->max_conn), .idle_timeout = o->idle_timeout,
                     .request_timeout = o->request_timeout, .engine = s->eng, .tok = s->tok, .tmpl = s->tmpl,
                     .model_names = o->names, .n_models = o->n_ad + 1, .eos = s->eos, .n_eos = s->n_eos,
                     .page = tuna_chat_page, .page_len = tuna_chat_page_len, .log = !o->quiet};
    st = srv_server_start(&s->srv, &sc);
    if (st != TUNA_OK) return cli_status_error(st);
    print_banner(s, o, cfg);
    return 0;
}

/* after the first signal: no new requests; running and queued ones finish
 * within the drain timeout, unless a second signal comes */
static void serve_drain(serve_state *s, int drain_timeout) {
    double t_end = now_s() + drain_timeout;
    for (;;) {
        srv_engine_stats es;
        srv_engine_get_stats(s->eng, &es);
        if (!es.active && !es.queued && !srv_server_inflight(s->srv)) break;
        if (now_s() >= t_end) {
            fprintf(stderr, "tuna serve: drain timeout: stopping %d running and %d queued requests\n", es.active, es.queued);
            break;
        }
        struct timespec ts = {0, 50 * 1000000L};
        if (sigtimedwait(&s->sigs, NULL, &ts) > 0) {
            fprintf(stderr, "tuna serve: second signal: stopping now\n");
            break;
        }
    }
}

/* waits for SIGTERM/SIGINT, drains, stops, and says what was served */
static void serve_until_signal(serve_state *s, const serve_opts *o) {
    int sig = 0;
    while (sigwait(&s->sigs, &sig) != 0) {}
    fprintf(stderr, "tuna serve: %s: draining (new requests get 503)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_server_quiesce(s->srv);
    srv_engine_drain(s->eng);
    serve_drain(s, o->drain_timeout);
    srv_engine_stop(s->eng); /* wakes any request still waiting: it ends with an error event */
    for (double t_stop = now_s() + 2; srv_server_inflight(s->srv) && now_s() < t_stop;) {
        struct timespec ts = {0, 20 * 1000000L}; /* let those last events reach their clients */
        nanosleep(&ts, NULL);
    }
    srv_server_stop(s->srv);
    s->srv = NULL;
    srv_engine_stats es;
    srv_engine_get_stats(s->eng, &es);
    fprintf(stderr, "tuna serve: stopped (%ld completed, %ld cancelled, %ld failed; %ld tokens generated)\n", es.completed, es.cancelled,
            es.failed, es.generated_tokens);
}

static void serve_state_free(serve_state *s, int n_ad) {
    srv_server_stop(s->srv);
    srv_engine_free(s->eng);
    tuna_template_free(s->tmpl);
    free(s->tsrc);
    for (int k = n_ad; k >= 0; k--) tuna_model_free(s->models[k]);
    tuna_tokenizer_free(s->tok);
}

int cmd_serve(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(serve_help, stdout); return 0; }
    serve_opts o;
    int rc = serve_parse(&o, argc, argv);
    if (!rc) {
        serve_state s = {0};
        rc = serve_load(&s, &o);
        if (!rc) rc = serve_start(&s, &o);
        if (!rc) serve_until_signal(&s, &o);
        serve_state_free(&s, o.n_ad);
    }
    for (int k = 0; k < o.n_ad; k++) free(o.adapter_args[k]);
    return rc;
}
