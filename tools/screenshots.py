"""Refresh the README's pictures in docs/images: the dashboard (desktop, phone, a ticket) and
``spoonprint monitor``.

    .venv/bin/python tools/screenshots.py

The test suite takes the same screenshots into temporary folders, so testing never changes
the checkout; this runs the tests that take them with ``SPOONPRINT_SCREENSHOTS`` pointing here.
Needs what those tests need: Debian's ``chromium`` and the ``playwright`` package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
TESTS = [
    "tests/test_dashboard_browser.py::test_sign_in_see_a_printed_order_reprint_it_and_see_it_print",
    "tests/test_dashboard_browser.py::test_phone_layout_fits_the_screen",
    "tests/test_monitor_cli.py::test_the_dashboard_shows_printers_queue_jobs_recovery_and_security",
]


def main() -> int:
    env = {**os.environ, "SPOONPRINT_SCREENSHOTS": str(IMAGES)}
    # -rs: a test skipped for want of Chromium or Playwright took no picture; say so.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *TESTS]
    code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    if code == 0:
        print(f"Pictures refreshed in {IMAGES}: review them with 'git diff --stat docs/images'")
    return code


if __name__ == "__main__":
    sys.exit(main())
