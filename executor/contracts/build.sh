#!/usr/bin/env bash
# Recompiles ERC20.sol and Pair.sol with the pinned solc-js from npm and writes
# <Name>.bin, <Name>.bin-runtime and <Name>.abi into this folder.
# Usage: executor/contracts/build.sh   (from anywhere)
set -euo pipefail

SOLC_VERSION=0.8.30
JS_SHA3_VERSION=0.9.3

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="${TMPDIR:-/tmp}/chaind-solc"

if [ "$(node -p "try { require('$prefix/node_modules/solc/package.json').version } catch (e) { '' }")" != "$SOLC_VERSION" ] \
   || [ ! -d "$prefix/node_modules/js-sha3" ]; then
  npm install --silent --no-audit --no-fund --prefix "$prefix" \
    "solc@$SOLC_VERSION" "js-sha3@$JS_SHA3_VERSION" >&2
fi

NODE_PATH="$prefix/node_modules" node "$here/compile.js"
