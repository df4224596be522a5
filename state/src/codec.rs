//! Byte layouts of what the state stores: flat accounts, slot values, keys, changesets.

use crate::StateError;
use crate::trie::EMPTY_ROOT_HASH;
use alloy_primitives::{Address, B256, U256};
use chain_primitives::{Account, KECCAK_EMPTY};

/// An account as the flat state stores it: the record plus its storage root, so that an
/// account update does not need the storage trie to rebuild the account's leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredAccount {
    /// Nonce, balance, code hash.
    pub info: Account,
    /// Root of the account's storage trie.
    pub storage_root: B256,
}

const HAS_CODE: u8 = 1;
const HAS_STORAGE: u8 = 2;

impl StoredAccount {
    /// Compact encoding: flags, nonce and balance without leading zeros, then the code hash and
    /// storage root only when not empty. An EOA takes about 20 bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(112);
        let mut flags = 0;
        if self.info.code_hash != KECCAK_EMPTY {
            flags |= HAS_CODE;
        }
        if self.storage_root != EMPTY_ROOT_HASH {
            flags |= HAS_STORAGE;
        }
        out.push(flags);
        put_trimmed(&self.info.nonce.to_be_bytes(), &mut out);
        put_trimmed(&self.info.balance.to_be_bytes::<32>(), &mut out);
        if flags & HAS_CODE != 0 {
            out.extend_from_slice(self.info.code_hash.as_slice());
        }
        if flags & HAS_STORAGE != 0 {
            out.extend_from_slice(self.storage_root.as_slice());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let bad = || StateError::corruption("malformed account record");
        let mut reader = Reader(bytes);
        let flags = reader.byte().ok_or_else(bad)?;
        if flags & !(HAS_CODE | HAS_STORAGE) != 0 {
            return Err(bad());
        }
        let nonce = reader.trimmed(8).ok_or_else(bad)?;
        let nonce = u64::from_be_bytes(nonce[..].try_into().map_err(|_| bad())?);
        let balance = U256::from_be_slice(&reader.trimmed(32).ok_or_else(bad)?);
        let code_hash = if flags & HAS_CODE != 0 {
            B256::from_slice(reader.take(32).ok_or_else(bad)?)
        } else {
            KECCAK_EMPTY
        };
        let storage_root = if flags & HAS_STORAGE != 0 {
            B256::from_slice(reader.take(32).ok_or_else(bad)?)
        } else {
            EMPTY_ROOT_HASH
        };
        if !reader.0.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            info: Account {
                nonce,
                balance,
                code_hash,
            },
            storage_root,
        })
    }
}

/// Appends a length byte and `bytes` without leading zeros.
fn put_trimmed(bytes: &[u8], out: &mut Vec<u8>) {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    out.push((bytes.len() - start) as u8);
    out.extend_from_slice(&bytes[start..]);
}

/// A slot value as stored: big-endian without leading zeros (zero is never stored).
pub(crate) fn encode_value(value: U256) -> Vec<u8> {
    let bytes = value.to_be_bytes::<32>();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(32);
    bytes[start..].to_vec()
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<U256, StateError> {
    if bytes.len() > 32 {
        return Err(StateError::corruption("slot value longer than 32 bytes"));
    }
    Ok(U256::from_be_slice(bytes))
}

/// Key of a flat storage slot: address ++ slot.
pub(crate) fn storage_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    key
}

/// Bounds-checked reading of a byte slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    pub(crate) fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length byte and that many bytes, left-padded with zeros to `width`.
    fn trimmed(&mut self, width: usize) -> Option<Vec<u8>> {
        let len = self.byte()? as usize;
        if len > width {
            return None;
        }
        let bytes = self.take(len)?;
        let mut out = vec![0u8; width];
        out[width - len..].copy_from_slice(bytes);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_records_round_trip() {
        let accounts = [
            StoredAccount {
                info: Account::default(),
                storage_root: EMPTY_ROOT_HASH,
            },
            StoredAccount {
                info: Account {
                    nonce: u64::MAX,
                    balance: U256::MAX,
                    code_hash: B256::repeat_byte(3),
                },
                storage_root: B256::repeat_byte(4),
            },
            StoredAccount {
                info: Account::with_balance(U256::from(1_000_000_000u64)),
                storage_root: EMPTY_ROOT_HASH,
            },
        ];
        for account in accounts {
            let encoded = account.encode();
            assert_eq!(StoredAccount::decode(&encoded).unwrap(), account);
            assert!(StoredAccount::decode(&encoded[..encoded.len() - 1]).is_err());
        }
        assert_eq!(accounts[0].encode().len(), 3);
    }
}
