//! Nibble paths: unpacking keys, hex-prefix encoding, and the packed form used in database keys.

/// The nibbles of `bytes`, high nibble first, one per byte.
pub(crate) fn unpack(bytes: &[u8]) -> Vec<u8> {
    let mut nibbles = Vec::with_capacity(bytes.len() * 2);
    for byte in bytes {
        nibbles.push(byte >> 4);
        nibbles.push(byte & 0x0f);
    }
    nibbles
}

/// Nibble `index` of the byte string `bytes` (high nibble first).
#[inline]
pub(crate) fn nibble_at(bytes: &[u8], index: usize) -> u8 {
    let byte = bytes[index / 2];
    if index.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

/// Length of the common prefix of two nibble slices.
#[inline]
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Length in bytes of the hex-prefix encoding of `len` nibbles.
#[inline]
pub(crate) fn hex_prefix_len(len: usize) -> usize {
    len / 2 + 1
}

/// Appends the hex-prefix (compact) encoding of `nibbles` (Yellow Paper, appendix C): a flag
/// nibble saying leaf or extension and odd or even length, then the nibbles packed.
pub(crate) fn put_hex_prefix(nibbles: &[u8], leaf: bool, out: &mut Vec<u8>) {
    let flag = if leaf { 2u8 } else { 0 };
    let rest = if nibbles.len() % 2 == 1 {
        out.push(((flag + 1) << 4) | nibbles[0]);
        &nibbles[1..]
    } else {
        out.push(flag << 4);
        nibbles
    };
    out.extend(rest.chunks_exact(2).map(|pair| (pair[0] << 4) | pair[1]));
}

/// Decodes a hex-prefix encoded path into its nibbles and whether it is a leaf's.
pub(crate) fn decode_hex_prefix(encoded: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (&first, rest) = encoded.split_first()?;
    let flag = first >> 4;
    if flag > 3 {
        return None;
    }
    let leaf = flag & 2 != 0;
    let mut nibbles = Vec::with_capacity(rest.len() * 2 + 1);
    if flag & 1 == 1 {
        nibbles.push(first & 0x0f);
    } else if first & 0x0f != 0 {
        return None;
    }
    for byte in rest {
        nibbles.push(byte >> 4);
        nibbles.push(byte & 0x0f);
    }
    Some((nibbles, leaf))
}

/// The database form of a node path: nibbles packed two per byte, then the nibble count, so
/// that paths of different lengths never collide and a subtree's paths share a byte prefix.
pub(crate) fn pack_path(path: &[u8], out: &mut Vec<u8>) {
    out.extend(
        path.chunks(2)
            .map(|pair| (pair[0] << 4) | pair.get(1).copied().unwrap_or(0)),
    );
    debug_assert!(
        path.len() <= u8::MAX as usize,
        "trie paths are at most 64 nibbles"
    );
    out.push(path.len() as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_prefix_examples_from_the_yellow_paper() {
        let cases: [(&[u8], bool, &[u8]); 4] = [
            (&[1, 2, 3, 4, 5], false, &[0x11, 0x23, 0x45]),
            (&[0, 1, 2, 3, 4, 5], false, &[0x00, 0x01, 0x23, 0x45]),
            (&[0, 0xf, 1, 0xc, 0xb, 8], true, &[0x20, 0x0f, 0x1c, 0xb8]),
            (&[0xf, 1, 0xc, 0xb, 8], true, &[0x3f, 0x1c, 0xb8]),
        ];
        for (nibbles, leaf, encoded) in cases {
            let mut out = Vec::new();
            put_hex_prefix(nibbles, leaf, &mut out);
            assert_eq!(out, encoded);
            assert_eq!(out.len(), hex_prefix_len(nibbles.len()));
            assert_eq!(decode_hex_prefix(encoded), Some((nibbles.to_vec(), leaf)));
        }
    }

    #[test]
    fn packed_paths_of_different_lengths_differ() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pack_path(&[1], &mut a);
        pack_path(&[1, 0], &mut b);
        assert_ne!(a, b);
        assert_eq!(unpack(&[0xab, 0x01]), vec![0xa, 0xb, 0, 1]);
        assert_eq!(nibble_at(&[0xab], 1), 0xb);
    }
}
