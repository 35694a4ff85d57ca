//! Hash records: named fields under one key (a Redis hash; an entry of its
//! own kind on `memory://`), read whole and merged atomically.

use crate::backend::{HashFields, WriteCondition};
use crate::cache::{Cache, Ttl};
use crate::error::{Error, Result};

impl Cache {
    /// Every field of the hash record at `key`, in no particular order;
    /// `None` when the key is missing. A string value is `WrongType`.
    /// Counted as a hit or a miss like `get`.
    pub fn hash_get(&self, key: &[u8]) -> Result<Option<HashFields>> {
        let key = self.full_key(key)?;
        let fields = self.or_fail_open(self.call(|backend| backend.hash_get(&key)), || None)?;
        self.counters.record_lookup(fields.is_some());
        Ok(fields)
    }

    /// Merges `fields` into the hash record at `key`, creating it, and gives
    /// it `ttl` (`Ttl::Keep` leaves its expiry alone), in one atomic step,
    /// when `condition` holds; true when written, false (nothing written)
    /// when it does not. A string value at `key` is `WrongType`. A repeated
    /// field name keeps its last value. At least one field; names and values
    /// together at most `max_value_bytes`. Never fails open.
    pub fn hash_set(&self, key: &[u8], fields: &[(&[u8], &[u8])], ttl: Ttl, condition: WriteCondition) -> Result<bool> {
        let key = self.full_key(key)?;
        if fields.is_empty() {
            return Err(Error::invalid("a hash record needs at least one field"));
        }
        let limit = self.options().max_value_bytes;
        let total = fields.iter().fold(0usize, |total, (name, value)| total.saturating_add(name.len() + value.len()));
        if total > limit {
            return Err(Error::too_large(format!("hash fields of {total} bytes exceed the limit of {limit} bytes")));
        }
        let expiry = self.write_expiry(ttl)?;
        let result = self.call(|backend| backend.hash_set(&key, fields, expiry, condition));
        self.forget(&[&key]);
        result
    }
}
