//! Session storage: named binary fields per session, a server-made id and an
//! unguessable secret, versioned saves, sliding expiry, cleanup of idle ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::{SaveOutcome, SessionRecord, SessionSave};
use crate::cache::{Cache, LOCK_SPACE, Ttl};
use crate::error::{Error, Result};
use crate::glob;

/// A new session's identity: give the id and the secret back to load it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// 32 hex characters (128 random bits), public (a cookie may carry it).
    pub id: String,
    /// 32 hex characters (128 random bits from the OS), the proof of
    /// ownership. The store keeps only its SHA-256.
    pub secret: String,
}

/// The sessions of one namespace of a client, e.g. `cache.sessions(b"sess:")`.
pub struct Sessions<'c> {
    cache: &'c Cache,
    namespace: Vec<u8>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What the backends store and compare instead of a session's secret: its
/// SHA-256, in hex, so reading the store never reveals a usable secret, and
/// comparing (even not in constant time) tells nothing about the secret.
fn secret_hash(secret: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    digest.as_ref().iter().flat_map(|byte| format!("{byte:02x}").into_bytes()).collect()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

impl Cache {
    /// The session store kept under `namespace` (inside the client's prefix).
    pub fn sessions(&self, namespace: &[u8]) -> Sessions<'_> {
        Sessions { cache: self, namespace: namespace.to_vec() }
    }
}

/// Session ids are 32 lowercase hex characters, as `create` makes them.
const ID_LEN: usize = 32;

fn is_session_id(id: &[u8]) -> bool {
    id.len() == ID_LEN && id.iter().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

impl Sessions<'_> {
    /// The session's full key, or `None` for an id `create` cannot have made
    /// (so a forged id never reaches another namespace or a cache entry).
    fn key(&self, id: &[u8]) -> Result<Option<Vec<u8>>> {
        if id.is_empty() {
            return Err(Error::invalid("session id must not be empty"));
        }
        if !is_session_id(id) {
            return Ok(None);
        }
        self.cache.full_key(&[self.namespace.as_slice(), id].concat()).map(Some)
    }

    /// The glob matching exactly this namespace's session keys.
    fn pattern(&self) -> (Vec<u8>, usize) {
        let prefix = [self.cache.options().key_prefix.as_slice(), &self.namespace].concat();
        let mut pattern = glob::escape(&prefix);
        for _ in 0..ID_LEN {
            pattern.extend_from_slice(b"[0-9a-f]");
        }
        (pattern, prefix.len())
    }

    fn check_fields(&self, fields: &[(&[u8], &[u8])], deleted: &[&[u8]]) -> Result<()> {
        let limit = self.cache.options().max_value_bytes;
        for name in fields.iter().map(|(name, _)| *name).chain(deleted.iter().copied()) {
            if name.is_empty() || name.starts_with(b"__") {
                return Err(Error::invalid("session field names must not be empty or start with \"__\""));
            }
            if std::str::from_utf8(name).is_err() {
                return Err(Error::invalid("session field names must be UTF-8 text"));
            }
        }
        let total: usize = fields.iter().map(|(name, value)| name.len() + value.len()).sum();
        if total > limit {
            return Err(Error::too_large(format!("session fields of {total} bytes exceed the limit of {limit} bytes")));
        }
        Ok(())
    }

    /// Creates a session holding `fields`, living `ttl` (renewed by saves and touches).
    pub fn create(&self, fields: &[(&[u8], &[u8])], ttl: Ttl) -> Result<NewSession> {
        self.check_fields(fields, &[])?;
        let expiry = self.cache.expiry(ttl)?;
        loop {
            let session = NewSession { id: random_hex(), secret: random_hex() };
            let key = self.key(session.id.as_bytes())?.expect("a made id is well formed");
            let secret = secret_hash(session.secret.as_bytes());
            if self.cache.call(|backend| backend.session_create(&key, &secret, fields, expiry, now_ms()))? {
                return Ok(session);
            }
        }
    }

    /// The session, when `id` exists and `secret` is its secret (compared in
    /// constant time); otherwise `None`, and nothing is changed or locked.
    /// `slide` renews its expiry.
    pub fn load(&self, id: &[u8], secret: &[u8], slide: Option<Ttl>) -> Result<Option<SessionRecord>> {
        let touch = slide.map(|ttl| self.cache.expiry(ttl)).transpose()?;
        let Some(key) = self.key(id)? else { return Ok(None) };
        let secret = secret_hash(secret);
        self.cache.call(|backend| backend.session_load(&key, &secret, touch, now_ms()))
    }

    /// Sets `fields` and deletes `deleted` in one atomic step, renewing the
    /// expiry, if `secret` matches and the session is still at `expected`
    /// (any version when `None`, or `Some(0)`: no session is at version 0,
    /// and the C API passes 0 for any). A save based on a stale load gets
    /// `Conflict` instead of overwriting a newer save.
    pub fn save(
        &self,
        id: &[u8],
        secret: &[u8],
        expected: Option<u64>,
        fields: &[(&[u8], &[u8])],
        deleted: &[&[u8]],
        ttl: Ttl,
    ) -> Result<SaveOutcome> {
        self.check_fields(fields, deleted)?;
        let expiry = self.cache.expiry(ttl)?;
        let Some(key) = self.key(id)? else { return Ok(SaveOutcome::Missing) };
        let secret = secret_hash(secret);
        self.cache.call(|backend| {
            backend.session_save(SessionSave {
                key: &key,
                secret: &secret,
                expected: expected.filter(|&version| version != 0),
                set: fields,
                delete: deleted,
                expiry,
                now_ms: now_ms(),
            })
        })
    }

    /// Renews the expiry; false when the id or secret is wrong.
    pub fn touch(&self, id: &[u8], secret: &[u8], ttl: Ttl) -> Result<bool> {
        let expiry = self.cache.expiry(ttl)?;
        let Some(key) = self.key(id)? else { return Ok(false) };
        let secret = secret_hash(secret);
        self.cache.call(|backend| backend.session_touch(&key, &secret, expiry, now_ms()))
    }

    /// Deletes the session; false when the id or secret is wrong.
    pub fn destroy(&self, id: &[u8], secret: &[u8]) -> Result<bool> {
        let Some(key) = self.key(id)? else { return Ok(false) };
        let secret = secret_hash(secret);
        self.cache.call(|backend| backend.session_destroy(&key, &secret))
    }

    /// Every live session of the namespace, by id, for cleanup and
    /// inspection (secrets are not returned).
    pub fn list(&self) -> Result<Vec<(Vec<u8>, SessionRecord)>> {
        let (pattern, prefix_len) = self.pattern();
        let sessions = self.cache.call(|backend| backend.session_list(&pattern))?;
        Ok(sessions.into_iter().map(|(key, record)| (key[prefix_len..].to_vec(), record)).collect())
    }

    /// Deletes the sessions not saved or touched for `idle`; returns how many.
    pub fn purge_idle(&self, idle: Duration) -> Result<u64> {
        let (pattern, _) = self.pattern();
        let since = now_ms().saturating_sub(idle.as_millis() as u64);
        self.cache.call(|backend| backend.session_purge(&pattern, since))
    }

    /// Takes the session's exclusive lock for `lease` if the secret matches
    /// and nobody holds it; returns the owner token that unlocks it. Loads
    /// never take it: only callers that want to serialize requests do.
    pub fn lock(&self, id: &[u8], secret: &[u8], lease: Duration) -> Result<Option<String>> {
        if self.load(id, secret, None)?.is_none() {
            return Ok(None);
        }
        let lock_key = self.lock_key(id);
        let owner = random_hex();
        let taken = self.cache.call(|backend| backend.lock(&lock_key, owner.as_bytes(), lease))?;
        Ok(taken.then_some(owner))
    }

    /// Releases a lock taken with `lock`; false when `owner` no longer holds it.
    pub fn unlock(&self, id: &[u8], owner: &[u8]) -> Result<bool> {
        if self.key(id)?.is_none() {
            return Ok(false);
        }
        let lock_key = self.lock_key(id);
        self.cache.call(|backend| backend.unlock(&lock_key, owner))
    }

    fn lock_key(&self, id: &[u8]) -> Vec<u8> {
        [self.cache.options().key_prefix.as_slice(), LOCK_SPACE, &self.namespace, id].concat()
    }
}
