//! Statistics in the Prometheus text format through the C API.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CStr, c_char};

use super::boundary::{guard, out_param};
use super::client::rcache_client;
use super::status::{Failure, rcache_status};
use super::types::rcache_buffer;

/// Renders every statistic of `rcache_client_stats` in the Prometheus text
/// exposition format (version 0.0.4) into `*text_out`: UTF-8 text of `len`
/// bytes ending in a newline, not NUL-terminated, to be released with
/// `rcache_buffer_free`. Each family has its `# HELP` and `# TYPE` lines;
/// counters are `rcache_<field>_total` (the four error fields are
/// `rcache_errors_total{kind="connection|timeout|server|other"}`), latencies
/// are gauges in seconds (`rcache_latency_p50_seconds`, `..._p99_...`,
/// `..._max_...`). `label`, a NUL-terminated UTF-8 string, is added to every
/// sample as `client="<label>"` (escaped) to tell handles apart; NULL or `""`
/// for none. The text describes one handle: serve it as a whole
/// (`Content-Type: text/plain; version=0.0.4`), not concatenated with another's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rcache_client_metrics(
    client: *const rcache_client,
    label: *const c_char,
    text_out: *mut rcache_buffer,
) -> rcache_status {
    guard(|| {
        // SAFETY: pointer arguments as documented on the function.
        let (cache, text_out) = unsafe { (rcache_client::cache(client)?, out_param(text_out, "text_out")?) };
        let label = match label.is_null() {
            true => None,
            // SAFETY: a non-NULL label is NUL-terminated, as documented.
            false => Some(unsafe { CStr::from_ptr(label) }.to_str().map_err(|_| Failure::invalid("label is not UTF-8"))?),
        };
        let text = cache.prometheus_metrics(label.filter(|label| !label.is_empty()));
        *text_out = rcache_buffer::from_vec(text.into_bytes());
        Ok(rcache_status::RCACHE_STATUS_OK)
    })
}
