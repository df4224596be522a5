// Smoke test of chaind's RPC with ethers v6 and viem: deploy an ERC-20, estimate gas, transfer,
// read balances, read events through eth_getLogs, a polling filter and a WebSocket
// subscription, call a reverting function and check the revert data, read fees.
//
// Env: RPC_URL (default http://127.0.0.1:8545), WS_URL (default: RPC_URL with ws://),
// PRIVATE_KEY (a funded key; default: the test mnemonic's first account).
// Run compile.mjs first (run.sh does both).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ethers } from 'ethers';
import {
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  defineChain,
  encodeFunctionData,
  http,
  webSocket,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const RPC_URL = process.env.RPC_URL ?? 'http://127.0.0.1:8545';
const WS_URL = process.env.WS_URL ?? RPC_URL.replace(/^http/, 'ws');
const PRIVATE_KEY =
  process.env.PRIVATE_KEY ?? '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const RECIPIENT = '0x000000000000000000000000000000000000dEaD';
const NOPE_SELECTOR = '0x08c379a0'; // Error(string)

const { abi, bytecode } = JSON.parse(readFileSync(new URL('./build/SmokeToken.json', import.meta.url), 'utf8'));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const step = (what) => console.log(`  - ${what}`);

async function ethersFlow() {
  const provider = new ethers.JsonRpcProvider(RPC_URL, undefined, { pollingInterval: 250 });
  const wallet = new ethers.Wallet(PRIVATE_KEY, provider);
  const network = await provider.getNetwork();
  assert.ok(network.chainId > 0n);
  assert.ok((await provider.getBalance(wallet.address)) > 0n, 'the key must be funded');

  step('ethers: deploy');
  const factory = new ethers.ContractFactory(abi, bytecode, wallet);
  const token = await factory.deploy(1_000_000n);
  await token.waitForDeployment();
  const address = await token.getAddress();
  assert.equal(await token.balanceOf(wallet.address), 1_000_000n);
  assert.equal(await provider.getCode(address) !== '0x', true);

  // ethers' contract events on a JsonRpcProvider: eth_newFilter + eth_getFilterChanges
  const filterEvent = new Promise((resolve) => {
    // with a prepared filter ethers passes only the event payload
    token.once(token.filters.Transfer(wallet.address, RECIPIENT), (...args) => resolve(args.at(-1).args[2]));
  });
  await sleep(500);

  step('ethers: estimate and transfer');
  const gas = await token.transfer.estimateGas(RECIPIENT, 5n);
  assert.ok(gas > 21_000n && gas < 100_000n, `estimate ${gas}`);
  const tx = await token.transfer(RECIPIENT, 5n, { gasLimit: gas });
  const receipt = await tx.wait();
  assert.equal(receipt.status, 1, 'a transfer with the estimated gas succeeds');
  assert.equal(await token.balanceOf(RECIPIENT), 5n);

  step('ethers: getLogs and filter event');
  const events = await token.queryFilter(token.filters.Transfer(null, RECIPIENT), receipt.blockNumber, receipt.blockNumber);
  assert.equal(events.length, 1);
  assert.equal(events[0].args[2], 5n);
  assert.equal(await withTimeout(filterEvent, 20_000, 'ethers filter event'), 5n);

  step('ethers: revert');
  try {
    await token.fail.staticCall();
    assert.fail('fail() must revert');
  } catch (error) {
    assert.equal(error.code, 'CALL_EXCEPTION', String(error));
    assert.equal(error.reason, 'nope');
    assert.ok(error.data.startsWith(NOPE_SELECTOR), `revert data ${error.data}`);
  }

  // WebSocket: eth_subscribe for logs and new heads
  step('ethers: WebSocket subscriptions');
  const ws = new ethers.WebSocketProvider(WS_URL);
  const wsToken = new ethers.Contract(address, abi, ws);
  const wsEvent = new Promise((resolve) => wsToken.once('Transfer', (_from, _to, value) => resolve(value)));
  const wsBlock = new Promise((resolve) => ws.once('block', resolve));
  await sleep(500);
  await (await token.transfer(RECIPIENT, 7n)).wait();
  assert.equal(await withTimeout(wsEvent, 20_000, 'ethers WebSocket event'), 7n);
  await withTimeout(wsBlock, 20_000, 'ethers WebSocket block');
  await ws.destroy();

  step('ethers: fees and blocks');
  const fees = await provider.getFeeData();
  assert.ok(fees.maxFeePerGas > 0n && fees.maxPriorityFeePerGas > 0n);
  const block = await provider.getBlock('latest', true);
  assert.ok(block.hash && block.number >= receipt.blockNumber);
  provider.destroy();
  console.log(`ethers v${ethers.version}: ok (token ${address})`);
}

async function viemFlow() {
  const account = privateKeyToAccount(PRIVATE_KEY);
  const probe = createPublicClient({ transport: http(RPC_URL) });
  const chain = defineChain({
    id: await probe.getChainId(),
    name: 'chaind',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [RPC_URL], webSocket: [WS_URL] } },
  });
  const client = createPublicClient({ chain, transport: http(RPC_URL), pollingInterval: 250 });
  const wallet = createWalletClient({ account, chain, transport: http(RPC_URL) });

  step('viem: deploy');
  const deployHash = await wallet.deployContract({ abi, bytecode, args: [1_000_000n] });
  const deployed = await client.waitForTransactionReceipt({ hash: deployHash });
  assert.equal(deployed.status, 'success');
  const address = deployed.contractAddress;

  const wsClient = createPublicClient({ chain, transport: webSocket(WS_URL) });
  const watched = new Promise((resolve) => {
    const unwatch = wsClient.watchContractEvent({
      address,
      abi,
      eventName: 'Transfer',
      onLogs: (logs) => {
        unwatch();
        resolve(logs[0]);
      },
    });
  });
  const filter = await client.createContractEventFilter({ address, abi, eventName: 'Transfer' });
  await sleep(500);

  step('viem: estimate and transfer');
  const gas = await client.estimateContractGas({ address, abi, functionName: 'transfer', args: [RECIPIENT, 3n], account });
  const { request } = await client.simulateContract({ address, abi, functionName: 'transfer', args: [RECIPIENT, 3n], account });
  const hash = await wallet.writeContract({ ...request, gas });
  const receipt = await client.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success', 'a transfer with the estimated gas succeeds');
  assert.equal(await client.readContract({ address, abi, functionName: 'balanceOf', args: [RECIPIENT] }), 3n);

  step('viem: getLogs, filter and WebSocket events');
  const logs = await client.getContractEvents({
    address,
    abi,
    eventName: 'Transfer',
    args: { to: RECIPIENT },
    fromBlock: receipt.blockNumber,
    toBlock: receipt.blockNumber,
  });
  assert.equal(logs.length, 1);
  assert.equal(logs[0].args.value, 3n);
  assert.equal(logs[0].logIndex, receipt.logs[0].logIndex);

  const changes = await client.getFilterChanges({ filter });
  assert.ok(changes.some((log) => log.args.value === 3n), 'the polling filter saw the transfer');
  await client.uninstallFilter({ filter });

  const wsLog = await withTimeout(watched, 20_000, 'viem WebSocket event');
  assert.equal(wsLog.args.value, 3n);

  step('viem: revert');
  try {
    await client.simulateContract({ address, abi, functionName: 'fail', account });
    assert.fail('fail() must revert');
  } catch (error) {
    const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
    assert.ok(revert, String(error));
    assert.equal(revert.reason, 'nope');
  }
  try {
    await client.call({ to: address, data: encodeFunctionData({ abi, functionName: 'fail' }) });
    assert.fail('fail() must revert');
  } catch (error) {
    const withData = error.walk((e) => typeof e.data === 'string');
    assert.ok(withData?.data.startsWith(NOPE_SELECTOR), String(error));
  }

  step('viem: fees and blocks');
  const fees = await client.estimateFeesPerGas();
  assert.ok(fees.maxFeePerGas > 0n);
  const history = await client.getFeeHistory({ blockCount: 4, rewardPercentiles: [25, 75] });
  assert.equal(history.baseFeePerGas.length, history.gasUsedRatio.length + 1);
  assert.equal(history.reward.length, history.gasUsedRatio.length);
  const block = await client.getBlock({ blockTag: 'latest', includeTransactions: true });
  assert.ok(block.hash && block.baseFeePerGas !== undefined);
  await wsClient.transport.getRpcClient?.().then((rpc) => rpc.close()).catch(() => {});
  console.log(`viem: ok (token ${address})`);
}

try {
  await ethersFlow();
  await viemFlow();
  console.log('JS smoke test passed');
  process.exit(0);
} catch (error) {
  console.error('JS smoke test FAILED:', error);
  process.exit(1);
}
