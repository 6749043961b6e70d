"""check_bench.py: `make bench`'s case group check (BENCH_CASES=check): how
long `rrc check` takes to prove a spec's gradients.

Each case runs `rrc check` once on all cores (its default), again when other
processes or the hypervisor took more than 0.1 core, and must pass. Target
(issue 19): resnet34 at 32x32 with B = K = 2 within 60 s, the small specs
(conv4, resnet8) in seconds; resnet32 at the check's defaults is reported.

The report is a section of docs/PERFORMANCE.md between CHECK_BEGIN and
CHECK_END (bench.py writes it).
"""
import io
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RRC = os.path.join(ROOT, "rrc")

# name, extra flags, target seconds (None: reported)
CHECK_CASES = [("conv4", [], 10.0), ("resnet8", [], 30.0), ("resnet32", [], None),
               ("resnet34", ["--input-shape", "3x32x32", "--K", "2", "--batch", "2"], 60.0)]
CHECK_BEGIN = "<!-- CHECK_BEGIN: written by bench.py (BENCH_CASES=check) -->"
CHECK_BEGIN_PREFIX = "<!-- CHECK_BEGIN"
CHECK_END = "<!-- CHECK_END -->"


def check_cases(timed):
    """Every CHECK_CASES row: seconds, load, the summary line."""
    rows = []
    for name, flags, target in CHECK_CASES:
        cmd = [RRC, "check", name] + flags
        for attempt in range(3):
            t0 = time.perf_counter()
            out, _mb, other, steal = timed(cmd)
            secs = time.perf_counter() - t0
            if other + steal <= 0.1:
                break
        m = re.search(r"^rrc check \S+: (passed .*)$", out, re.M)
        if not m:
            sys.exit("bench: %s printed no verdict:\n%s" % (" ".join(cmd), out))
        threads = re.search(r"elements, (\d+) threads?\)", out)
        row = {"name": name, "flags": " ".join(flags), "secs": secs, "target": target, "summary": m.group(1),
               "threads": int(threads.group(1)) if threads else 1, "load": other + steal}
        rows.append(row)
        print("check %-9s %-40s %6.1f s%s  %s" % (name, row["flags"], secs,
                                                  "" if target is None else " (target %.0f s)" % target, row["summary"]),
              flush=True)
    return rows


def check_report(rows, cpu_name):
    lines = ["| spec | flags | threads | seconds | target | other load + steal (cores) | result |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %d | %.1f | %s | %.2f | %s |" % (
            r["name"], "`%s`" % r["flags"] if r["flags"] else "(defaults: B = K = 3)", r["threads"], r["secs"],
            "-" if r["target"] is None else "%.0f s" % r["target"], r["load"], r["summary"]))
    table = "\n".join(lines)
    met = all(r["target"] is None or r["secs"] <= r["target"] for r in rows)
    summary = "Every target %s." % ("**met**" if met else "**not met**")
    print()
    print(table)
    print(summary)
    f = io.StringIO()
    f.write(CHECK_BEGIN + "\n")
    f.write("## `rrc check`'s time\n\n")
    f.write("Written by bench.py (this section alone: `BENCH_CASES=check /usr/bin/python3 bench/bench.py`) on %s, "
            "%s, %d CPUs. Each row is one run of `rrc check SPEC FLAGS` (the JIT step compared too; the finite "
            "differences on all cores), wall time, repeated when other processes or the hypervisor took more than 0.1 "
            "core.\n\n" % (time.strftime("%Y-%m-%d"), cpu_name, os.cpu_count()))
    f.write(table + "\n\n" + summary + "\n\n")
    f.write(CHECK_END + "\n")
    return f.getvalue()
