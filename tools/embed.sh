#!/bin/sh
# embed.sh NAME FILE: prints a C file defining `const char NAME[]` holding FILE's bytes.
set -e
echo "/* generated from $2 by tools/embed.sh; do not edit */"
echo "#include <stddef.h>"
echo "const char $1[] = {"
od -An -v -tx1 "$2" | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//' -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
echo "0x00 };"
echo "const size_t $1_len = sizeof($1) - 1;"
