"""Browser tests: the real server (waitress, demo data, its own database and port) driven by
Playwright through Debian's Chromium, headless — no browser download, nothing from the internet.

``KEFU_CHROMIUM`` names another Chromium binary; without one the tests are skipped (``make test``
installs Debian's ``chromium`` and ``fonts-wqy-microhei`` first).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("KEFU_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (each test opens its own context)."""
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium (apt-get install chromium fonts-wqy-microhei, or set KEFU_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The product serving the demo on a free port; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_PORT": str(port),
           "KEFU_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "server.log"
    log = open(log_path, "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "kefu", "serve", "--demo",
                             "--no-scheduler"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/login", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
            assert proc.poll() is None, log_path.read_text()
        else:
            pytest.fail("server did not start: " + log_path.read_text())
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def page(browser, server):
    """A fresh browser tab (own cookies) with Chinese as the browser's language."""
    context = browser.new_context(viewport={"width": 1440, "height": 960}, locale="zh-CN")
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.js_errors = errors  # type: ignore[attr-defined]  # tests assert the page ran cleanly
    yield tab
    context.close()


def login(page, base: str, username: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "kefu-demo")
    page.click("button.primary")
    page.wait_for_url(lambda url: "/login" not in url)


def api(base: str, username: str) -> requests.Session:
    """A requests session holding ``username``'s bearer token."""
    token = requests.post(base + "/api/v1/auth/token", json={"username": username, "password": "kefu-demo"},
                          timeout=10).json()["token"]
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http
