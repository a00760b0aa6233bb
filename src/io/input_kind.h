/* input_kind.h — what a data input holds, decided once for every reader: the
 * record reader (a JSON array file or JSONL, a gzip file refused), and the
 * readers of plain text (pre-training text, --general-eval, eval --text,
 * tokenizer training), which take JSONL {"text": ...} lines or plain text.
 * Used on a stream from input_file_open (seekable even for a pipe), so a
 * piped input (/dev/fd/63, a FIFO) is recognised by its content as a file is.
 * Internal to libtuna. */
#ifndef TUNA_IO_INPUT_KIND_H
#define TUNA_IO_INPUT_KIND_H
#include <stdio.h>

typedef enum {
    INPUT_TEXT,       /* none of the below */
    INPUT_JSONL,      /* first non-blank byte '{' (records, one a line) */
    INPUT_JSON_ARRAY, /* first non-blank byte '[' */
    INPUT_GZIP,       /* gzip magic */
} input_kind;

/* What f's start holds (after a UTF-8 BOM and blanks); reads its head and
 * rewinds f. */
input_kind input_kind_sniff(FILE *f);
/* For the plain-text readers: 1 when path's data is JSONL. By the name when
 * it ends in .jsonl (1) or .txt (0), any case; else by content: 1 when
 * input_kind_sniff(f) says INPUT_JSONL and the first line is a JSON object
 * with a "text" string (other JSON records stay text, as in a .txt file).
 * Rewinds f. */
int input_kind_is_jsonl(const char *path, FILE *f);
#endif
