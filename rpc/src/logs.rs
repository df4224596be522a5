//! Log queries: matching logs against a filter, skipping blocks by their header's bloom, and
//! `eth_getLogs` over a block range with limits.

use crate::{
    api::{ChainApi, IndexedBlock},
    config::RpcConfig,
    convert::rpc_log,
    error::{CallError, CallResult},
    wire::{BlockTag, FilterCriteria},
};
use alloy_primitives::{Address, B256, Bloom, BloomInput, Log};
use alloy_rpc_types_eth::Log as RpcLog;
use chain_primitives::StoredReceipt;

/// geth's limit on topic positions.
const MAX_TOPICS: usize = 4;

/// The address and topic part of a filter, checked and ready to match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogMatcher {
    addresses: Vec<Address>,
    topics: Vec<Vec<B256>>,
}

impl LogMatcher {
    /// Builds the matcher of `criteria`, enforcing the topic and address limits.
    pub(crate) fn new(criteria: &FilterCriteria, config: &RpcConfig) -> CallResult<Self> {
        if criteria.topics.len() > MAX_TOPICS {
            return Err(CallError::invalid_params("exceed max topics"));
        }
        if criteria.addresses.len() > config.logs_max_addresses {
            return Err(CallError::invalid_params(format!(
                "exceed max addresses: {} (limit {})",
                criteria.addresses.len(),
                config.logs_max_addresses
            )));
        }
        Ok(Self {
            addresses: criteria.addresses.clone(),
            topics: criteria.topics.clone(),
        })
    }

    /// Whether `log` matches (geth's `filterLogs`: a filter with more topic positions than the
    /// log has topics never matches, even if the extra positions are wildcards).
    pub(crate) fn matches(&self, log: &Log) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        let topics = log.topics();
        if self.topics.len() > topics.len() {
            return false;
        }
        self.topics
            .iter()
            .zip(topics)
            .all(|(wanted, topic)| wanted.is_empty() || wanted.contains(topic))
    }

    /// Whether a block with this bloom may hold a matching log.
    pub(crate) fn may_match(&self, bloom: &Bloom) -> bool {
        if !self.addresses.is_empty()
            && !self
                .addresses
                .iter()
                .any(|a| bloom.contains_input(BloomInput::Raw(a.as_slice())))
        {
            return false;
        }
        self.topics.iter().all(|set| {
            set.is_empty()
                || set
                    .iter()
                    .any(|t| bloom.contains_input(BloomInput::Raw(t.as_slice())))
        })
    }

    /// The matching logs of one block, with block-wide log indexes.
    pub(crate) fn block_logs(
        &self,
        block: &IndexedBlock,
        receipts: &[StoredReceipt],
        removed: bool,
        out: &mut Vec<RpcLog>,
    ) {
        let mut log_index = 0u64;
        for (tx_index, receipt) in receipts.iter().enumerate() {
            for log in &receipt.logs {
                if self.matches(log) {
                    out.push(rpc_log(log, block, tx_index, log_index, removed));
                }
                log_index += 1;
            }
        }
    }
}

/// Resolves a tag to a block number against the current chain.
pub(crate) fn tag_number<A: ChainApi>(api: &A, tag: BlockTag) -> u64 {
    match tag {
        BlockTag::Latest | BlockTag::Pending => api.head_number(),
        BlockTag::Safe => api.safe_number(),
        BlockTag::Finalized => api.finalized_number(),
        BlockTag::Earliest => 0,
        BlockTag::Number(n) => n,
    }
}

/// The inclusive block range of a filter, checked against the head and the range limit with
/// geth's messages.
pub(crate) fn resolve_range<A: ChainApi>(
    api: &A,
    criteria: &FilterCriteria,
    config: &RpcConfig,
) -> CallResult<(u64, u64)> {
    let head = api.head_number();
    let from_tag = criteria.from_block.unwrap_or(BlockTag::Latest);
    let to_tag = criteria.to_block.unwrap_or(BlockTag::Latest);
    let from = tag_number(api, from_tag);
    let to = tag_number(api, to_tag);
    if from > head {
        if matches!(to_tag, BlockTag::Number(_)) {
            return Err(CallError::invalid_params(
                "block range extends beyond current head block",
            ));
        }
        return Err(CallError::invalid_params("invalid block range params"));
    }
    if from > to {
        return Err(CallError::invalid_params("invalid block range params"));
    }
    if to > head {
        return Err(CallError::invalid_params(
            "block range extends beyond current head block",
        ));
    }
    if to - from >= config.logs_max_block_range {
        return Err(CallError::limit(format!(
            "exceed maximum block range: {}",
            config.logs_max_block_range
        )));
    }
    Ok((from, to))
}

fn too_many_results(config: &RpcConfig, from: u64, to: u64) -> CallError {
    CallError::limit(format!(
        "query returned more than {} results. Try with this block range [{:#x}, {:#x}].",
        config.logs_max_results, from, to
    ))
}

/// `eth_getLogs`: the logs matching `criteria`.
pub(crate) fn get_logs<A: ChainApi>(
    api: &A,
    criteria: &FilterCriteria,
    config: &RpcConfig,
) -> CallResult<Vec<RpcLog>> {
    let matcher = LogMatcher::new(criteria, config)?;
    let mut out = Vec::new();
    if let Some(hash) = criteria.block_hash {
        let block = api
            .block_by_hash(hash)?
            .ok_or_else(|| CallError::server("unknown block"))?;
        collect_block(api, &matcher, &block, &mut out)?;
        if out.len() > config.logs_max_results {
            return Err(too_many_results(
                config,
                block.block.number(),
                block.block.number(),
            ));
        }
        return Ok(out);
    }
    let (from, to) = resolve_range(api, criteria, config)?;
    for number in from..=to {
        let Some(block) = api.block_by_number(number)? else {
            continue;
        };
        collect_block(api, &matcher, &block, &mut out)?;
        if out.len() > config.logs_max_results {
            return Err(too_many_results(
                config,
                from,
                number.saturating_sub(1).max(from),
            ));
        }
    }
    Ok(out)
}

fn collect_block<A: ChainApi>(
    api: &A,
    matcher: &LogMatcher,
    block: &IndexedBlock,
    out: &mut Vec<RpcLog>,
) -> CallResult<()> {
    if !matcher.may_match(&block.block.header().logs_bloom) {
        return Ok(());
    }
    if let Some(receipts) = api.receipts(block.block.number())? {
        matcher.block_logs(block, &receipts, false, out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, LogData};

    fn log(address: u8, topics: &[u8]) -> Log {
        Log {
            address: Address::repeat_byte(address),
            data: LogData::new_unchecked(
                topics.iter().map(|t| B256::repeat_byte(*t)).collect(),
                Bytes::new(),
            ),
        }
    }

    fn matcher(addresses: &[u8], topics: Vec<Vec<u8>>) -> LogMatcher {
        let criteria = FilterCriteria {
            addresses: addresses.iter().map(|a| Address::repeat_byte(*a)).collect(),
            topics: topics
                .into_iter()
                .map(|set| set.into_iter().map(B256::repeat_byte).collect())
                .collect(),
            ..Default::default()
        };
        LogMatcher::new(&criteria, &RpcConfig::default()).unwrap()
    }

    #[test]
    fn matching_follows_geth() {
        let l = log(1, &[10, 20]);
        assert!(matcher(&[], vec![]).matches(&l));
        assert!(matcher(&[1, 2], vec![]).matches(&l));
        assert!(!matcher(&[2], vec![]).matches(&l));
        assert!(matcher(&[], vec![vec![10]]).matches(&l));
        assert!(matcher(&[], vec![vec![], vec![20, 30]]).matches(&l));
        assert!(!matcher(&[], vec![vec![], vec![30]]).matches(&l));
        assert!(
            !matcher(&[], vec![vec![], vec![], vec![]]).matches(&l),
            "more positions than topics"
        );
    }

    #[test]
    fn bloom_skips_blocks_without_candidates() {
        let mut bloom = Bloom::ZERO;
        bloom.accrue_log(&log(1, &[10]));
        assert!(matcher(&[1], vec![vec![10]]).may_match(&bloom));
        assert!(!matcher(&[2], vec![]).may_match(&bloom));
        assert!(!matcher(&[], vec![vec![11]]).may_match(&bloom));
        assert!(matcher(&[], vec![vec![11, 10]]).may_match(&bloom));
    }

    #[test]
    fn topic_limit() {
        let criteria = FilterCriteria {
            topics: vec![vec![]; 5],
            ..Default::default()
        };
        assert_eq!(
            LogMatcher::new(&criteria, &RpcConfig::default())
                .unwrap_err()
                .message,
            "exceed max topics"
        );
    }
}
