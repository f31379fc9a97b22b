"""Regenerate docs/report-example.html and docs/report-screenshot.png.

Records examples/demo.py with ``heapscope run`` (from the repository root, so the report shows
project-relative paths), renders the HTML report and photographs it with headless Chromium
(scripts/install-browser.sh).
Run from the repository root after `make build`: ``python3 scripts/report-screenshot.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from heapscope import _native  # noqa: E402


def main() -> int:
    """Record, render, photograph; return the exit status."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: run scripts/install-browser.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "demo.hsc"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
        run = [sys.executable, "-m", "heapscope", "run", "-o", str(capture), "examples/demo.py"]
        subprocess.run(run, cwd=ROOT, env=env, check=True)
        profile = _native.load_capture(str(capture))
        html = ROOT / "docs" / "report-example.html"
        html.write_text(_native.render_html(profile, "peak"), encoding="utf-8")
        png = ROOT / "docs" / "report-screenshot.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={png}",
                "--window-size=1280,1100",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {html.relative_to(ROOT)} and {png.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
