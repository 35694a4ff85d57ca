//! Redis Cluster hash slots: which of the 16384 slots a key belongs to, and
//! how to name a companion key (a lock, a compute-time hint) so that it sits
//! in the same slot as the entry it serves.

use std::sync::OnceLock;

/// Redis Cluster divides the key space into this many slots.
pub(crate) const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The part of `key` that decides its slot: the bytes between the first `{`
/// and the first `}` after it when that is not empty (a "hash tag"), else the whole key.
fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&byte| byte == b'{') {
        if let Some(length) = key[open + 1..].iter().position(|&byte| byte == b'}') {
            if length > 0 {
                return &key[open + 1..open + 1 + length];
            }
        }
    }
    key
}

/// The slot Redis Cluster stores `key` in.
pub(crate) fn slot(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS
}

/// For each slot, a short decimal string that hashes to it.
fn tags() -> &'static [Box<str>] {
    static TAGS: OnceLock<Vec<Box<str>>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags: Vec<Option<Box<str>>> = vec![None; SLOTS as usize];
        let mut missing = SLOTS as usize;
        // About 170,000 numbers cover every slot (coupon collector); a few milliseconds, once.
        let mut number = 0u32;
        while missing > 0 {
            let text = number.to_string();
            let tag = &mut tags[usize::from(crc16(text.as_bytes()) % SLOTS)];
            if tag.is_none() {
                *tag = Some(text.into_boxed_str());
                missing -= 1;
            }
            number += 1;
        }
        tags.into_iter().map(|tag| tag.expect("every slot covered")).collect()
    })
}

/// The key `<prefix><space>{<tag>}<key>`, where `<tag>` hashes to the slot of
/// `<prefix><key>`: the companion of an entry (its get-or-compute lock, its
/// compute-time hint) lives in the entry's slot, so one Cluster node and one
/// script can see both, while different entries still spread over all slots.
/// Unique per entry key: `<tag>` has no braces, so the key after it is
/// recovered exactly. (A prefix holding an unclosed `{` defeats the
/// placement; such companions may sit in another slot, which callers allow.)
pub(crate) fn companion_key(prefix: &[u8], space: &[u8], key: &[u8]) -> Vec<u8> {
    let entry_slot = slot(&[prefix, key].concat());
    let tag = tags()[usize::from(entry_slot)].as_bytes();
    [prefix, space, b"{", tag, b"}", key].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"), "an empty tag hashes the whole key");
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }

    #[test]
    fn companions_share_the_entry_slot_and_stay_unique() {
        for key in [&b"k"[..], b"user:1", b"{tagged}x", b"a}b", b"{}x", b"\0\xff{"] {
            for prefix in [&b""[..], b"app:", b"{app}:", b"a}"] {
                let companion = companion_key(prefix, b"__rcache_lock:", key);
                assert!(companion.starts_with(prefix) && companion.ends_with(key));
                assert_eq!(slot(&companion), slot(&[prefix, key].concat()), "{prefix:?} {key:?}");
            }
        }
        assert_ne!(companion_key(b"", b"s:", b"k1"), companion_key(b"", b"s:", b"{1}k1"));
    }
}
