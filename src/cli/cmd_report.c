/* cmd_report.c — `tuna report RUN_DIR`: writes RUN_DIR/report.html from the
 * folder's metrics.jsonl, train_args.json and general_eval.json (see
 * include/tuna_report.h) and prints the path written. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "tuna_report.h"

static const char *report_help =
    "usage: tuna report RUN_DIR\n"
    "\n"
    "Writes RUN_DIR/report.html: one self-contained page (inline SVG charts, no\n"
    "network) with train and validation loss, learning rate, gradient norm,\n"
    "tokens/s, any other per-step metric, the before/after general-text\n"
    "perplexity when measured (general_eval.json), and every setting from\n"
    "train_args.json. RUN_DIR is the --out folder of tuna sft / tuna pretrain;\n"
    "it must hold metrics.jsonl. Prints the path written.\n";

int cmd_report(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(report_help, stdout); return 0; }
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("report: unknown option '%s' (see tuna report --help)", argv[i]);
        if (dir) return cli_usage_error("report: one RUN_DIR expected, got '%s' and '%s'", dir, argv[i]);
        dir = argv[i];
    }
    if (!dir) return cli_usage_error("report: RUN_DIR is required (see tuna report --help)");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return cli_usage_error("report: %s: not a folder", dir);
    tuna_status st = tuna_report_write(dir);
    if (st != TUNA_OK) return cli_status_error(st);
    printf("%s/report.html\n", dir);
    return 0;
}
