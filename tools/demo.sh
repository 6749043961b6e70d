#!/bin/sh
# tools/demo.sh: the main job (`make demo`). Compiles specs/conv4.lua ahead
# of time into a standalone trainer, trains Conv-4 with self-supervised
# relational reasoning on Fashion-MNIST (Debian's dataset-fashion-mnist),
# evaluates the trained backbone and a random one by linear evaluation, the
# weighted kNN and retrieval (`eval`: each backbone's features once), and
# prints the figures side by side.
#
# K=8 views per image for 16 epochs: the fewest that reach issue 17's
# margin (over seeds 1-3 a mean linear accuracy of 84.75%, seed 1 85.07%;
# K=4 levels off near 84.1% from about 14 epochs on). What K and epochs
# buy in accuracy and time is in docs/RESULTS.md; `DEMO_K=4 DEMO_EPOCHS=15`
# is the shorter run (less than half the time, 0.6 points less).
#
#   DEMO_EPOCHS (default 16), DEMO_K (default 8; the spec says 4), DEMO_THREADS
#   (default 2), DEMO_RUN (default runs/demo-conv4)
set -e
RRC_EXTRA_PKGS="dataset-fashion-mnist gnuplot-nox" sh tools/deps.sh
EPOCHS=${DEMO_EPOCHS:-16}
K=${DEMO_K:-8}
THREADS=${DEMO_THREADS:-2}
RUN=${DEMO_RUN:-runs/demo-conv4}
mkdir -p runs
start=$(date +%s)
./rrc compile specs/conv4.lua --data fashion-mnist --K "$K"
T=generated/conv4/conv4-train
$T train --data fashion-mnist --epochs "$EPOCHS" --threads "$THREADS" --seed 1 --out "$RUN"
# every protocol of a backbone from one pass of feature extraction
$T eval --protocols linear,knn,retrieval --data fashion-mnist --checkpoint "$RUN/last.safetensors" --threads "$THREADS" \
    --seed 1 | tee "$RUN/lineval_summary.txt"
$T eval --protocols linear,knn,retrieval --data fashion-mnist --random-init --threads "$THREADS" --seed 1 --out "$RUN" \
    | tee -a "$RUN/lineval_summary.txt"
end=$(date +%s)
pct() { awk -v k="$2" '$1 == k {printf "%.2f%%", 100*$2}' "$RUN/$1"; }
echo
echo "== rrc demo: Conv-4, relational reasoning (K=$K, B=64, focal, Adam 1e-3), Fashion-MNIST, seed 1 =="
printf "%-28s %-16s %-16s %-16s %s\n" "backbone" "linear top-1" "kNN top-1" "retrieval P@10" "mAP"
printf "%-28s %-16s %-16s %-16s %s\n" "trained, $EPOCHS epoch(s)" "$(pct lineval.txt test_top1)" "$(pct knn.txt test_top1)" \
    "$(pct retrieval.txt precision_at_10)" "$(pct retrieval.txt map)"
printf "%-28s %-16s %-16s %-16s %s\n" "random (lower bound)" "$(pct lineval_random.txt test_top1)" \
    "$(pct knn_random.txt test_top1)" "$(pct retrieval_random.txt precision_at_10)" "$(pct retrieval_random.txt map)"
echo "run directory: $RUN (metrics.csv, curves.png, last.safetensors, eval*.json, eval_map*.png, lineval*.txt, knn*.txt," \
    "retrieval*.txt);" \
    "wall time $((end - start)) s"
