//! The few RLP pieces trie nodes need, written out so that node encoding allocates nothing
//! beyond the output buffer, and a bounds-checked decoder for nodes read back from disk.

use crate::StateError;

/// Length of the RLP encoding of the byte string `bytes`.
pub(crate) fn string_len(bytes: &[u8]) -> usize {
    match bytes.len() {
        1 if bytes[0] < 0x80 => 1,
        len => header_len(len) + len,
    }
}

/// Appends the RLP encoding of the byte string `bytes`.
pub(crate) fn put_string(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        out.push(bytes[0]);
    } else {
        put_header(0x80, bytes.len(), out);
        out.extend_from_slice(bytes);
    }
}

/// Appends a list header for a payload of `payload_len` bytes.
pub(crate) fn put_list_header(payload_len: usize, out: &mut Vec<u8>) {
    put_header(0xc0, payload_len, out);
}

/// Length of a string or list header for a payload of `len` bytes.
pub(crate) fn header_len(len: usize) -> usize {
    if len < 56 { 1 } else { 1 + be_len(len) }
}

fn be_len(value: usize) -> usize {
    (usize::BITS as usize / 8) - (value.leading_zeros() as usize / 8)
}

fn put_header(base: u8, len: usize, out: &mut Vec<u8>) {
    if len < 56 {
        out.push(base + len as u8);
    } else {
        let len_bytes = be_len(len);
        out.push(base + 55 + len_bytes as u8);
        out.extend_from_slice(&len.to_be_bytes()[usize::BITS as usize / 8 - len_bytes..]);
    }
}

/// One decoded RLP item.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Item<'a> {
    /// A byte string (its payload).
    String(&'a [u8]),
    /// A list: its payload and its whole encoding (header included).
    List { payload: &'a [u8], raw: &'a [u8] },
}

/// Splits the first RLP item off `buf`.
pub(crate) fn next_item<'a>(buf: &mut &'a [u8]) -> Result<Item<'a>, StateError> {
    let bad = || StateError::corruption("malformed RLP in trie node");
    let input: &'a [u8] = buf;
    let (&first, rest) = input.split_first().ok_or_else(bad)?;
    let (is_list, header, payload_len) = match first {
        0x00..=0x7f => {
            *buf = rest;
            return Ok(Item::String(&input[..1]));
        }
        0x80..=0xb7 => (false, 1, (first - 0x80) as usize),
        0xb8..=0xbf => {
            let n = (first - 0xb7) as usize;
            (false, 1 + n, read_len(rest, n).ok_or_else(bad)?)
        }
        0xc0..=0xf7 => (true, 1, (first - 0xc0) as usize),
        0xf8..=0xff => {
            let n = (first - 0xf7) as usize;
            (true, 1 + n, read_len(rest, n).ok_or_else(bad)?)
        }
    };
    let end = header.checked_add(payload_len).ok_or_else(bad)?;
    if end > input.len() {
        return Err(bad());
    }
    let payload = &input[header..end];
    *buf = &input[end..];
    Ok(if is_list {
        Item::List {
            payload,
            raw: &input[..end],
        }
    } else {
        Item::String(payload)
    })
}

fn read_len(bytes: &[u8], n: usize) -> Option<usize> {
    if n > bytes.len() || n > usize::BITS as usize / 8 {
        return None;
    }
    Some(
        bytes[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_encoding_matches_alloy_rlp() {
        for len in [0usize, 1, 2, 55, 56, 255, 256, 70_000] {
            for first in [0u8, 0x7f, 0x80, 0xff] {
                let mut bytes = vec![7u8; len];
                if let Some(b) = bytes.first_mut() {
                    *b = first;
                }
                let mut ours = Vec::new();
                put_string(&bytes, &mut ours);
                assert_eq!(
                    ours,
                    alloy_rlp::encode(&bytes[..]),
                    "len {len} first {first}"
                );
                assert_eq!(string_len(&bytes), ours.len());
                let mut cursor = &ours[..];
                match next_item(&mut cursor).unwrap() {
                    Item::String(payload) => assert_eq!(payload, &bytes[..]),
                    Item::List { .. } => panic!("decoded a string as a list"),
                }
                assert!(cursor.is_empty());
            }
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        for input in [
            &[0xb8u8][..],
            &[0xb8, 60, 1],
            &[0xc3, 1, 2],
            &[0xf9, 0xff],
            &[],
        ] {
            let mut cursor = input;
            assert!(next_item(&mut cursor).is_err(), "{input:?}");
        }
    }
}
