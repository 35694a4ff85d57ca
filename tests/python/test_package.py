"""The installable package: `pip install ./bindings/python` into a fresh
virtual environment, and the wheel `make wheel` builds, each used from
another directory with no RCACHE_LIB, no PYTHONPATH and no package index.

The pip install builds without build isolation (`--no-build-isolation`):
an isolated build would download setuptools and wheel from PyPI, so the
venv borrows this interpreter's (`--system-site-packages`; installed by
scripts/prereqs.sh). The wheel's venv is a plain one.
"""

import os
import shutil
import subprocess
import sysconfig
import venv
import zipfile

import pytest

from conftest import BINDINGS, ROOT

LIBRARY = ROOT / "target" / "release" / "librcache.so"

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
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.name.endswith(f"-py3-none-{platform}.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"rcache/librcache.so", "rcache/py.typed", "rcache/cli.py", "rcache/__main__.py"} <= names
        assert "rcache/web2py/gluon_contrib/redis_cache.py" in names
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/WHEEL"))).decode()
        assert "Root-Is-Purelib: false" in metadata and f"Tag: py3-none-{platform}" in metadata
        if shutil.which("strip"):  # setup.py strips the bundled copy's debug info
            assert archive.getinfo("rcache/librcache.so").file_size < LIBRARY.stat().st_size
    prefix = tmp_path / "venv"
    python = _make_venv(prefix)
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", wheel], tmp_path)
    _check_installed(python, prefix, tmp_path / "elsewhere")

