"""The real thing: `streamlit run app.py` on a free port, every page opened in headless Chromium.

A tiny sweep is run first with the CLI (the same store the server reads), so Results and Predict
have something to show. Screenshots go to test-output/ for a human to look at.
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import make_image, write_class_folders
from apptest import fake_running_trial
from browser import CHROMIUM, VIEWPORT, cli_sweep, open_tab, serve, server_env, settle, shoot, visit

REPO = Path(__file__).resolve().parents[1]
SWEEP = "browser-tiny"
LIVE = "browser-live"
SPEC = f"""
name: {SWEEP}
data: {{dataset: colours, test_fraction: 0.25}}
params: {{backbone: mobilenetv2, weights: none, image_size: 32, epochs: 2, batch_size: 8}}
search: {{method: grid, space: {{learning_rate: [0.01, 0.001]}}}}
folds: 2
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's TRANSFERLAB_HOME; its server.log holds everything the server printed."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser test: {CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="browser test: the playwright package is not installed")
    data = home / "data"
    # Enough images that the server scans them in worker processes (spawned, as it has threads),
    # the path where a worker once re-ran the app as its __main__.
    colours = write_class_folders(data / "colours", per_class=44)
    shutil.copy(colours / "red" / "red_000.jpg", colours / "red" / "red_copy.jpg")         # a duplicate
    shutil.copy(colours / "green" / "green_001.jpg", colours / "blue" / "odd_one.jpg")    # a label conflict
    (colours / "blue" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")                   # a bad file
    env = server_env(home)
    cli_sweep(home, env, SPEC)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        fake_running_trial(LIVE, "colours")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with serve(home, env) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page(server: str, chromium):
    page = chromium.new_page(viewport=VIEWPORT)
    yield page
    page.close()


def test_dataset_page(server: str, browser_page, home: Path) -> None:
    visit(browser_page, server, "1-dataset", "Dataset")
    log = (home / "server.log").read_text()
    assert "without `streamlit run`" not in log, f"a scan worker ran the app again:\n{log[-2000:]}"
    assert browser_page.get_by_text("Images per class").count() >= 1
    open_tab(browser_page, "Samples", "1-dataset-samples")
    open_tab(browser_page, "Problems", "1-dataset-problems")
    assert browser_page.get_by_text("label conflict").count() >= 1
    open_tab(browser_page, "Split preview", "1-dataset-split")


def test_sweep_page_reattaches_from_the_url(server: str, browser_page) -> None:
    visit(browser_page, f"{server}/Sweep?sweep={SWEEP}", "2-sweep", "Sweep")
    assert browser_page.get_by_text("test accuracy").count() >= 1
    browser_page.get_by_text("New sweep").click()
    browser_page.wait_for_timeout(1500)
    shoot(browser_page, "2-sweep-form")


def test_sweep_page_draws_live_curves(server: str, browser_page) -> None:
    visit(browser_page, f"{server}/Sweep?sweep={LIVE}", "2-sweep-live", "Sweep")
    assert browser_page.get_by_text("Learning curves: loss").count() >= 1


def test_results_page(server: str, browser_page) -> None:
    visit(browser_page, f"{server}/Results?sweep={SWEEP}", "3-results", "Results")
    open_tab(browser_page, "Compare", "3-results-compare", wait_ms=2000)
    open_tab(browser_page, "One trial", "3-results-trial", wait_ms=2500)
    assert browser_page.get_by_text("Decision threshold").count() >= 1


def test_predict_page(server: str, browser_page) -> None:
    visit(browser_page, f"{server}/Predict?sweep={SWEEP}", "4-predict", "Predict")
    image = io.BytesIO()
    make_image((40, 60, 200), seed=5, size=(120, 90)).save(image, format="PNG")
    browser_page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        [{"name": "blue.png", "mimeType": "image/png", "buffer": image.getvalue()},
         {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    browser_page.get_by_text("Grad-CAM for").first.wait_for(timeout=120_000)
    settle(browser_page)
    shoot(browser_page, "4-predict-gradcam")
    assert browser_page.get_by_text("notes.txt").count() >= 1


def dead_pid() -> int:
    """The pid of a process that has ended: a driver that died with the previous server."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_deep_link_first_after_a_restart_resumes_sweeps_and_draws_the_sidebar(tmp_path: Path,
                                                                                chromium) -> None:
    """Issue 8, item 9: the first request a fresh server gets is /Sweep?sweep=NAME, not the home page."""
    from core.runs.store import RunStore
    from core.spec.sweep import SweepSpec
    write_class_folders(tmp_path / "data" / "colours", per_class=6)
    env = server_env(tmp_path)
    store = RunStore(env["TRANSFERLAB_STORAGE"], artifacts_dir=tmp_path / "runs" / "artifacts")
    store.create_sweep(SweepSpec.from_yaml(SPEC.replace(f"name: {SWEEP}", "name: deep")))
    dead = dead_pid()
    store.set_driver("deep", dead)
    store.set_status("deep", "running")
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, env) as url:
            visit(page, f"{url}/Sweep?sweep=deep", "9-deep-link-first", "Sweep")
            assert store.sweep("deep").driver.pid != dead, "the server's start-up did not resume the sweep"
            sidebar = page.locator('[data-testid="stSidebar"]')
            assert sidebar.get_by_text("Run store").count() == 1, "the shared sidebar is not drawn"
            assert sidebar.get_by_text("Results").count() >= 1
    finally:
        page.close()
        driver = store.sweep("deep").driver
        if driver.pid != dead:
            os.killpg(driver.pid, signal.SIGKILL)      # the relaunched driver runs in a session of its own


def test_login_refuses_without_the_password_and_admits_with_it(tmp_path: Path, chromium) -> None:
    write_class_folders(tmp_path / "data" / "colours", per_class=6)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[login]\npassword = "correct horse battery"\n')
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, server_env(tmp_path), "--secrets.files", str(secrets)) as url:
            page.goto(f"{url}/Sweep")
            settle(page)
            shoot(page, "0-login")
            assert page.get_by_role("heading", name="Sweep").count() == 0
            assert page.get_by_text("Launch").count() == 0
            page.get_by_role("textbox", name="Your name").fill("ann")
            page.get_by_role("textbox", name="Team password").fill("a guess")
            page.get_by_role("button", name="Sign in").click()
            settle(page)
            assert page.get_by_text("Wrong password").count() == 1
            assert page.get_by_role("heading", name="Sweep").count() == 0
            page.get_by_role("textbox", name="Team password").fill("correct horse battery")
            page.get_by_role("button", name="Sign in").click()
            settle(page)
            page.get_by_role("heading", name="Sweep").first.wait_for(timeout=60_000)
            shoot(page, "0-login-admitted")
            assert page.locator('[data-testid="stSidebar"]').get_by_text("Signed in as ann").count() == 1
    finally:
        page.close()


def test_a_store_that_cannot_be_opened_is_one_line_on_every_page(tmp_path: Path, chromium) -> None:
    write_class_folders(tmp_path / "data" / "colours", per_class=6)
    env = server_env(tmp_path) | {"TRANSFERLAB_STORAGE": "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"}
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, env) as url:
            for path in ("Sweep?sweep=x", "Results", "Predict", ""):
                page.goto(f"{url}/{path}")
                settle(page)
                errors = page.locator('[data-testid="stAlertContentError"]')
                assert errors.count() == 1, path
                assert "u:***@127.0.0.1:1/x" in errors.inner_text() and "hunter2" not in page.content(), path
                assert page.get_by_role("heading").count() == 0, f"{path}: the page ran"
                assert page.locator('[data-testid="stException"]').count() == 0, path
    finally:
        page.close()


def test_four_browsers_on_a_postgresql_store_two_launching_sweeps(tmp_path: Path, chromium,
                                                                  postgres_url) -> None:  # noqa: F811
    """Issue 8's load test on a team store: two sessions launch a sweep each from the page while two
    others browse; no exception anywhere, and every planned trial of both sweeps finishes."""
    from core.runs.store import RunStore
    write_class_folders(tmp_path / "data" / "colours", per_class=6)
    env = server_env(tmp_path) | {"TRANSFERLAB_STORAGE": postgres_url}
    specs = {name: tmp_path / f"{name}.yaml" for name in ("team-a", "team-b")}
    for name, path in specs.items():
        path.write_text(SPEC.replace(f"name: {SWEEP}", f"name: {name}").replace("epochs: 2", "epochs: 1"))
    contexts = [chromium.new_context(viewport=VIEWPORT) for _ in range(4)]
    pages = [context.new_page() for context in contexts]
    try:
        with serve(tmp_path, env) as url:
            for page, path in zip(pages, ["Sweep", "Sweep", "Dataset", "Results"]):
                page.goto(f"{url}/{path}")
            for page in pages:
                settle(page)
            for page, (name, path) in zip(pages, specs.items()):
                page.locator('input[type="file"]').first.set_input_files(str(path))
                settle(page)
            for page in pages[:2]:
                page.get_by_role("button", name="Launch").click()
            store = RunStore(postgres_url, artifacts_dir=tmp_path / "runs" / "artifacts")
            deadline = time.monotonic() + 600
            while not all(n in store.sweep_names() and store.status(n) == "done" for n in specs):
                assert time.monotonic() < deadline, {n: store.sweeps().to_dict("records") for n in specs}
                for page in pages[2:]:
                    page.reload()
                    settle(page)
                    assert page.locator('[data-testid="stException"]').count() == 0
                time.sleep(2)
            for i, page in enumerate(pages):
                settle(page)
                shoot(page, f"8-four-browsers-{i}")
            for name in specs:
                done = sorted(t.params["learning_rate"] for t in store.trials(name) if t.state == "COMPLETE")
                assert done == [0.001, 0.01] and store.final(name) is not None, name
    finally:
        for context in contexts:
            context.close()
