"""The built-in ImageNet-1k demo on the Predict page: the model with a spinner the first time, heat maps
cached (an opacity change reuses them).

Importing this module imports TensorFlow (through `core.inference`): only the Predict page does.
"""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from core.inference import imagenet
from core.inference.model_card import LoadedModel

LABEL = f"Built-in: {imagenet.DEMO_NAME}"


@st.cache_resource(show_spinner="Loading the built-in ImageNet model…")
def demo_model() -> LoadedModel:
    return imagenet.demo_model()


@st.cache_data(show_spinner=False, max_entries=256)
def _heatmap(image_digest: str, class_index: int, method: str, _image: np.ndarray) -> np.ndarray:
    return imagenet.demo_heatmap(_image, class_index, method)


def demo_heatmap(image: np.ndarray, class_index: int, method: str) -> np.ndarray:
    return _heatmap(hashlib.sha1(image.tobytes()).hexdigest(), class_index, method, image)


def caption(loaded: LoadedModel) -> str:
    return (f"{len(loaded.classes)} ImageNet-1k classes · input {loaded.image_size} px · EfficientNet-Lite0 with "
            "the ImageNet weights shipped with the app: works offline, before any sweep")
