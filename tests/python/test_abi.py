"""The ctypes declarations match include/rcache.h, checked with a C compiler."""

import ctypes
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from rcache import _lib

HEADER = ROOT / "include" / "rcache.h"

STATUSES = [
    "OK", "MISS", "INVALID_ARGUMENT", "CONNECTION", "TIMEOUT", "SERVER",
    "WRONG_TYPE", "TOO_LARGE", "FORKED", "UNSUPPORTED", "PANIC", "CORRUPT", "COMPUTE_FAILED", "CONFLICT",
    "UNKNOWN_OUTCOME", "STALE", "NO_VALUE",
]

# Each prototype in the header: return type, name, parameter list.
PROTOTYPE = re.compile(r"^([A-Za-z_][\w \t*]*?)\s*\b(rcache_\w+)\(([^)]*)\);", re.MULTILINE)


def test_every_header_function_is_declared():
    declared = set(re.findall(r"\b(rcache_\w+)\(", HEADER.read_text()))
    assert declared == set(_lib._SIGNATURES)


def test_parameter_counts_and_void_returns_match_the_header():
    prototypes = PROTOTYPE.findall(HEADER.read_text())
    assert {name for _, name, _ in prototypes} == set(_lib._SIGNATURES)
    for returns, name, parameters in prototypes:
        restype, argtypes = _lib._SIGNATURES[name]
        count = 0 if parameters.strip() == "void" else len(parameters.split(","))
        assert len(argtypes) == count, name
        assert (restype is None) == (returns.strip() == "void"), name


def test_status_names():
    for value, name in enumerate(STATUSES):
        assert getattr(_lib, "STATUS_" + name) == value
        assert _lib.status_name(value) == "RCACHE_STATUS_" + name
    assert _lib.STATUS_LAST == len(STATUSES) - 1
    assert "UNKNOWN" in _lib.status_name(len(STATUSES))
    assert "UNKNOWN" in _lib.status_name(99)


def test_options_default():
    options = _lib.lib.rcache_options_default()
    assert options.connect_timeout_ms == 1000
    assert options.response_timeout_ms == 1000
    assert options.key_prefix is None
    assert options.default_ttl_ms == 0
    assert options.max_key_bytes == 64 * 1024
    assert options.max_value_bytes == 64 * 1024 * 1024
    assert options.memory_max_entries == 1_000_000
    assert options.memory_max_bytes == 256 * 1024 * 1024


def test_layout_matches_the_header(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    fields = [name for name, _ in _lib.rcache_options._fields_]
    completion_fields = [name for name, _ in _lib.rcache_completion._fields_]
    lines = [
        '#include <stdio.h>',
        '#include <stddef.h>',
        '#include "rcache.h"',
        'int main(void) {',
        '  printf("abi %d\\n", RCACHE_ABI_VERSION);',
        '  printf("ttl_none %d\\n", RCACHE_TTL_NONE);',
        '  printf("ttl_default %d\\n", RCACHE_TTL_DEFAULT);',
        '  printf("ttl_keep %d\\n", RCACHE_TTL_KEEP);',
        '  printf("write_always %d\\n", (int)RCACHE_WRITE_ALWAYS);',
        '  printf("write_if_exists %d\\n", (int)RCACHE_WRITE_IF_EXISTS);',
        '  printf("write_if_absent %d\\n", (int)RCACHE_WRITE_IF_ABSENT);',
        '  printf("max_tags %d\\n", RCACHE_MAX_TAGS);',
        '  printf("queue_default_workers %d\\n", RCACHE_QUEUE_DEFAULT_WORKERS);',
        '  printf("queue_max_workers %d\\n", RCACHE_QUEUE_MAX_WORKERS);',
        '  printf("sizeof_completion %zu\\n", sizeof(rcache_completion));',
        '  printf("sizeof_status %zu\\n", sizeof(rcache_status));',
        '  printf("sizeof_options %zu\\n", sizeof(rcache_options));',
        '  printf("sizeof_buffer %zu\\n", sizeof(rcache_buffer));',
        '  printf("sizeof_bytes %zu\\n", sizeof(rcache_bytes));',
        '  printf("buffer.len %zu\\n", offsetof(rcache_buffer, len));',
        '  printf("bytes.len %zu\\n", offsetof(rcache_bytes, len));',
    ]
    lines += [f'  printf("options.{f} %zu\\n", offsetof(rcache_options, {f}));' for f in fields]
    lines += [f'  printf("completion.{f} %zu\\n", offsetof(rcache_completion, {f}));' for f in completion_fields]
    lines += [f'  printf("status.{s} %d\\n", (int)RCACHE_STATUS_{s});' for s in STATUSES]
    lines += ["  return 0;", "}"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines) + "\n")
    program = tmp_path / "layout"
    subprocess.run([compiler, "-Wall", "-Werror", "-I", str(ROOT / "include"), "-o", str(program), str(source)], check=True)
    out = dict(line.split() for line in subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.splitlines())

    assert int(out["abi"]) == _lib.ABI_VERSION
    assert int(out["ttl_none"]) == _lib.TTL_NONE
    assert int(out["ttl_default"]) == _lib.TTL_DEFAULT
    assert int(out["ttl_keep"]) == _lib.TTL_KEEP
    assert int(out["write_always"]) == _lib.WRITE_ALWAYS
    assert int(out["write_if_exists"]) == _lib.WRITE_IF_EXISTS
    assert int(out["write_if_absent"]) == _lib.WRITE_IF_ABSENT
    assert int(out["max_tags"]) == _lib.MAX_TAGS
    assert int(out["queue_default_workers"]) == _lib.QUEUE_DEFAULT_WORKERS
    assert int(out["queue_max_workers"]) == _lib.QUEUE_MAX_WORKERS
    assert int(out["sizeof_completion"]) == ctypes.sizeof(_lib.rcache_completion)
    for field in completion_fields:
        assert int(out["completion." + field]) == getattr(_lib.rcache_completion, field).offset, field
    assert int(out["sizeof_status"]) == ctypes.sizeof(ctypes.c_int)
    assert int(out["sizeof_options"]) == ctypes.sizeof(_lib.rcache_options)
    assert int(out["sizeof_buffer"]) == ctypes.sizeof(_lib.rcache_buffer)
    assert int(out["sizeof_bytes"]) == ctypes.sizeof(_lib.rcache_bytes)
    assert int(out["buffer.len"]) == _lib.rcache_buffer.len.offset
    assert int(out["bytes.len"]) == _lib.rcache_bytes.len.offset
    for field in fields:
        assert int(out["options." + field]) == getattr(_lib.rcache_options, field).offset, field
    for value, name in enumerate(STATUSES):
        assert int(out["status." + name]) == value
