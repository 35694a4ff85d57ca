"""rcache.metrics.prometheus: the text parses as the Prometheus exposition
format (0.0.4) and its values are those of Client.stats()."""

import re

import pytest

import rcache
from rcache import metrics

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
HELP_LINE = re.compile(rf"# HELP ({NAME}) (.+)")
TYPE_LINE = re.compile(rf"# TYPE ({NAME}) (counter|gauge)")
SAMPLE_LINE = re.compile(rf"({NAME})(?:\{{({LABEL}(?:,{LABEL})*)\}})? (\S+)")
LABEL_PAIR = re.compile(rf'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')

# Every field of Client.stats() and the sample it becomes.
FIELDS = {
    "hits": ("rcache_hits_total", ()),
    "misses": ("rcache_misses_total", ()),
    "computations": ("rcache_computations_total", ()),
    "lock_waits": ("rcache_lock_waits_total", ()),
    "early_refreshes": ("rcache_early_refreshes_total", ()),
    "fail_opens": ("rcache_fail_opens_total", ()),
    "stale_served": ("rcache_stale_served_total", ()),
    "throttles": ("rcache_throttles_total", ()),
    "negative_hits": ("rcache_negative_hits_total", ()),
    "recovery_queue": ("rcache_recovery_queue", ()),
    "recovery_replays": ("rcache_recovery_replays_total", ()),
    "recovery_overflows": ("rcache_recovery_overflows_total", ()),
    "breaker_trips": ("rcache_breaker_trips_total", ()),
    "breaker_skips": ("rcache_breaker_skips_total", ()),
    "connection_errors": ("rcache_errors_total", (("kind", "connection"),)),
    "timeout_errors": ("rcache_errors_total", (("kind", "timeout"),)),
    "server_errors": ("rcache_errors_total", (("kind", "server"),)),
    "other_errors": ("rcache_errors_total", (("kind", "other"),)),
    "latency_p50_us": ("rcache_latency_p50_seconds", ()),
    "latency_p99_us": ("rcache_latency_p99_seconds", ()),
    "latency_max_us": ("rcache_latency_max_seconds", ()),
    "near_hits": ("rcache_near_hits_total", ()),
    "near_misses": ("rcache_near_misses_total", ()),
    "near_invalidations": ("rcache_near_invalidations_total", ()),
    "near_evictions": ("rcache_near_evictions_total", ()),
    "near_flushes": ("rcache_near_flushes_total", ()),
    "near_entries": ("rcache_near_entries", ()),
    "near_bytes": ("rcache_near_bytes", ()),
}


def unescape(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text):
    """{(name, ((label, value), ...)): float} of a text, asserting that every
    line is valid and every family has one HELP and one TYPE line, before its
    samples, which stay together."""
    assert text.endswith("\n")
    samples = {}
    families = {}  # name -> {"help": n, "type": kind, "samples": n}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("#"):
            match = HELP_LINE.fullmatch(line) or TYPE_LINE.fullmatch(line)
            assert match, f"malformed comment line {line!r}"
            name, detail = match.groups()
            family = families.setdefault(name, {"help": 0, "type": None, "samples": 0})
            assert family["samples"] == 0, f"{line!r} after samples of {name}"
            if line.startswith("# HELP"):
                assert family["help"] == 0, f"second HELP for {name}"
                family["help"] = 1
            else:
                assert family["help"] == 1 and family["type"] is None, f"TYPE of {name} out of order"
                family["type"] = detail
            current = name
            continue
        match = SAMPLE_LINE.fullmatch(line)
        assert match, f"malformed sample line {line!r}"
        name, labels, value = match.groups()
        assert name == current and families[name]["type"], f"sample of {name} outside its family"
        families[name]["samples"] += 1
        number = float(value)
        assert number >= 0 and number == number and number != float("inf"), line
        if families[name]["type"] == "counter":
            assert name.endswith("_total") and number == int(number), line
        pairs = tuple((key, unescape(raw)) for key, raw in LABEL_PAIR.findall(labels or ""))
        assert (name, pairs) not in samples, f"duplicate sample {line!r}"
        samples[(name, pairs)] = number
    assert all(family["samples"] for family in families.values())
    return samples


def assert_matches_stats(samples, stats, label=None):
    client = (("client", label),) if label else ()
    assert len(samples) == len(stats) == len(FIELDS)
    for field, (name, labels) in FIELDS.items():
        value = samples[(name, client + labels)]
        if field.endswith("_us"):
            assert round(value * 1e6) == stats[field], field
        else:
            assert value == stats[field], field


def exercise(client):
    client.set("a", b"1", ttl=60)
    client.get("a")
    client.get("a")
    client.get("missing")
    client.get_or_set("computed", lambda: b"x", ttl=60)
    client.set("text", b"not a number")
    with pytest.raises(rcache.WrongTypeError):
        client.incr("text")


def test_a_new_client_reports_zeros(client):
    samples = parse(metrics.prometheus(client))
    assert_matches_stats(samples, client.stats())
    assert samples[("rcache_hits_total", ())] == 0


def test_values_follow_stats(client):
    exercise(client)
    stats = client.stats()
    assert stats["hits"] >= 2 and stats["misses"] >= 1 and stats["computations"] == 1
    assert stats["other_errors"] == 1 and stats["latency_max_us"] > 0
    assert_matches_stats(parse(metrics.prometheus(client)), stats)
    assert_matches_stats(parse(metrics.prometheus(client, label="web")), client.stats(), "web")


def test_every_sample_carries_the_label(client):
    text = metrics.prometheus(client, "web")
    assert "\nrcache_errors_total{client=\"web\",kind=\"timeout\"} 0\n" in text
    for line in text.splitlines():
        if not line.startswith("#"):
            assert line.startswith(line.split("{")[0] + '{client="web"')
    assert metrics.prometheus(client, "") == metrics.prometheus(client, None)


def test_labels_are_escaped(client):
    label = 'we"b\\1\nsecond, {x} caf\u00e9'
    text = metrics.prometheus(client, label=label)
    assert 'rcache_hits_total{client="we\\"b\\\\1\\nsecond, {x} caf\u00e9"} 0\n' in text
    assert_matches_stats(parse(text), client.stats(), label)


def test_bad_labels(client):
    with pytest.raises(rcache.InvalidArgumentError):
        metrics.prometheus(client, "a\0b")
    with pytest.raises(TypeError):
        metrics.prometheus(client, b"web")
    with pytest.raises(UnicodeEncodeError):
        metrics.prometheus(client, "\udc80")


def test_closed_client(make_client):
    client = make_client()
    client.close()
    with pytest.raises(rcache.ClosedError):
        metrics.prometheus(client)


def test_content_type():
    assert metrics.CONTENT_TYPE.startswith("text/plain; version=0.0.4")
