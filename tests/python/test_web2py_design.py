"""The design document's examples for web2py's Redis cache run as written
against rcache's drop-ins (run_design_examples.py), in a network namespace of
their own so that the one connecting to localhost:6379 reaches a private
server. Under WEB2PY_PATH they run in the real web2py."""

import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent / "run_design_examples.py"


def _own_network_namespace():
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_the_design_documents_examples_run_as_written(tmp_path):
    if not _own_network_namespace():
        pytest.skip("unshare -rn (util-linux, user namespaces) is unavailable: the first example needs localhost:6379")
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, str(RUNNER)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok: ") == 2, result.stdout
    assert "ran all 6 Python blocks" in result.stdout
