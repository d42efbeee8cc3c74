"""The documentation site builds with ``mkdocs build --strict`` (no warnings).

Skipped only when MkDocs is not installed and we are not under CI; under CI a
missing MkDocs is a failure, so the docs cannot silently stop being checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]


def _require_mkdocs():
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
        import material  # noqa: F401
    except ImportError as err:
        if IN_CI:
            pytest.fail(f"documentation tools missing under CI: {err} (install '.[test]')")
        pytest.skip(f"documentation tools not installed: {err}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _require_mkdocs()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    # --strict turns warnings into a failure at the end; say which ones here too.
    warnings = [line for line in log.splitlines() if re.match(r"^(WARNING|ERROR)\b", line)]
    assert not warnings, "\n".join(warnings)
    return out


def test_site_has_every_nav_page(site):
    import yaml

    # The nav uses only plain YAML (no !!python tags), so safe_load reads it.
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for item in nav:
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                for value in item.values():
                    yield from ([value] if isinstance(value, str) else pages(value))

    for page in pages(config["nav"]):
        html = site / (page[:-3] + "/index.html" if not page.endswith("index.md") else page[:-3] + ".html")
        assert html.is_file(), f"{page} was not rendered ({html})"


def test_api_reference_renders_docstrings(site):
    html = (site / "api" / "core" / "index.html").read_text(encoding="utf-8")
    # mkdocstrings rendered the class and one of its documented methods.
    assert "neurodecode.trials.Trials" in html
    assert "concatenate_trials" in html


def test_one_page_per_registered_dataset(site):
    from pathlib import PurePath

    from neurodecode.registry import list_datasets, get_dataset

    index = (site / "datasets" / "index.html").read_text(encoding="utf-8")
    for name in list_datasets()["name"]:
        info = get_dataset(name)
        stem = PurePath(info.card).stem if info.card else name
        page = site / "datasets" / stem / "index.html"
        assert page.is_file(), f"no page for dataset {name} ({page})"
        assert name in page.read_text(encoding="utf-8")
        assert name in index


def _python_blocks(path):
    text = path.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


DOC_FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


@pytest.mark.parametrize("path", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_code_in_docs_matches_the_api(path):
    """Every Python block parses, and every name it imports exists.

    Running the blocks would need the datasets and minutes of compute (the
    notebooks do that); this catches the common rot: a renamed module,
    function or class that the docs still import.
    """
    import ast
    import importlib
    import importlib.util

    for block in _python_blocks(path):
        tree = ast.parse(block, filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(
                        f"{node.module}.{alias.name}") is not None, \
                        f"{path.name}: `from {node.module} import {alias.name}` fails"
