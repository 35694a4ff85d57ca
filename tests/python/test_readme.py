"""The README stays true: its C, C++ and Python examples build with the
project's warnings and run, its web2py example names the API that exists, and
every link between README.md and docs/ leads to a file and a heading that
exist."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
LIB_DIR = ROOT / "target" / "release"


def code_blocks(language):
    return re.findall(r"^```" + language + r"\n(.*?)^```", README.read_text(), re.S | re.M)


def test_the_readme_has_one_example_per_language():
    assert len(code_blocks("c")) == 1
    assert len(code_blocks("cpp")) == 1
    assert len(code_blocks("python")) == 3  # Python, web2py model, web2py controller


@pytest.mark.parametrize(
    "language, compiler, flags",
    [("c", "cc", ["-std=c11"]), ("cpp", "c++", ["-std=c++17", "-I" + str(ROOT / "bindings" / "cpp")])],
)
def test_the_native_example_builds_and_runs(language, compiler, flags, tmp_path):
    if shutil.which(compiler) is None:
        pytest.skip(f"no {compiler}")
    source = tmp_path / f"example.{language}"
    source.write_text(code_blocks(language)[0])
    program = tmp_path / "example"
    subprocess.run(
        [compiler, *flags, "-Wall", "-Wextra", "-Werror", "-I" + str(ROOT / "include"), str(source),
         "-L" + str(LIB_DIR), "-lrcache", "-Wl,-rpath," + str(LIB_DIR), "-o", str(program)],
        check=True,
    )
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() in (["Ada"], ["hello", "<p>page</p>"])


def test_the_python_example_runs(tmp_path):
    script = tmp_path / "example.py"
    # The example's last lines define a cached function: call it, and show what the rest left behind.
    script.write_text(code_blocks("python")[0] + '\nprint(profile(1), client.get("user:1"), page)\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT / "bindings" / "python"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'id': 1, 'name': 'Ada'} None b'<p>page</p>'"


def test_the_web2py_example_names_existing_api():
    import inspect

    from rcache.web2py import redis_cache, redis_session, redis_utils

    model, controller = code_blocks("python")[1:]
    for code in (model, controller):
        compile(code, "README.md", "exec")
    assert "from rcache.web2py.redis_utils import RConn" in model
    assert callable(redis_utils.RConn) and callable(redis_session.RedisSession)
    cache_class = redis_cache.RedisClient  # what RedisCache() returns
    assert "tags" in inspect.signature(cache_class.__call__).parameters
    assert "invalidate_tag(" in controller and hasattr(cache_class, "invalidate_tag")


def slug(heading):
    """The anchor a Markdown renderer (GitHub's rules) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path):
    seen, result = {}, set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


PAGES = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_links_lead_somewhere(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: {target}"


def test_the_url_syntax_is_defined_once():
    """docs/urls.md holds the URL table; the README and the pages link to it."""
    table_row = "| `redis+cluster://"
    holders = [page.name for page in PAGES if table_row in page.read_text()]
    assert holders == ["urls.md"]
    assert "(docs/urls.md)" in README.read_text()
