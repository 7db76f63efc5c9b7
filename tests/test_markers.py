"""Every integration test carries the `integration` marker, so `-m` can select the suite's
parts (a `pytestmark` in a conftest.py marks nothing: this once collected 0 tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def collected(*args: str) -> set[str]:
    """Node ids that `pytest --collect-only` selects with these arguments (no test runs)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # 5: nothing selected, which is a valid answer here (the assertions say what is expected)
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-3000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


# The browser tests that drive the real daemon need dockerd and Redis as well.
LIVE_BROWSER = ("tests/browser/test_live.py::",)


def test_integration_marker_selects_exactly_the_integration_tests() -> None:
    everything = collected("tests")
    integration = {
        t for t in everything if t.startswith("tests/integration/") or t.startswith(LIVE_BROWSER)
    }
    assert len(integration) > 20, f"expected the integration suite, found {len(integration)}"
    assert collected("tests", "-m", "integration") == integration
    assert collected("tests", "-m", "not integration") == everything - integration


def test_browser_marker_selects_exactly_the_browser_tests() -> None:
    everything = collected("tests")
    browser = {t for t in everything if t.startswith("tests/browser/")}
    assert len(browser) >= 5, f"expected the browser tests, found {len(browser)}"
    assert collected("tests", "-m", "browser") == browser
    assert collected("tests", "-m", "not browser") == everything - browser
