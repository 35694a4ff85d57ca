"""Builds the rcache package with librcache.so inside it.

The metadata lives in pyproject.toml; this file only adds the native library:
``build_py`` runs ``cargo build --release`` on the crate (``rust/`` beside this
file in an sdist, else the checkout's root two directories up) and copies the
cdylib, stripped, next to the package's modules, where ``rcache._lib`` looks
for it. The wheel is tagged ``py3-none-<platform>``: it carries a native
library but no CPython extension, so one wheel serves every Python 3.8+ of
that platform (``make wheel`` then retags it manylinux with auditwheel).
``sdist`` puts the crate's sources (Cargo.toml, Cargo.lock, build.rs, src/)
under ``rust/``, so the sdist builds anywhere cargo is.

Set ``RCACHE_CRATE_DIR`` to build from a crate elsewhere, or
``RCACHE_PREBUILT_LIB`` to bundle an already built librcache.so as it is.
``RCACHE_DEBUG_DIR`` keeps the stripped debug info there, as
``librcache.so.debug`` (the bundled copy names it with a GNU debuglink).
"""

import json
import os
import shutil
import subprocess
import sys

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:  # setuptools >= 70.1 carries bdist_wheel; before that the wheel package did.
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:  # no wheel support at all: plain `setup.py build` still works
        bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY_NAME = "librcache.so"
# The crate inside an sdist, and what of it cargo needs to build the library.
SDIST_CRATE = "rust"
CRATE_FILES = ("Cargo.toml", "Cargo.lock", "build.rs")
CRATE_TREES = ("src",)


def _crate_dir():
    crate = os.environ.get("RCACHE_CRATE_DIR")
    if not crate:
        bundled = os.path.join(HERE, SDIST_CRATE)
        checkout = os.path.normpath(os.path.join(HERE, "..", ".."))
        crate = bundled if os.path.isfile(os.path.join(bundled, "Cargo.toml")) else checkout
    if not os.path.isfile(os.path.join(crate, "Cargo.toml")):
        sys.exit(
            f"rcache: no Cargo.toml in {crate}: build the package from the rcache checkout "
            "(pip install ./bindings/python), or set RCACHE_CRATE_DIR to the crate, or "
            "RCACHE_PREBUILT_LIB to a built librcache.so"
        )
    return crate


def _cargo():
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if cargo is None:
        home_cargo = os.path.join(os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo"), "bin", "cargo")
        if os.path.isfile(home_cargo):
            cargo = home_cargo
    if cargo is None:
        sys.exit("rcache: cargo not found: install the Rust toolchain (https://rustup.rs) or set CARGO")
    return cargo


def build_library():
    """Path of a freshly built librcache.so (cargo's own up-to-date check
    makes this quick when the checkout's library is current)."""
    prebuilt = os.environ.get("RCACHE_PREBUILT_LIB")
    if prebuilt:
        if not os.path.isfile(prebuilt):
            sys.exit(f"rcache: RCACHE_PREBUILT_LIB={prebuilt} does not exist")
        return prebuilt
    crate = _crate_dir()
    command = [
        _cargo(), "build", "--release", "--lib",
        "--manifest-path", os.path.join(crate, "Cargo.toml"),
        "--message-format=json-render-diagnostics",
    ]
    print(f"rcache: {' '.join(command)}", file=sys.stderr)
    # The JSON messages name the artifacts wherever the target directory is
    # (CARGO_TARGET_DIR, .cargo/config.toml); diagnostics go to stderr.
    result = subprocess.run(command, cwd=crate, stdout=subprocess.PIPE, check=False)
    if result.returncode != 0:
        sys.exit(f"rcache: cargo build failed (exit status {result.returncode})")
    for line in result.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") != "compiler-artifact" or "cdylib" not in message["target"]["kind"]:
            continue
        for filename in message["filenames"]:
            if os.path.basename(filename) == LIBRARY_NAME:
                return filename
    sys.exit(f"rcache: cargo build did not report {LIBRARY_NAME}")


class BuildWithLibrary(build_py):
    """build_py, plus librcache.so copied into the built package."""

    def run(self):
        super().run()
        source = build_library()
        if getattr(self, "editable_mode", False):
            # An editable install imports from the checkout, whose loader
            # finds target/release/librcache.so by itself.
            return
        target = os.path.join(self.build_lib, "rcache", LIBRARY_NAME)
        # Always copied (no up-to-date check): the previous copy was stripped
        # or came from another build.
        shutil.copyfile(source, target)
        shutil.copymode(source, target)
        if not os.environ.get("RCACHE_PREBUILT_LIB"):
            strip_library(target, os.environ.get("RCACHE_DEBUG_DIR"))


def strip_library(path, debug_dir=None):
    """Strips the library at path to what loading it needs (the release
    profile's line tables and the symbol table: about 50 MB down to 6.5);
    with debug_dir, first keeps them there as librcache.so.debug and links
    the stripped copy to it, for debuggers."""
    strip, objcopy = shutil.which("strip"), shutil.which("objcopy")
    if strip is None:
        print("rcache: no strip (binutils): bundling the library unstripped", file=sys.stderr)
        return
    if debug_dir and objcopy:
        os.makedirs(debug_dir, exist_ok=True)
        debug_file = os.path.join(debug_dir, LIBRARY_NAME + ".debug")
        subprocess.run([objcopy, "--only-keep-debug", path, debug_file], check=True)
    subprocess.run([strip, "--strip-all", path], check=True)
    if debug_dir and objcopy:
        # objcopy finds the file by its base name; --add-gnu-debuglink reads it for its CRC.
        subprocess.run([objcopy, "--add-gnu-debuglink=" + debug_file, path], check=True)


class SourceWithCrate(sdist):
    """sdist, plus the crate's sources under rust/, so the sdist builds the
    library with cargo wherever it is unpacked."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        crate = _crate_dir()
        target = os.path.join(base_dir, SDIST_CRATE)
        os.makedirs(target, exist_ok=True)
        for name in CRATE_FILES:
            shutil.copy2(os.path.join(crate, name), target)
        for name in CRATE_TREES:
            shutil.copytree(os.path.join(crate, name), os.path.join(target, name), dirs_exist_ok=True)


class BinaryDistribution(Distribution):
    """Installs to platlib: the package holds a native library."""

    def has_ext_modules(self):
        return True


commands = {"build_py": BuildWithLibrary, "sdist": SourceWithCrate}

if bdist_wheel is not None:

    class PlatformWheel(bdist_wheel):
        """A wheel for this platform (it holds a native library) that any
        Python 3 loads: the library is reached through ctypes, not the
        CPython extension ABI."""

        def get_tag(self):
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    commands["bdist_wheel"] = PlatformWheel

setup(cmdclass=commands, distclass=BinaryDistribution)
