//! A client's statistics in the Prometheus text exposition format (0.0.4).

use std::fmt::Write;
use std::time::Duration;

use crate::{Cache, Stats};

/// How Prometheus reads a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// A sample's value: a count, or a duration exported in seconds.
#[derive(Clone, Copy, Debug)]
enum Value {
    Count(u64),
    Seconds(Duration),
}

/// One line of the exposition: family name, labels of its own, kind, help, value.
type Sample = (&'static str, &'static [(&'static str, &'static str)], Kind, &'static str, Value);

const ERRORS_HELP: &str = "Failed calls, by kind of failure.";

/// Every statistic as a sample. To export a new field of `Stats`, add a row:
/// the destructuring below does not compile until every field is named.
/// Consecutive rows with the same name form one family (one HELP, one TYPE).
fn samples(stats: &Stats) -> Vec<Sample> {
    use Kind::{Counter, Gauge};
    use Value::{Count, Seconds};
    let Stats {
        hits,
        misses,
        computations,
        lock_waits,
        early_refreshes,
        fail_opens,
        stale_served,
        throttles,
        negative_hits,
        recovery_queue,
        recovery_replays,
        recovery_overflows,
        breaker_trips,
        breaker_skips,
        connection_errors,
        timeout_errors,
        server_errors,
        other_errors,
        latency_p50,
        latency_p99,
        latency_max,
        near_hits,
        near_misses,
        near_invalidations,
        near_evictions,
        near_flushes,
        near_entries,
        near_bytes,
    } = *stats;
    vec![
        ("rcache_hits_total", &[], Counter, "Reads that found a value.", Count(hits)),
        ("rcache_misses_total", &[], Counter, "Reads that found nothing.", Count(misses)),
        (
            "rcache_computations_total",
            &[],
            Counter,
            "Computations run by get-or-compute, early refreshes included.",
            Count(computations),
        ),
        (
            "rcache_lock_waits_total",
            &[],
            Counter,
            "Get-or-compute calls that waited for another caller's computation.",
            Count(lock_waits),
        ),
        (
            "rcache_early_refreshes_total",
            &[],
            Counter,
            "Computations started early (XFetch) while the value was still valid.",
            Count(early_refreshes),
        ),
        ("rcache_fail_opens_total", &[], Counter, "Calls answered without the server because of fail_open.", Count(fail_opens)),
        (
            "rcache_stale_served_total",
            &[],
            Counter,
            "Get-or-compute calls answered by fail-safe with a stale value.",
            Count(stale_served),
        ),
        (
            "rcache_throttles_total",
            &[],
            Counter,
            "Failed computations after which fail-safe throttled the key.",
            Count(throttles),
        ),
        (
            "rcache_negative_hits_total",
            &[],
            Counter,
            "Get-or-compute calls answered \"no value\" by negative caching.",
            Count(negative_hits),
        ),
        (
            "rcache_recovery_queue",
            &[],
            Gauge,
            "Deletes, tag invalidations and clears waiting for the server to come back.",
            Count(recovery_queue),
        ),
        (
            "rcache_recovery_replays_total",
            &[],
            Counter,
            "Removals replayed once the server answered again.",
            Count(recovery_replays),
        ),
        (
            "rcache_recovery_overflows_total",
            &[],
            Counter,
            "Times the recovery queue overflowed and gave way to a clear of the namespace.",
            Count(recovery_overflows),
        ),
        ("rcache_breaker_trips_total", &[], Counter, "Times the circuit breaker opened.", Count(breaker_trips)),
        (
            "rcache_breaker_skips_total",
            &[],
            Counter,
            "Calls the open circuit breaker failed at once, without trying the server.",
            Count(breaker_skips),
        ),
        ("rcache_errors_total", &[("kind", "connection")], Counter, ERRORS_HELP, Count(connection_errors)),
        ("rcache_errors_total", &[("kind", "timeout")], Counter, ERRORS_HELP, Count(timeout_errors)),
        ("rcache_errors_total", &[("kind", "server")], Counter, ERRORS_HELP, Count(server_errors)),
        ("rcache_errors_total", &[("kind", "other")], Counter, ERRORS_HELP, Count(other_errors)),
        (
            "rcache_latency_p50_seconds",
            &[],
            Gauge,
            "Median latency of backend calls (within 19%), 0 before the first.",
            Seconds(latency_p50),
        ),
        (
            "rcache_latency_p99_seconds",
            &[],
            Gauge,
            "99th percentile latency of backend calls (within 19%), 0 before the first.",
            Seconds(latency_p99),
        ),
        (
            "rcache_latency_max_seconds",
            &[],
            Gauge,
            "Longest backend call (within 19%), 0 before the first.",
            Seconds(latency_max),
        ),
        (
            "rcache_near_hits_total",
            &[],
            Counter,
            "Reads the near cache answered (also counted in rcache_hits_total).",
            Count(near_hits),
        ),
        ("rcache_near_misses_total", &[], Counter, "Reads the near cache could not answer.", Count(near_misses)),
        (
            "rcache_near_invalidations_total",
            &[],
            Counter,
            "Changed keys the server reported to the near cache.",
            Count(near_invalidations),
        ),
        (
            "rcache_near_evictions_total",
            &[],
            Counter,
            "Near-cache entries evicted to stay within its bounds.",
            Count(near_evictions),
        ),
        (
            "rcache_near_flushes_total",
            &[],
            Counter,
            "Times the near cache was emptied at once (connection lost, flush, clear).",
            Count(near_flushes),
        ),
        ("rcache_near_entries", &[], Gauge, "Entries the near cache holds.", Count(near_entries)),
        ("rcache_near_bytes", &[], Gauge, "Bytes the near cache holds.", Count(near_bytes)),
    ]
}

/// `text` as a label value: backslash, double quote and newline escaped.
fn escape_label(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// `stats` in the Prometheus text format, every sample labelled
/// `client="<client>"` when `client` is given. Ends with a newline.
pub fn prometheus(stats: &Stats, client: Option<&str>) -> String {
    let client = client.map(escape_label);
    let mut text = String::new();
    let mut family = "";
    for (name, labels, kind, help, value) in samples(stats) {
        if name != family {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            // Help texts are ours: no backslash or newline to escape.
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            family = name;
        }
        let pairs: Vec<String> = client
            .iter()
            .map(|client| format!("client=\"{client}\""))
            .chain(labels.iter().map(|(label, value)| format!("{label}=\"{value}\"")))
            .collect();
        let labels = if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) };
        let _ = match value {
            Value::Count(count) => writeln!(text, "{name}{labels} {count}"),
            // Whole microseconds, as rcache_stats carries them, so both agree.
            Value::Seconds(duration) => writeln!(text, "{name}{labels} {}", duration.as_micros() as f64 / 1e6),
        };
    }
    text
}

impl Cache {
    /// The client's statistics in the Prometheus text format (see `prometheus`).
    pub fn prometheus_metrics(&self, client: Option<&str>) -> String {
        prometheus(&self.stats(), client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Stats {
        Stats {
            hits: 12,
            misses: 3,
            connection_errors: 2,
            other_errors: 1,
            latency_p50: Duration::from_micros(42),
            latency_p99: Duration::from_nanos(1_500_900),
            latency_max: Duration::from_secs(2),
            ..Stats::default()
        }
    }

    #[test]
    fn counters_and_gauges_with_help_and_type() {
        let text = prometheus(&example(), None);
        assert!(text.starts_with(
            "# HELP rcache_hits_total Reads that found a value.\n# TYPE rcache_hits_total counter\nrcache_hits_total 12\n"
        ));
        assert!(text.contains("\nrcache_misses_total 3\n"));
        assert!(text.contains("\n# TYPE rcache_errors_total counter\nrcache_errors_total{kind=\"connection\"} 2\nrcache_errors_total{kind=\"timeout\"} 0\n"));
        assert!(text.contains("\nrcache_errors_total{kind=\"other\"} 1\n"));
        assert!(text.contains("\n# TYPE rcache_latency_p50_seconds gauge\nrcache_latency_p50_seconds 0.000042\n"));
        assert!(text.contains("\nrcache_latency_p99_seconds 0.0015\n"), "{text}");
        assert!(text.contains("\nrcache_latency_max_seconds 2\n"));
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches("# TYPE rcache_errors_total").count(), 1);
        assert_eq!(text.matches("# HELP ").count(), text.matches("# TYPE ").count());
    }

    #[test]
    fn every_sample_carries_the_client_label_first() {
        let text = prometheus(&example(), Some("web"));
        assert!(text.contains("\nrcache_hits_total{client=\"web\"} 12\n"));
        assert!(text.contains("\nrcache_errors_total{client=\"web\",kind=\"server\"} 0\n"));
        let samples = text.lines().filter(|line| !line.starts_with('#'));
        assert!(samples.clone().all(|line| line.contains("{client=\"web\"")));
        assert_eq!(samples.count(), super::samples(&example()).len());
    }

    #[test]
    fn label_values_are_escaped() {
        let text = prometheus(&Stats::default(), Some("a\"b\\c\nd"));
        assert!(text.contains("rcache_hits_total{client=\"a\\\"b\\\\c\\nd\"} 0\n"), "{text}");
        // The escaped newline keeps every sample on one line.
        let rows = super::samples(&Stats::default());
        let mut families: Vec<&str> = rows.iter().map(|row| row.0).collect();
        families.dedup();
        assert_eq!(text.lines().count(), families.len() * 2 + rows.len());
    }
}
