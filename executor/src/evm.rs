//! The one place that drives revm: building an EVM for one transaction over any database,
//! with or without paying the beneficiary, and turning revm's results into ours.

use crate::{
    ExecutionEnv,
    outcome::{SkipReason, TxReceipt, TxStatus, logs_bloom},
    tx::effective_gas_price,
};
use alloy_primitives::{Address, Bytes, U256};
use chain_primitives::{Account, KECCAK_EMPTY};
use revm::{
    Database, MainBuilder,
    context::{
        TxEnv,
        result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction, Output},
    },
    context_interface::ContextSetters,
    context_interface::{ContextTr, JournalTr},
    handler::{EthFrame, EvmTr, FrameTr, Handler, MainnetContext, MainnetEvm, MainnetHandler},
    interpreter::interpreter::EthInterpreter,
    state::{AccountInfo, Bytecode, EvmState},
};
use std::marker::PhantomData;

/// revm's mainnet handler minus the payment to the beneficiary, which the parallel executor
/// applies as a delta instead (so that fee payments do not make every transaction depend on
/// the one before it).
struct DeferredFeeHandler<EVM, ERROR>(PhantomData<(EVM, ERROR)>);

impl<EVM, ERROR> Handler for DeferredFeeHandler<EVM, ERROR>
where
    EVM: EvmTr<
            Context: ContextTr<Journal: JournalTr<State = EvmState>>,
            Frame = EthFrame<EthInterpreter>,
        >,
    ERROR: revm::handler::EvmTrError<EVM>,
{
    type Evm = EVM;
    type Error = ERROR;
    type HaltReason = HaltReason;

    fn reward_beneficiary(
        &self,
        _evm: &mut Self::Evm,
        _exec_result: &mut <<Self::Evm as EvmTr>::Frame as FrameTr>::FrameResult,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Whether revm pays the beneficiary itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FeePayment {
    /// revm credits the beneficiary (sequential execution).
    ByEvm,
    /// The caller credits it (parallel execution, as a delta).
    Deferred,
}

/// An EVM set up for one block's environment, reused across the block's transactions:
/// building one costs more than executing a plain transfer.
pub(crate) type BlockEvm<DB> = MainnetEvm<MainnetContext<DB>>;

/// An EVM over `db` for the block of `env`.
pub(crate) fn block_evm<DB: Database>(env: &ExecutionEnv, db: DB) -> BlockEvm<DB> {
    MainnetContext::<DB>::new(db, env.spec)
        .with_cfg(env.cfg.clone())
        .with_block(env.revm_block.clone())
        .build_mainnet()
}

/// Executes one transaction on `evm` and returns revm's result and the touched state; the
/// journal is empty again afterwards, ready for the next transaction.
pub(crate) fn run_tx<DB: Database>(
    evm: &mut BlockEvm<DB>,
    tx: TxEnv,
    fees: FeePayment,
) -> Result<(ExecutionResult<HaltReason>, EvmState), EVMError<DB::Error, InvalidTransaction>> {
    evm.ctx.set_tx(tx);
    let result = match fees {
        FeePayment::ByEvm => {
            MainnetHandler::<_, EVMError<DB::Error, InvalidTransaction>, _>::default().run(evm)
        }
        FeePayment::Deferred => {
            DeferredFeeHandler::<_, EVMError<DB::Error, InvalidTransaction>>(PhantomData).run(evm)
        }
    };
    let state = evm.ctx.journal_mut().finalize();
    result.map(|result| (result, state))
}

/// Executes one transaction over `db` with a fresh EVM.
pub(crate) fn transact<DB: Database>(
    env: &ExecutionEnv,
    db: DB,
    tx: TxEnv,
    fees: FeePayment,
) -> Result<(ExecutionResult<HaltReason>, EvmState), EVMError<DB::Error, InvalidTransaction>> {
    run_tx(&mut block_evm(env, db), tx, fees)
}

/// The priority fee a transaction pays the beneficiary: gas used times the tip per gas.
pub(crate) fn beneficiary_fee(env: &ExecutionEnv, tx: &TxEnv, gas_used: u64) -> U256 {
    let price = effective_gas_price(tx, env.block.base_fee);
    let tip = price.saturating_sub(u128::from(env.block.base_fee));
    U256::from(tip) * U256::from(gas_used)
}

/// Builds the receipt of an executed transaction (cumulative gas is filled in later).
pub(crate) fn receipt(
    env: &ExecutionEnv,
    tx: &TxEnv,
    result: ExecutionResult<HaltReason>,
) -> TxReceipt {
    let gas_used = result.tx_gas_used();
    let (status, logs, output, contract_address) = match result {
        ExecutionResult::Success { logs, output, .. } => match output {
            Output::Call(data) => (TxStatus::Success, logs, data, None),
            Output::Create(data, address) => (TxStatus::Success, logs, data, address),
        },
        ExecutionResult::Revert { output, .. } => (TxStatus::Revert, Vec::new(), output, None),
        ExecutionResult::Halt { .. } => (TxStatus::Halt, Vec::new(), Bytes::new(), None),
    };
    TxReceipt {
        tx_type: tx.tx_type,
        status,
        gas_used,
        cumulative_gas_used: 0,
        logs_bloom: logs_bloom(&logs),
        logs,
        contract_address,
        output,
        effective_gas_price: effective_gas_price(tx, env.block.base_fee),
        beneficiary_fee: beneficiary_fee(env, tx, gas_used),
    }
}

/// Why revm refused a transaction, if that is what `error` says; other errors are not the
/// transaction's fault.
pub(crate) fn skip_reason<E>(error: &EVMError<E, InvalidTransaction>) -> Option<SkipReason> {
    match error {
        EVMError::Transaction(invalid) => Some(SkipReason::from(invalid)),
        _ => None,
    }
}

/// Our account record from revm's.
pub(crate) fn account_from_info(info: &AccountInfo) -> Account {
    Account {
        nonce: info.nonce,
        balance: info.balance,
        code_hash: info.code_hash,
    }
}

/// revm's account record from ours, with its code if known.
pub(crate) fn info_from_account(account: Account, code: Option<Bytecode>) -> AccountInfo {
    AccountInfo {
        balance: account.balance,
        nonce: account.nonce,
        code_hash: account.code_hash,
        account_id: None,
        code: if account.code_hash == KECCAK_EMPTY {
            Some(Bytecode::default())
        } else {
            code
        },
    }
}

/// What a transaction did to one account, after EIP-161 and self-destruct rules.
pub(crate) struct AccountEffect {
    /// The account after the transaction; `None` if it was deleted (self-destructed, or
    /// touched while empty).
    pub(crate) info: Option<Account>,
    /// The account's storage before the transaction is void (created or deleted).
    pub(crate) storage_cleared: bool,
    /// Code deployed at it.
    pub(crate) new_code: Option<(alloy_primitives::B256, Bytecode)>,
}

/// Applies the commit rules to one account of revm's output. `None` for an account that was
/// only read.
pub(crate) fn account_effect(account: &revm::state::Account) -> Option<AccountEffect> {
    if !account.is_touched() {
        return None;
    }
    if account.is_selfdestructed() || account.is_empty() {
        return Some(AccountEffect {
            info: None,
            storage_cleared: true,
            new_code: None,
        });
    }
    let created = account.is_created();
    let new_code = match (&account.info.code, created) {
        (Some(code), true) if account.info.code_hash != KECCAK_EMPTY => {
            Some((account.info.code_hash, code.clone()))
        }
        _ => None,
    };
    Some(AccountEffect {
        info: Some(account_from_info(&account.info)),
        storage_cleared: created,
        new_code,
    })
}

/// Applies a balance increase to an account with post-EIP-161 touch semantics: an account
/// that is empty afterwards does not exist.
pub(crate) fn add_balance(account: Option<Account>, amount: U256) -> Option<Account> {
    let mut account = account.unwrap_or_default();
    account.balance = account.balance.saturating_add(amount);
    (!account.is_empty()).then_some(account)
}

/// Addresses that may be precompiles under any fork (the low 2^16 addresses): never treated
/// as plain accounts.
pub(crate) fn maybe_precompile(address: &Address) -> bool {
    address.0[..18].iter().all(|b| *b == 0)
}
