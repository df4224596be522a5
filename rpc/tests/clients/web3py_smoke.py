"""Smoke test of chaind's RPC with web3.py (v7): deploy an ERC-20, estimate gas, transfer, read
balances, read events through eth_getLogs, a polling filter and a WebSocket subscription, call
a reverting function and check the revert data, read the fee history.

Env: RPC_URL (default http://127.0.0.1:8545), WS_URL (default: RPC_URL with ws://),
PRIVATE_KEY (a funded key; default: the test mnemonic's first account).
Needs build/SmokeToken.json from compile.mjs (run.sh does both).
"""

import asyncio
import importlib.metadata
import json
import os
import pathlib
import sys
import time

from eth_account import Account
from web3 import AsyncWeb3, Web3, WebSocketProvider
from web3.exceptions import ContractLogicError

RPC_URL = os.environ.get("RPC_URL", "http://127.0.0.1:8545")
WS_URL = os.environ.get("WS_URL", "ws" + RPC_URL[len("http"):] if RPC_URL.startswith("http") else RPC_URL)
PRIVATE_KEY = os.environ.get(
    "PRIVATE_KEY", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
)
RECIPIENT = Web3.to_checksum_address("0x000000000000000000000000000000000000dead")
ERROR_SELECTOR = "0x08c379a0"  # Error(string)

ARTIFACT = json.loads((pathlib.Path(__file__).parent / "build" / "SmokeToken.json").read_text())


def send(w3: Web3, account, tx: dict):
    """Signs, sends and waits for a transaction built by web3."""
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.25)


def tx_fields(w3: Web3, account) -> dict:
    return {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
    }


async def websocket_flow(token_address: str, w3: Web3, account, token) -> None:
    async with AsyncWeb3(WebSocketProvider(WS_URL)) as aw3:
        heads = await aw3.eth.subscribe("newHeads")
        logs = await aw3.eth.subscribe("logs", {"address": token_address})
        tx = token.functions.transfer(RECIPIENT, 13).build_transaction(tx_fields(w3, account))
        await asyncio.get_running_loop().run_in_executor(None, send, w3, account, tx)
        seen = set()

        async def wait():
            async for message in aw3.socket.process_subscriptions():
                seen.add(message["subscription"])
                if {heads, logs} <= seen:
                    return message

        await asyncio.wait_for(wait(), timeout=20)
        assert await aw3.eth.unsubscribe(heads)
        assert await aw3.eth.unsubscribe(logs)


def main() -> int:
    w3 = Web3(Web3.HTTPProvider(RPC_URL))
    assert w3.is_connected(), f"no node at {RPC_URL}"
    account = Account.from_key(PRIVATE_KEY)
    assert w3.eth.get_balance(account.address) > 0, "the key must be funded"
    assert w3.net.version == str(w3.eth.chain_id)

    factory = w3.eth.contract(abi=ARTIFACT["abi"], bytecode=ARTIFACT["bytecode"])
    receipt = send(w3, account, factory.constructor(1_000_000).build_transaction(tx_fields(w3, account)))
    assert receipt.status == 1
    token = w3.eth.contract(address=receipt.contractAddress, abi=ARTIFACT["abi"])
    assert token.functions.balanceOf(account.address).call() == 1_000_000

    event_filter = token.events.Transfer.create_filter(from_block="latest")
    gas = token.functions.transfer(RECIPIENT, 11).estimate_gas({"from": account.address})
    assert 21_000 < gas < 100_000, gas
    tx = token.functions.transfer(RECIPIENT, 11).build_transaction({**tx_fields(w3, account), "gas": gas})
    receipt = send(w3, account, tx)
    assert receipt.status == 1, "a transfer with the estimated gas succeeds"
    assert token.functions.balanceOf(RECIPIENT).call() == 11

    logs = token.events.Transfer.get_logs(from_block=receipt.blockNumber, to_block=receipt.blockNumber)
    assert len(logs) == 1 and logs[0].args.value == 11, logs
    entries = []
    for _ in range(40):
        entries += event_filter.get_new_entries()
        if entries:
            break
        time.sleep(0.25)
    assert any(e.args.value == 11 for e in entries), entries
    assert w3.eth.uninstall_filter(event_filter.filter_id)

    try:
        token.functions.fail().call()
        raise AssertionError("fail() must revert")
    except ContractLogicError as error:
        assert "nope" in str(error), error
        assert str(error.data).startswith(ERROR_SELECTOR), error.data

    history = w3.eth.fee_history(4, "latest", [25, 75])
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1
    assert w3.eth.max_priority_fee > 0
    block = w3.eth.get_block("latest", full_transactions=True)
    assert block["hash"] and "baseFeePerGas" in block

    asyncio.run(websocket_flow(token.address, w3, account, token))
    print(f"web3.py {importlib.metadata.version('web3')}: ok (token {token.address})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # report any failure as one line, then the traceback
        print(f"web3.py smoke test FAILED: {error!r}", file=sys.stderr)
        raise
