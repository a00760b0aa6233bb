/* commands.h — the CLI's subcommands and the small helpers they share.
 * Each cmd_* takes (argc, argv) with argv[0] the subcommand name and returns
 * the process exit code (0 ok, 1 failure, 2 bad usage or input). Errors are
 * printed as "tuna: error: ..." on stderr through cli_error(). Commands
 * never exit: main() finalizes MPI after every command (cli_finish), so a
 * command that fails on one rank of a data-parallel job alone must end the
 * job itself (cli_abort_job) before it returns. */
#ifndef TUNA_CLI_COMMANDS_H
#define TUNA_CLI_COMMANDS_H
#include "tuna.h"
#include "tuna_sample.h"
#include "cli_util.h"

int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_data_inspect(int argc, char **argv);
int cmd_data_tokenize(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Generation options shared by generate, chat, eval and compare:
 * --max-new-tokens --temperature --top-k --top-p --min-p
 * --repetition-penalty --seed --stop (negative = not given). */
typedef struct {
    int max_new, seed, top_k;
    float temperature, top_p, min_p, rep;
    const char *stops[16];
    int n_stop;
} cli_gen_flags;
void cli_gen_flags_init(cli_gen_flags *f, int max_new);
/* 1: argv[*i] was one of these (its value consumed), 0: not one, -1: bad
 * value (the error printed; exit 2). */
int cli_gen_flag(cli_gen_flags *f, int argc, char **argv, int *i);
/* EOS ids from the model's generation_config.json (else the tokenizer's
 * EOS), sampling defaults (greedy; the config's sampling settings when
 * config_sampling), then the flags. TUNA_ERR_FORMAT naming the file and key
 * when generation_config.json holds a value of the wrong type or range. For a
 * GGUF file: its EOS and EOT ids (the key of another type or negative is an
 * error; an id outside the vocabulary is ignored with a warning). */
struct tuna_tokenizer;
tuna_status cli_gen_setup(const char *model_dir, const struct tuna_tokenizer *tok, const cli_gen_flags *f, int config_sampling,
                          int32_t eos[16], int *n_eos, tuna_sample_args *sa);

/* Converts a llama2.c tokenizer.bin into tokenizer files in out_dir. */
tuna_status cli_convert_llama2c_tokenizer(const char *bin, const char *out_dir);

/* Prints "tuna: error: <fmt>" and returns 2 (bad usage/input). */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "tuna: error: <tuna_last_error() or status text>" and returns the
 * exit code for s. */
int cli_status_error(tuna_status s);
/* One warning line on stderr when count of total sequences or prompts (what,
 * e.g. "sequences are") are longer than the model's context of limit
 * positions; nothing when count is 0. where (a file) may be NULL. */
void cli_warn_context(const char *where, long count, long total, const char *what, long longest, int limit);
/* Unless quiet, sets o's on_read so that reading a pipe or other special
 * file prints "reading PATH: N MiB" on stderr: one line updated in place on
 * a terminal, a line per step otherwise, and the total at the end. */
void cli_read_progress(tuna_data_options *o, int quiet);
/* A failure on this rank alone of a multi-rank job: flushes this rank's
 * output, then ends every rank of the job with exit code `code` (the others
 * would wait in a collective forever). Returns when not in such a job. */
void cli_abort_job(int code);
/* 0 when path may be written as an output file (folder 0) or output folder
 * (folder 1) — absent, or a regular file / a folder; else prints why ("is a
 * character device, not a regular file") and returns 2. NULL is fine. Called
 * before any work; atomic_file_open and atomic_dir_commit check again. */
int cli_output_refused(const char *path, int folder);
#endif
