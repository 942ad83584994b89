"""The documentation site builds in strict mode: a broken link or a page left out fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_site_builds_strict(tmp_path: Path) -> None:
    # no --quiet: it drops the warnings that strict mode counts, and a broken link would pass
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}{done.stdout}"
    for page in ("index.html", "guides/marketing.html", "reference/cli.html"):
        assert (tmp_path / page).is_file(), page


def test_readme_links_point_at_files() -> None:
    """README.md is outside the site, so the build does not check its links: this does."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert targets and missing == [], f"README.md links to missing files: {missing}"
