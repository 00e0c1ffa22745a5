"""What the Chromium suites share: a Streamlit server of the app on a free loopback port, its environment, a
sweep run with the CLI before, and how a page is waited for, visited and photographed (test-output/)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from loopback import unused_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "test-output"
VIEWPORT = {"width": 1400, "height": 1000}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def server_env(home: Path) -> dict[str, str]:
    """The environment of a server whose data (home/data) and run store live under `home`."""
    env = {**os.environ, "TRANSFERLAB_HOME": str(home), "TRANSFERLAB_DATA_ROOTS": str(home / "data"),
           "TRANSFERLAB_STORAGE": f"sqlite:///{home / 'runs.db'}", "BROWSER_PATH": str(CHROMIUM)}
    env.pop("TRANSFERLAB_CACHE", None)
    return env


def cli_sweep(home: Path, env: dict[str, str], spec: str) -> None:
    """Run the sweep of YAML text `spec` to its end with the CLI, in the server's environment."""
    path = home / "spec.yaml"
    path.write_text(spec)
    sweep = subprocess.run([sys.executable, "-m", "core", "sweep", str(path)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]


@contextmanager
def serve(home: Path, env: dict[str, str], *options: str, script: str = "serve.py") -> Iterator[str]:
    """`streamlit run serve.py` (app.py behind the server guard), or `script`, on a free loopback port until
    the block ends; its output: home/server.log."""
    port = unused_port()
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", *options], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start: {(home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run is over and stays over (the "Running…" status widget gone for a second:
    a fresh server's first run starts the next at once) and the page is quiet."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_timeout(1500)
    status = page.locator('[data-testid="stStatusWidget"]')
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        status.wait_for(state="detached", timeout=timeout_ms)
        page.wait_for_timeout(1000)
        if status.count() == 0 or time.monotonic() > deadline:
            return


def visit(page, url: str, shot: str, expect_heading: str) -> None:
    page.goto(url)
    settle(page)
    page.get_by_role("heading", name=expect_heading).first.wait_for(timeout=60_000)
    shoot(page, shot)


def shoot(page, shot: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, so grow the window to fit it."""
    SHOTS.mkdir(exist_ok=True)
    height = page.evaluate('document.querySelector(\'[data-testid="stMain"]\')?.scrollHeight || 1000')
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 8000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)
    assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {shot}"


def open_tab(page, name: str, shot: str, wait_ms: int = 1500) -> None:
    """Click a tab, let it draw, and keep a screenshot of it."""
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(wait_ms)
    shoot(page, shot)


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"browser test: {CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="browser test: the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
