"""Every Python example runs to completion, on memory:// and on the private
Redis (RCACHE_URL), the way the README tells to run it. The examples check
their own results (the web2py application asserts that its session and its
cache worked)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = ROOT / "examples"
# The runnable ones: files with a main guard (models and controllers of the
# web2py application are run by its run.py, as web2py would run them).
SCRIPTS = sorted(path for path in EXAMPLES.rglob("*.py") if 'if __name__ == "__main__":' in path.read_text())


def test_the_examples_are_found():
    assert {path.relative_to(EXAMPLES).as_posix() for path in SCRIPTS} >= {"demo.py", "web2py_app/run.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.relative_to(EXAMPLES).as_posix())
def test_example_runs(script, url, tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env["RCACHE_URL"] = url
    # From another directory: an example finds what it needs by itself.
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert url in result.stdout  # each example names the backend it ran on
    assert "Traceback" not in result.stderr
