"""Trained models for the Predict page: loaded once per server, uploads kept by content for a while,
Grad-CAM cached.

Importing this module imports TensorFlow (through `core.inference.model_card`): only the Predict page does.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from core.inference.explain import gradcam
from core.inference.model_card import LoadedModel, load_model
from core.inference.uploads import keep_upload, prune_uploads
from ui import state


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _load(path: str, mtime_ns: int, name: str | None) -> LoadedModel:
    return load_model(path, name=name)


def loaded_model(path: Path, name: str | None = None) -> LoadedModel:
    """The model at `path`, loaded once per server process (again only if the file changes); `name`:
    the file as messages call it (an upload's own name, not the server's path)."""
    return _load(str(path), path.stat().st_mtime_ns, name)


def _upload_folder() -> Path:
    return state.settings().home / "uploads" / "models"


def save_upload(data: bytes) -> Path:
    """An uploaded .keras file, kept under the project's home by content hash (never a user-given path)."""
    return keep_upload(data, _upload_folder(), ".keras")


def drop_old_uploads() -> None:
    """Remove uploaded models older than UPLOAD_MAX_AGE (a session still using one writes it again)."""
    prune_uploads(_upload_folder())


@st.cache_data(show_spinner=False, max_entries=256)
def _heatmap(model_key: str, image_digest: str, class_index: int, method: str, _loaded: LoadedModel,
             _image: np.ndarray) -> np.ndarray:
    return gradcam(_loaded.model, _image, class_index, method=method)


def cached_heatmap(model_key: str, loaded: LoadedModel, image: np.ndarray, class_index: int,
                   method: str) -> np.ndarray:
    """Grad-CAM (or ++) of one image for one class of the model `model_key` names; an opacity change reuses it."""
    return _heatmap(model_key, hashlib.sha1(image.tobytes()).hexdigest(), class_index, method, loaded, image)


def heatmap(model_path: Path, loaded: LoadedModel, image: np.ndarray, class_index: int, method: str) -> np.ndarray:
    """`cached_heatmap` of a saved model (a rewritten file is another model)."""
    return cached_heatmap(f"{model_path}:{model_path.stat().st_mtime_ns}", loaded, image, class_index, method)
