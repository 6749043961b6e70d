#!/usr/bin/python3
"""fidelity.py: rrc's training against the PyTorch reference (issue 17).

Two jobs, standard library and gnuplot only:

  curves   the loss and pair accuracy of the first N steps, each averaged
           over seeds, rrc's runs (RUN/metrics.csv) against the reference's
           (bench/torch_train.py --log FILE), plotted together into a PNG,
           with the mean difference stated:

      tools/fidelity.py curves --rrc RUN1 RUN2 RUN3 --ref A.csv B.csv C.csv \\
                               --steps 500 --png docs/fidelity.png

  compare  two samples of accuracies (one per seed): means, standard
           deviations and Welch's t-test (two-sided p from Student's t):

      tools/fidelity.py compare --a 82.1 82.4 ... --b 83.0 83.2 ...
"""
import argparse
import csv
import math
import os
import subprocess
import sys


def read_steps(path, n):
    """step -> (loss, pair_acc) for steps 1..n of a metrics.csv (rows
    without a loss, such as --monitor rows, are skipped)."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("loss"):
                continue
            s = int(row["step"])
            if s <= n:
                out[s] = (float(row["loss"]), float(row["pair_acc"]))
    missing = [s for s in range(1, n + 1) if s not in out]
    if missing:
        sys.exit("%s: no rows for %d of steps 1..%d (first missing %d)" % (path, len(missing), n, missing[0]))
    return out


def mean_curve(paths, n):
    runs = [read_steps(p, n) for p in paths]
    return [(sum(r[s][0] for r in runs) / len(runs), sum(r[s][1] for r in runs) / len(runs)) for s in range(1, n + 1)]


def smooth(xs, w):
    """trailing moving average over w steps (fewer at the start)"""
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= w:
            acc -= xs[i - w]
        out.append(acc / min(i + 1, w))
    return out


def curves(args):
    n = args.steps
    rrc = mean_curve([os.path.join(d, "metrics.csv") if os.path.isdir(d) else d for d in args.rrc], n)
    ref = mean_curve(args.ref, n)
    d_loss = [a[0] - b[0] for a, b in zip(rrc, ref)]
    d_acc = [a[1] - b[1] for a, b in zip(rrc, ref)]
    last = max(1, n // 5)
    print("steps 1-%d, mean over %d rrc and %d reference seeds:" % (n, len(args.rrc), len(args.ref)))
    print("  loss     rrc %.5f  reference %.5f  difference (rrc - ref) %+.5f; last %d steps %+.5f" % (
        sum(a[0] for a in rrc) / n, sum(b[0] for b in ref) / n, sum(d_loss) / n, last, sum(d_loss[-last:]) / last))
    print("  pair acc rrc %.4f   reference %.4f   difference (rrc - ref) %+.4f;  last %d steps %+.4f" % (
        sum(a[1] for a in rrc) / n, sum(b[1] for b in ref) / n, sum(d_acc) / n, last, sum(d_acc[-last:]) / last))
    if not args.png:
        return
    dat = os.path.splitext(args.png)[0] + ".dat"
    w = args.window
    cols = [smooth([a[0] for a in rrc], w), smooth([b[0] for b in ref], w), smooth([a[1] for a in rrc], w),
            smooth([b[1] for b in ref], w)]
    with open(dat, "w") as f:
        f.write("# step  rrc_loss ref_loss rrc_acc ref_acc (means over seeds, %d-step moving average)\n" % w)
        for s in range(n):
            f.write("%d %.6f %.6f %.6f %.6f\n" % (s + 1, cols[0][s], cols[1][s], cols[2][s], cols[3][s]))
    gp = ("set terminal png size 1100,420\nset output '%s'\nset multiplot layout 1,2\nset grid\nset xlabel 'step'\n"
          "set key top right\nset title 'focal loss (mean of %d seeds, %d-step average)'\n"
          "plot '%s' using 1:2 with lines lw 2 title 'rrc', '' using 1:3 with lines lw 2 title 'PyTorch'\n"
          "set key bottom right\nset title 'pair accuracy'\n"
          "plot '%s' using 1:4 with lines lw 2 title 'rrc', '' using 1:5 with lines lw 2 title 'PyTorch'\n"
          "unset multiplot\n") % (args.png, len(args.rrc), w, dat, dat)
    subprocess.run(["gnuplot"], input=gp.encode(), check=True)
    print("wrote %s (data %s)" % (args.png, dat))


def betacf(a, b, x):
    """continued fraction of the incomplete beta function (Numerical Recipes)"""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1) < 1e-15:
            break
    return h


def betai(a, b, x):
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * betacf(a, b, x) / a
    return 1 - math.exp(lbt) * betacf(b, a, 1 - x) / b


def welch(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se2 = va / len(a) + vb / len(b)
    t = (ma - mb) / math.sqrt(se2) if se2 > 0 else float("inf")
    df = se2 ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1)) if se2 > 0 else float("inf")
    p = betai(df / 2, 0.5, df / (df + t * t)) if math.isfinite(t) else 0.0
    return ma, math.sqrt(va), mb, math.sqrt(vb), t, df, p


def compare(args):
    if len(args.a) < 2 or len(args.b) < 2:
        sys.exit("compare: give at least two values on each side")
    ma, sa, mb, sb, t, df, p = welch(args.a, args.b)
    print("a: n %d, mean %.3f, sd %.3f" % (len(args.a), ma, sa))
    print("b: n %d, mean %.3f, sd %.3f" % (len(args.b), mb, sb))
    print("difference a - b %+.3f; Welch t %.3f, df %.2f, two-sided p %.4f" % (ma - mb, t, df, p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="job", required=True)
    c = sub.add_parser("curves", help="loss and pair accuracy of the first steps, averaged over seeds")
    c.add_argument("--rrc", nargs="+", required=True, help="rrc run folders (or metrics.csv files)")
    c.add_argument("--ref", nargs="+", required=True, help="bench/torch_train.py --log files")
    c.add_argument("--steps", type=int, default=500)
    c.add_argument("--window", type=int, default=20, help="moving average of the plot, in steps")
    c.add_argument("--png", help="where to draw the plot (gnuplot)")
    k = sub.add_parser("compare", help="Welch's t-test of two samples of accuracies")
    k.add_argument("--a", nargs="+", type=float, required=True)
    k.add_argument("--b", nargs="+", type=float, required=True)
    args = ap.parse_args()
    curves(args) if args.job == "curves" else compare(args)


if __name__ == "__main__":
    main()
