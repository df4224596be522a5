#!/usr/bin/env bash
# End-to-end throughput benchmark: starts a fresh `chaind dev` with prefunded load-test
# accounts, runs `loadgen` against it, writes the report and plot under target/e2e/, prints
# the summary and stops the node.
#
#   scripts/bench-e2e.sh [transfer|erc20|amm|mix] [seconds] [--sequential] [-- loadgen flags...]
#
# --sequential starts the node with the sequential executor, for comparison with Block-STM
# (the files then end in -sequential). Flags after `--` go to loadgen (e.g. `-- --transport ws`).
#
# Environment (defaults in brackets):
#   RATE        open-loop rate in tx/s [10000 for transfer, 6000 otherwise]; "max" for a
#               closed loop (as fast as the node includes) with WINDOW txs in flight [30000]
#   ACCOUNTS    load-test accounts, prefunded and used [10000]
#   GAS_LIMIT   block gas limit [1000000000: 10,000 transfers/s use 21% of it, so the base fee
#               stays put; at the node's 30M default a 1 s block holds only ~1,400 transfers]
#   BLOCK_TIME  slot length [1s]
#   PORT        JSON-RPC port [8545]
#   DRAIN       longest wait for inclusion after sending [30s]
#   NODE_ARGS   extra flags for `chaind dev`
#   SKIP_BUILD  set to 1 to use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."

workload=transfer
seconds=60
sequential=0
loadgen_extra=()
positional=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sequential) sequential=1 ;;
        --) shift; loadgen_extra=("$@"); break ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown flag $1 (flags for loadgen go after --)" >&2; exit 2 ;;
        *) positional+=("$1") ;;
    esac
    shift
done
[[ ${#positional[@]} -ge 1 ]] && workload=${positional[0]}
[[ ${#positional[@]} -ge 2 ]] && seconds=${positional[1]}
case "$workload" in transfer|erc20|amm|mix) ;; *) echo "unknown workload $workload" >&2; exit 2 ;; esac
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "seconds must be a whole number, not $seconds" >&2; exit 2; }

default_rate=6000
[[ "$workload" == transfer ]] && default_rate=10000
rate=${RATE:-$default_rate}
accounts=${ACCOUNTS:-10000}
gas_limit=${GAS_LIMIT:-1000000000}
block_time=${BLOCK_TIME:-1s}
port=${PORT:-8545}
drain=${DRAIN:-30s}

target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/release"
out=target/e2e
datadir=target/e2e-data
suffix=$workload
node_flags=()
if [[ $sequential == 1 ]]; then
    suffix="$workload-sequential"
    node_flags+=(--sequential)
fi

pace=(--rate "$rate")
pace_text="at $rate tx/s"
if [[ "$rate" == max ]]; then
    suffix="$suffix-max"
    pace=(--max-inflight "${WINDOW:-30000}")
    pace_text="as fast as possible (${WINDOW:-30000} in flight)"
fi

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "== building release binaries (chaind, loadgen)"
    cargo build --release -p chaind -p chain-loadtest --bin chaind --bin loadgen
fi

rm -rf "$datadir"
mkdir -p "$out"
node_log="$out/node-$suffix.log"

echo "== starting chaind dev ($accounts prefunded accounts, gas limit $gas_limit, block time $block_time${node_flags:+, ${node_flags[*]}})"
# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
"$bin/chaind" dev --prefund-loadgen "$accounts" --datadir "$datadir" --txpool.load-test \
    --gas-limit "$gas_limit" --block-time "$block_time" --http.port "$port" \
    "${node_flags[@]}" ${NODE_ARGS:-} >"$node_log" 2>&1 &
node_pid=$!

stop_node() {
    if kill -0 "$node_pid" 2>/dev/null; then
        kill -INT "$node_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$node_pid" 2>/dev/null; then
            echo "chaind did not stop within 10 s of SIGINT; killing it" >&2
            kill -KILL "$node_pid" 2>/dev/null || true
        fi
        wait "$node_pid" 2>/dev/null || true
    fi
}
trap stop_node EXIT

rpc="http://127.0.0.1:$port"
echo "== waiting for $rpc"
ready=0
for _ in $(seq 1 600); do
    if ! kill -0 "$node_pid" 2>/dev/null; then
        echo "chaind exited; last lines of $node_log:" >&2
        tail -n 20 "$node_log" >&2
        exit 1
    fi
    if curl -sf -m 1 -H 'content-type: application/json' \
        -d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "$rpc" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ $ready == 1 ]] || { echo "chaind did not answer on $rpc within 60 s (log: $node_log)" >&2; exit 1; }

report="$out/report-$suffix.json"
plot="$out/plot-$suffix.svg"
echo "== loadgen: $workload $pace_text for ${seconds}s"
status=0
"$bin/loadgen" --rpc "$rpc" --workload "$workload" --accounts "$accounts" \
    "${pace[@]}" --duration "${seconds}s" --drain "$drain" \
    --report "$report" --plot "$plot" "${loadgen_extra[@]}" || status=$?

echo "== node log: $node_log"
if [[ $status == 2 ]]; then
    echo "loadgen: transactions were lost or included twice (see $report)" >&2
fi
exit "$status"
