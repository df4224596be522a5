#!/usr/bin/env node
// Compiles ERC20.sol and Pair.sol with solc-js (standard JSON input) and writes
// <Name>.bin, <Name>.bin-runtime and <Name>.abi next to this file.
// Fails loudly if a contract's storage layout drifts from the one the Rust
// code relies on. Run through build.sh, which installs the pinned solc.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');
const { keccak256 } = require('js-sha3');

const SOLC_VERSION = '0.8.30';
const EVM_VERSION = 'cancun';
const DIR = __dirname;

// name -> expected storage layout: [label, slot, offset, type label]
const CONTRACTS = {
  ERC20: [
    ['balanceOf', 0, 0, 'mapping(address => uint256)'],
    ['allowance', 1, 0, 'mapping(address => mapping(address => uint256))'],
    ['totalSupply', 2, 0, 'uint256'],
  ],
  Pair: [
    ['token0', 0, 0, 'address'],
    ['token1', 1, 0, 'address'],
    ['reserve0', 2, 0, 'uint256'],
    ['reserve1', 3, 0, 'uint256'],
  ],
};

function fail(msg) {
  console.error(`compile.js: ERROR: ${msg}`);
  process.exit(1);
}

if (!solc.version().startsWith(SOLC_VERSION + '+')) {
  fail(`expected solc ${SOLC_VERSION}, got ${solc.version()}`);
}

const input = {
  language: 'Solidity',
  sources: {},
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: EVM_VERSION,
    outputSelection: {
      '*': {
        '*': [
          'abi',
          'evm.bytecode.object',
          'evm.deployedBytecode.object',
          'evm.deployedBytecode.immutableReferences',
          'evm.methodIdentifiers',
          'storageLayout',
        ],
      },
    },
  },
};
for (const name of Object.keys(CONTRACTS)) {
  const file = `${name}.sol`;
  input.sources[file] = { content: fs.readFileSync(path.join(DIR, file), 'utf8') };
}

const output = JSON.parse(solc.compile(JSON.stringify(input)));
let hadError = false;
for (const e of output.errors || []) {
  console.error(e.formattedMessage || e.message);
  if (e.severity === 'error') hadError = true;
}
if (hadError) fail('compilation failed');

function checkLayout(name, layout, expected) {
  const got = layout.storage.map((s) => [s.label, Number(s.slot), s.offset, layout.types[s.type].label]);
  const ok = JSON.stringify(got) === JSON.stringify(expected);
  console.log(`${name} storage layout:`);
  for (const [label, slot, offset, type] of got) {
    console.log(`  slot ${slot} (offset ${offset}): ${type} ${label}`);
  }
  if (!ok) {
    fail(`${name} storage layout drifted.\n  expected: ${JSON.stringify(expected)}\n  got:      ${JSON.stringify(got)}`);
  }
  console.log('  OK: matches the expected layout');
}

function topic(sig) {
  return '0x' + keccak256(sig);
}

// Guard against a broken keccak implementation.
if (topic('Transfer(address,address,uint256)') !==
    '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef') {
  fail('keccak256 self-check failed');
}

for (const [name, expected] of Object.entries(CONTRACTS)) {
  const c = output.contracts[`${name}.sol`][name];
  const bin = c.evm.bytecode.object;
  const runtime = c.evm.deployedBytecode.object;
  if (!bin || !runtime) fail(`${name}: empty bytecode`);
  if (Object.keys(c.evm.deployedBytecode.immutableReferences || {}).length !== 0) {
    fail(`${name}: runtime bytecode has immutables; all instances must share identical runtime code`);
  }
  // Without immutables the constructor copies the runtime code verbatim.
  if (!bin.includes(runtime)) fail(`${name}: runtime bytecode is not embedded verbatim in creation bytecode`);
  checkLayout(name, c.storageLayout, expected);

  fs.writeFileSync(path.join(DIR, `${name}.bin`), bin);
  fs.writeFileSync(path.join(DIR, `${name}.bin-runtime`), runtime);
  fs.writeFileSync(path.join(DIR, `${name}.abi`), JSON.stringify(c.abi, null, 2) + '\n');

  console.log(`${name}: creation ${bin.length / 2} bytes, runtime ${runtime.length / 2} bytes`);
  console.log('  selectors:');
  for (const [sig, sel] of Object.entries(c.evm.methodIdentifiers)) {
    console.log(`    0x${sel}  ${sig}`);
  }
  const events = c.abi.filter((x) => x.type === 'event');
  if (events.length) console.log('  event topic0:');
  for (const ev of events) {
    const sig = `${ev.name}(${ev.inputs.map((i) => i.type).join(',')})`;
    console.log(`    ${topic(sig)}  ${sig}`);
  }
}
console.log(`compiled with solc ${solc.version()}, evmVersion ${EVM_VERSION}, optimizer runs 200`);
