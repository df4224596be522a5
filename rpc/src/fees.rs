//! Fee methods: the gas price oracle behind `eth_gasPrice` and `eth_maxPriorityFeePerGas`
//! (geth's: the 60th percentile of the lowest tips of recent blocks) and `eth_feeHistory`
//! with gas-weighted reward percentiles.

use crate::{
    api::{ChainApi, IndexedBlock},
    convert::effective_tip,
    error::{CallError, CallResult},
    logs::tag_number,
    methods::Ctx,
    wire::{BlockTag, HexOrDecimal, ParamReader},
};
use alloy_rpc_types_eth::FeeHistory;
use serde_json::Value;
use std::sync::Arc;

/// Tips sampled per block (geth: the three cheapest).
const SAMPLES_PER_BLOCK: usize = 3;
/// Tips below this are ignored as noise (geth's `IgnorePrice`, 2 wei).
const IGNORE_TIP_BELOW: u128 = 2;
/// Most reward percentiles one `eth_feeHistory` may ask for (geth).
const MAX_PERCENTILES: usize = 100;

fn quantity(n: u128) -> Value {
    Value::String(format!("{n:#x}"))
}

/// The suggested tip: cached per head, recomputed when the head changes.
pub(crate) fn suggest_tip<A: ChainApi>(ctx: &Ctx<A>) -> CallResult<u128> {
    let head_number = ctx.api.head_number();
    let Some(head) = ctx.api.block_by_number(head_number)? else {
        return Ok(ctx.config.default_priority_fee);
    };
    let head_hash = head.block.hash();
    let last = {
        let cache = ctx.tip_cache.lock();
        match *cache {
            Some((hash, tip)) if hash == head_hash => return Ok(tip),
            Some((_, tip)) => tip,
            None => ctx.config.default_priority_fee,
        }
    };
    let mut samples = Vec::new();
    let oldest = head_number.saturating_sub(ctx.config.gas_price_blocks.saturating_sub(1));
    for number in (oldest..=head_number).rev() {
        let Some(block) = ctx.api.block_by_number(number)? else {
            continue;
        };
        let lowest = lowest_tips(&block);
        if lowest.is_empty() {
            // geth samples its previous answer for an empty block.
            samples.push(last);
        } else {
            samples.extend(lowest);
        }
    }
    samples.sort_unstable();
    let percentile = usize::from(ctx.config.gas_price_percentile.min(100));
    let tip = samples
        .get(samples.len().saturating_sub(1) * percentile / 100)
        .copied()
        .unwrap_or(last)
        .min(ctx.config.max_priority_fee);
    *ctx.tip_cache.lock() = Some((head_hash, tip));
    Ok(tip)
}

fn lowest_tips(block: &IndexedBlock) -> Vec<u128> {
    let base_fee = block.block.header().base_fee_per_gas;
    let mut tips: Vec<u128> = block
        .block
        .block()
        .transactions
        .iter()
        .map(|tx| effective_tip(tx, base_fee))
        .filter(|tip| *tip >= IGNORE_TIP_BELOW)
        .collect();
    tips.sort_unstable();
    tips.truncate(SAMPLES_PER_BLOCK);
    tips
}

/// `eth_maxPriorityFeePerGas`.
pub(crate) fn max_priority_fee<A: ChainApi>(
    ctx: &Ctx<A>,
    _: &mut ParamReader,
) -> CallResult<Value> {
    Ok(quantity(suggest_tip(ctx)?))
}

/// `eth_gasPrice`: the suggested tip plus the head's base fee (geth).
pub(crate) fn gas_price<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    let tip = suggest_tip(ctx)?;
    let base_fee = ctx
        .api
        .block_by_number(ctx.api.head_number())?
        .and_then(|b| b.block.header().base_fee_per_gas)
        .unwrap_or(0);
    Ok(quantity(tip.saturating_add(u128::from(base_fee))))
}

/// `eth_feeHistory(blockCount, newestBlock, rewardPercentiles?)`.
pub(crate) fn fee_history<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let HexOrDecimal(requested) = p.required()?;
    let newest_tag: BlockTag = p.required()?;
    let percentiles: Vec<f64> = p.optional()?.unwrap_or_default();
    check_percentiles(&percentiles)?;

    let head = ctx.api.head_number();
    let newest = tag_number(&*ctx.api, newest_tag);
    if newest > head {
        return Err(CallError::server(format!(
            "request beyond head block: requested {newest}, head {head}"
        )));
    }
    let count = requested
        .min(ctx.config.fee_history_max_blocks)
        .min(newest + 1);
    if count == 0 {
        return to_value(&FeeHistory::default());
    }
    let oldest = newest + 1 - count;
    let mut history = FeeHistory {
        oldest_block: oldest,
        ..FeeHistory::default()
    };
    let mut rewards = Vec::new();
    for number in oldest..=newest {
        let block = ctx
            .api
            .block_by_number(number)?
            .ok_or_else(CallError::header_not_found)?;
        let header = block.block.header();
        history
            .base_fee_per_gas
            .push(u128::from(header.base_fee_per_gas.unwrap_or(0)));
        history.gas_used_ratio.push(if header.gas_limit == 0 {
            0.0
        } else {
            header.gas_used as f64 / header.gas_limit as f64
        });
        if !percentiles.is_empty() {
            rewards.push(block_rewards(ctx, &block, &percentiles)?);
        }
    }
    let next_base_fee = if newest == head {
        u128::from(ctx.api.next_base_fee())
    } else {
        ctx.api
            .block_by_number(newest + 1)?
            .and_then(|b| b.block.header().base_fee_per_gas)
            .map_or_else(|| u128::from(ctx.api.next_base_fee()), u128::from)
    };
    history.base_fee_per_gas.push(next_base_fee);
    if !percentiles.is_empty() {
        history.reward = Some(rewards);
    }
    to_value(&history)
}

fn to_value(history: &FeeHistory) -> CallResult<Value> {
    serde_json::to_value(history).map_err(|e| CallError::internal(e.to_string()))
}

fn check_percentiles(percentiles: &[f64]) -> CallResult<()> {
    if percentiles.len() > MAX_PERCENTILES {
        return Err(CallError::invalid_params(format!(
            "invalid reward percentile: over the query limit {MAX_PERCENTILES}"
        )));
    }
    for (i, p) in percentiles.iter().enumerate() {
        if !(0.0..=100.0).contains(p) {
            return Err(CallError::invalid_params(format!(
                "invalid reward percentile: {p:.6}"
            )));
        }
        if i > 0 && *p <= percentiles[i - 1] {
            return Err(CallError::invalid_params(format!(
                "invalid reward percentile: #{}:{:.6} >= #{}:{:.6}",
                i - 1,
                percentiles[i - 1],
                i,
                p
            )));
        }
    }
    Ok(())
}

/// geth's rewards of one block: transactions sorted by effective tip, each weighted by the gas
/// it used; the reward at percentile p is the tip of the transaction in which the cumulative
/// gas reaches p% of the block's gas used.
fn block_rewards<A: ChainApi>(
    ctx: &Ctx<A>,
    block: &Arc<IndexedBlock>,
    percentiles: &[f64],
) -> CallResult<Vec<u128>> {
    let txs = &block.block.block().transactions;
    if txs.is_empty() {
        return Ok(vec![0; percentiles.len()]);
    }
    let receipts = ctx
        .api
        .receipts(block.block.number())?
        .ok_or_else(|| CallError::internal("receipts not found"))?;
    let base_fee = block.block.header().base_fee_per_gas;
    let mut sorted: Vec<(u128, u64)> = txs
        .iter()
        .zip(receipts.iter())
        .map(|(tx, receipt)| (effective_tip(tx, base_fee), receipt.gas_used))
        .collect();
    if sorted.is_empty() {
        return Ok(vec![0; percentiles.len()]);
    }
    sorted.sort_by_key(|(tip, _)| *tip);
    Ok(rewards_at(
        &sorted,
        block.block.header().gas_used,
        percentiles,
    ))
}

/// The reward percentiles over `(tip, gas used)` sorted by tip.
pub(crate) fn rewards_at(
    sorted: &[(u128, u64)],
    block_gas_used: u64,
    percentiles: &[f64],
) -> Vec<u128> {
    let mut index = 0;
    let mut cumulative = sorted[0].1;
    percentiles
        .iter()
        .map(|p| {
            let threshold = (block_gas_used as f64 * p / 100.0) as u64;
            while cumulative < threshold && index < sorted.len() - 1 {
                index += 1;
                cumulative += sorted[index].1;
            }
            sorted[index].0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_are_gas_weighted() {
        // tips 1, 2, 3 using 10%, 60%, 30% of the gas
        let sorted = [(1, 10), (2, 60), (3, 30)];
        assert_eq!(
            rewards_at(&sorted, 100, &[0.0, 10.0, 11.0, 70.0, 71.0, 100.0]),
            vec![1, 1, 2, 2, 3, 3]
        );
    }

    #[test]
    fn percentiles_are_checked() {
        assert!(check_percentiles(&[10.0, 50.0, 90.0]).is_ok());
        assert_eq!(
            check_percentiles(&[101.0]).unwrap_err().message,
            "invalid reward percentile: 101.000000"
        );
        assert!(
            check_percentiles(&[50.0, 10.0])
                .unwrap_err()
                .message
                .starts_with("invalid reward percentile: #0")
        );
    }
}
