#!/usr/bin/python3
"""bench.py: `make bench`: rrc against the PyTorch reference (bench/torch_ref.py)
in one run on this machine, same thread counts, alternating the two sides,
medians of repetitions; prints one table and writes docs/PERFORMANCE.md.

Measured per case: training-step throughput (backbone images per second,
K*B per step, no augmentation; rrc: the AOT trainer's `bench`), end-to-end
throughput with augmentation (rrc: `train` on synthetic images, its
metrics.csv; PyTorch: torchvision/PIL transforms in process), peak resident
memory, achieved GFLOP/s (6 x forward multiply-adds of convs and linears per
image x images / step time) next to the FMA peak, and rrc's compile time.
Other processes' CPU use during each run is measured from /proc/stat minus
the run's own; a run disturbed by more than 0.1 cores is repeated (up to 3
times) and then marked.
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench")
REPS = 3


def proc_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, os.sysconf("SC_CLK_TCK")


def timed(cmd):
    """Like run, with the child's own CPU time and peak RSS (os.wait4)."""
    b0, hz = proc_busy()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    b1, _ = proc_busy()
    if status != 0:
        sys.exit("bench: %s failed:\n%s" % (" ".join(cmd), err.decode()))
    own = ru.ru_utime + ru.ru_stime
    other = max(0.0, ((b1 - b0) / hz - own) / wall)
    return out.decode(), ru.ru_maxrss / 1024.0, other


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def measure(cmd, parse):
    """Median of REPS quiet runs of cmd: (value, peak MB, other cores, disturbed)."""
    vals, rss, others = [], [], []
    for _ in range(REPS):
        for attempt in range(3):
            out, mb, other = timed(cmd)
            if other <= 0.1:
                break
        vals.append(parse(out))
        rss.append(mb)
        others.append(other)
    return median(vals), max(rss), max(others), max(others) > 0.1


def macs_per_image(spec):
    out = subprocess.run([os.path.join(ROOT, "rrc"), "dump-ir", spec, "--K", "2", "--batch", "2", "--after", "lower"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    m = re.search(r"forward multiply-adds per image \(backbone convs and linears\): ([\d,]+)", out)
    return int(m.group(1).replace(",", ""))


def main():
    os.makedirs(BUILD, exist_ok=True)
    fma = os.path.join(BUILD, "fma_peak")
    subprocess.run(["gcc", "-O2", "-march=native", "-pthread", os.path.join(ROOT, "bench", "fma_peak.c"), "-o", fma], check=True)
    peak = {t: float(subprocess.run([fma, str(t), "1"], capture_output=True, text=True).stdout) for t in (1, 2)}
    rows = []
    py = "/usr/bin/python3"
    tref = os.path.join(ROOT, "bench", "torch_ref.py")
    cases = [("conv4", 4, 64, (1, 2), 20), ("resnet32", 4, 64, (1, 2), 6), ("resnet32", 32, 64, (2,), 2)]
    for model, K, B, threads, steps in cases:
        spec = "specs/%s.lua" % model
        outdir = os.path.join(BUILD, "%s_K%d" % (model, K))
        t0 = time.perf_counter()
        subprocess.run([os.path.join(ROOT, "rrc"), "compile", spec, "--K", str(K), "--batch", str(B), "--train-size",
                        str(B * 100), "-o", outdir], check=True, capture_output=True, cwd=ROOT)
        compile_s = time.perf_counter() - t0
        trainer = os.path.join(outdir, "%s-train" % model)
        gflop_per_step = 6.0 * macs_per_image(spec) * K * B / 1e9
        for t in threads:
            ours, ours_mb, ours_other, ours_bad = measure(
                [trainer, "bench", "--threads", str(t), "--steps", str(steps)],
                lambda o: float(re.search(r"([\d.]+) images/s", o).group(1)))
            ref = measure([py, tref, "--model", model, "--K", str(K), "--B", str(B), "--threads", str(t), "--steps", str(steps)],
                          lambda o: json.loads(o)["images_per_s"])
            rows.append({"case": "%s K=%d B=%d step" % (model, K, B), "threads": t, "rrc": ours, "torch": ref[0],
                         "rrc_gflops": gflop_per_step * ours / (K * B), "torch_gflops": gflop_per_step * ref[0] / (K * B),
                         "peak": peak[t], "rrc_mb": ours_mb, "torch_mb": ref[1], "compile_s": compile_s,
                         "other": max(ours_other, ref[2]), "disturbed": ours_bad or ref[3]})
            print("%-28s %dT  rrc %8.1f img/s  torch %8.1f img/s  ratio %.2f" % (rows[-1]["case"], t, ours, ref[0], ours / ref[0]),
                  flush=True)
    # end to end with augmentation: conv4
    spec, K, B = "specs/conv4.lua", 4, 64
    trainer = os.path.join(BUILD, "conv4_K4", "conv4-train")
    for t in (1, 2):
        run_dir = os.path.join(BUILD, "e2e_run")

        def parse_csv(_out):
            with open(os.path.join(run_dir, "metrics.csv")) as f:
                vals = [float(line.split(",")[6]) for line in f.readlines()[1:]]
            return median(vals[3:])
        ours = measure([trainer, "train", "--data", "synthetic:6400", "--max-steps", "40", "--threads", str(t), "--quiet",
                        "--out", run_dir], parse_csv)
        ref = measure([py, tref, "--model", "conv4", "--threads", str(t), "--steps", "10", "--e2e"],
                      lambda o: json.loads(o)["images_per_s"])
        rows.append({"case": "conv4 K=4 B=64 end-to-end", "threads": t, "rrc": ours[0], "torch": ref[0], "rrc_gflops": None,
                     "torch_gflops": None, "peak": peak[t], "rrc_mb": ours[1], "torch_mb": ref[1], "compile_s": None,
                     "other": max(ours[2], ref[2]), "disturbed": ours[3] or ref[3]})
        print("%-28s %dT  rrc %8.1f img/s  torch %8.1f img/s  ratio %.2f" % (rows[-1]["case"], t, ours[0], ref[0], ours[0] / ref[0]),
              flush=True)
    write_report(rows, peak)


def write_report(rows, peak):
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = ["| case | threads | rrc images/s | PyTorch images/s | rrc / PyTorch | rrc GFLOP/s | PyTorch GFLOP/s | FMA peak GFLOP/s "
             "| rrc peak MB | PyTorch peak MB | rrc compile s | other load (cores) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = lambda v: "-" if v is None else "%.1f" % v
        lines.append("| %s | %d | %.0f | %.0f | **%.2f** | %s | %s | %.0f | %.0f | %.0f | %s | %.2f%s |" % (
            r["case"], r["threads"], r["rrc"], r["torch"], r["rrc"] / r["torch"], g(r["rrc_gflops"]), g(r["torch_gflops"]),
            r["peak"], r["rrc_mb"], r["torch_mb"], "-" if r["compile_s"] is None else "%.2f" % r["compile_s"], r["other"],
            " (disturbed)" if r["disturbed"] else ""))
    table = "\n".join(lines)
    print()
    print(table)
    doc = os.path.join(ROOT, "docs", "PERFORMANCE.md")
    with open(doc, "w") as f:
        f.write("# Performance: rrc against PyTorch\n\n")
        f.write("Written by `make bench` (bench/bench.py) on %s, %s, %d CPUs, %s.\n\n" % (
            time.strftime("%Y-%m-%d"), cpu, os.cpu_count(), "PyTorch from Debian's python3-torch"))
        f.write("Both sides run the same training step (METHOD.md: backbone, pairs with cat aggregation, relation head, "
                "focal loss, Adam) in float32 with the same thread count, alternately, %d repetitions each, medians. "
                "Step rows: fixed random views, no augmentation (rrc: `generated/.../NAME-train bench`; PyTorch: "
                "`bench/torch_ref.py`). End-to-end rows: with the augmentation of K views per image (rrc: `NAME-train "
                "train --data synthetic:6400`, its metrics.csv; PyTorch: torchvision/PIL transforms in process). "
                "GFLOP/s = 6 x forward multiply-adds of convs and linears per image x images per second. "
                "Other load: CPU used by other processes during the run (from /proc/stat).\n\n" % REPS)
        f.write(table + "\n\n")
        f.write("Reproduce: `make bench` (installs python3-torch and python3-torchvision if missing).\n")
    print("\nwrote %s" % doc)


if __name__ == "__main__":
    main()
