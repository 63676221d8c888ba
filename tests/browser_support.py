"""A real headless Chromium for page tests (Debian's chromium + chromium-driver, driven by Selenium).

The `browser` fixture skips with a reason naming what is missing. Selenium Manager is never used: it would
try to download a browser or a driver, and tests run offline.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900"]


def start_chromium(profile: Path):
    """A headless Chromium WebDriver with a fresh profile in `profile`; raises when it cannot start."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: Selenium Manager must not go online
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium for the whole test session (skipped with a reason when it cannot run here)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need the selenium module (pip install -e '.[dev]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.skip(f"browser tests need {path} (Debian package {package}; .ci/run installs it)")
    try:
        driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    except Exception as e:  # noqa: BLE001 -- any start failure means: skip, saying why
        pytest.skip(f"headless Chromium did not start: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
    yield driver
    driver.quit()
