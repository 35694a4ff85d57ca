"""The operator's command line, ``python -m rcache`` (or ``rcache`` once installed).

It opens one Client on ``--url`` (default ``$RCACHE_URL``, else ``memory://``)
with ``--prefix``, runs one command and exits: 0 when it worked, 1 when the
key asked for is missing, 2 for usage errors and for errors reaching or using
the server (the reason is printed on stderr). ``--json`` prints one JSON
object on stdout instead of text.

A ``memory://`` store lives inside one process, so here it is always empty:
the commands are meant for Redis.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from . import _lib
from ._convert import _redact
from .client import Client
from .errors import ConnectionError, InvalidArgumentError, RCacheError, TimeoutError, UnsupportedError, WrongTypeError
from .session import SessionStore

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_MISS", "EXIT_ERROR"]

#: Exit status: the command worked.
EXIT_OK = 0
#: Exit status: the key asked for is missing.
EXIT_MISS = 1
#: Exit status: bad usage, or the server could not be reached or refused the command.
EXIT_ERROR = 2

#: A clear of at least this many keys shows a progress bar (when stderr is a terminal).
PROGRESS_THRESHOLD = 10_000

# Server figures `stats` reports, when the server gives them (Redis, then memory://).
_SERVER_FIELDS = (
    "rcache_backend",
    "redis_version",
    "rcache_version",
    "uptime_in_seconds",
    "connected_clients",
    "used_memory",
    "used_memory_human",
    "used_memory_peak_human",
    "maxmemory",
    "maxmemory_policy",
    "keys",
    "expires",
    "maxkeys",
    "tags",
    "sessions",
    "evicted_keys",
    "expired_keys",
    "keyspace_hits",
    "keyspace_misses",
)

_MEMORY_NOTE = "memory per namespace: not reported (the library exposes no MEMORY USAGE); key counts are"

Handler = Callable[[Client, argparse.Namespace], int]


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _arg_bytes(text: str) -> bytes:
    """A key, tag or pattern from the command line as the bytes typed
    (os.fsencode undoes the surrogateescape decoding of argv)."""
    return os.fsencode(text)


def _text(data: bytes) -> str:
    """Bytes for display and JSON: UTF-8, other bytes as \\xNN escapes."""
    return data.decode("utf-8", "backslashreplace")


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The argument parser of the command line (every command and option)."""
    # The connection options are accepted before or after the command name;
    # after it they override (SUPPRESS leaves the earlier value alone).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--prefix", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--timeout", type=_positive_seconds, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Inspect and maintain an rcache namespace on Redis (or memory://).",
        epilog="Exit status: 0 ok, 1 key not found, 2 usage or connection/server error.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("RCACHE_URL") or "memory://",
        help="redis://[user:password@]host[:port][/db], rediss://, unix:// or memory:// "
        "(default: $RCACHE_URL, else memory://)",
    )
    parser.add_argument("--prefix", default=None, help="the namespace (key prefix) to work on, e.g. myapp:")
    parser.add_argument(
        "--timeout", type=_positive_seconds, default=None, help="connect and response timeout in seconds (default 1)"
    )
    parser.add_argument("--json", action="store_true", default=False, help="print one JSON object on stdout")
    parser.add_argument("--version", action="version", version=f"rcache {_lib.version}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stats = commands.add_parser(
        "stats",
        parents=[common],
        help="this handle's counters, the server's memory and key counts per namespace",
        description="This handle's counters, the server's memory and, for the keys under --prefix, "
        "how many there are per namespace (the first --depth colon-separated parts of the key). "
        "Memory is reported for the whole server only: the library exposes no MEMORY USAGE.",
    )
    stats.add_argument("--depth", type=_positive_int, default=1, help="colon-separated parts naming a namespace (default 1)")
    stats.set_defaults(handler=_stats)

    get = commands.add_parser("get", parents=[common], help="print the value of KEY", description="Print the value stored under KEY (exit 1 if missing).")
    get.add_argument("key", metavar="KEY")
    get.add_argument("--raw", action="store_true", help="write the value's bytes to stdout as they are")
    get.set_defaults(handler=_get)

    invalidate = commands.add_parser(
        "invalidate-tag",
        parents=[common],
        help="make every entry carrying any of the TAGs a miss",
        description="Invalidate tags: every entry stored with any of them reads as a miss, in every process.",
    )
    invalidate.add_argument("tags", metavar="TAG", nargs="+")
    invalidate.set_defaults(handler=_invalidate_tags)

    clear = commands.add_parser(
        "clear",
        parents=[common],
        help="delete the namespace's keys matching --pattern",
        description="Delete the keys under --prefix that match a Redis glob (SCAN and UNLINK in batches, "
        "never KEYS or FLUSHDB). Without --pattern every key of the namespace goes, rcache's tags and "
        "locks included, and --yes is required. A progress bar shows on stderr when it is a terminal "
        f"and at least {PROGRESS_THRESHOLD:,} keys match.",
    )
    clear.add_argument("--pattern", metavar="GLOB", help="glob matched against keys without the prefix (* ? [..] \\)")
    clear.add_argument("--yes", action="store_true", help="confirm clearing the whole namespace (no --pattern)")
    clear.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto (when it is a terminal), always or never",
    )
    clear.set_defaults(handler=_clear)

    sessions = commands.add_parser("sessions", parents=[common], help="session maintenance (purge)")
    session_commands = sessions.add_subparsers(dest="session_command", metavar="SUBCOMMAND", required=True)
    purge = session_commands.add_parser(
        "purge",
        parents=[common],
        help="delete sessions idle for --idle seconds",
        description="Delete the sessions of --namespace not saved or touched for --idle seconds.",
    )
    purge.add_argument("--idle", type=_positive_seconds, required=True, metavar="SECONDS")
    purge.add_argument("--namespace", default="sess:", help="the SessionStore namespace (default sess:)")
    purge.set_defaults(handler=_purge_sessions)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Runs the command line with argv (default sys.argv[1:]); the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    url: str = args.url
    try:
        client = Client(url, prefix=args.prefix or None, connect_timeout=args.timeout, response_timeout=args.timeout)
    except (ConnectionError, TimeoutError) as error:
        return _fail(f"cannot connect to {_redact(url)}: {error.message}")
    except (InvalidArgumentError, UnsupportedError) as error:
        return _fail(f"cannot use --url {_redact(url)}: {error.message}")
    handler: Handler = args.handler
    with client:
        try:
            return handler(client, args)
        except (ConnectionError, TimeoutError) as error:
            return _fail(f"{_redact(url)}: {error.message}")
        except RCacheError as error:
            return _fail(error.message)
        except KeyboardInterrupt:
            print("rcache: interrupted", file=sys.stderr)
            return 130


def _fail(message: str) -> int:
    print(f"rcache: {message}", file=sys.stderr)
    return EXIT_ERROR


def _emit(args: argparse.Namespace, data: Dict[str, Any], text: str) -> None:
    """data as JSON with --json, else text, on stdout."""
    if args.json:
        json.dump(data, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(text)


# --- stats -------------------------------------------------------------------


def _namespace(key: bytes, depth: int) -> str:
    """The first depth colon-separated parts of key, with their colon; "" when
    the key has no colon. The key's last part never counts as a namespace."""
    parts = _text(key).split(":")
    kept = parts[: min(depth, len(parts) - 1)]
    return ":".join(kept) + ":" if kept else ""


def _key_count(info: Dict[str, Any]) -> int:
    """Keys on the server: every Redis database's, or memory://'s entries."""
    databases = [value["keys"] for name, value in info.items() if name.startswith("db") and isinstance(value, dict)]
    if databases:
        return sum(int(keys) for keys in databases)
    return int(info.get("keys", 0))


def _stats(client: Client, args: argparse.Namespace) -> int:
    info = client.server_info()
    keys = client.keys()
    counts: Dict[str, int] = {}
    for key in keys:
        namespace = _namespace(key, args.depth)
        counts[namespace] = counts.get(namespace, 0) + 1
    handle = client.stats()
    backend = "memory" if info.get("rcache_backend") == "memory" else "redis"
    server = {name: info[name] for name in _SERVER_FIELDS if name in info}
    if backend == "redis":
        server["keyspace"] = {name: value for name, value in info.items() if name.startswith("db") and isinstance(value, dict)}
    namespaces: List[Dict[str, Any]] = [{"namespace": name, "keys": count} for name, count in sorted(counts.items())]
    data = {
        "url": _redact(args.url),
        "prefix": args.prefix or "",
        "backend": backend,
        "client": handle,
        "server": server,
        "keys": len(keys),
        "namespaces": namespaces,
        "namespace_memory": None,
        "note": _MEMORY_NOTE,
    }
    lines = [f"rcache {_lib.version} on {_redact(args.url)}, prefix {args.prefix or '(none)'!r}"]
    if backend == "redis":
        lines.append(
            f"server: Redis {info.get('redis_version', '?')}, used memory {info.get('used_memory_human', '?')} "
            f"({info.get('used_memory', '?')} bytes), maxmemory {info.get('maxmemory', '?')} "
            f"({info.get('maxmemory_policy', '?')}), {_key_count(info)} keys in all"
        )
    else:
        lines.append(
            f"server: memory:// of this process (always empty here), used memory {info.get('used_memory', 0)} bytes, "
            f"{info.get('keys', 0)} keys"
        )
    lines.append("this handle: " + ", ".join(f"{name} {value}" for name, value in handle.items()))
    lines.append(f"keys under the prefix: {len(keys)}")
    width = max([len(entry["namespace"] or "(none)") for entry in namespaces] + [9])
    for entry in namespaces:
        lines.append(f"  {str(entry['namespace'] or '(none)'):<{width}}  {entry['keys']}")
    lines.append(_MEMORY_NOTE)
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


# --- get, invalidate-tag -----------------------------------------------------


def _get(client: Client, args: argparse.Namespace) -> int:
    key = _arg_bytes(args.key)
    try:
        found = client.get_with_ttl(key)
    except WrongTypeError:
        return _get_record(client, args, key)
    if found is None:
        if args.json:
            _emit(args, {"key": args.key, "found": False}, "")
        print(f"rcache: {args.key}: not found", file=sys.stderr)
        return EXIT_MISS
    value, ttl = found
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
        return EXIT_OK
    data = {
        "key": args.key,
        "found": True,
        "type": "value",
        "bytes": len(value),
        "ttl": None if ttl < 0 else ttl,
        "value": _text(value),
        "value_base64": base64.b64encode(value).decode("ascii"),
    }
    _emit(args, data, _text(value))
    return EXIT_OK


def _get_record(client: Client, args: argparse.Namespace, key: bytes) -> int:
    """get of a hash record (a session, a hash_set record): its fields."""
    fields = client.hash_get(key)
    if fields is None:  # deleted in between
        print(f"rcache: {args.key}: not found", file=sys.stderr)
        return EXIT_MISS
    if args.raw:
        return _fail(f"{args.key} is a hash record: --raw prints plain values only")
    ttl = client.ttl(key)
    data = {
        "key": args.key,
        "found": True,
        "type": "record",
        "ttl": None if ttl is None or ttl < 0 else ttl,
        "fields": {_text(name): _text(value) for name, value in sorted(fields.items())},
    }
    _emit(args, data, "\n".join(f"{_text(name)}: {_text(value)}" for name, value in sorted(fields.items())))
    return EXIT_OK


def _invalidate_tags(client: Client, args: argparse.Namespace) -> int:
    client.invalidate_tags([_arg_bytes(tag) for tag in args.tags])
    _emit(args, {"invalidated": list(args.tags)}, f"invalidated {len(args.tags)} tag(s): {', '.join(args.tags)}")
    return EXIT_OK


# --- clear -------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar redrawn in place on a terminal stream."""

    def __init__(self, total: int, label: str, stream: TextIO, width: int = 30) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream
        self.width = width

    def show(self, done: int) -> None:
        """Redraws the bar at done out of total."""
        done = min(max(done, 0), self.total)
        filled = self.width * done // self.total
        percent = 100 * done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}%  {done:,}/{self.total:,}")
        self.stream.flush()

    def finish(self, done: int) -> None:
        """Draws the final state and ends the line."""
        self.show(done)
        self.stream.write("\n")
        self.stream.flush()


def _clear(client: Client, args: argparse.Namespace) -> int:
    pattern = None if args.pattern is None else _arg_bytes(args.pattern)
    if pattern is None and not args.yes:
        namespace = f"prefix {args.prefix!r}" if args.prefix else "no prefix: every key of the database"
        return _fail(f"clear without --pattern deletes the whole namespace ({namespace}); add --yes to confirm")
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    deleted = _clear_with_progress(client, pattern, sys.stderr) if show else client.clear(pattern)
    data = {"deleted": deleted, "pattern": args.pattern}
    _emit(args, data, f"deleted {deleted} key(s)")
    return EXIT_OK


def _clear_with_progress(client: Client, pattern: Optional[bytes], stream: TextIO) -> int:
    """client.clear(pattern) with a progress bar on stream when many keys match.

    The library clears in batches server-side in one call (SCAN and UNLINK),
    which is faster than deleting key by key; it runs in a thread while this
    one follows the server's key count (INFO) to draw the bar. Writes by
    others move that count too, so the bar is an estimate; the figure
    returned is the library's own.
    """
    total = len(client.keys(pattern))
    if total < PROGRESS_THRESHOLD:
        return client.clear(pattern)
    before = _key_count(client.server_info())
    outcome: List[Any] = []

    def run() -> None:
        try:
            outcome.append(client.clear(pattern))
        except BaseException as error:  # re-raised in the calling thread
            outcome.append(error)

    worker = threading.Thread(target=run, name="rcache-clear", daemon=True)
    bar = ProgressBar(total, "clearing", stream)
    bar.show(0)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        try:
            bar.show(before - _key_count(client.server_info()))
        except RCacheError:
            pass  # the bar is best effort; the clear reports its own errors
    result = outcome[0]
    if isinstance(result, BaseException):
        stream.write("\n")
        raise result
    bar.finish(total)
    return int(result)


# --- sessions ----------------------------------------------------------------


def _purge_sessions(client: Client, args: argparse.Namespace) -> int:
    purged = SessionStore(client, _arg_bytes(args.namespace)).purge(args.idle)
    data = {"purged": purged, "namespace": args.namespace, "idle": args.idle}
    _emit(args, data, f"purged {purged} session(s) idle for {args.idle:g} s or more in {args.namespace!r}")
    return EXIT_OK
