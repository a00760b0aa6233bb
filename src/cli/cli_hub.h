/* cli_hub.h — Hub ids on the command line: `--model ORG/NAME[@REV]` (and
 * --adapter, --ref-model, --tuned, --tokenizer, serve's --adapter NAME=ID)
 * wherever a model or adapter folder is taken. A path that exists always
 * wins; an id is pulled once, early, into huggingface_hub's cache
 * (tuna_hub.h) and the option then names its snapshot folder. The progress
 * bar of a pull (bytes, MB/s, ETA) is drawn here, on stderr. */
#ifndef TUNA_CLI_HUB_H
#define TUNA_CLI_HUB_H
#include "tuna_hub.h"

/* the progress bar's state; cli_hub_bar_init sets o's callback to it */
typedef struct {
    const char *id;
    double t0;
    int tty, drawn;
} cli_hub_bar;
void cli_hub_bar_init(cli_hub_bar *b, tuna_hub_opts *o, const char *id, int quiet);
/* ends the bar's line on a terminal */
void cli_hub_bar_end(cli_hub_bar *b);

/* *path, when it is a Hub id and no such local path exists, replaced by its
 * snapshot folder (pulled with the default selection, or only the tokenizer
 * files for --tokenizer); 0, or the exit code with the error printed */
int cli_hub_path(const char *opt, const char **path, int quiet);
/* every model or adapter option of a command line, resolved so (main.c, before
 * the command parses it; nothing with --help or for `tuna pull`) */
int cli_hub_args(int argc, char **argv);
#endif
