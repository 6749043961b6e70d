#!/bin/sh
# tools/compare.sh: `make compare`, the paper's comparison on Fashion-MNIST.
# Trains Conv-4 with every method rrc has, seed 1, equal epochs, each at its
# own batch (BASELINES.md: 128 for the baselines; relational reasoning at
# the demo's B=64, K=4), judges every backbone by the same linear
# evaluation (100 epochs), and writes the table into docs/RESULTS.md
# between the markers "<!-- compare -->" and "<!-- /compare -->" (appended
# when they are missing), and to runs/compare/table.md.
#
# Rows: relational reasoning, RotationNet, SimCLR, DeepCluster
# (self-supervised, judged by lineval; DeepCluster's train time includes its
# clustering), Deep InfoMax (COMPARE_DIM_EPOCHS, default 1: see below),
# the supervised upper bound (its own test accuracy) and random weights
# (lineval of the seeded initialisation).
#
#   COMPARE_EPOCHS (default 10), COMPARE_THREADS (default 2),
#   COMPARE_RUN (default runs/compare), COMPARE_METHODS (default
#   "relational rotation simclr deepcluster dim supervised random"),
#   COMPARE_DIM_EPOCHS (default 1), COMPARE_DOC
#   (default docs/RESULTS.md; "-" writes no document)
set -e
RRC_EXTRA_PKGS="dataset-fashion-mnist gnuplot-nox" sh tools/deps.sh
EPOCHS=${COMPARE_EPOCHS:-10}
THREADS=${COMPARE_THREADS:-2}
RUN=${COMPARE_RUN:-runs/compare}
METHODS=${COMPARE_METHODS:-relational rotation simclr deepcluster dim supervised random}
# Deep InfoMax's local discriminator costs 172 M multiply-adds per image,
# 156x Conv-4's backbone: at equal epochs it alone would take hours, so it
# gets the epochs that fit the table's 30-minute budget (docs/RESULTS.md)
DIM_EPOCHS=${COMPARE_DIM_EPOCHS:-1}
DOC=${COMPARE_DOC:-docs/RESULTS.md}
DATA=fashion-mnist
mkdir -p "$RUN"
TABLE="$RUN/table.md"
start=$(date +%s)

spec_of() {
    case "$1" in
    relational|supervised|random) echo specs/conv4.lua ;;
    rotation) echo specs/rotation_conv4.lua ;;
    simclr) echo specs/simclr_conv4.lua ;;
    deepcluster) echo specs/deepcluster_conv4.lua ;;
    dim) echo specs/dim_conv4.lua ;;
    *) echo "compare: unknown method '$1'" >&2; exit 1 ;;
    esac
}

# key VALUE of a report file (lineval.txt, supervised.txt)
field() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
# the last `seconds` and the mean images_per_s of a metrics.csv, columns
# found by name (the supervised loop writes other columns; monitor rows
# have an empty loss)
train_seconds() {
    awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i; next} $c["loss"] != "" {s = $c["seconds"]} END {printf "%.0f", s}' "$1"
}
mean_ips() {
    awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i; next}
             $c["images_per_s"] != "" {s += $c["images_per_s"]; n++} END {if (n) printf "%.0f", s / n}' "$1"
}

echo "| method | spec | epochs | batch | linear top-1 | train time | backbone images/s |" > "$TABLE"
echo "|---|---|---|---|---|---|---|" >> "$TABLE"
for m in $METHODS; do
    spec=$(spec_of "$m")
    dir="$RUN/$m"
    ep=$EPOCHS
    [ "$m" = dim ] && ep=$DIM_EPOCHS
    echo "== compare: $m ($spec), $ep epochs ==" >&2
    case "$m" in
    random)
        ./rrc lineval "$spec" --data $DATA --random-init --threads "$THREADS" --seed 1 --out "$dir"
        acc=$(field "$dir/lineval_random.txt" test_top1)
        printf "| random weights (lower bound) | %s | 0 | - | %.2f%% | - | - |\n" "$spec" "$(echo "$acc" | awk '{print 100*$1}')" >> "$TABLE"
        continue ;;
    supervised)
        ./rrc train "$spec" --method supervised --data $DATA --epochs "$EPOCHS" --batch 128 --threads "$THREADS" \
            --seed 1 --out "$dir"
        acc=$(field "$dir/supervised.txt" test_top1)
        label="supervised (upper bound; its test top-1)"
        batch=128 ;;
    *)
        ./rrc train "$spec" --data $DATA --epochs "$ep" --threads "$THREADS" --seed 1 --out "$dir" --quiet
        ./rrc lineval "$spec" --data $DATA --checkpoint "$dir/last.safetensors" --threads "$THREADS" --seed 1
        acc=$(field "$dir/lineval.txt" test_top1)
        case "$m" in
        relational) label="relational reasoning (K=4)"; batch=64 ;;
        rotation) label="RotationNet"; batch=128 ;;
        simclr) label="SimCLR"; batch=128 ;;
        deepcluster) label="DeepCluster (100 clusters)"; batch=128 ;;
        dim) label="Deep InfoMax"; batch=128 ;;
        esac ;;
    esac
    secs=$(train_seconds "$dir/metrics.csv")
    ips=$(mean_ips "$dir/metrics.csv")
    printf "| %s | %s | %s | %s | %.2f%% | %s s | %s |\n" "$label" "$spec" "$ep" "$batch" \
        "$(echo "$acc" | awk '{print 100*$1}')" "$secs" "${ips:--}" >> "$TABLE"
done
end=$(date +%s)

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
isa=$(if grep -q avx512f /proc/cpuinfo; then echo "AVX-512"; elif grep -q avx2 /proc/cpuinfo; then echo "AVX2, no AVX-512"; else echo "no AVX2"; fi)
section="$RUN/section.md"
{
    echo "<!-- compare -->"
    echo "## The paper's baselines on Fashion-MNIST (\`make compare\`)"
    echo
    echo "Made by \`make compare\` (tools/compare.sh) on $(date -u +%Y-%m-%d): $(nproc)-core $cpu ($isa),"
    echo "$THREADS threads. Conv-4, seed 1, $EPOCHS epochs each (\`COMPARE_EPOCHS\`; Deep InfoMax $DIM_EPOCHS, \`COMPARE_DIM_EPOCHS\`:"
    echo "its local discriminator costs 172 M multiply-adds per image (two 1x1-conv stacks over 32x32 positions), 156 times the backbone's 1.1 M, so equal epochs"
    echo "would take it hours; its epochs are what keeps the table within 30 minutes), each method at its own"
    echo "batch; every self-supervised backbone judged by the same linear evaluation"
    echo "(\`rrc lineval\`, 100 epochs, Adam 1e-3, test top-1). Train time is the training"
    echo "loop's wall time (metrics.csv's last \`seconds\`; compiling and evaluating excluded), so"
    echo "equal compute can be read off; images/s counts the images through the backbone (views,"
    echo "and RotationNet's four rotations of each). Whole table: $((end - start)) s."
    echo
    cat "$TABLE"
    echo "<!-- /compare -->"
} > "$section"
if [ "$DOC" != "-" ]; then
    if [ -f "$DOC" ] && grep -q '^<!-- compare -->$' "$DOC"; then
        awk -v f="$section" '
            /^<!-- compare -->$/ { while ((getline l < f) > 0) print l; skip = 1; next }
            /^<!-- \/compare -->$/ { skip = 0; next }
            !skip { print }' "$DOC" > "$DOC.tmp" && mv "$DOC.tmp" "$DOC"
    else
        { [ -f "$DOC" ] && echo; cat "$section"; } >> "$DOC"
    fi
    echo "compare: wrote $DOC" >&2
fi
cat "$TABLE"
echo "compare: $((end - start)) s; runs in $RUN" >&2
