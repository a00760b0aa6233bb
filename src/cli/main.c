/* main.c — the `tuna` command: dispatches to one subcommand per file in src/cli.
 * The CLI is thin: it parses options, calls libtuna, prints results, and maps
 * statuses to exit codes (0 ok, 1 failure, 2 bad usage or input). Only the
 * CLI decides to end a process or a job: commands return their exit code to
 * main(), which leaves the MPI job (if any) on every path. Before a command
 * runs, its model and adapter options given as Hub ids are replaced by their
 * snapshot folders (cli_hub.c), so every command takes ORG/NAME[@REV]. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli_hub.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "tuna_dist.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"pull", cmd_pull, "download a model from the Hugging Face Hub into its shared cache"},
    {"info", cmd_info, "describe a model folder or GGUF file (architecture, sizes, memory)"},
    {"generate", cmd_generate, "continue a prompt (KV cache, sampling, chat template, adapters)"},
    {"chat", cmd_chat, "interactive conversation through the chat template"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server: base + adapters, batched, streaming, chat page"},
    {"export", cmd_export, "a model (adapter merged) as a Hugging Face folder or a llama.cpp GGUF file"},
    {"merge", cmd_merge, "fold a LoRA or IA3 adapter into the base weights"},
    {"eval", cmd_eval, "loss, perplexity and generation metrics of a model on a data set"},
    {"compare", cmd_compare, "zero-shot vs few-shot prompting vs the fine-tuned model, same eval set"},
    {"convert", cmd_convert, "llama2.c checkpoint -> HF folder; a model re-stored in bf16/f16"},
    {"tokenize", cmd_tokenize, "text lines to token ids with a model's tokenizer"},
    {"detokenize", cmd_detokenize, "token id lines back to text"},
    {"tokenizer", cmd_tokenizer, "train a byte-level BPE tokenizer on text (tokenizer train)"},
    {"sft", cmd_sft, "supervised fine-tuning: full, LoRA, QLoRA, IA3, prompt tuning"},
    {"dpo", cmd_dpo, "preference optimisation (DPO, IPO, hinge, ORPO, SimPO): full, LoRA, QLoRA"},
    {"kto", cmd_kto, "KTO on unpaired desirable / undesirable completions: full, LoRA, QLoRA"},
    {"reward", cmd_reward, "train a reward model (scalar head, pairwise loss) on preference pairs"},
    {"grpo", cmd_grpo, "GRPO with verifiable rewards (TRL's GRPOTrainer): full, LoRA, QLoRA"},
    {"pretrain", cmd_pretrain, "pre-train a model from scratch on plain text"},
    {"plan", cmd_plan, "predict the memory of a training run"},
    {"report", cmd_report, "write a training run's report.html (loss curves, settings)"},
    {"init", cmd_init, "create a randomly initialised model from a config.json"},
    {"template", cmd_template, "render a conversation with a chat template"},
    {"data", cmd_data, "inspect, tokenize, clean, split and synthesize training data"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tuna <command> [options]   (tuna <command> --help for details)\n"
               "       tuna --version               (version and build configuration)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

/* A command's output on stdout that could not all be written (a full disk
 * behind a redirection) is a failure: exit 1, not a silent 0. */
static int check_stdout(int rc) {
    errno = 0;
    if ((fflush(stdout) == 0 && !ferror(stdout)) || rc != 0) return rc; /* a failed command has said why */
    fprintf(stderr, "tuna: error: cannot write the standard output: %s\n", errno ? strerror(errno) : "write error");
    return 1;
}

/* a command's exit code, after leaving the MPI job it may have joined */
static int cli_finish(int rc) {
    rc = check_stdout(rc);
    tuna_status st = tuna_dist_finalize();
    return st != TUNA_OK && rc == 0 ? cli_status_error(st) : rc;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("tuna %s\n%s", tuna_version(), tuna_build_info());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = cli_hub_args(argc - 1, argv + 1); /* Hub ids as model folders */
            return cli_finish(rc ? rc : commands[i].run(argc - 1, argv + 1));
        }
    cli_usage_error("unknown command '%s' (try tuna --help)", argv[1]);
    return 2;
}
