#!/usr/bin/env bash
# Seconds per meta-iteration of the paper's Table 1 configuration (20 tasks × 20 episodes
# × 100 steps, 2→100→100→2) on one node: 1 rank × 2 threads vs 2 ranks × 1 thread, plus
# 1 rank × 1 thread (the per-task compute for the scaling estimate). Runs are interleaved
# round by round, so a load change hits every variant alike; time per iteration comes from
# the runs' own log.csv (training loop only, no process start or export).
#
#   cargo build --release -p sgmrl-host --features mpi
#   scripts/bench-mpi.sh [ROUNDS=5] [ITERATIONS=20]
set -euo pipefail
rounds=${1:-5}
iters=${2:-20}
bin=${SGMRL:-target/release/sgmrl}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(train -q --preset paper-table1 --iterations "$iters" --set eval.validate_every=0)
per_iter() { tail -n 1 "$1/log.csv" | awk -F, -v n="$iters" '{ print $NF / n }'; }
echo "round,threads2_s,ranks2_s,ranks2_over_threads2,serial_s"
for r in $(seq 1 "$rounds"); do
    "$bin" --threads 2 "${args[@]}" -o "$out/t2-$r" >/dev/null
    mpirun --oversubscribe -n 2 "$bin" --threads 1 "${args[@]}" -o "$out/r2-$r" >/dev/null
    "$bin" --threads 1 "${args[@]}" -o "$out/t1-$r" >/dev/null
    cmp -s "$out/t2-$r/bundle.sgml" "$out/r2-$r/bundle.sgml" || { echo "bundles differ" >&2; exit 1; }
    t2=$(per_iter "$out/t2-$r"); r2=$(per_iter "$out/r2-$r"); t1=$(per_iter "$out/t1-$r")
    echo "$r,$t2,$r2,$(awk -v a="$r2" -v b="$t2" 'BEGIN { printf "%.4f", a / b }'),$t1"
done
