#!/usr/bin/env bash
# Client smoke tests against a running chaind RPC endpoint: viem and ethers v6 (Node.js), and
# web3.py (Python). Each part runs only if its runtime is installed; npm packages go to
# node_modules/ and Python packages to .venv/ here (both gitignored).
#
# Usage: RPC_URL=http://127.0.0.1:8545 PRIVATE_KEY=0x<funded key> rpc/tests/clients/run.sh
# (defaults: 127.0.0.1:8545 and the test mnemonic's first account). WS_URL defaults to RPC_URL
# with ws://. Without a node: `cargo run -p chain-rpc --example mock_node` in another shell.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RPC_URL="${RPC_URL:-http://127.0.0.1:8545}"
export PRIVATE_KEY="${PRIVATE_KEY:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}"
cd "$here"

ran=0
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --silent
  else
    npm install --no-audit --no-fund --silent
  fi
  node compile.mjs
  node smoke.mjs
  ran=$((ran + 1))
else
  echo "run.sh: node/npm not found, skipping the viem/ethers smoke test" >&2
fi

if command -v python3 >/dev/null; then
  if [ ! -f build/SmokeToken.json ]; then
    echo "run.sh: build/SmokeToken.json missing (needs node to compile), skipping web3.py" >&2
  else
    if [ ! -x .venv/bin/python ]; then
      python3 -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    .venv/bin/python web3py_smoke.py
    ran=$((ran + 1))
  fi
else
  echo "run.sh: python3 not found, skipping the web3.py smoke test" >&2
fi

echo "run.sh: $ran client smoke test(s) passed"
