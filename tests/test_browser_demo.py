"""In Chromium, on a fresh data root and an empty store: the Predict page classifies a photo with the
built-in ImageNet model; after a tiny sweep over two backbones, Results shows them side by side.
Screenshots for a human: /tmp/shots/demo_first_start.png and /tmp/shots/comparison.png."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import write_class_folders
from PIL import Image
from browser import VIEWPORT, cli_sweep, serve, server_env, settle, shoot, visit

pytestmark = pytest.mark.slow
SHOTS = Path("/tmp/shots")
CATS = ("tabby cat", "tiger cat", "Egyptian Mau")
SPEC = """
name: backbones
data: {dataset: colours, test_fraction: 0.25}
params: {weights: none, image_size: 32, epochs: 2, batch_size: 8}
search: {method: grid, space: {backbone: [mobilenetv2, efficientnet_lite0], learning_rate: [0.01, 0.001]}}
folds: 2
"""


def keep(page, name: str, below: str | None = None) -> None:
    """A screenshot for the lead: the window grown to the page (Streamlit scrolls inside it), then all of
    it, or the part from the heading `below` down."""
    SHOTS.mkdir(exist_ok=True)
    height = page.evaluate('document.querySelector(\'[data-testid="stMain"]\')?.scrollHeight || 1000')
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 8000)})
    page.wait_for_timeout(1000)
    clip = None
    if below:
        top = page.get_by_role("heading", name=below).bounding_box()["y"] - 24
        clip = {"x": 0, "y": top, "width": VIEWPORT["width"], "height": min(1500, height - top)}
    page.screenshot(path=str(SHOTS / name), full_page=True, clip=clip)
    page.set_viewport_size(VIEWPORT)


def test_first_start_predict_demo_names_the_cat(tmp_path: Path, chromium) -> None:  # noqa: F811
    skimage_data = pytest.importorskip("skimage.data")
    photo = io.BytesIO()
    Image.fromarray(skimage_data.chelsea()).save(photo, format="JPEG", quality=92)
    (tmp_path / "data").mkdir()
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, server_env(tmp_path)) as url:
            visit(page, f"{url}/Predict", "5-demo-first-start", "Predict")
            assert page.get_by_text("ImageNet-1k (EfficientNet-Lite0)").count() >= 1
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
                [{"name": "chelsea.jpg", "mimeType": "image/jpeg", "buffer": photo.getvalue()}])
            page.get_by_text("Grad-CAM for").first.wait_for(timeout=180_000)
            settle(page)
            caption = page.get_by_text("Grad-CAM for").first.inner_text()
            assert any(caption.endswith(f"for {cat}") for cat in CATS), caption
            shoot(page, "5-demo-gradcam")
            keep(page, "demo_first_start.png")
            assert page.locator('[data-testid="stDataFrame"]').count() == 1
    finally:
        page.close()


def test_results_shows_two_backbones_side_by_side(tmp_path: Path, chromium) -> None:  # noqa: F811
    write_class_folders(tmp_path / "data" / "colours", per_class=24)   # 3 batches: a timed pass
    env = server_env(tmp_path)
    cli_sweep(tmp_path, env, SPEC)
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, env) as url:
            visit(page, f"{url}/Results?sweep=backbones", "6-results", "Results")
            page.get_by_role("tab", name="Compare").click()
            page.get_by_text("Backbones side by side").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2500)
            assert page.get_by_text("Parameter importance (fANOVA)").count() >= 1
            shoot(page, "6-results-backbones")
            keep(page, "comparison.png", below="Backbones side by side")
    finally:
        page.close()
