"""Finding and checking librcache; each case runs `import rcache` in a fresh interpreter."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import BINDINGS, ROOT

REPO_LIB = ROOT / "target" / "release" / "librcache.so"


def import_rcache(env_overrides, code="import rcache; print(rcache.__version__)"):
    env = dict(os.environ)
    env.pop("RCACHE_LIB", None)
    env.update(env_overrides)
    env["PYTHONPATH"] = str(BINDINGS)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_missing_rcache_lib_is_a_clear_import_error(tmp_path):
    missing = tmp_path / "nowhere" / "librcache.so"
    result = import_rcache({"RCACHE_LIB": str(missing)})
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert str(missing) in result.stderr
    assert "RCACHE_LIB" in result.stderr
    assert "no such file" in result.stderr


def test_rcache_lib_that_is_not_a_library(tmp_path):
    bogus = tmp_path / "librcache.so"
    bogus.write_text("not an ELF file")
    result = import_rcache({"RCACHE_LIB": str(bogus)})
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert str(bogus) in result.stderr


def test_rcache_lib_pointing_to_the_build(tmp_path):
    copy = tmp_path / "librcache.so"
    shutil.copy(REPO_LIB, copy)
    result = import_rcache(
        {"RCACHE_LIB": str(copy)},
        "import rcache._lib as l; print(l.path); import rcache; print(rcache.Client().get('x'))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(copy), "None"]


@pytest.mark.skipif((BINDINGS / "rcache" / "librcache.so").exists(), reason="a bundled library takes precedence")
def test_repository_build_is_found_without_setup():
    result = import_rcache({}, "import rcache._lib as l; print(l.path)")
    assert result.returncode == 0, result.stderr
    assert os.path.samefile(result.stdout.strip(), REPO_LIB)


def test_abi_mismatch(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build a fake library")
    from rcache import _lib

    # Every symbol the bindings declare, as a stub; only the ABI version matters.
    stubs = "\n".join(
        f"unsigned rcache_abi_version(void) {{ return {_lib.ABI_VERSION + 1}; }}"
        if name == "rcache_abi_version"
        else f"void {name}(void) {{}}"
        for name in _lib._SIGNATURES
    )
    source = tmp_path / "fake.c"
    source.write_text(stubs + "\n")
    library = tmp_path / "librcache.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    result = import_rcache({"RCACHE_LIB": str(library)})
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"ABI version {_lib.ABI_VERSION + 1}" in result.stderr
    assert f"ABI version {_lib.ABI_VERSION}" in result.stderr


def test_library_without_the_symbols(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build a fake library")
    source = tmp_path / "other.c"
    source.write_text("int something_else(void) { return 0; }\n")
    library = tmp_path / "libother.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    result = import_rcache({"RCACHE_LIB": str(library)})
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "does not export" in result.stderr
