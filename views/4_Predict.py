"""Predict: classify new images with a trained model, and see where it looked (Grad-CAM / Grad-CAM++)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.datasets import DatasetError, load_dataset
from core.inference.explain import METHODS, overlay
from core.inference.imagenet import TOP_K
from core.inference.model_card import ModelFileError
from core.inference.predict import honesty, predict_images
from ui import demo, state
from ui.models import drop_old_uploads, heatmap, loaded_model, save_upload
from ui.widgets import plain, png_bytes, table, user_error

METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
MAX_PICKED = 24
SWEEP_MODEL, UPLOADED = "Final model of a sweep", "Upload a .keras file"
FLAT = 1e-3   # a heat map spanning less than this carries no location

st.title("Predict")


def choose_model() -> tuple[Path | str | None, str]:
    """A model file, the built-in demo's label, or None (nothing chosen yet); and what messages call it."""
    drop_old_uploads()
    finished = [n for n in state.sweep_names() if state.final(n)]
    source = st.radio("Model", [SWEEP_MODEL, UPLOADED, demo.LABEL], horizontal=True, index=0 if finished else 2)
    if source == demo.LABEL:
        return demo.LABEL, demo.LABEL
    if source == UPLOADED:
        upload = st.file_uploader("Keras model (.keras)", type=["keras"], key="model_upload")
        return (save_upload(upload.getvalue()), upload.name) if upload else (None, "")
    if not finished:
        st.info("No sweep has a final model yet: finish a sweep, upload a .keras file, or try the built-in model.")
        return None, ""
    wanted = st.query_params.get("sweep")
    name = st.selectbox("Sweep", finished, index=finished.index(wanted) if wanted in finished else len(finished) - 1)
    return Path(state.final(name).model_path), f"the final model of {name}"


def choose_images() -> list[tuple[str, object]]:
    uploads = st.file_uploader("Images", accept_multiple_files=True, key="images",
                               help="JPEG, PNG, WebP, BMP, GIF or TIFF; anything else is reported, not classified")
    items: list[tuple[str, object]] = [(u.name, u.getvalue()) for u in uploads or []]
    dataset = state.chosen_dataset()
    try:
        paths = load_dataset(dataset, validate=False).paths if dataset else []   # a listing, not a scan
    except DatasetError:
        paths = []
    if paths:
        picked = st.multiselect(f"…or pick from {plain(dataset.name)}", paths, max_selections=MAX_PICKED,
                                format_func=lambda p: str(Path(p).relative_to(dataset)) if Path(p).is_relative_to(dataset)
                                else Path(p).name)
        items += [(Path(p).name, p) for p in picked]
    return items


model_path, model_name = choose_model()
if model_path is None:
    st.stop()
if model_path == demo.LABEL:
    loaded, explain = demo.demo_model(), demo.demo_heatmap
    st.caption(demo.caption(loaded))
else:
    try:
        loaded = loaded_model(model_path, model_name)
    except (ModelFileError, OSError) as error:
        user_error(error, "Choose another model, or upload a .keras file saved by Transfer Lab or Keras 3.")
        st.stop()
    # scikit-learn heads (SVM, logistic regression) rebuilt in Keras: their heat maps are not offered
    explain = partial(heatmap, model_path, loaded) if loaded.card.get("kind", "network") == "network" else None
    st.caption(f"{len(loaded.classes)} classes ({plain(', '.join(loaded.classes))}) · input {loaded.image_size} px")
    st.caption(plain(honesty(loaded)))

items = choose_images()
a, b, c = st.columns(3)
top_k = a.slider("Top-k classes", 1, max(2, min(10, len(loaded.classes))),
                 TOP_K if model_path == demo.LABEL else min(3, len(loaded.classes)))
method = b.radio("Heat map", METHODS, format_func=METHOD_NAMES.get, horizontal=True)
opacity = c.slider("Heat map opacity", 0.0, 1.0, 0.45, 0.05)
if not items:
    st.info("Upload images, or pick some from the dataset.")
    st.stop()

with st.spinner(f"Classifying {len(items)} image(s)…"):
    predictions = predict_images(loaded, items, top_k=top_k)
for index, prediction in enumerate(predictions):
    st.divider()
    if prediction.error:
        st.error(f"**{plain(prediction.name)}**: {plain(prediction.error)}. Upload an image file (JPEG, PNG, WebP, BMP, GIF, TIFF).")
        continue
    best = prediction.top[0][0]
    left, middle, right = st.columns([1, 1, 2])
    left.image(prediction.image, caption=plain(prediction.name), width="stretch")
    if explain is None:
        card_params = loaded.card.get("params")
        trained = isinstance(card_params, dict) and card_params.get("features_from") == "network"
        features = "a trained network's penultimate features" if trained else "the backbone's pooled features"
        middle.caption(f"No heat map: this model's head is a {plain(loaded.card.get('kind'))} on {features}, "
                       "and Grad-CAM is offered for network heads only.")
    else:
        cam = explain(prediction.image, loaded.classes.index(best), method)
        shown = overlay(prediction.image, cam, opacity)
        middle.image(shown, caption=f"{METHOD_NAMES[method]} for {plain(best)}", width="stretch")
        if float(cam.max() - cam.min()) < FLAT:
            middle.caption("The heat map is flat: the model's last feature map is too coarse at this input size, "
                           "or nothing in the image drives this class more than anything else.")
        middle.download_button("Overlay PNG", png_bytes(shown), file_name=f"{Path(prediction.name).stem}-{method}.png",
                               mime="image/png", key=f"overlay-{index}", icon=":material/download:", type="tertiary")
    with right:
        if prediction.refusal:
            st.warning(prediction.refusal, icon=":material/help:")   # numbers only
        else:
            st.markdown(f"**{plain(best)}** · {prediction.top[0][1]:.1%}")
        table(pd.DataFrame(prediction.top, columns=["class", "probability"]), f"{prediction.name} top-{top_k}",
              key=f"top-{index}", column_config={"probability": st.column_config.ProgressColumn(
                  "probability", min_value=0.0, max_value=1.0, format="percent")})
