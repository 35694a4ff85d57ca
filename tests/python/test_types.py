"""The package's type hints and documentation: mypy --strict passes on it
(configuration in bindings/python/pyproject.toml), the sources parse as
Python 3.8, every public name has a docstring, and, when a Python 3.8
interpreter is around, the package imports and works on it."""

import ast
import glob
import importlib
import inspect
import os
import shutil
import subprocess
import sys

import pytest

import web2py_support  # noqa: F401  (gluon stand-in, for importing rcache.web2py)
from conftest import BINDINGS

PACKAGE = BINDINGS / "rcache"
SOURCES = sorted(PACKAGE.rglob("*.py"))
PUBLIC_MODULES = [
    "rcache",
    "rcache.client",
    "rcache.cache",
    "rcache.session",
    "rcache.aio",
    "rcache.errors",
    "rcache.cli",
    "rcache.web2py.redis_utils",
    "rcache.web2py.redis_cache",
    "rcache.web2py.redis_session",
]


def test_mypy_strict():
    pytest.importorskip("mypy", reason="mypy is missing: run scripts/prereqs.sh")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "-p", "rcache"],
        cwd=BINDINGS,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_sources_are_python_3_8(path):
    source = path.read_text()
    ast.parse(source, str(path), feature_version=(3, 8))


def test_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_every_public_name_has_a_docstring():
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert inspect.getdoc(module), module_name
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__module__ != module.__name__:
                continue
            if not inspect.getdoc(obj):
                missing.append(f"{module_name}.{name}")
            if inspect.isclass(obj):
                for attribute, value in vars(obj).items():
                    if attribute.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property)):
                        continue
                    if not value.__doc__:
                        missing.append(f"{module_name}.{name}.{attribute}")
    assert missing == []


def _python38():
    """A Python 3.8 interpreter, or None."""
    candidates = [shutil.which("python3.8")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    for candidate in candidates:
        if candidate is None:
            continue
        check = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"], capture_output=True, timeout=60
        )
        if check.returncode == 0:
            return candidate
    return None


def test_works_on_python_3_8():
    python = _python38()
    if python is None:
        pytest.skip("no Python 3.8 interpreter here")
    # Every module is imported: an annotation evaluated at run time (one
    # without `from __future__ import annotations`) must be 3.8 syntax too.
    code = (
        "import importlib, pkgutil, rcache, rcache.cli\n"
        "for module in pkgutil.walk_packages(rcache.__path__, 'rcache.'): importlib.import_module(module.name)\n"
        "c = rcache.Client(prefix='p:'); c.set('k', b'v', ttl=60, tags=['t']); assert c.get('k') == b'v'\n"
        "cache = rcache.Cache(client=c); f = cache.cached(ttl=5)(lambda x: x * 2); assert f(21) == 42\n"
        "assert rcache.cli.main(['stats', '--json']) == 0\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "RCACHE_URL"}
    env["PYTHONPATH"] = str(BINDINGS)
    result = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
