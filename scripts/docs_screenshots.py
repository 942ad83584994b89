"""Screenshots of the documentation site for docs/img: the home page, a guide and a reference page.

    .venv/bin/python scripts/docs_screenshots.py

Builds the site into a temporary folder, serves it on a free localhost port and renders each
page with headless Chromium (Debian's `chromium`: `apt-get install chromium`), 1280x900.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = {
    "site-home.png": "index.html",
    "site-guide-marketing.png": "guides/marketing.html",
    "site-reference-cli.png": "reference/cli.html",
}


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs chromium: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
            cwd=ROOT,
            env=env,
            check=True,
        )
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        try:
            for name, page in SHOTS.items():
                out = ROOT / "docs" / "img" / name
                subprocess.run(
                    [
                        chromium,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--no-first-run",
                        "--hide-scrollbars",
                        f"--user-data-dir={Path(tmp) / 'profile'}",
                        f"--screenshot={out}",
                        "--window-size=1280,900",
                        f"http://127.0.0.1:{port}/{page}",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                print(f"wrote {out.relative_to(ROOT)}")
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
