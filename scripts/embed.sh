#!/bin/sh
# embed.sh FILE NAME: writes (stdout) a C file defining NAME[], the bytes of
# FILE followed by a NUL, and NAME_len, their count; used to build the chat
# page into the tuna binary (no outside files at run time, no xxd needed).
set -eu
printf '/* generated from %s by scripts/embed.sh; do not edit */\n#include <stddef.h>\nconst char %s[] = {\n' "$1" "$2"
od -An -v -tx1 "$1" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
printf '0};\nconst size_t %s_len = sizeof %s - 1;\n' "$2" "$2"
