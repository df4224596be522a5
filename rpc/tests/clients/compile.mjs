// Compiles contracts/SmokeToken.sol with solc-js into build/SmokeToken.json ({abi, bytecode}),
// which both smoke tests (smoke.mjs and web3py_smoke.py) deploy.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const solc = require('solc');

const source = readFileSync(new URL('./contracts/SmokeToken.sol', import.meta.url), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'SmokeToken.sol': { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = output.contracts['SmokeToken.sol'].SmokeToken;
mkdirSync(new URL('./build/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./build/SmokeToken.json', import.meta.url),
  JSON.stringify({ abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` }, null, 2),
);
console.log(`compiled SmokeToken with solc ${solc.version()}`);
