//! The ground floor every Redis topology stands on: how values and errors
//! cross the wire, tagged entries read in Rust, the connections (blocking
//! ones to one server, lanes of multiplexed ones for a Cluster), the circuit
//! breaker, and the retry table.

pub(crate) mod breaker;
pub(crate) mod envelope;
pub(crate) mod lanes;
pub(crate) mod pool;
pub mod retry;
pub(crate) mod script;
pub(crate) mod wire;
