//! Session storage through the C API: a store handle per namespace.
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use crate::{Cache, NewSession, SaveOutcome, SessionRecord};

use super::boundary::{bytes, guard, guard_or, guard_void, non_null, out_param};
use super::client::{byte_pairs, byte_strings, check_generation, rcache_client};
use super::fork;
use super::status::{Failure, rcache_status};
use super::types::{rcache_bytes, ttl_from_millis};

use rcache_status::{RCACHE_STATUS_MISS as MISS, RCACHE_STATUS_OK as OK};

/// Pass as `slide_ttl_ms` to load a session without renewing its expiry.
pub const RCACHE_SESSION_NO_SLIDE: i64 = -2;

/// The sessions of one namespace of a client. Create it with
/// `rcache_session_store_open`, free it with `rcache_session_store_free`;
/// it shares its client's connection, so the two may be freed in either
/// order. Thread-safe, like the client.
#[allow(non_camel_case_types)]
pub struct rcache_session_store {
    cache: Arc<Cache>,
    /// The process the store was opened in, by fork generation.
    generation: u64,
    namespace: Vec<u8>,
}

/// A loaded session, owned by the caller: read it with the
/// `rcache_session_record_*` functions, release it with `rcache_session_record_free`.
#[allow(non_camel_case_types)]
pub struct rcache_session_record {
    record: SessionRecord,
}

/// A new session's identity: two NUL-terminated strings of 32 hex characters.
/// The secret proves ownership: keep it with the id (for example in the cookie).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rcache_session_new {
    pub id: [c_char; 33],
    pub secret: [c_char; 33],
}

impl rcache_session_new {
    pub(super) fn from_new(new: &NewSession) -> Self {
        rcache_session_new { id: text_field(&new.id), secret: text_field(&new.secret) }
    }
}

impl rcache_session_record {
    /// A record handed to C, released with `rcache_session_record_free`.
    pub(super) fn into_raw(record: SessionRecord) -> *mut rcache_session_record {
        Box::into_raw(Box::new(rcache_session_record { record }))
    }
}

fn text_field(text: &str) -> [c_char; 33] {
    let mut field = [0 as c_char; 33];
    for (slot, byte) in field.iter_mut().zip(text.bytes().take(32)) {
        *slot = byte as c_char;
    }
    field
}

impl rcache_session_store {
    /// # Safety
    /// `store` is NULL or comes from `rcache_session_store_open` and is not freed.
    unsafe fn sessions<'a>(store: *const rcache_session_store) -> Result<crate::Sessions<'a>, Failure> {
        // SAFETY: forwarded to the caller's promise.
        let store: &'a Self = unsafe { non_null(store, "store") }?;
        check_generation(store.generation)?;
        Ok(store.cache.sessions(&store.namespace))
    }
}

/// Opens the session store kept under `namespace` (inside the client's key
/// prefix, e.g. `"sess:"`) and stores its handle in `*store_out`. Session
/// ids are 32 lowercase hex characters, as `rcache_session_create` makes
/// them; any other id is a missing session. On Redis, sessions share the key
/// space with cache entries: keep cache keys out of the session namespace
/// (`rcache_client_clear` of the whole namespace deletes them too).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_store_open(
    client: *const rcache_client,
    namespace: *const u8,
    namespace_len: usize,
    store_out: *mut *mut rcache_session_store,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, namespace, store_out) = unsafe {
            (rcache_client::shared(client)?, bytes(namespace, namespace_len, "namespace")?, out_param(store_out, "store_out")?)
        };
        let store =
            rcache_session_store { cache: Arc::clone(cache), generation: fork::generation(), namespace: namespace.to_vec() };
        *store_out = Box::into_raw(Box::new(store));
        Ok(OK)
    })
}

/// Releases a session store, and its client's connection if the client was
/// freed already. NULL is a no-op. In a child process after fork() the
/// inherited store is not touched, as `rcache_client_free` does.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_store_free(store: *mut rcache_session_store) {
    guard_void(|| {
        if !store.is_null() {
            // SAFETY: a non-NULL store comes from rcache_session_store_open and is freed once.
            let store = unsafe { Box::from_raw(store) };
            if check_generation(store.generation).is_err() {
                std::mem::forget(store);
            }
        }
        Ok(OK)
    });
}

/// Creates a session holding `count` fields (`names[i]` -> `values[i]`; names
/// are UTF-8 text not starting with `__`), living `ttl_ms` (as in
/// `rcache_client_set`), and writes its id and secret to `*session_out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_create(
    store: *const rcache_session_store,
    names: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
    ttl_ms: i64,
    session_out: *mut rcache_session_new,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, fields, session_out) = unsafe {
            (rcache_session_store::sessions(store)?, byte_pairs(names, values, count)?, out_param(session_out, "session_out")?)
        };
        let new = sessions.create(&fields, ttl_from_millis(ttl_ms)?)?;
        *session_out = rcache_session_new::from_new(&new);
        Ok(OK)
    })
}

/// Loads a session. `RCACHE_STATUS_MISS` when the id does not exist or
/// `secret` is not its secret (compared in constant time): then nothing is
/// changed and no lock is taken. `slide_ttl_ms` renews the expiry (as
/// `ttl_ms` in `rcache_client_set`), or `RCACHE_SESSION_NO_SLIDE` leaves it.
/// Never waits on the session's lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_load(
    store: *const rcache_session_store,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
    slide_ttl_ms: i64,
    record_out: *mut *mut rcache_session_record,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, id, secret, record_out) = unsafe {
            (
                rcache_session_store::sessions(store)?,
                bytes(id, id_len, "id")?,
                bytes(secret, secret_len, "secret")?,
                out_param(record_out, "record_out")?,
            )
        };
        let slide = match slide_ttl_ms {
            RCACHE_SESSION_NO_SLIDE => None,
            ttl => Some(ttl_from_millis(ttl)?),
        };
        Ok(match sessions.load(id, secret, slide)? {
            Some(record) => {
                *record_out = rcache_session_record::into_raw(record);
                OK
            }
            None => MISS,
        })
    })
}

/// Saves fields of a session in one atomic step: sets `count` fields, deletes
/// `deleted_count` fields, renews the expiry to `ttl_ms` and bumps the version,
/// whose new value goes to `*version_out` (may be NULL). With
/// `expected_version` other than 0, `RCACHE_STATUS_CONFLICT` (nothing saved)
/// when the session has moved on since that version was loaded.
/// `RCACHE_STATUS_MISS` when the id or secret is wrong or the session expired.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_save(
    store: *const rcache_session_store,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
    expected_version: u64,
    names: *const rcache_bytes,
    values: *const rcache_bytes,
    count: usize,
    deleted: *const rcache_bytes,
    deleted_count: usize,
    ttl_ms: i64,
    version_out: *mut u64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, id, secret, fields, deleted) = unsafe {
            (
                rcache_session_store::sessions(store)?,
                bytes(id, id_len, "id")?,
                bytes(secret, secret_len, "secret")?,
                byte_pairs(names, values, count)?,
                byte_strings(deleted, deleted_count, "deleted")?,
            )
        };
        let expected = (expected_version != 0).then_some(expected_version);
        let outcome = sessions.save(id, secret, expected, &fields, &deleted, ttl_from_millis(ttl_ms)?)?;
        let Some(version) = saved_version(outcome, expected_version)? else { return Ok(MISS) };
        // SAFETY: a non-NULL version_out points to writable storage.
        if let Some(out) = unsafe { version_out.as_mut() } {
            *out = version;
        }
        Ok(OK)
    })
}

/// A save's new version, `None` for a missing session, or the conflict as C reports it.
pub(super) fn saved_version(outcome: SaveOutcome, expected_version: u64) -> Result<Option<u64>, Failure> {
    match outcome {
        SaveOutcome::Saved(version) => Ok(Some(version)),
        SaveOutcome::Missing => Ok(None),
        SaveOutcome::Conflict(version) => Err(Failure::new(
            rcache_status::RCACHE_STATUS_CONFLICT,
            format!("the session is at version {version}, not {expected_version}: load it again"),
        )),
    }
}

/// Renews a session's expiry to `ttl_ms`; `RCACHE_STATUS_MISS` when the id or secret is wrong.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_touch(
    store: *const rcache_session_store,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
    ttl_ms: i64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, id, secret) =
            unsafe { (rcache_session_store::sessions(store)?, bytes(id, id_len, "id")?, bytes(secret, secret_len, "secret")?) };
        Ok(if sessions.touch(id, secret, ttl_from_millis(ttl_ms)?)? { OK } else { MISS })
    })
}

/// Deletes a session; `RCACHE_STATUS_MISS` when the id or secret is wrong.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_destroy(
    store: *const rcache_session_store,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, id, secret) =
            unsafe { (rcache_session_store::sessions(store)?, bytes(id, id_len, "id")?, bytes(secret, secret_len, "secret")?) };
        Ok(if sessions.destroy(id, secret)? { OK } else { MISS })
    })
}

/// Deletes the sessions not saved or touched for `idle_ms`; the number goes
/// to `*purged_out` (may be NULL). Scans the namespace in batches.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_purge(
    store: *const rcache_session_store,
    idle_ms: u64,
    purged_out: *mut u64,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let sessions = unsafe { rcache_session_store::sessions(store) }?;
        let purged = sessions.purge_idle(Duration::from_millis(idle_ms))?;
        // SAFETY: a non-NULL purged_out points to writable storage.
        if let Some(out) = unsafe { purged_out.as_mut() } {
            *out = purged;
        }
        Ok(OK)
    })
}

/// A lock owner token: a NUL-terminated string of 32 hex characters.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rcache_session_owner {
    pub token: [c_char; 33],
}

/// Takes the session's exclusive lock for `lease_ms` (for applications that
/// serialize the requests of one session) and writes the owner token to
/// `*owner_out`. `RCACHE_STATUS_CONFLICT` when another owner holds it;
/// `RCACHE_STATUS_MISS` when the id or secret is wrong (no lock is taken).
/// Loads never take or wait on this lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_lock(
    store: *const rcache_session_store,
    id: *const u8,
    id_len: usize,
    secret: *const u8,
    secret_len: usize,
    lease_ms: u32,
    owner_out: *mut rcache_session_owner,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, id, secret, owner_out) = unsafe {
            (
                rcache_session_store::sessions(store)?,
                bytes(id, id_len, "id")?,
                bytes(secret, secret_len, "secret")?,
                out_param(owner_out, "owner_out")?,
            )
        };
        if lease_ms == 0 {
            return Err(Failure::invalid("lease_ms must be greater than zero"));
        }
        if sessions.load(id, secret, None)?.is_none() {
            return Ok(MISS);
        }
        match sessions.lock(id, secret, Duration::from_millis(lease_ms.into()))? {
            Some(owner) => {
                *owner_out = rcache_session_owner { token: text_field(&owner) };
                Ok(OK)
            }
            None => Err(Failure::new(rcache_status::RCACHE_STATUS_CONFLICT, "the session is locked by another owner")),
        }
    })
}

/// Releases a lock taken with `rcache_session_lock`; `RCACHE_STATUS_MISS`
/// when `owner` (the NUL-terminated token) no longer holds it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_unlock(
    store: *const rcache_session_store,
    id: *const u8,
    id_len: usize,
    owner: *const c_char,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (sessions, id) = unsafe { (rcache_session_store::sessions(store)?, bytes(id, id_len, "id")?) };
        let owner = match owner.is_null() {
            true => return Err(Failure::invalid("owner is NULL")),
            // SAFETY: a non-NULL owner is NUL-terminated.
            false => unsafe { std::ffi::CStr::from_ptr(owner) }.to_bytes(),
        };
        Ok(if sessions.unlock(id, owner)? { OK } else { MISS })
    })
}

/// The session's version (bumped by every save).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_record_version(record: *const rcache_session_record) -> u64 {
    // SAFETY: a non-NULL record comes from rcache_session_load and is not freed.
    guard_or(0, || unsafe { record.as_ref() }.map_or(0, |record| record.record.version))
}

/// When the session was last saved or touched, in milliseconds since the UNIX epoch.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_record_touched_ms(record: *const rcache_session_record) -> u64 {
    // SAFETY: a non-NULL record comes from rcache_session_load and is not freed.
    guard_or(0, || unsafe { record.as_ref() }.map_or(0, |record| record.record.touched_ms))
}

/// How many fields the session holds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_record_field_count(record: *const rcache_session_record) -> usize {
    // SAFETY: a non-NULL record comes from rcache_session_load and is not freed.
    guard_or(0, || unsafe { record.as_ref() }.map_or(0, |record| record.record.fields.len()))
}

/// Field `index` (in name order): its name and value point into the record
/// and stay valid until `rcache_session_record_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_record_field(
    record: *const rcache_session_record,
    index: usize,
    name_out: *mut rcache_bytes,
    value_out: *mut rcache_bytes,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (record, name_out, value_out) =
            unsafe { (non_null(record, "record")?, out_param(name_out, "name_out")?, out_param(value_out, "value_out")?) };
        let (name, value) =
            record.record.fields.get(index).ok_or_else(|| Failure::invalid(format!("field index {index} out of range")))?;
        *name_out = rcache_bytes { data: name.as_ptr(), len: name.len() };
        *value_out = rcache_bytes { data: value.as_ptr(), len: value.len() };
        Ok(OK)
    })
}

/// Releases a loaded session. NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_session_record_free(record: *mut rcache_session_record) {
    guard_void(|| {
        if !record.is_null() {
            // SAFETY: a non-NULL record comes from rcache_session_load and is freed once.
            drop(unsafe { Box::from_raw(record) });
        }
        Ok(OK)
    });
}
