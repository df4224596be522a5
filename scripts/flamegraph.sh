#!/usr/bin/env bash
# Flamegraphs of chaind's hot paths, as SVG under flamegraphs/.
#
#   scripts/flamegraph.sh execution [workload] [threads]   # `chaind bench execution` (default erc20, 2)
#   scripts/flamegraph.sh node <pid> [seconds]              # a running node, e.g. under loadgen
#   scripts/flamegraph.sh state                             # state commits: 10k accounts onto 1M
#
# Uses perf's cpu-clock software event (hardware counters are not available in every VM) with
# DWARF call graphs, and inferno (`cargo install inferno`) to fold and draw. Profiles the
# release build (which keeps line tables for this); PROFILE=profiling uses full debug info.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
target="${CARGO_TARGET_DIR:-target}"
profile="${PROFILE:-release}"
mkdir -p flamegraphs
kind="${1:-execution}"
case "$kind" in
  execution)
    workload="${2:-erc20}"; threads="${3:-2}"
    cargo build --profile "$profile" --bin chaind
    perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -o /tmp/chaind-perf.data -- \
      "$target/$profile/chaind" bench execution --workload "$workload" --accounts 10000 \
      --txs 10000 --threads "$threads" --runs 15
    out="flamegraphs/execution-$workload-${threads}t.svg"
    ;;
  node)
    pid="${2:?usage: scripts/flamegraph.sh node <pid> [seconds]}"; seconds="${3:-20}"
    perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -o /tmp/chaind-perf.data -p "$pid" -- sleep "$seconds"
    out="flamegraphs/node-under-load.svg"
    ;;
  state)
    cargo build --profile "$profile" -p chain-benches --example state_commit_profile
    log=$(mktemp)
    "$target/$profile/examples/state_commit_profile" 30 2>"$log" &
    child=$!
    until grep -q loaded "$log"; do sleep 0.2; done
    sleep 2.5 # the first commits after the load
    perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -o /tmp/chaind-perf.data -p "$child" -- sleep 4
    wait "$child"
    out="flamegraphs/state-commit-10k-onto-1m.svg"
    ;;
  *) echo "unknown kind $kind (execution, node, state)" >&2; exit 2 ;;
esac
perf script -i /tmp/chaind-perf.data 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "chaind $kind $*" > "$out"
echo "wrote $out"
