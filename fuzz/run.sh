#!/bin/sh
# fuzz/run.sh BUILD SECONDS TARGET...: runs each libFuzzer target of
# fuzz/fuzz.mk for SECONDS, one at a time (nice 10, one process), on a copy
# of its seed corpus fuzz/corpus/TARGET (the committed seeds are never
# written), and prints one line per target. Exit status 1 if any target
# found something (crash, leak, timeout, out-of-memory: the input is left
# in BUILD/run/TARGET/) or did not run. Logs: BUILD/run/TARGET/log.
build=$1 secs=$2
shift 2
status=0
for t in "$@"; do
    run=$build/run/$t
    rm -rf "$run"
    mkdir -p "$run/corpus"
    [ -d "fuzz/corpus/$t" ] && cp fuzz/corpus/"$t"/* "$run/corpus/" 2>/dev/null
    nice -n 10 "$build/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -close_fd_mask=3 -artifact_prefix="$run/" "$run/corpus" >"$run/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/log" | tail -n 1)
    found=$(ls "$run" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | head -n 3 | tr '\n' ' ')
    if [ "$rc" = 0 ] && [ -z "$found" ]; then
        verdict="no findings"
    else
        verdict="FOUND (exit $rc) ${found:-see $run/log}"
        status=1
    fi
    printf '%-20s %10s executions in %s s (%s exec/s): %s\n' "$t" "${execs:-?}" "$secs" "${rate:-?}" "$verdict"
done
exit $status
