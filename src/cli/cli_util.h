/* cli_util.h — small helpers several commands share: option values parsed
 * with the CLI's error texts (printed as "tuna: error: ..."), --help
 * detection, and the files copied or measured in model folders. */
#ifndef TUNA_CLI_UTIL_H
#define TUNA_CLI_UTIL_H

/* True when argv[i] is "-h" or "--help" for any i. */
int cli_wants_help(int argc, char **argv);
/* Parses an integer option value in [lo, hi] (an overflowing one is out of
 * range, shown as given); returns 0 on success, else prints why and -1. */
int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_int(const char *opt, const char *s, long lo, long hi, int *out);
/* Parses a number option value in [lo, hi]; returns 0 on success, else
 * prints "OPT needs a value" (s NULL) or "OPT: 'S' is not a number in [LO,
 * HI]" and returns -1. */
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
/* Copies src_dir/name to dst_dir/name (temporary name, then rename); silently
 * nothing when the source does not exist. */
void cli_copy_file(const char *src_dir, const char *dst_dir, const char *name);
/* Total bytes of the *.safetensors files in a folder (0 if none). */
long long cli_safetensors_bytes(const char *dir);
#endif
