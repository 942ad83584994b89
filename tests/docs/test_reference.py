"""docs/reference/ is what scripts/docs_reference.py writes from the code today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import ROOT


def _script() -> ModuleType:
    path = ROOT / "scripts" / "docs_reference.py"
    spec = importlib.util.spec_from_file_location("docs_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_reference_pages_match_the_code() -> None:
    pages = _script().pages()
    folder = ROOT / "docs" / "reference"
    stale = [
        name
        for name, text in pages.items()
        if not (folder / name).exists() or (folder / name).read_text(encoding="utf-8") != text
    ]
    extra = sorted(p.name for p in folder.glob("*.md") if p.name not in pages)
    assert not stale and not extra, (
        f"docs/reference is out of date: {', '.join(stale + extra)} differ from the code; "
        "run `./dev docs` (or `.venv/bin/python scripts/docs_reference.py`) and commit the pages"
    )


def test_every_command_and_setting_is_in_the_reference() -> None:
    pages = _script().pages()
    from leadops.core.settings import Settings

    missing = [
        n for n in Settings.model_fields if f"`LEADOPS_{n.upper()}`" not in pages["settings.md"]
    ]
    assert missing == []
    for page in ("cli.md", "settings.md", "config.md", "webhooks.md"):
        assert f"]({page})" in pages["index.md"]
    assert Path(ROOT / "mkdocs.yml").read_text().count("reference/") >= 5
