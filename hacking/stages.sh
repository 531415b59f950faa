#!/usr/bin/env bash
# Runs `make STAGE` for each stage in order, stopping at the first failure, and prints the time
# each stage took at the end, also when a stage failed (then the run fails too).
# Usage: hacking/stages.sh STAGE...
set -uo pipefail
names=()
times=()
results=()
report() {
    echo "== stage times =="
    for i in "${!names[@]}"; do
        printf '%-18s %6ss  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
    done
}
trap report EXIT
for stage in "$@"; do
    start=$(date +%s)
    make --no-print-directory "$stage"
    rc=$?
    names+=("$stage")
    times+=("$(( $(date +%s) - start ))")
    if [ "$rc" -ne 0 ]; then
        results+=("FAILED (exit $rc)")
        exit "$rc"
    fi
    results+=("ok")
done
