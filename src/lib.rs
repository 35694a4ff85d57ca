//! rcache: an application cache over Redis or an embedded in-process store,
//! with a C ABI (`ffi`) and a plain Rust API (`Cache`).

pub mod backend;
mod cache;
mod compute;
mod error;
mod failsafe;
pub mod ffi;
mod glob;
pub mod metrics;
mod near;
mod options;
mod records;
mod recovery;
mod session;
mod stats;

pub use backend::{Expiry, HashFields, MemoryLimits, Remaining, WriteCondition, WriteExpiry};
pub use backend::{SaveOutcome, SessionRecord};
pub use cache::{BackendKind, Cache, MAX_TAGS, RESERVED_SPACE, Ttl};
pub use compute::{ComputeError, ComputeOptions, Computed, OnWaitTimeout, Timeouts};
pub use error::{Error, ErrorKind, Result};
pub use near::{NEAR_DEFAULT_BYTES, NearLimits};
pub use options::{DEFAULT_URL, FailSafe, MAX_TTL, MAX_VALUE_LIMIT, Options};
pub use session::{NewSession, Sessions};
pub use stats::Stats;
