#!/bin/sh
# bench/winograd_probe.sh: bench/winograd_probe.c on Conv-4's three
# stride-1 3x3 layers after the first (8 -> 16 on 16x16, 16 -> 32 on 8x8,
# 32 -> 64 on 4x4), built for this CPU.
set -e
out=${TMPDIR:-/tmp}/rrc-winograd-probe
for cfg in "8 16 16" "16 32 8" "32 64 4"; do
    set -- $cfg
    ${CC:-gcc} -O3 -march=native -std=gnu11 -DCI=$1 -DCO=$2 -DHH=$3 bench/winograd_probe.c -o "$out" -lm
    "$out"
done
rm -f "$out"
