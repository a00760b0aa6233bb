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

int cmd_serve(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(serve_help, stdout); return 0; }
    const char *model_dir = NULL, *name = NULL, *tmpl_arg = NULL, *host = "127.0.0.1", *api_key = getenv("TUNA_API_KEY");
    const char *anames[MAX_ADAPTERS], *adirs[MAX_ADAPTERS];
    int n_ad = 0, port = 8080, parallel = 4, queue = 64, ctx = 0, max_body = 1 << 20, drain_timeout = 60, quiet = 0, threads = 0;
    int max_conn = 4096, idle_timeout = 30, request_timeout = 60;
    char *adapter_args[MAX_ADAPTERS] = {0};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(o, "--model") && v) model_dir = argv[++i];
        else if (!strcmp(o, "--adapter") && v) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) return cli_usage_error("serve: --adapter wants NAME=DIR, got '%s'", v);
            if (n_ad == MAX_ADAPTERS) return cli_usage_error("serve: at most %d adapters", MAX_ADAPTERS);
            adapter_args[n_ad] = strdup(v);
            if (!adapter_args[n_ad]) return cli_usage_error("out of memory");
            adapter_args[n_ad][eq - v] = 0;
            anames[n_ad] = adapter_args[n_ad];
            adirs[n_ad] = adapter_args[n_ad] + (eq - v) + 1;
            n_ad++;
            i++;
        } else if (!strcmp(o, "--name") && v) name = argv[++i];
        else if (!strcmp(o, "--template") && v) tmpl_arg = argv[++i];
        else if (!strcmp(o, "--host") && v) host = argv[++i];
        else if (!strcmp(o, "--api-key") && v) api_key = argv[++i];
        else if (!strcmp(o, "--port")) bad = cli_parse_int(o, v, 0, 65535, &port), i++;
        else if (!strcmp(o, "--parallel")) bad = cli_parse_int(o, v, 1, 1024, &parallel), i++;
        else if (!strcmp(o, "--queue")) bad = cli_parse_int(o, v, 0, 1 << 20, &queue), i++;
        else if (!strcmp(o, "--ctx")) bad = cli_parse_int(o, v, 2, 1 << 20, &ctx), i++;
        else if (!strcmp(o, "--max-body")) bad = cli_parse_int(o, v, 1024, 1 << 30, &max_body), i++;
        else if (!strcmp(o, "--threads")) bad = cli_parse_int(o, v, 1, 1024, &threads), i++;
        else if (!strcmp(o, "--drain-timeout")) bad = cli_parse_int(o, v, 0, 1 << 20, &drain_timeout), i++;
        else if (!strcmp(o, "--max-connections")) bad = cli_parse_int(o, v, 1, 1 << 20, &max_conn), i++;
        else if (!strcmp(o, "--idle-timeout")) bad = cli_parse_int(o, v, 1, 1 << 20, &idle_timeout), i++;
        else if (!strcmp(o, "--request-timeout")) bad = cli_parse_int(o, v, 1, 1 << 20, &request_timeout), i++;
        else if (!strcmp(o, "--quiet")) quiet = 1;
        else {
            for (int k = 0; k < n_ad; k++) free(adapter_args[k]);
            return cli_usage_error("serve: unknown option or missing value '%s' (see tuna serve --help)", o);
        }
        if (bad) {
            for (int k = 0; k < n_ad; k++) free(adapter_args[k]);
            return 2;
        }
    }
    int rc = 0;
    if (!model_dir) { rc = cli_usage_error("serve: --model DIR is required"); goto out_args; }
    if (api_key && !*api_key) { rc = cli_usage_error("serve: --api-key is empty"); goto out_args; }
    /* model ids: the base's folder name unless --name; adapter names unique */
    char base_name[256];
    if (!name) {
        size_t len = strlen(model_dir);
        while (len > 1 && model_dir[len - 1] == '/') len--;
        const char *b = model_dir + len;
        while (b > model_dir && b[-1] != '/') b--;
        snprintf(base_name, sizeof base_name, "%.*s", (int)(model_dir + len - b), b);
    } else snprintf(base_name, sizeof base_name, "%s", name);
    const char *names[MAX_ADAPTERS + 1];
    names[0] = base_name;
    for (int k = 0; k < n_ad; k++) {
        names[k + 1] = anames[k];
        for (int j = 0; j <= k; j++)
            if (!strcmp(names[j], anames[k])) { rc = cli_usage_error("serve: two models are named '%s' (use --name or other adapter names)", anames[k]); goto out_args; }
    }

    tuna_model *models[MAX_ADAPTERS + 1] = {0};
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    srv_engine *eng = NULL;
    srv_server *srv = NULL;
    tuna_status st = tuna_model_load_quantized(&models[0], model_dir, cli_load_mode(NULL));
    if (st == TUNA_OK) st = tuna_tokenizer_load(&tok, model_dir);
    for (int k = 0; st == TUNA_OK && k < n_ad; k++) {
        st = tuna_model_share(&models[k + 1], models[0]);
        if (st == TUNA_OK) st = tuna_peft_load(models[k + 1], adirs[k]);
    }
    if (st == TUNA_OK) st = tuna_dataset_template(&tmpl, tok, tmpl_arg, &tsrc);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    if (!tmpl) fprintf(stderr, "tuna serve: %s has no chat template: /v1/chat/completions answers 400 (give --template NAME|FILE)\n", model_dir);
    cli_gen_flags gf;
    cli_gen_flags_init(&gf, 0);
    int32_t eos[16];
    int n_eos = 0;
    tuna_sample_args unused;
    st = cli_gen_setup(model_dir, tok, &gf, 0, eos, &n_eos, &unused);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }

    const tuna_config *cfg = tuna_model_config(models[0]);
    if (!ctx) ctx = cfg->max_positions > 0 && cfg->max_positions < 4096 ? cfg->max_positions : 4096;
    if (cfg->max_positions > 0 && ctx > cfg->max_positions) {
        rc = cli_usage_error("serve: --ctx %d exceeds the model's %d positions", ctx, cfg->max_positions);
        goto done;
    }
    /* signals go to the main thread only: block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    srv_engine_opts eo = {.parallel = parallel, .queue = queue, .ctx = ctx, .threads = threads};
    st = srv_engine_create(&eng, models, n_ad + 1, tok, &eo);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    srv_config sc = {.host = host, .port = port, .api_key = api_key, .max_body = (size_t)max_body,
                     .max_connections = fit_connections(max_conn), .idle_timeout = idle_timeout,
                     .request_timeout = request_timeout, .engine = eng, .tok = tok, .tmpl = tmpl,
                     .model_names = names, .n_models = n_ad + 1, .eos = eos, .n_eos = n_eos,
                     .page = tuna_chat_page, .page_len = tuna_chat_page_len, .log = !quiet};
    st = srv_server_start(&srv, &sc);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    double kv_mib = 2.0 * cfg->L * parallel * (double)srv_engine_ctx(eng) * cfg->NKV * cfg->HD * 4 / 1048576.0;
    fprintf(stderr, "tuna serve: models:");
    for (int k = 0; k <= n_ad; k++) fprintf(stderr, " %s%s", names[k], k ? "" : " (base)");
    fprintf(stderr, "; %d parallel x %d positions (KV cache %.1f MiB); queue %d; %d threads%s\n", parallel, srv_engine_ctx(eng), kv_mib,
            queue, threads ? threads : omp_get_max_threads(), api_key ? "; API key required" : "");
    const char *shown = strchr(host, ':') ? "[%s]" : "%s";
    char hostpart[300];
    snprintf(hostpart, sizeof hostpart, shown, host);
    fprintf(stderr, "tuna serve: listening on http://%s:%d\n", hostpart, srv_server_port(srv));
    fflush(stderr);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    fprintf(stderr, "tuna serve: %s: draining (new requests get 503)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_server_quiesce(srv);
    srv_engine_drain(eng);
    double t_end = now_s() + drain_timeout;
    for (;;) {
        srv_engine_stats es;
        srv_engine_get_stats(eng, &es);
        if (!es.active && !es.queued && !srv_server_inflight(srv)) break;
        if (now_s() >= t_end) {
            fprintf(stderr, "tuna serve: drain timeout: stopping %d running and %d queued requests\n", es.active, es.queued);
            break;
        }
        struct timespec ts = {0, 50 * 1000000L};
        if (sigtimedwait(&sigs, NULL, &ts) > 0) {
            fprintf(stderr, "tuna serve: second signal: stopping now\n");
            break;
        }
    }
    srv_engine_stop(eng); /* wakes any request still waiting: it ends with an error event */
    for (double t_stop = now_s() + 2; srv_server_inflight(srv) && now_s() < t_stop;) {
        struct timespec ts = {0, 20 * 1000000L}; /* let those last events reach their clients */
        nanosleep(&ts, NULL);
    }
    srv_server_stop(srv);
    srv = NULL;
    srv_engine_stats es;
    srv_engine_get_stats(eng, &es);
    fprintf(stderr, "tuna serve: stopped (%ld completed, %ld cancelled, %ld failed; %ld tokens generated)\n", es.completed, es.cancelled,
            es.failed, es.generated_tokens);
done:
    srv_server_stop(srv);
    srv_engine_free(eng);
    tuna_template_free(tmpl);
    free(tsrc);
    for (int k = n_ad; k >= 0; k--) tuna_model_free(models[k]);
    tuna_tokenizer_free(tok);
out_args:
    for (int k = 0; k < n_ad; k++) free(adapter_args[k]);
    return rc;
}
