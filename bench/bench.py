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
the run's own, and so is the time the hypervisor stole from this machine's
CPUs (/proc/stat's steal); a run disturbed by more than 0.1 cores of both
together is repeated (up to 3 times) and then marked. A PyTorch figure more
than 10% off the median of its own repetitions gets more repetitions (up to
EXTRA), so a slow reference run cannot flatter rrc; the table says so.

The table names the CPU, its ISA (avx512 or avx2) and the CPU rrc generated
code for. On an AVX-512 host the step cases also run rrc's code for
x86-64-v3 (AVX2; RRC_CPU=x86-64-v3), recorded beside the native rows and not
judged. The targets judged are issue 12's on an AVX2-only host, issue 5's on
an AVX-512 host.

Four of the paper's baselines run as step cases of their own, B=128, at 1
and 2 threads, against bench/torch_ref.py --method rotation | simclr |
deepcluster | dim: the RotationNet step (specs/rotation_conv4.lua: each
image rotated 0/90/180/270 degrees inside the step, 4B backbone images,
Linear(64,4), cross-entropy), the SimCLR step (specs/simclr_conv4.lua: 2B
views, projection head, the reference's loss), the DeepCluster step
(specs/deepcluster_conv4.lua: B images, classifier Linear(64,256) ->
BatchNorm1d -> LeakyReLU -> Linear(256,100), class-weighted cross-entropy
against pseudolabels) and the Deep InfoMax step (specs/dim_conv4.lua: B
images, local and prior discriminators, Adam lr 1e-4; seconds a step, its
local discriminator's, so 5 timed steps after 1 warmup step on both sides).
rrc: `rrc compile specs/NAME.lua --batch 128`, then `NAME-train bench`;
images/s counts backbone images on both sides (4B, 2B, B, B). Target: rrc at least as fast
as PyTorch (>= 1x), judged per row, native code only. Their table, with the
slowest ops of each step (`NAME-train bench --profile`, 1 thread), is a
section of docs/PERFORMANCE.md of its own, between the markers
BASELINES_BEGIN and BASELINES_END.

Which cases run: BENCH_CASES, a comma-separated subset of
    relational   every case above the baselines (steps, end to end, the
                 relation head, the resnet32 profile) and the targets table
    rotation     the RotationNet step, 1 and 2 threads
    simclr       the SimCLR step, 1 and 2 threads
    deepcluster  the DeepCluster step, 1 and 2 threads
    dim          the Deep InfoMax step, 1 and 2 threads
    mpi          data-parallel training (JIT `rrc train`, synthetic images):
                 conv4 and resnet32, K=4 B=64, one process of 2 threads
                 against `mpirun -np 2` ranks of 1 thread, with rank 0's
                 time in collectives; a section of docs/PERFORMANCE.md of
                 its own, between the markers MPI_BEGIN and MPI_END
    plan         `rrc plan`'s predicted step time and memory against the
                 measured ones (bench/plan_bench.py): conv4, resnet8,
                 resnet32 at K=4, 8, 16, 1 and 2 threads; a section of its
                 own between PLAN_BEGIN and PLAN_END
    check        `rrc check`'s time (bench/check_bench.py): conv4, resnet8,
                 resnet32 at the check's defaults, resnet34 at 32x32 with
                 B = K = 2 (target 60 s); between CHECK_BEGIN and CHECK_END
(unset or empty: all). docs/PERFORMANCE.md is rewritten only in the parts
that ran: the relational report (when relational ran); in the baselines'
section, the rows, profile line and date of each baseline group that ran
(the other groups' are kept from the file, as they were written). So one
baseline alone, or the baselines alone:

    flock /tmp/rrc-heavy.lock env BENCH_CASES=dim /usr/bin/python3 bench/bench.py
    flock /tmp/rrc-heavy.lock env BENCH_CASES=rotation,simclr,deepcluster,dim /usr/bin/python3 bench/bench.py

(flock only where other heavy jobs share the machine; ./rrc must be built:
`make rrc`, or `make bench` with the variable set.)
"""
import io
import json
import os
import re
import subprocess
import sys
import time

import check_bench
import plan_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench")
REPS = 3
EXTRA = 3        # at most this many more PyTorch runs when one is more than 10% off their median
V3 = "x86-64-v3"  # the AVX2 target rrc also runs on an AVX-512 host (recorded, not judged)
# Deep InfoMax's discriminators, forward multiply-adds per image (specs/dim_conv4.lua): the local one's 1x1 convs
# (8 + 64) -> 256 -> 256 -> 1 at 32 x 32 positions, twice (M and M rolled), the prior one's linears 64 -> 512 -> 128 -> 1,
# twice (u and y). 172.7 M, 156 x the backbone's 1.1 M: its GFLOP/s counts them (the other baselines' heads are a few %).
DIM_DISC_MACS = 2 * 32 * 32 * ((8 + 64) * 256 + 256 * 256 + 256 * 1) + 2 * (64 * 512 + 512 * 128 + 128 * 1)
# the baselines' step cases, one case group each, in the table's order: method (= its group in BENCH_CASES),
# spec name, B, backbone images per image, threads, timed steps and untimed warmup steps (both sides), forward
# multiply-adds per image counted besides the backbone's
BASELINES = [
    {"method": "rotation", "name": "rotation_conv4", "B": 128, "per": 4, "threads": (1, 2), "steps": 20, "warmup": 3,
     "extra_macs": 0},
    {"method": "simclr", "name": "simclr_conv4", "B": 128, "per": 2, "threads": (1, 2), "steps": 20, "warmup": 3,
     "extra_macs": 0},
    {"method": "deepcluster", "name": "deepcluster_conv4", "B": 128, "per": 1, "threads": (1, 2), "steps": 20,
     "warmup": 3, "extra_macs": 0},
    {"method": "dim", "name": "dim_conv4", "B": 128, "per": 1, "threads": (1, 2), "steps": 5, "warmup": 1,
     "extra_macs": DIM_DISC_MACS},
]
# data-parallel training over MPI (BENCH_CASES=mpi): model, K, B, steps a run (the first MPI_WARMUP of them untimed),
# one process with MPI_THREADS threads against `mpirun -np MPI_RANKS` ranks of one thread each
MPI_CASES = [("conv4", 4, 64, 60), ("resnet32", 4, 64, 12)]
MPI_WARMUP = 3
MPI_RANKS = 2
MPI_THREADS = 2
# mpirun on one machine: any user (root in containers), all ranks on this host's cores, shared memory only, and no
# cross-process memory access (which kernels in containers refuse)
MPIRUN = ["mpirun", "-np", str(MPI_RANKS), "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
          "--mca", "btl_vader_single_copy_mechanism", "none"]
MPI_BEGIN = "<!-- MPI_BEGIN: written by bench.py (BENCH_CASES=mpi) -->"
MPI_BEGIN_PREFIX = "<!-- MPI_BEGIN"
MPI_END = "<!-- MPI_END -->"
CASE_GROUPS = ("relational",) + tuple(c["method"] for c in BASELINES) + ("mpi", "plan", "check")
# the section's markers: found by their start (an older file's BEGIN line says something else after the colon)
BASELINES_BEGIN = ("<!-- BASELINES_BEGIN: written by bench.py (BENCH_CASES=rotation,simclr,deepcluster,dim; a run "
                   "rewrites only the rows of the baselines it ran) -->")
BASELINES_BEGIN_PREFIX = "<!-- BASELINES_BEGIN"
BASELINES_END = "<!-- BASELINES_END -->"


def proc_stat():
    """/proc/stat's cpu line: busy ticks (user, nice, system, irq, softirq: the
    guest columns are in user already), steal ticks (the 8th value: time the
    hypervisor ran something else on this machine's CPUs) and ticks per second."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7], os.sysconf("SC_CLK_TCK")


def timed(cmd, env=None, merge=False):
    """Like run, with the child's own CPU time and peak RSS (os.wait4): (stdout,
    peak MB, other processes' cores, stolen cores) over the run. With merge,
    stdout holds stderr too (the collectives line of an MPI run)."""
    b0, s0, hz = proc_stat()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE, cwd=ROOT,
                         env=env)
    out = p.stdout.read()
    err = out if merge else p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    b1, s1, _ = proc_stat()
    if status != 0:
        sys.exit("bench: %s failed:\n%s" % (" ".join(cmd), err.decode()))
    own = ru.ru_utime + ru.ru_stime
    other = max(0.0, ((b1 - b0) / hz - own) / wall)
    return out.decode(), ru.ru_maxrss / 1024.0, other, (s1 - s0) / hz / wall


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def measure(cmd, parse, env=None, steady=False, merge=False):
    """Median of REPS quiet runs of cmd: {value, mb (peak), other and steal
    (the worst run's cores), disturbed, extra, unsteady}. With steady (the
    PyTorch side), a run more than 10% off the median gets one more run, and
    so on while fewer than REPS runs lie within 10% of the median of all, up
    to EXTRA more (extra counts them); unsteady if that did not settle it."""
    vals, rss, others, steals = [], [], [], []

    def run():
        for attempt in range(3):
            out, mb, other, steal = timed(cmd, env, merge)
            if other + steal <= 0.1:
                break
        vals.append(parse(out))
        rss.append(mb)
        others.append(other)
        steals.append(steal)

    def off():
        m = median(vals)
        return len([v for v in vals if abs(v - m) <= 0.1 * m]) < REPS
    for _ in range(REPS):
        run()
    extra = 0
    while steady and off() and extra < EXTRA:
        run()
        extra += 1
    return {"value": median(vals), "mb": max(rss), "other": max(others), "steal": max(steals),
            "disturbed": max(o + s for o, s in zip(others, steals)) > 0.1, "extra": extra,
            "unsteady": steady and off()}


def target_env(target):
    """The environment of an rrc run: code for the host's CPU (RRC_CPU unset)
    when target is None, else RRC_CPU=target."""
    env = {k: v for k, v in os.environ.items() if k != "RRC_CPU"}
    if target:
        env["RRC_CPU"] = target
    return env


def cpu_facts():
    """This machine's CPU: its model name and ISA (avx512, avx2 or older, from
    the flags) in /proc/cpuinfo, and LLVM 19's name for it: the CPU rrc
    generates code for when RRC_CPU is unset."""
    name, flags, host = "unknown CPU", set(), "native"
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = val.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(val.split())
    isa = "avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags else "older than avx2"
    try:
        m = re.search(r"Host CPU: (\S+)", subprocess.run(["/usr/lib/llvm-19/bin/llc", "--version"],
                                                          capture_output=True, text=True).stdout)
        host = m.group(1) if m else host
    except OSError:
        pass
    return {"name": name, "isa": isa, "host": host}


def jit_compile_seconds(spec, K, B, target=None):
    """rrc train's own report (RRC_DEBUG=1) of JIT-compiling the training
    step, with the compile cache off (a cold start), for target (target_env)."""
    env = dict(target_env(target), RRC_CACHE_DIR="off", RRC_DEBUG="1")
    p = subprocess.run([os.path.join(ROOT, "rrc"), "train", spec, "--K", str(K), "--batch", str(B), "--data",
                        "synthetic:%d" % B, "--max-steps", "1", "--threads", "1", "--quiet", "--out",
                        os.path.join(BUILD, "jit_run")], capture_output=True, text=True, cwd=ROOT, env=env)
    m = re.search(r"entry train_b%d compiled in ([\d.]+) s" % B, p.stdout + p.stderr)
    return float(m.group(1)) if m else None


def head_share(trainer, threads):
    """Share of the relation head (modules pairs, relation, loss) in a step,
    from the trainer's --profile."""
    out = subprocess.run([trainer, "bench", "--threads", str(threads), "--steps", "2", "--warmup", "1", "--profile"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    share, ms, step = 0.0, 0.0, None
    section = False
    for line in out.splitlines():
        if line.startswith("by module"):
            section = True
            continue
        f = line.split()
        if line.startswith("step") and len(f) >= 3:
            step = float(f[1])
        if section and len(f) >= 4 and f[0] in ("pairs", "relation", "loss"):
            ms += float(f[2])
            share += float(f[3].rstrip("%"))
    return ms, share, step


def op_profile(trainer, threads, top=8, steps=3):
    """The trainer's --profile sums by op over steps timed steps (after one
    warmup step): [(op, ms per step, share %, GFLOP/s, GB/s)], slowest first."""
    out = subprocess.run([trainer, "bench", "--threads", str(threads), "--steps", str(steps), "--warmup", "1", "--profile"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    rows, section = [], False
    for line in out.splitlines():
        if line.startswith("by op"):
            section = True
            continue
        if section:
            m = re.match(r"(.+?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)$", line)
            if not m:
                break
            rows.append((m.group(1).strip(), float(m.group(3)), float(m.group(4)), float(m.group(5)), float(m.group(6))))
    return rows[:top]


def targets_table(rows, head_rows, isa):
    """The targets against this run's figures: on an AVX2-only host issue 12's,
    on an AVX-512 host issue 5's, with the x86-64-v3 rows recorded beside
    (issue 12's AVX2 targets as the yardstick) and not judged."""
    def row(case, t, target="native"):
        r = [x for x in rows if x["case"] == case and x["threads"] == t and x["target"] == target]
        return r[0] if r else None

    def ratio(case, t, target="native"):
        r = row(case, t, target)
        return r["rrc"] / r["torch"] if r else None

    def of_peak(case, target="native"):
        r = row(case, 1, target)
        return 100.0 * r["rrc_gflops"] / r["peak"] if r else None

    def scaling(case, target="native"):
        """rrc's 2-thread / 1-thread figure, and its format with PyTorch's beside."""
        r1, r2 = row(case, 1, target), row(case, 2, target)
        if not (r1 and r2):
            return None, "-"
        return r2["rrc"] / r1["rrc"], "%%.2fx (PyTorch %.2fx)" % (r2["torch"] / r1["torch"])
    R32, C4 = "resnet32 K=4 B=64 step", "conv4 K=4 B=64 step"
    r32 = row(R32, 1)
    k32 = [x for x in rows if x["case"].startswith("resnet32 K=32")][0]
    e2e = [x["rrc"] / x["torch"] for x in rows if x["case"].startswith("conv4 K=4 B=64 end-to-end")]
    s32, s4 = scaling(R32), scaling(C4)
    # (target, wanted, value, bound: value >= bound when positive, <= -bound when negative, not judged when None,
    #  format of the value)
    if isa == "avx512":
        items = [
            ("resnet32 K=4 B=64 step, 1 thread", ">= 1.6x", ratio(R32, 1), 1.6, "%.2fx"),
            ("resnet32 K=4 B=64 step, 2 threads", ">= 1.6x", ratio(R32, 2), 1.6, "%.2fx"),
            ("resnet32 1-thread GFLOP/s / FMA peak", ">= 70%", of_peak(R32), 70.0, "%.1f%%"),
            ("conv4 K=4 B=64 step, 1 thread", ">= 4x", ratio(C4, 1), 4.0, "%.2fx"),
            ("conv4 K=4 B=64 step, 2 threads", ">= 4x", ratio(C4, 2), 4.0, "%.2fx"),
            ("conv4 end-to-end, lowest of the four rows", ">= 6x", min(e2e), 6.0, "%.2fx"),
            ("resnet32 K=32 peak memory / PyTorch's", "<= 0.6", k32["rrc_mb"] / k32["torch_mb"], -0.6, "%.2f"),
            ("relation head share of the K=32 step", "< 15%", head_rows[0]["rrc_share"], -15.0, "%.1f%%"),
            ("JIT compile of resnet32's training step", "<= 1 s", r32["compile_s"], -1.0, "%.2f s"),
            ("resnet32 step, 2 threads / 1 thread", "-", s32[0], None, s32[1]),
            ("conv4 step, 2 threads / 1 thread", "-", s4[0], None, s4[1]),
        ]
        v3_32, v3_4 = scaling(R32, V3), scaling(C4, V3)
        v3r = row(R32, 1, V3)
        items += [
            ("resnet32 K=4 B=64 step, 1 thread, %s" % V3, "(>= 1.4x on AVX2)", ratio(R32, 1, V3), None, "%.2fx"),
            ("resnet32 K=4 B=64 step, 2 threads, %s" % V3, "(>= 1.4x on AVX2)", ratio(R32, 2, V3), None, "%.2fx"),
            ("resnet32 1-thread GFLOP/s / AVX2 FMA peak, %s" % V3, "(>= 73% on AVX2)", of_peak(R32, V3), None, "%.1f%%"),
            ("conv4 K=4 B=64 step, 1 thread, %s" % V3, "(>= 3x on AVX2)", ratio(C4, 1, V3), None, "%.2fx"),
            ("conv4 K=4 B=64 step, 2 threads, %s" % V3, "(>= 3x on AVX2)", ratio(C4, 2, V3), None, "%.2fx"),
            ("resnet32 step, 2 threads / 1 thread, %s" % V3, "(>= 1.8x on AVX2)", v3_32[0], None, v3_32[1]),
            ("conv4 step, 2 threads / 1 thread, %s" % V3, "(>= 1.8x on AVX2)", v3_4[0], None, v3_4[1]),
            ("JIT compile of resnet32's training step, %s" % V3, "(<= 1.5 s on AVX2)",
             v3r["compile_s"] if v3r else None, None, "%.2f s"),
        ]
    else:
        items = [
            ("resnet32 K=4 B=64 step, 1 thread", ">= 1.4x", ratio(R32, 1), 1.4, "%.2fx"),
            ("resnet32 K=4 B=64 step, 2 threads", ">= 1.4x", ratio(R32, 2), 1.4, "%.2fx"),
            ("resnet32 1-thread GFLOP/s / FMA peak", ">= 73%", of_peak(R32), 73.0, "%.1f%%"),
            ("conv4 K=4 B=64 step, 1 thread", ">= 3x", ratio(C4, 1), 3.0, "%.2fx"),
            ("conv4 K=4 B=64 step, 2 threads", ">= 3x", ratio(C4, 2), 3.0, "%.2fx"),
            ("resnet32 step, rrc's 2 threads / 1 thread", ">= 1.8x", s32[0], 1.8, s32[1]),
            ("conv4 step, rrc's 2 threads / 1 thread", ">= 1.8x", s4[0], 1.8, s4[1]),
            ("resnet32 K=32 peak memory / PyTorch's", "<= 0.6", k32["rrc_mb"] / k32["torch_mb"], -0.6, "%.2f"),
            ("relation head share of the K=32 step", "< 15%", head_rows[0]["rrc_share"], -15.0, "%.1f%%"),
            ("JIT compile of resnet32's training step", "<= 1.5 s", r32["compile_s"], -1.5, "%.2f s"),
        ]
    lines = ["| target | wanted | this run | met |", "|---|---|---|---|"]
    for name, want, v, bound, fmt in items:
        if v is None:
            text, met = "-", "-"
        else:
            text = fmt % v
            met = "recorded, not judged" if bound is None else "yes" if (v >= bound if bound > 0 else v <= -bound) else "**no**"
        lines.append("| %s | %s | %s | %s |" % (name, want, text, met))
    return "\n".join(lines)


def macs_per_image(spec, K=2):
    """Forward multiply-adds of one backbone image, from rrc dump-ir (K=None:
    a spec of another method, which takes no --K)."""
    out = subprocess.run([os.path.join(ROOT, "rrc"), "dump-ir", spec] + ([] if K is None else ["--K", str(K)]) +
                         ["--batch", "2", "--after", "lower"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    m = re.search(r"forward multiply-adds per image \(backbone convs and linears\): ([\d,]+)", out)
    return int(m.group(1).replace(",", ""))


def selected_cases():
    """BENCH_CASES: the case groups to run (CASE_GROUPS), all when unset or empty."""
    v = [x.strip() for x in os.environ.get("BENCH_CASES", "").split(",") if x.strip()]
    bad = [x for x in v if x not in CASE_GROUPS]
    if bad:
        sys.exit("bench: BENCH_CASES: unknown case group %s (known: %s)" % (", ".join(bad), ", ".join(CASE_GROUPS)))
    return set(v) if v else set(CASE_GROUPS)


def main():
    os.makedirs(BUILD, exist_ok=True)
    sel = selected_cases()
    cpu = cpu_facts()
    if "RRC_CPU" in os.environ:
        print("bench: RRC_CPU=%s ignored: the native rows are rrc's code for this host" % os.environ["RRC_CPU"], flush=True)
    # the FMA peak with the widest vectors the host has; on an AVX-512 host
    # also with AVX2's, for the x86-64-v3 rows
    targets = ["native"] + ([V3] if cpu["isa"] == "avx512" else [])
    peak = {}
    for target in targets:
        fma = os.path.join(BUILD, "fma_peak" if target == "native" else "fma_peak_" + target)
        subprocess.run(["gcc", "-O2", "-march=" + ("native" if target == "native" else target), "-pthread",
                        os.path.join(ROOT, "bench", "fma_peak.c"), "-o", fma], check=True)
        peak[target] = {t: float(subprocess.run([fma, str(t), "1"], capture_output=True, text=True).stdout) for t in (1, 2)}
        if target == "native":
            cpu["fma_isa"] = subprocess.run([fma, "--isa"], capture_output=True, text=True).stdout.strip()
    print("%s (%s), rrc's code for %s%s; FMA peak %s" % (
        cpu["name"], cpu["isa"], cpu["host"], "".join(" and " + t for t in targets[1:]), ", ".join(
            "%s %.0f / %.0f GFLOP/s (1 / 2 threads)" % (t, peak[t][1], peak[t][2]) for t in targets)), flush=True)
    main_doc = relational(cpu, peak, targets) if "relational" in sel else None
    base_rows, base_prof = [], {}
    for case in BASELINES:
        if case["method"] in sel:
            r, base_prof[case["name"]] = baseline(case, peak["native"])
            base_rows += r
    base_doc = baselines_report(base_rows, base_prof, cpu, old_baselines()) if base_rows else None
    mpi_doc = mpi_report(mpi_cases(), cpu) if "mpi" in sel else None
    plan_doc = None
    if "plan" in sel:
        rows, cal = plan_bench.plan_cases(measure)
        plan_doc = plan_bench.plan_report(rows, cal, lscpu_name(), cpu["host"])
    check_doc = check_bench.check_report(check_bench.check_cases(timed), lscpu_name()) if "check" in sel else None
    write_doc(main_doc, base_doc, mpi_doc, plan_doc, check_doc)


def relational(cpu, peak, targets):
    """The relational cases (steps, end to end, the relation head at K=32, the
    resnet32 profile): prints their table, returns the report's text."""
    bw = os.path.join(BUILD, "mem_bw")
    subprocess.run(["gcc", "-O2", "-march=native", os.path.join(ROOT, "bench", "mem_bw.c"), "-o", bw], check=True)
    mem_bw = float(subprocess.run([bw], capture_output=True, text=True, check=True).stdout)
    rows = []
    py = "/usr/bin/python3"
    tref = os.path.join(ROOT, "bench", "torch_ref.py")
    cases = [("conv4", 4, 64, (1, 2), 20), ("resnet32", 4, 64, (1, 2), 6), ("resnet32", 32, 64, (2,), 2)]
    for model, K, B, threads, steps in cases:
        spec = "specs/%s.lua" % model
        # the K=4 steps also for x86-64-v3 on an AVX-512 host, in a directory of their own
        trainers = {}
        for target in (targets if K == 4 else ["native"]):
            outdir = os.path.join(BUILD, "%s_K%d%s" % (model, K, "" if target == "native" else "_" + target))
            env = target_env(None if target == "native" else target)
            # compiled for Fashion-MNIST's 60000 images (a last batch of 60000 mod B) as well as full batches
            subprocess.run([os.path.join(ROOT, "rrc"), "compile", spec, "--K", str(K), "--batch", str(B), "--train-size",
                            "60000", "-o", outdir], check=True, capture_output=True, cwd=ROOT, env=env)
            trainers[target] = (os.path.join(outdir, "%s-train" % model), env,
                                jit_compile_seconds(spec, K, B, None if target == "native" else target))
        gflop_per_step = 6.0 * macs_per_image(spec) * K * B / 1e9
        for t in threads:
            ours = {target: measure([trainer, "bench", "--threads", str(t), "--steps", str(steps)],
                                    lambda o: float(re.search(r"([\d.]+) images/s", o).group(1)), env)
                    for target, (trainer, env, _) in trainers.items()}
            ref = measure([py, tref, "--model", model, "--K", str(K), "--B", str(B), "--threads", str(t), "--steps", str(steps)],
                          lambda o: json.loads(o)["images_per_s"], steady=True)
            for target, (_, _, compile_s) in trainers.items():
                o = ours[target]
                rows.append({"case": "%s K=%d B=%d step" % (model, K, B), "threads": t, "target": target, "rrc": o["value"],
                             "torch": ref["value"], "rrc_gflops": gflop_per_step * o["value"] / (K * B),
                             "torch_gflops": gflop_per_step * ref["value"] / (K * B), "peak": peak[target][t],
                             "rrc_mb": o["mb"], "torch_mb": ref["mb"], "compile_s": compile_s,
                             "other": max(o["other"], ref["other"]), "steal": max(o["steal"], ref["steal"]),
                             "disturbed": o["disturbed"] or ref["disturbed"], "torch_extra": ref["extra"],
                             "torch_unsteady": ref["unsteady"]})
                print_row(rows[-1])
    # end to end with augmentation: conv4 on synthetic images and on
    # Fashion-MNIST, resnet32 on Fashion-MNIST
    e2e = [("conv4", "synthetic", 40, 10), ("conv4", "fashion-mnist", 40, 10), ("resnet32", "fashion-mnist", 12, 4)]
    for model, data, rrc_steps, ref_steps in e2e:
        trainer = os.path.join(BUILD, "%s_K4" % model, "%s-train" % model)
        for t in (1, 2):
            run_dir = os.path.join(BUILD, "e2e_run")

            def parse_csv(_out):
                with open(os.path.join(run_dir, "metrics.csv")) as f:
                    vals = [float(line.split(",")[6]) for line in f.readlines()[1:]]
                return median(vals[3:])
            rdata = "synthetic:6400" if data == "synthetic" else data
            ours = measure([trainer, "train", "--data", rdata, "--max-steps", str(rrc_steps), "--threads", str(t), "--quiet",
                            "--out", run_dir], parse_csv, target_env(None))
            ref = measure([py, tref, "--model", model, "--threads", str(t), "--steps", str(ref_steps), "--e2e", "--data", data],
                          lambda o: json.loads(o)["images_per_s"], steady=True)
            rows.append({"case": "%s K=4 B=64 end-to-end, %s" % (model, data), "threads": t, "target": "native",
                         "rrc": ours["value"], "torch": ref["value"], "rrc_gflops": None, "torch_gflops": None,
                         "peak": peak["native"][t], "rrc_mb": ours["mb"], "torch_mb": ref["mb"], "compile_s": None,
                         "other": max(ours["other"], ref["other"]), "steal": max(ours["steal"], ref["steal"]),
                         "disturbed": ours["disturbed"] or ref["disturbed"], "torch_extra": ref["extra"],
                         "torch_unsteady": ref["unsteady"]})
            print_row(rows[-1])
    # the relation head alone at K=32 (the paper's setting), 2 threads:
    # rrc's share from its profile, PyTorch's head-only step against its full step
    k32 = os.path.join(BUILD, "resnet32_K32", "resnet32-train")
    ms, share, step = head_share(k32, 2)
    head = json.loads(subprocess.run([py, tref, "--model", "resnet32", "--K", "32", "--B", "64", "--threads", "2",
                                      "--steps", "3", "--head-only"], capture_output=True, text=True, check=True).stdout)
    full = [r for r in rows if r["case"].startswith("resnet32 K=32")][0]
    head_rows = [{"rrc_ms": ms, "rrc_share": share, "rrc_step_ms": step, "torch_ms": 1e3 * head["step_s"],
                  "torch_share": 100.0 * head["step_s"] / (32 * 64 / full["torch"])}]
    print("relation head K=32: rrc %.1f ms (%.1f%% of the step), torch %.1f ms (%.1f%%)" % (
        ms, share, head_rows[0]["torch_ms"], head_rows[0]["torch_share"]), flush=True)
    # what a resnet32 step spends its time on (the profile behind the
    # figures above), one thread
    prof = op_profile(os.path.join(BUILD, "resnet32_K4", "resnet32-train"), 1)
    return write_report(rows, peak["native"], head_rows, prof, mem_bw, cpu)


def baseline(case, peak):
    """One baseline's step case (BASELINES) at each of its thread counts, rrc's
    native code against torch_ref.py --method; returns (rows, the slowest ops
    of rrc's 1-thread step)."""
    method, name, B, per, threads = case["method"], case["name"], case["B"], case["per"], case["threads"]
    counts = ["--steps", str(case["steps"]), "--warmup", str(case["warmup"])]
    spec = "specs/%s.lua" % name
    model = name.split("_", 1)[1]
    outdir = os.path.join(BUILD, name)
    env = target_env(None)
    subprocess.run([os.path.join(ROOT, "rrc"), "compile", spec, "--batch", str(B), "-o", outdir],
                   check=True, capture_output=True, cwd=ROOT, env=env)
    trainer = os.path.join(outdir, "%s-train" % name)
    images = per * B
    gflop_per_image = 6.0 * (macs_per_image(spec, None) + case["extra_macs"]) / 1e9
    py = "/usr/bin/python3"
    tref = os.path.join(ROOT, "bench", "torch_ref.py")
    rows = []
    for t in threads:
        o = measure([trainer, "bench", "--threads", str(t)] + counts,
                    lambda out: float(re.search(r"([\d.]+) images/s", out).group(1)), env)
        ref = measure([py, tref, "--method", method, "--model", model, "--B", str(B), "--threads", str(t)] + counts,
                      lambda out: json.loads(out)["images_per_s"], steady=True)
        rows.append({"case": "%s B=%d step" % (name, B), "name": name, "method": method, "images": images, "threads": t,
                     "target": "native", "rrc": o["value"], "torch": ref["value"],
                     "rrc_gflops": gflop_per_image * o["value"], "torch_gflops": gflop_per_image * ref["value"],
                     "peak": peak[t], "rrc_mb": o["mb"], "torch_mb": ref["mb"],
                     "other": max(o["other"], ref["other"]), "steal": max(o["steal"], ref["steal"]),
                     "disturbed": o["disturbed"] or ref["disturbed"], "torch_extra": ref["extra"],
                     "torch_unsteady": ref["unsteady"]})
        print_row(rows[-1])
    return rows, op_profile(trainer, 1, top=4, steps=min(3, case["steps"]))


def notes(r):
    """What the table says of a row's runs besides its figures."""
    n = " (disturbed)" if r["disturbed"] else ""
    if r["torch_extra"]:
        n += " (PyTorch: %d more run%s, one was >10%% off the median%s)" % (
            r["torch_extra"], "s" if r["torch_extra"] > 1 else "",
            "; still fewer than %d within 10%%" % REPS if r["torch_unsteady"] else "")
    return n


def print_row(r):
    print("%-28s %dT %s rrc %8.1f img/s  torch %8.1f img/s  ratio %.2f%s" % (
        r["case"], r["threads"], "" if r["target"] == "native" else "[%s] " % r["target"], r["rrc"], r["torch"],
        r["rrc"] / r["torch"], notes(r)), flush=True)


def write_report(rows, peak, head_rows, prof, mem_bw, cpu):
    lines = ["| case | threads | rrc's code for | rrc images/s | PyTorch images/s | rrc / PyTorch | rrc GFLOP/s | PyTorch GFLOP/s "
             "| FMA peak GFLOP/s | rrc peak MB | PyTorch peak MB | rrc JIT compile s | other load + steal (cores) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = lambda v: "-" if v is None else "%.1f" % v
        lines.append("| %s | %d | %s | %.0f | %.0f | **%.2f** | %s | %s | %.0f | %.0f | %.0f | %s | %.2f + %.2f%s |" % (
            r["case"], r["threads"], "%s (host)" % cpu["host"] if r["target"] == "native" else
            "%s, recorded, not judged" % r["target"], r["rrc"], r["torch"], r["rrc"] / r["torch"], g(r["rrc_gflops"]),
            g(r["torch_gflops"]), r["peak"], r["rrc_mb"], r["torch_mb"], "-" if r["compile_s"] is None else
            "%.2f" % r["compile_s"], r["other"], r["steal"], notes(r)))
    table = "\n".join(lines)
    machine = machine_line(cpu)
    head = "\n".join(["| relation head, resnet32 K=32 B=64, 2 threads | rrc | PyTorch |", "|---|---|---|"] + [
        "| ms per step (share of the training step) | %.1f (%.2f%%) | %.1f (%.1f%%) |" % (
            h["rrc_ms"], h["rrc_share"], h["torch_ms"], h["torch_share"]) for h in head_rows])
    print()
    print(machine)
    print(table)
    f = io.StringIO()
    f.write("# Performance: rrc against PyTorch\n\n")
    f.write("Written by `make bench` (bench/bench.py) on %s, %s, %s. rrc's code is for `%s`, the CPU LLVM names "
            "this host%s.\n\n" % (time.strftime("%Y-%m-%d"), machine, "PyTorch from Debian's python3-torch", cpu["host"],
                                  "" if cpu["isa"] != "avx512" else
                                  "; the step rows marked %s are rrc's code for that AVX2 target (`RRC_CPU=%s`), measured "
                                  "beside the native ones against the same PyTorch runs and AVX2's FMA peak, recorded "
                                  "and not judged" % (V3, V3)))
    f.write("Both sides run the same training step (METHOD.md: backbone, pairs with cat aggregation, relation head, "
            "focal loss, Adam) in float32 with the same thread count, alternately, %d repetitions each, medians. "
            "Step rows: fixed random views, no augmentation (rrc: `generated/.../NAME-train bench`; PyTorch: "
            "`bench/torch_ref.py`). End-to-end rows: with the augmentation of K views per image (rrc: `NAME-train "
            "train --data synthetic:6400` or `--data fashion-mnist`, its metrics.csv; PyTorch: torchvision/PIL "
            "transforms in process on the same kind of images). "
            "GFLOP/s = 6 x forward multiply-adds of convs and linears per image x images per second. "
            "Other load + steal: CPU used by other processes during the worst run, and the time the hypervisor "
            "stole from this machine's CPUs (both from /proc/stat; a run with more than 0.1 cores of both is repeated, "
            "up to 3 times, then marked disturbed). A PyTorch figure more than 10%% off the median of its runs gets "
            "more runs, up to %d, and the row says so.\n\n" % (REPS, EXTRA))
    f.write(table + "\n\n")
    f.write("JIT compile: the training step's, as `RRC_DEBUG=1 rrc train SPEC --max-steps 1` reports it with "
            "RRC_CACHE_DIR=off (cold). The relation head: rrc's share from `NAME-train bench --profile` (modules pairs, "
            "relation, loss); PyTorch's from `torch_ref.py --head-only` against its full step.\n\n")
    f.write(head + "\n\n")
    f.write("## The targets in this run\n\n%s\n\n" % (
        "An AVX-512 host: issue 5's targets (issue 12: no regression). The %s rows are recorded beside them, with "
        "issue 12's targets for an AVX2-only host in brackets, not judged." % V3 if cpu["isa"] == "avx512" else
        "An AVX2-only host: issue 12's targets, and issue 5's that do not depend on the ISA.")
            + targets_table(rows, head_rows, cpu["isa"]) + "\n\n")
    f.write("## Where a resnet32 step goes\n\n"
            "resnet32 K=4 B=64, one thread, the sums by op of `generated/.../resnet32-train bench --threads 1 "
            "--profile`: GFLOP/s of the op's own arithmetic against the FMA peak of %.0f, and GB/s of the bytes "
            "it reads and writes against one core's memory bandwidth of %.1f GB/s (`bench/mem_bw.c`, a scaled "
            "copy over 256 MiB arrays; activations partly in cache can exceed it). The convolutions are arithmetic, "
            "the BatchNorm backward and elementwise kernels stream whole activations.\n\n" % (peak[1], mem_bw))
    f.write("| op | ms per step | share | GFLOP/s | of FMA peak | GB/s | of bandwidth |\n|---|---|---|---|---|---|---|\n")
    for op, ms, share, gf, gbs in prof:
        f.write("| %s | %.1f | %.1f%% | %.1f | %.0f%% | %.1f | %.0f%% |\n" % (op, ms, share, gf, 100.0 * gf / peak[1],
                                                                      gbs, 100.0 * gbs / mem_bw))
    f.write("\n")
    f.write("Reproduce: `make bench` (installs python3-torch and python3-torchvision if missing).\n")
    return f.getvalue()


def machine_line(cpu):
    return "%s (%s; FMA peak measured with %s code), %d CPUs" % (cpu["name"], cpu["isa"], cpu["fma_isa"], os.cpu_count())


def baseline_row(r):
    """One row of the baselines' table."""
    ratio = r["rrc"] / r["torch"]
    return ("| %s | %d | %d | %.4f | %.4f | %.0f | %.0f | **%.2f** | %s | %.1f | %.1f | %.0f | %.0f | %.0f "
            "| %.2f + %.2f%s |" % (
                r["case"], r["threads"], r["images"], r["images"] / r["rrc"], r["images"] / r["torch"], r["rrc"],
                r["torch"], ratio, "yes" if ratio >= 1.0 else "**no**", r["rrc_gflops"], r["torch_gflops"],
                r["peak"], r["rrc_mb"], r["torch_mb"], r["other"], r["steal"], notes(r)))


def baseline_prof_line(name, ops):
    """The profile line of one baseline in the section."""
    return "- %s: %s" % (name, "; ".join("%s %.1f ms (%.1f%%, %.1f GFLOP/s)" % (op, ms, share, gf)
                                         for op, ms, share, gf, _ in ops))


def doc_sections(text):
    """(the text outside the baselines' section, the section from its BEGIN
    line to its END marker, or "" when the text has none)."""
    b, e = text.find(BASELINES_BEGIN_PREFIX), text.find(BASELINES_END)
    if b >= 0 and e > b:
        return text[:b] + text[e + len(BASELINES_END):], text[b:e + len(BASELINES_END)]
    return text, ""


def old_baselines():
    """What docs/PERFORMANCE.md's baselines' section holds, per case group
    (BASELINES' methods): {method: {"rows": [table lines], "prof": [profile
    lines], "date": the date its rows were measured, or None}}. A group's
    rows are those whose case starts with its spec's name; its date comes
    from the section's "Measured on:" line, or (a file written before that
    line) from its "Written by ... on DATE"."""
    doc = os.path.join(ROOT, "docs", "PERFORMANCE.md")
    section = doc_sections(open(doc).read())[1] if os.path.exists(doc) else ""
    m = re.search(r"Measured on: (.*)", section)
    dates = dict(re.findall(r"(\w+) (\d{4}-\d\d-\d\d)", m.group(1))) if m else {}
    m = re.search(r"Written by .*? on (\d{4}-\d\d-\d\d)", section)
    written = m.group(1) if m else None
    old = {}
    for case in BASELINES:
        rows = [line for line in section.splitlines() if line.startswith("| %s " % case["name"])]
        prof = [line for line in section.splitlines() if line.startswith("- %s: " % case["name"])]
        if rows:
            old[case["method"]] = {"rows": rows, "prof": prof, "date": dates.get(case["method"], written)}
    return old


def baselines_report(rows, prof, cpu, old):
    """The baselines' section of docs/PERFORMANCE.md (between BASELINES_BEGIN
    and BASELINES_END): this run's rows and profile lines for the groups
    that ran, the others' as old (old_baselines) holds them; prints this
    run's table."""
    head = ["| case | threads | backbone images per step | rrc s/step | PyTorch s/step | rrc images/s | PyTorch images/s "
            "| rrc / PyTorch | target >= 1x | rrc GFLOP/s | PyTorch GFLOP/s | FMA peak GFLOP/s | rrc peak MB "
            "| PyTorch peak MB | other load + steal (cores) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print()
    print(machine_line(cpu))
    print("\n".join(head + [baseline_row(r) for r in rows]))
    today = time.strftime("%Y-%m-%d")
    ran = set(r["method"] for r in rows)
    lines, prof_lines, dates = list(head), [], []
    for case in BASELINES:
        method, name = case["method"], case["name"]
        if method in ran:
            lines += [baseline_row(r) for r in rows if r["method"] == method]
            if name in prof:
                prof_lines.append(baseline_prof_line(name, prof[name]))
            dates.append("%s %s" % (method, today))
        elif method in old:
            lines += old[method]["rows"]
            prof_lines += old[method]["prof"]
            dates.append("%s %s" % (method, old[method]["date"] or "(date unknown)"))
    table = "\n".join(lines)
    f = io.StringIO()
    f.write(BASELINES_BEGIN + "\n")
    f.write("## The paper's baselines: RotationNet, SimCLR, DeepCluster and Deep InfoMax training steps\n\n")
    f.write("Written by `make bench` (bench/bench.py; this section alone: `BENCH_CASES=rotation,simclr,deepcluster,dim "
            "/usr/bin/python3 bench/bench.py`, or a subset of them: a run rewrites the rows of the baselines it ran "
            "and keeps the others') on %s, PyTorch from Debian's python3-torch. rrc's code is for `%s`, the CPU LLVM "
            "names this host. Measured on: %s.\n\n" % (machine_line(cpu), cpu["host"], ", ".join(dates)))
    f.write("Both sides run the same training step of the baseline as the authors' code trains it (/work/shared/"
            "BASELINES.md) in float32 with the same thread count, alternately, %d repetitions each, medians, on fixed "
            "random inputs (no augmentation), B=128, one Adam step per step (lr 1e-3; DIM 1e-4), the median of 20 "
            "timed steps after 3 untimed ones (DIM, seconds a step: 5 after 1). RotationNet (section 2): B "
            "images rotated by 0/90/180/270 degrees inside the step (rotation-major, 4B backbone images, BatchNorm over "
            "all), Linear(64,4) `classifier`, cross-entropy. SimCLR (section 1): 2B views (view-major rows), head "
            "Linear(64,256) -> BatchNorm1d -> LeakyReLU -> Linear(256,64), the reference's loss at t=0.5 (the log of "
            "the mean ratio). DeepCluster (section 3): B images, `classifier` Linear(64,256) -> BatchNorm1d -> "
            "LeakyReLU -> Linear(256,100), cross-entropy weighted by the clusters' weights against the batch's "
            "pseudolabels (the per-epoch clustering is not part of the step). Deep InfoMax (section 4): B images, "
            "y = the features, M = layer1's ReLU output before its pool (8 x 32 x 32); local discriminator, 1x1 "
            "convs (8+64) -> 256 -> 256 -> 1, on [M, y] and [M rolled by one image, y]; prior discriminator "
            "64 -> 512 -> 128 -> 1 on u ~ U[0,1) and on y; JSD local term + 0.1 x prior term. "
            "rrc: `rrc compile specs/NAME.lua --batch 128 -o build/bench/NAME`, then `NAME-train bench`; "
            "PyTorch: `bench/torch_ref.py --method rotation|simclr|deepcluster|dim --B 128` (torch.rot90 + "
            "F.cross_entropy; the reference's return_loss_fn with the view-major partner; "
            "nn.CrossEntropyLoss(weight=w); the reference's DeepInfoMaxLoss with u = torch.rand_like(y)). "
            "Images/s counts backbone images, 4B for RotationNet, 2B for SimCLR, B for DeepCluster and DIM, on both "
            "sides; s/step = backbone images per step / images/s. GFLOP/s = 6 x forward multiply-adds of the "
            "backbone's convs and linears per image x images per second; for DIM also its discriminators' "
            "(%.1f M per image besides the backbone's 1.1 M). Other load + steal "
            "(/proc/stat), repeated runs and marks: as for the relational rows. Target: rrc at least as fast as PyTorch "
            "(rrc / PyTorch >= 1x) at each thread count.\n\n" % (REPS, DIM_DISC_MACS / 1e6))
    f.write(table + "\n\n")
    if prof_lines:
        f.write("Where rrc's steps go, one thread: the four slowest ops of `build/bench/NAME/NAME-train bench "
                "--threads 1 --profile` (ms per step, share of the step, GFLOP/s).\n\n")
        f.write("\n".join(prof_lines) + "\n\n")
    f.write(BASELINES_END + "\n")
    return f.getvalue()


def marked_section(text, begin_prefix, end):
    """(the text outside a marked section, the section from its BEGIN line to
    its END marker, or "" when the text has none)."""
    b, e = text.find(begin_prefix), text.find(end)
    if b >= 0 and e > b:
        return text[:b] + text[e + len(end):], text[b:e + len(end)]
    return text, ""


def lscpu_name():
    """lscpu's "Model name" with its family and model numbers."""
    f = {}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C")).stdout.splitlines():
            k, _, v = line.partition(":")
            f.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return "%s (family %s, model %s)" % (f.get("Model name", "unknown CPU"), f.get("CPU family", "?"), f.get("Model", "?"))


def mpi_run(model, K, B, steps, ranks, threads, run_dir, quiet=False):
    """The command and environment of one JIT `rrc train` run on synthetic
    images (enough for the steps): one process (ranks 1) or under mpirun."""
    images = B * (steps + 4)
    cmd = [os.path.join(ROOT, "rrc"), "train", "specs/%s.lua" % model, "--K", str(K), "--batch", str(B), "--data",
           "synthetic:%d" % images, "--max-steps", str(steps), "--threads", str(threads), "--out", run_dir] + (
               ["--quiet"] if quiet else [])
    env = target_env(None)
    if ranks > 1:
        cmd = MPIRUN + cmd
        if os.geteuid() == 0:
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return cmd, env


def mpi_cases():
    """MPI_CASES: each model's training throughput in one process of
    MPI_THREADS threads and in MPI_RANKS ranks of one thread (images/s =
    K*B*timed steps / their wall seconds, metrics.csv's `seconds` after the
    first MPI_WARMUP steps; median of REPS runs), with rank 0's collectives
    line of the MPI run."""
    rows = []
    for model, K, B, steps in MPI_CASES:
        row = {"model": model, "K": K, "B": B, "steps": steps}
        for ranks, threads in ((1, MPI_THREADS), (MPI_RANKS, 1)):
            run_dir = os.path.join(BUILD, "mpi_run_%s_%d" % (model, ranks))
            # one untimed step first: the compile cache then holds this configuration's entries
            cmd, env = mpi_run(model, K, B, 1, ranks, threads, run_dir, quiet=True)
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
            cmd, env = mpi_run(model, K, B, steps, ranks, threads, run_dir)

            def parse(out, run_dir=run_dir, ranks=ranks):
                with open(os.path.join(run_dir, "metrics.csv")) as f:
                    lines = f.readlines()
                    head = lines[0].strip().split(",")
                    sec = [float(line.split(",")[head.index("seconds")]) for line in lines[1:]]
                if len(sec) <= MPI_WARMUP:
                    sys.exit("bench: %s: %d steps in metrics.csv" % (run_dir, len(sec)))
                timed_steps = len(sec) - MPI_WARMUP
                wall = sec[-1] - sec[MPI_WARMUP - 1]
                ips = K * B * timed_steps / wall
                comm = (None, None, None)
                if ranks > 1:
                    m = re.search(r"spent ([\d.]+) s in collectives \(([\d.]+)% of the run, ([\d.]+) ms a step\)", out)
                    if not m:
                        sys.exit("bench: no collectives line in the output of the MPI run:\n" + out)
                    comm = tuple(float(x) for x in m.groups())
                return (ips, 1e3 * wall / timed_steps) + comm
            o = measure(cmd, parse, env, merge=True)
            v = o["value"]
            key = "one" if ranks == 1 else "mpi"
            row[key] = {"ips": v[0], "step_ms": v[1], "comm_s": v[2], "comm_pct_run": v[3], "comm_ms": v[4],
                        "other": o["other"], "steal": o["steal"], "disturbed": o["disturbed"],
                        "cmd": " ".join("DIR" if c == run_dir else "./rrc" if c == os.path.join(ROOT, "rrc") else c
                                        for c in cmd)}
        m = row["mpi"]
        print("%-9s K=%d B=%d: 1 process x %d threads %8.1f img/s; %d ranks x 1 thread %8.1f img/s (%.2fx); "
              "collectives %.2f ms a step (%.1f%% of a %.1f ms step)" % (
                  model, K, B, MPI_THREADS, row["one"]["ips"], MPI_RANKS, m["ips"], m["ips"] / row["one"]["ips"],
                  m["comm_ms"], 100 * m["comm_ms"] / m["step_ms"], m["step_ms"]), flush=True)
        rows.append(row)
    return rows


def mpi_report(rows, cpu):
    """The MPI section of docs/PERFORMANCE.md (between MPI_BEGIN and MPI_END):
    the table of mpi_cases' rows; prints it."""
    lines = ["| model | steps (timed) | 1 process x %d threads img/s | %d ranks x 1 thread img/s | ranks / process "
             "| step ms (1 process / %d ranks) | rank 0 collectives ms a step | share of the %d-rank step "
             "| rank 0 collectives s (share of the run) | other load + steal (cores) |" % (
                 MPI_THREADS, MPI_RANKS, MPI_RANKS, MPI_RANKS),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        one, m = r["one"], r["mpi"]
        dist = " (disturbed)" if one["disturbed"] or m["disturbed"] else ""
        lines.append("| %s K=%d B=%d | %d (%d) | %.0f | %.0f | **%.2f** | %.1f / %.1f | %.2f | %.1f%% | %.2f (%.1f%%) "
                     "| %.2f + %.2f%s |" % (
                         r["model"], r["K"], r["B"], r["steps"], r["steps"] - MPI_WARMUP, one["ips"], m["ips"],
                         m["ips"] / one["ips"], one["step_ms"], m["step_ms"], m["comm_ms"],
                         100 * m["comm_ms"] / m["step_ms"], m["comm_s"], m["comm_pct_run"],
                         max(one["other"], m["other"]), max(one["steal"], m["steal"]), dist))
    table = "\n".join(lines)
    name = lscpu_name()
    print()
    print("%s, %d CPUs" % (name, os.cpu_count()))
    print(table)
    cmds = "\n".join("    %s" % c for r in rows for c in (r["one"]["cmd"], r["mpi"]["cmd"]))
    f = io.StringIO()
    f.write(MPI_BEGIN + "\n")
    f.write("## Data-parallel training over MPI: one process against %d ranks\n\n" % MPI_RANKS)
    f.write("Written by bench.py (this section alone: `BENCH_CASES=mpi /usr/bin/python3 bench/bench.py`) on %s, "
            "%s, %d CPUs. rrc's code is for `%s`.\n\n" % (time.strftime("%Y-%m-%d"), name, os.cpu_count(), cpu["host"]))
    f.write("The same cores two ways: one process with `--threads %d`, and `mpirun -np %d` ranks with `--threads 1` "
            "each (shared memory, `btl self,vader`, no single-copy mechanism). JIT `rrc train` on synthetic images "
            "with augmentation, after an untimed 1-step run of each configuration that fills the compile cache. "
            "Images/s = K*B x the timed steps / their wall seconds, from metrics.csv's `seconds` (rank 0's clock), "
            "skipping the first %d steps as warm-up; median of %d runs. The collectives are rank 0's own line "
            "(`rrc: rank 0 spent X s in collectives (Y%% of the run, Z ms a step)`): wall time inside the "
            "gradient allreduce, the BatchNorm statistics' allgathers and backward sums, and the feature allgather, "
            "waiting for the other rank included, averaged over all the run's steps (the warm-up's too); their "
            "share is that against the timed step. The commands (DIR: a run directory under build/bench):\n\n"
            % (MPI_THREADS, MPI_RANKS, MPI_WARMUP, REPS))
    f.write(cmds + "\n\n")
    if os.geteuid() == 0:
        f.write("(Run as root: mpirun also had `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1` in its "
                "environment.)\n\n")
    f.write(table + "\n\n")
    f.write(MPI_END + "\n")
    return f.getvalue()


def write_doc(main_doc, base_doc, mpi_doc=None, plan_doc=None, check_doc=None):
    """docs/PERFORMANCE.md: the relational report, the baselines' section, the
    MPI, plan and check sections, each from this run when it ran (not None),
    else kept from the file."""
    doc = os.path.join(ROOT, "docs", "PERFORMANCE.md")
    old = open(doc).read() if os.path.exists(doc) else ""
    old_rest, old_mpi = marked_section(old, MPI_BEGIN_PREFIX, MPI_END)
    old_rest, old_plan = marked_section(old_rest, plan_bench.PLAN_BEGIN_PREFIX, plan_bench.PLAN_END)
    old_rest, old_check = marked_section(old_rest, check_bench.CHECK_BEGIN_PREFIX, check_bench.CHECK_END)
    old_main, old_base = doc_sections(old_rest)
    main_doc = (old_main if main_doc is None else main_doc).rstrip("\n") or "# Performance: rrc against PyTorch"
    tail = [(old_base if base_doc is None else base_doc).strip("\n"), (old_mpi if mpi_doc is None else mpi_doc).strip("\n"),
            (old_plan if plan_doc is None else plan_doc).strip("\n"), (old_check if check_doc is None else check_doc).strip("\n")]
    with open(doc, "w") as f:
        f.write(main_doc + "\n" + "".join("\n" + t + "\n" for t in tail if t))
    print("\nwrote %s" % doc)


if __name__ == "__main__":
    main()
