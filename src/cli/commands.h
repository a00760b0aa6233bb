/* commands.h — the CLI's subcommands and the generation options several share.
 * Each cmd_* takes (argc, argv) with argv[0] the subcommand name and returns
 * the process exit code (0 ok, 1 failure, 2 bad usage or input). Errors are
 * printed as "tuna: error: ..." on stderr (cli_util.h). Commands
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
int cmd_reward(int argc, char **argv);
int cmd_kto(int argc, char **argv);
int cmd_grpo(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_pull(int argc, char **argv);

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

#endif
