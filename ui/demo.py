"""The built-in ImageNet-1k demo on the Predict page: the model with a spinner the first time, heat maps
through the Predict page's cache (`ui.models.cached_heatmap`).

Importing this module imports TensorFlow (through `core.inference`): only the Predict page does.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.inference import imagenet
from core.inference.model_card import LoadedModel
from ui.models import cached_heatmap

LABEL = f"Built-in: {imagenet.DEMO_NAME}"


@st.cache_resource(show_spinner="Loading the built-in ImageNet model…")
def demo_model() -> LoadedModel:
    return imagenet.demo_model()


def demo_heatmap(image: np.ndarray, class_index: int, method: str) -> np.ndarray:
    return cached_heatmap(imagenet.CLI_NAME, demo_model(), image, class_index, method)


def caption(loaded: LoadedModel) -> str:
    return (f"{len(loaded.classes)} ImageNet-1k classes · input {loaded.image_size} px · EfficientNet-Lite0 with "
            "the ImageNet weights shipped with the app: works offline, before any sweep")
