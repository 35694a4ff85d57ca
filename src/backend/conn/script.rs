//! Scripts that check tagged entries (`lua/tags.lua`), on every topology: a
//! script declares every key it touches, so the tag keys of the entries it
//! checks are named by the caller. The first run names none; when a stored
//! entry turns out to be tagged, the script stops before writing anything
//! and names its tag keys; the caller checks that they lie in its tag space
//! and runs the script again naming them. On one server they are declared in
//! `KEYS` and the script reads their tokens itself, in the same atomic step;
//! on a Cluster (other slots) the caller reads the tokens and passes them.

use redis::{RedisError, RedisResult, ToRedisArgs};

use super::envelope::{check_tag_space, corrupt};

/// Runs of a script before a call gives up (a second run happens when the
/// entry is tagged, each further one only when it changed meanwhile).
pub(crate) const TAG_ROUNDS: usize = 8;

/// The error code of a script asking for tag keys.
const NEED_TAGS: &str = "RCACHE-TAGS";

/// Arguments of a script, as bytes.
#[derive(Clone, Default)]
pub(crate) struct Args(pub(crate) Vec<Vec<u8>>);

impl Args {
    pub(crate) fn with(mut self, value: impl ToRedisArgs) -> Self {
        self.0.extend(value.to_redis_args());
        self
    }
}

/// The tag keys a script asked for, over its runs.
#[derive(Default)]
pub(crate) struct ScriptTags {
    /// In the order asked; each lies in the handle's tag space.
    pub(crate) keys: Vec<Vec<u8>>,
    runs: usize,
}

impl ScriptTags {
    /// After a run that failed with `error`: true when the script asked for
    /// tag keys (now added to `keys`) and must run again. A tag key outside
    /// `tag_space` makes the entry corrupt: rcache did not write it, and
    /// never reads or declares it.
    pub(crate) fn asked(&mut self, error: &RedisError, tag_space: &[u8]) -> RedisResult<bool> {
        if error.code() != Some(NEED_TAGS) {
            return Ok(false);
        }
        let needed = needed_tags(error.detail().unwrap_or(""));
        if needed.is_empty() {
            return Ok(false);
        }
        for tag_key in &needed {
            check_tag_space(tag_key, tag_space)?;
        }
        self.runs += 1;
        if self.runs >= TAG_ROUNDS {
            return Err(corrupt("the entry's tags kept changing while it was read"));
        }
        for tag_key in needed {
            if !self.keys.contains(&tag_key) {
                self.keys.push(tag_key);
            }
        }
        Ok(true)
    }

    /// The end of ARGV when `keys` are declared at the end of KEYS (one server).
    pub(crate) fn declared_tail(&self) -> [usize; 2] {
        [0, self.keys.len()]
    }
}

/// The end of ARGV passing each tag key with its token (a Cluster).
pub(crate) fn tokens_tail(known: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut tail: Vec<Vec<u8>> = known.iter().flat_map(|(tag_key, token)| [tag_key.clone(), token.clone()]).collect();
    tail.push(known.len().to_string().into_bytes());
    tail.push(b"0".to_vec());
    tail
}

/// The tag keys named (in hex) by a script's `RCACHE-TAGS` error.
fn needed_tags(detail: &str) -> Vec<Vec<u8>> {
    let hex = |word: &str| -> Option<Vec<u8>> {
        if word.is_empty() || word.len() % 2 != 0 {
            return None;
        }
        (0..word.len()).step_by(2).map(|at| u8::from_str_radix(word.get(at..at + 2)?, 16).ok()).collect()
    };
    // The server appends " script: <sha>, on @user_script…" after the names.
    detail.split(' ').map_while(hex).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_tags_are_read_from_the_error() {
        assert_eq!(needed_tags("6162 00ff script: 3b16, on @user_script:1."), vec![b"ab".to_vec(), vec![0, 255]]);
        assert!(needed_tags("script: x").is_empty());
    }

    #[test]
    fn tag_keys_outside_the_tag_space_are_never_asked_for() {
        let asking = |keys: &str| redis::make_extension_error(NEED_TAGS.to_string(), Some(format!("{keys} script: 3b16")));
        let mut tags = ScriptTags::default();
        assert!(tags.asked(&asking("703a74"), b"p:t").unwrap(), "p:t");
        assert!(tags.asked(&asking("703a74 703a74"), b"p:").unwrap());
        assert_eq!(tags.keys, vec![b"p:t".to_vec()]);
        assert!(tags.asked(&asking("713a74"), b"p:").is_err(), "q:t is outside p:");
        assert!(!tags.asked(&corrupt("other"), b"p:").unwrap());
    }
}
