"""Loads librcache and declares the C signatures; the only module that knows about ctypes types.

Search order for the shared library:

1. the ``RCACHE_LIB`` environment variable (a path to the ``.so``); when it is
   set, nothing else is tried, so a typo fails loudly instead of silently
   loading another copy;
2. ``librcache.so`` next to this package's files (a wheel that bundles it);
3. the repository's build output, ``../../target/release/librcache.so``
   relative to the package directory (a checkout after ``cargo build --release``);
4. the system search path: ``ctypes.util.find_library("rcache")``, then plain
   ``librcache.so`` (``LD_LIBRARY_PATH``, ldconfig cache).

After loading, ``rcache_abi_version()`` must equal :data:`ABI_VERSION`, else
ImportError.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any, Iterator, Optional, Tuple
from ctypes import POINTER, Structure, c_char_p, c_int, c_int64, c_size_t, c_uint32, c_uint64, c_void_p

#: The ABI version (``RCACHE_ABI_VERSION`` in rcache.h) these bindings were written for.
ABI_VERSION = 2

LIBRARY_NAME = "librcache.so"

# rcache_status values (enum rcache_status in rcache.h).
STATUS_OK = 0
STATUS_MISS = 1
STATUS_INVALID_ARGUMENT = 2
STATUS_CONNECTION = 3
STATUS_TIMEOUT = 4
STATUS_SERVER = 5
STATUS_WRONG_TYPE = 6
STATUS_TOO_LARGE = 7
STATUS_FORKED = 8
STATUS_UNSUPPORTED = 9
STATUS_PANIC = 10
STATUS_CORRUPT = 11
STATUS_COMPUTE_FAILED = 12
STATUS_CONFLICT = 13
STATUS_UNKNOWN_OUTCOME = 14
STATUS_STALE = 15
STATUS_NO_VALUE = 16
STATUS_LAST = STATUS_NO_VALUE
# rcache_session_load: leave the expiry alone (RCACHE_SESSION_NO_SLIDE).
SESSION_NO_SLIDE = -2

# rcache_queue_new: worker threads when 0 is passed, and the most allowed.
QUEUE_DEFAULT_WORKERS = 8
QUEUE_MAX_WORKERS = 256

# Per-call TTL conventions (RCACHE_TTL_* in rcache.h).
TTL_NONE = -1
TTL_DEFAULT = 0
TTL_KEEP = -2

# rcache_client_hash_set conditions (enum rcache_write_condition in rcache.h).
WRITE_ALWAYS = 0
WRITE_IF_EXISTS = 1
WRITE_IF_ABSENT = 2

# Most tags one entry may carry, and so one call may name (RCACHE_MAX_TAGS in rcache.h).
MAX_TAGS = 256

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
SIZE_MAX = 2 ** (8 * ctypes.sizeof(c_size_t)) - 1


class rcache_options(Structure):
    """struct rcache_options; a zeroed struct means "all library defaults"."""

    _fields_ = [
        ("connect_timeout_ms", c_uint32),
        ("response_timeout_ms", c_uint32),
        ("key_prefix", c_char_p),
        ("default_ttl_ms", c_int64),
        ("max_key_bytes", c_size_t),
        ("max_value_bytes", c_size_t),
        ("memory_max_entries", c_size_t),
        ("memory_max_bytes", c_size_t),
        ("fail_open", ctypes.c_bool),
        ("breaker_threshold", c_uint32),
        ("breaker_cooldown_ms", c_uint32),
    ]


class rcache_stats(Structure):
    """struct rcache_stats: a client's counters so far."""

    _fields_ = [
        (name, c_uint64)
        for name in (
            "hits", "misses", "computations", "lock_waits", "early_refreshes", "fail_opens",
            "breaker_trips", "breaker_skips", "connection_errors", "timeout_errors", "server_errors",
            "other_errors", "latency_p50_us", "latency_p99_us", "latency_max_us",
            "near_hits", "near_misses", "near_invalidations", "near_evictions", "near_flushes",
            "near_entries", "near_bytes",
        )
    ]


class rcache_buffer(Structure):
    """struct rcache_buffer: library-owned bytes; release with rcache_buffer_free.

    ``data`` reads back as an int address, or None for an empty (miss) buffer.
    """

    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class rcache_bytes(Structure):
    """struct rcache_bytes: borrowed bytes.

    ``data`` is declared c_char_p (same layout as ``const uint8_t *``) so a
    Python ``bytes`` object can be assigned without copying; ctypes keeps a
    reference to it in the struct, and the length travels separately, so
    embedded NULs are fine.
    """

    _fields_ = [("data", c_char_p), ("len", c_size_t)]


class rcache_compute_options(Structure):
    """struct rcache_compute_options; zeroed fields take the library defaults."""

    _fields_ = [
        ("ttl_ms", c_int64),
        ("tags", POINTER(rcache_bytes)),
        ("tag_count", c_size_t),
        ("lock_lease_ms", c_uint32),
        ("wait_timeout_ms", c_uint32),
        ("fail_on_wait_timeout", ctypes.c_bool),
        ("early_refresh_beta", ctypes.c_double),
    ]


class rcache_failsafe_options(Structure):
    """struct rcache_failsafe_options; all zero turns fail-safe and negative caching off."""

    _fields_ = [("max_stale_ms", c_uint32), ("throttle_ms", c_uint32), ("negative_ttl_ms", c_uint32)]


class rcache_timeout_options(Structure):
    """struct rcache_timeout_options; 0 turns a timeout off."""

    _fields_ = [("soft_timeout_ms", c_uint32), ("hard_timeout_ms", c_uint32)]


class rcache_failsafe_stats(Structure):
    """struct rcache_failsafe_stats: fail-safe, negative caching and recovery counters."""

    _fields_ = [
        (name, c_uint64)
        for name in (
            "stale_served", "throttles", "negative_hits", "recovery_queue", "recovery_replays", "recovery_overflows",
        )
    ]


class rcache_compute_output(Structure):
    """Opaque struct rcache_compute_output, handed to compute callbacks."""


#: bool (*rcache_compute_fn)(void *user_data, rcache_compute_output *output)
compute_fn = ctypes.CFUNCTYPE(ctypes.c_bool, c_void_p, POINTER(rcache_compute_output))

#: void (*rcache_free_fn)(void *user_data)
free_fn = ctypes.CFUNCTYPE(None, c_void_p)


class rcache_session_new(Structure):
    """struct rcache_session_new: a new session's id and secret (NUL-terminated hex)."""

    _fields_ = [("id", ctypes.c_char * 33), ("secret", ctypes.c_char * 33)]


class rcache_session_owner(Structure):
    """struct rcache_session_owner: a lock owner token (NUL-terminated hex)."""

    _fields_ = [("token", ctypes.c_char * 33)]


class rcache_completion(Structure):
    """struct rcache_completion: one finished call from rcache_queue_poll;
    release what it holds with rcache_completion_free."""

    _fields_ = [
        ("token", c_uint64),
        ("status", c_int),
        ("value", rcache_buffer),
        ("record", c_void_p),
        ("session", rcache_session_new),
        ("version", c_uint64),
        ("message", c_char_p),
    ]


class rcache_client(Structure):
    """Opaque struct rcache_client; only pointers to it are used."""


client_p = POINTER(rcache_client)
buffer_p = POINTER(rcache_buffer)
buffer_pp = POINTER(buffer_p)
bytes_p = POINTER(rcache_bytes)
int64_p = POINTER(c_int64)
uint64_p = POINTER(c_uint64)

# Keys and values are declared c_char_p rather than POINTER(c_uint8): ctypes
# then passes a bytes object's own buffer, without a copy.
_SIGNATURES = {
    "rcache_version": (c_char_p, []),
    "rcache_abi_version": (c_uint32, []),
    "rcache_options_default": (rcache_options, []),
    "rcache_client_connect": (c_int, [c_char_p, POINTER(rcache_options), POINTER(client_p)]),
    "rcache_client_free": (None, [client_p]),
    "rcache_client_get": (c_int, [client_p, c_char_p, c_size_t, buffer_p]),
    "rcache_client_near_get": (c_int, [client_p, c_char_p, c_size_t, POINTER(ctypes.c_uint8), c_size_t, POINTER(c_size_t)]),
    "rcache_client_get_with_ttl": (c_int, [client_p, c_char_p, c_size_t, buffer_p, int64_p]),
    "rcache_client_set": (c_int, [client_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64]),
    "rcache_client_compare_and_set": (
        c_int,
        [client_p, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p, c_size_t, c_int64],
    ),
    "rcache_client_delete": (c_int, [client_p, c_char_p, c_size_t]),
    "rcache_client_exists": (c_int, [client_p, c_char_p, c_size_t]),
    "rcache_client_ttl": (c_int, [client_p, c_char_p, c_size_t, int64_p]),
    "rcache_client_expire": (c_int, [client_p, c_char_p, c_size_t, c_int64]),
    "rcache_client_get_many": (c_int, [client_p, bytes_p, c_size_t, buffer_p]),
    "rcache_client_set_many": (c_int, [client_p, bytes_p, bytes_p, c_size_t, c_int64]),
    "rcache_client_incr": (c_int, [client_p, c_char_p, c_size_t, c_int64, c_int64, int64_p]),
    "rcache_client_set_tagged": (
        c_int,
        [client_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64, bytes_p, c_size_t],
    ),
    "rcache_client_add_tags": (c_int, [client_p, c_char_p, c_size_t, bytes_p, c_size_t]),
    "rcache_client_invalidate_tags": (c_int, [client_p, bytes_p, c_size_t]),
    # A NULL pattern (None) means the whole namespace; deleted_out may be NULL.
    "rcache_client_clear": (c_int, [client_p, c_char_p, c_size_t, uint64_p]),
    "rcache_client_stats": (c_int, [client_p, POINTER(rcache_stats)]),
    # A NULL label (None) means no client="..." label; the text comes back in the buffer.
    "rcache_client_metrics": (c_int, [client_p, c_char_p, buffer_p]),
    # A NULL pattern (None) means every key; the array comes back in *keys_out.
    "rcache_client_keys": (c_int, [client_p, c_char_p, c_size_t, buffer_pp, POINTER(c_size_t)]),
    "rcache_client_server_info": (c_int, [client_p, buffer_p]),
    "rcache_client_lock": (c_int, [client_p, c_char_p, c_size_t, c_char_p, c_size_t, c_uint32]),
    "rcache_client_extend_lock": (c_int, [client_p, c_char_p, c_size_t, c_char_p, c_size_t, c_uint32]),
    "rcache_client_unlock": (c_int, [client_p, c_char_p, c_size_t, c_char_p, c_size_t]),
    "rcache_client_hash_get": (c_int, [client_p, c_char_p, c_size_t, buffer_pp, buffer_pp, POINTER(c_size_t)]),
    # The condition is an int in C too: one of WRITE_*.
    "rcache_client_hash_set": (c_int, [client_p, c_char_p, c_size_t, bytes_p, bytes_p, c_size_t, c_int64, c_int]),
    "rcache_compute_options_default": (rcache_compute_options, []),
    "rcache_compute_output_set": (c_int, [POINTER(rcache_compute_output), c_char_p, c_size_t]),
    "rcache_compute_output_fail": (c_int, [POINTER(rcache_compute_output), c_char_p]),
    "rcache_client_get_or_compute": (
        c_int,
        [client_p, c_char_p, c_size_t, POINTER(rcache_compute_options), compute_fn, c_void_p, buffer_p],
    ),
    "rcache_compute_output_set_none": (c_int, [POINTER(rcache_compute_output)]),
    "rcache_client_get_or_compute_failsafe": (
        c_int,
        [
            client_p, c_char_p, c_size_t, POINTER(rcache_compute_options), POINTER(rcache_failsafe_options),
            compute_fn, c_void_p, buffer_p,
        ],
    ),
    "rcache_client_get_or_compute_timed": (
        c_int,
        [
            client_p, c_char_p, c_size_t, POINTER(rcache_compute_options), POINTER(rcache_failsafe_options),
            POINTER(rcache_timeout_options), compute_fn, c_void_p, free_fn, buffer_p,
        ],
    ),
    "rcache_client_failsafe_stats": (c_int, [client_p, POINTER(rcache_failsafe_stats)]),
    "rcache_client_set_ttl_jitter": (c_int, [client_p, c_uint32]),
    "rcache_session_store_open": (c_int, [client_p, c_char_p, c_size_t, POINTER(c_void_p)]),
    "rcache_session_store_free": (None, [c_void_p]),
    "rcache_session_create": (c_int, [c_void_p, bytes_p, bytes_p, c_size_t, c_int64, POINTER(rcache_session_new)]),
    "rcache_session_load": (
        c_int,
        [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64, POINTER(c_void_p)],
    ),
    "rcache_session_save": (
        c_int,
        [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_uint64, bytes_p, bytes_p, c_size_t, bytes_p, c_size_t,
         c_int64, uint64_p],
    ),
    "rcache_session_touch": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64]),
    "rcache_session_destroy": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t]),
    "rcache_session_purge": (c_int, [c_void_p, c_uint64, uint64_p]),
    "rcache_session_lock": (
        c_int,
        [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_uint32, POINTER(rcache_session_owner)],
    ),
    "rcache_session_unlock": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p]),
    "rcache_session_record_version": (c_uint64, [c_void_p]),
    "rcache_session_record_touched_ms": (c_uint64, [c_void_p]),
    "rcache_session_record_field_count": (c_size_t, [c_void_p]),
    "rcache_session_record_field": (c_int, [c_void_p, c_size_t, POINTER(rcache_bytes), POINTER(rcache_bytes)]),
    "rcache_session_record_free": (None, [c_void_p]),
    # Completion queue: the queue handle is an opaque pointer, like the session store.
    "rcache_queue_new": (c_int, [client_p, c_uint32, POINTER(c_void_p)]),
    "rcache_queue_fd": (c_int, [c_void_p]),
    "rcache_queue_poll": (c_int, [c_void_p, POINTER(rcache_completion), c_size_t, POINTER(c_size_t)]),
    "rcache_completion_free": (None, [POINTER(rcache_completion)]),
    "rcache_queue_free": (None, [c_void_p]),
    "rcache_queue_submit_get": (c_int, [c_void_p, c_uint64, c_char_p, c_size_t]),
    "rcache_queue_submit_set": (c_int, [c_void_p, c_uint64, c_char_p, c_size_t, c_char_p, c_size_t, c_int64]),
    "rcache_queue_submit_set_tagged": (
        c_int,
        [c_void_p, c_uint64, c_char_p, c_size_t, c_char_p, c_size_t, c_int64, bytes_p, c_size_t],
    ),
    "rcache_queue_submit_invalidate_tags": (c_int, [c_void_p, c_uint64, bytes_p, c_size_t]),
    "rcache_queue_submit_delete": (c_int, [c_void_p, c_uint64, c_char_p, c_size_t]),
    "rcache_queue_submit_session_create": (
        c_int,
        [c_void_p, c_uint64, c_char_p, c_size_t, bytes_p, bytes_p, c_size_t, c_int64],
    ),
    "rcache_queue_submit_session_load": (
        c_int,
        [c_void_p, c_uint64, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p, c_size_t, c_int64],
    ),
    "rcache_queue_submit_session_save": (
        c_int,
        [c_void_p, c_uint64, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p, c_size_t, c_uint64,
         bytes_p, bytes_p, c_size_t, bytes_p, c_size_t, c_int64],
    ),
    "rcache_queue_submit_session_destroy": (
        c_int,
        [c_void_p, c_uint64, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p, c_size_t],
    ),
    "rcache_buffer_free": (None, [buffer_p]),
    "rcache_buffers_free": (None, [buffer_p, c_size_t]),
    "rcache_buffer_array_free": (None, [buffer_p, c_size_t]),
    "rcache_last_error": (c_char_p, []),
    # The C parameter is an enum; pass only values 0..STATUS_LAST (see status_name).
    "rcache_status_name": (c_char_p, [c_int]),
}


def _candidates() -> Iterator[Tuple[str, str]]:
    """(description, path-or-name) pairs in search order, produced lazily:
    find_library runs helper programs, so it is tried only when needed."""
    explicit = os.environ.get("RCACHE_LIB")
    if explicit:
        yield "RCACHE_LIB", explicit
        return
    package_dir = os.path.dirname(os.path.abspath(__file__))
    yield "next to the package", os.path.join(package_dir, LIBRARY_NAME)
    # bindings/python/rcache -> the checkout's root.
    root = os.path.normpath(os.path.join(package_dir, "..", "..", ".."))
    yield "repository build output", os.path.join(root, "target", "release", LIBRARY_NAME)
    found = ctypes.util.find_library("rcache")
    if found:
        yield "ctypes.util.find_library", found
    yield "system search path", LIBRARY_NAME


def _load() -> Tuple[ctypes.CDLL, str]:
    tried = []
    for origin, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} ({origin}): no such file")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as error:
            tried.append(f"{path} ({origin}): {error}")
    raise ImportError(
        "rcache: cannot load the native library librcache.so. Tried:\n  "
        + "\n  ".join(tried)
        + "\nBuild it with `cargo build --release` in the rcache checkout, or set "
        "RCACHE_LIB to the path of librcache.so."
    )


def _declare(lib: ctypes.CDLL, path: str) -> None:
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            function = getattr(lib, name)
        except AttributeError:
            raise ImportError(f"rcache: {path} does not export {name}; it is not a compatible librcache") from None
        function.restype = restype
        function.argtypes = argtypes


lib, path = _load()
_declare(lib, path)

# rcache_client_near_get never waits for I/O, so it is also reached through a
# ctypes.PyDLL handle, which keeps the interpreter lock during the call: a
# near-cache hit then costs no release and retake of the lock, for which
# threads would queue. Declared without argtypes on purpose: ctypes then
# converts the arguments in C instead of calling each type's from_param,
# which halves the cost of the call. Callers pass every argument as an
# object of its exact C type (the client pointer, the key as bytes,
# c_size_t lengths, pointers to the buffers), never a bare int. None where
# ctypes has no PyDLL (PyPy): Clients there read near hits the usual way.
near_get: Any = None
if hasattr(ctypes, "PyDLL"):
    near_get = ctypes.PyDLL(path).rcache_client_near_get
    near_get.restype = c_int


def _keeping_lock(name: str) -> Any:
    """The function name through PyDLL (the interpreter lock kept during the
    call), declared as in _SIGNATURES; lib's where there is no PyDLL. Only for
    functions that never wait."""
    if not hasattr(ctypes, "PyDLL"):
        return getattr(lib, name)
    function = getattr(ctypes.PyDLL(path), name)
    function.restype, function.argtypes = _SIGNATURES[name]
    return function


# Freeing library-owned buffers never waits either: kept under the lock, so a
# get releases the lock once (for its I/O) rather than twice, and a thread
# that frees a buffer does not queue behind the others for the lock.
buffer_free = _keeping_lock("rcache_buffer_free")
buffers_free = _keeping_lock("rcache_buffers_free")
buffer_array_free = _keeping_lock("rcache_buffer_array_free")

abi_version: int = lib.rcache_abi_version()
if abi_version != ABI_VERSION:
    raise ImportError(
        f"rcache: {path} has ABI version {abi_version}, but these bindings need ABI version "
        f"{ABI_VERSION}; install matching bindings or point RCACHE_LIB at a matching librcache.so"
    )

version: str = lib.rcache_version().decode("ascii")

# Status names, read once: rcache_status_name must not see values outside the enum.
STATUS_NAMES: Tuple[str, ...] = tuple(lib.rcache_status_name(status).decode("ascii") for status in range(STATUS_LAST + 1))


def status_name(status: int) -> str:
    """The enumerator name of a status int, e.g. "RCACHE_STATUS_MISS"."""
    if 0 <= status <= STATUS_LAST:
        return STATUS_NAMES[status]
    return f"RCACHE_STATUS_UNKNOWN({status})"


def last_error() -> str:
    """The reason of the last failed call on this thread (see rcache_last_error)."""
    message: Optional[bytes] = lib.rcache_last_error()
    return message.decode("utf-8", "replace") if message else ""
