//! The ground floor every Redis topology stands on: how values and errors
//! cross the wire, the circuit breaker, and the retry table.

pub(crate) mod breaker;
pub(crate) mod envelope;
pub mod retry;
pub(crate) mod wire;
