"""The installable package: `pip install ./bindings/python` into a fresh
virtual environment, the manylinux wheel `make wheel` builds, and the sdist
`make sdist` builds (compiled from its own copy of the crate with cargo), each
used from another directory with no RCACHE_LIB, no PYTHONPATH and no package
index.

The pip install builds without build isolation (`--no-build-isolation`):
an isolated build would download setuptools and wheel from PyPI, so the
venv borrows this interpreter's (`--system-site-packages`; installed by
scripts/prereqs.sh). The wheel's venv is a plain one.
"""

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile

import pytest

from conftest import BINDINGS, ROOT

LIBRARY = ROOT / "target" / "release" / "librcache.so"
# Where the sdist's cargo builds: kept between runs, so only the crate itself is compiled again.
SDIST_TARGET = ROOT / "build" / "sdist-target"

USE = (
    "import os, rcache, rcache._lib\n"
    "c = rcache.Client(); c.set('k', b'v'); assert c.get('k') == b'v'\n"
    "print(rcache.__file__); print(rcache._lib.path)\n"
)


def _clean_env(**extra):
    """The environment without anything that would find the checkout's
    package or library for the installed one, and with no package index."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("RCACHE_LIB", "PYTHONPATH", "RCACHE_URL") and not name.startswith("PIP_")
    }
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(command, cwd, **extra_env):
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=_clean_env(**extra_env), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _make_venv(path, system_site_packages=False):
    """A fresh venv at path (with pip); its python."""
    venv.EnvBuilder(with_pip=True, system_site_packages=system_site_packages, clear=True).create(path)
    return path / "bin" / "python"


def _check_installed(python, prefix, workdir):
    """The installed package works from workdir, with its bundled library."""
    workdir.mkdir(exist_ok=True)
    module, library = _run([python, "-c", USE], workdir).stdout.split()
    assert module.startswith(str(prefix)), module
    assert library.startswith(str(prefix)) and library.endswith(os.path.join("rcache", "librcache.so")), library
    help_text = _run([python, "-m", "rcache", "--help"], workdir).stdout
    assert "invalidate-tag" in help_text
    assert _run([prefix / "bin" / "rcache", "--version"], workdir).stdout.startswith("rcache ")
    # RCACHE_LIB still wins over the bundled copy (hand-copied web2py modules).
    override = _run([python, "-c", "import rcache._lib; print(rcache._lib.path)"], workdir, RCACHE_LIB=str(LIBRARY))
    assert override.stdout.strip() == str(LIBRARY)


def _build_tools():
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools missing: run scripts/prereqs.sh")
    try:
        import setuptools.command.bdist_wheel  # noqa: F401
    except ImportError:
        pytest.importorskip("wheel", reason="the wheel package is missing: run scripts/prereqs.sh")


def test_pip_install_from_the_checkout(tmp_path):
    _build_tools()
    prefix = tmp_path / "venv"
    python = _make_venv(prefix, system_site_packages=True)
    _run([python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", BINDINGS], tmp_path)
    _check_installed(python, prefix, tmp_path / "elsewhere")


def test_make_wheel_bundles_the_library(tmp_path):
    _build_tools()
    if shutil.which("make") is None:
        pytest.skip("make missing")
    wheels = tmp_path / "wheels"
    _run(["make", "--no-print-directory", "wheel", f"WHEEL_DIR={wheels}"], ROOT)
    built = sorted(wheels.glob("rcache-*.whl"))
    assert len(built) == 1, built
    wheel = built[0]
    # auditwheel tags it with the oldest glibc its symbols allow.
    tag = re.fullmatch(rf"rcache-[\d.]+-py3-none-(manylinux_2_\d+_{platform.machine()})\.whl", wheel.name)
    assert tag, wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"rcache/librcache.so", "rcache/py.typed", "rcache/cli.py", "rcache/__main__.py"} <= names
        assert "rcache/web2py/gluon_contrib/redis_cache.py" in names
        assert not [name for name in names if ".libs/" in name]  # nothing grafted: libc, libm, libgcc_s only
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/WHEEL"))).decode()
        assert "Root-Is-Purelib: false" in metadata and f"Tag: py3-none-{tag.group(1)}" in metadata
        bundled = tmp_path / "librcache.so"
        bundled.write_bytes(archive.read("rcache/librcache.so"))
    shown = _run([sys.executable, "-m", "auditwheel", "show", wheel], tmp_path).stdout
    assert f'consistent with the following platform tag: "{tag.group(1)}"' in " ".join(shown.split())
    # Stripped: no symbol table and no debug info, only a link to them, kept beside the wheel.
    sections = _run(["readelf", "--sections", "--wide", bundled], tmp_path).stdout
    assert ".gnu_debuglink" in sections and ".dynsym" in sections
    assert ".symtab" not in sections and ".debug_info" not in sections
    debug_sections = _run(["readelf", "--sections", "--wide", wheels / "librcache.so.debug"], tmp_path).stdout
    assert ".debug_info" in debug_sections
    prefix = tmp_path / "venv"
    python = _make_venv(prefix)
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", wheel], tmp_path)
    _check_installed(python, prefix, tmp_path / "elsewhere")



def test_make_sdist_builds_with_cargo_in_a_fresh_venv(tmp_path):
    _build_tools()
    if shutil.which("make") is None:
        pytest.skip("make missing")
    dist = tmp_path / "sdist"
    _run(["make", "--no-print-directory", "sdist", f"SDIST_DIR={dist}"], ROOT)
    built = sorted(dist.glob("rcache-*.tar.gz"))
    assert len(built) == 1, built
    sdist = built[0]
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.py", "pyproject.toml", "rcache/client.py", "rust/Cargo.toml", "rust/Cargo.lock",
            "rust/build.rs", "rust/src/lib.rs", "rust/src/ffi/mod.rs"} <= names
    assert not [name for name in names if name.endswith(".so")]  # sources only
    prefix = tmp_path / "venv"
    python = _make_venv(prefix, system_site_packages=True)
    # Built from the sdist's own crate: a checkout's library is nowhere on the way.
    _run([python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", sdist], tmp_path,
         CARGO_TARGET_DIR=str(SDIST_TARGET))
    _check_installed(python, prefix, tmp_path / "elsewhere")
