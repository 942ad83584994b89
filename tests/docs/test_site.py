"""The documentation site builds in strict mode: a broken link or a page left out fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}{done.stdout}"
    for page in ("index.html", "guides/marketing.html", "reference/cli.html"):
        assert (tmp_path / page).is_file(), page
