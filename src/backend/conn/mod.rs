//! The ground floor every Redis topology stands on: how values and errors
//! cross the wire, tagged entries read in Rust, the lane pool, the circuit
//! breaker, and the retry table.

pub(crate) mod breaker;
pub(crate) mod envelope;
pub(crate) mod lanes;
pub mod retry;
pub(crate) mod script;
pub(crate) mod wire;
