"""The Sweep page's augmentation preview: a few training images of the chosen dataset through each
augmentation the form chose, by the transform training uses (`core.training.augment_preview`)."""
from __future__ import annotations

import streamlit as st

from core.spec.space import Choice
from core.spec.sweep import SweepSpec
from ui.widgets import plain

IMAGES = 5
VIEWS = 2
SHOW_KEY = "augment.show"
SEED_KEY = "augment.seed"


@st.cache_data(show_spinner=False, max_entries=16)
def _examples(spec_yaml: str, seed: int) -> tuple:
    from core.training.augment_preview import training_examples
    return training_examples(SweepSpec.from_yaml(spec_yaml), IMAGES, seed)


def _choices(spec: SweepSpec) -> tuple[str, ...]:
    """The augmentations the sweep's trials may use: its swept values, else its one."""
    dim = spec.search.space.get("augmentation")
    return tuple(dim.values) if isinstance(dim, Choice) else (spec.params.augmentation,)


def augmentation_preview(spec: SweepSpec | None) -> None:
    """An expander; its images only once asked for (the augmentation loads TensorFlow into this server)."""
    with st.expander("Augmentation preview", icon=":material/photo_library:"):
        if spec is None:
            st.caption("Correct the form above to preview its augmentation.")
            return
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        shown = left.toggle("Show training images through the augmentation", key=SHOW_KEY,
                            help="a few images of the sweep's train part, decoded at its image size, each through "
                                 f"{VIEWS} random draws of the transform its training applies")
        seed = int(right.number_input("Draw", min_value=0, value=0, step=1, key=SEED_KEY,
                                      help="another draw of images and transforms"))
        if not shown:
            return
        from core.training.augment_preview import augmented
        with st.spinner("Decoding and augmenting a few training images…"):
            images, classes = _examples(_data_only(spec), seed)
            for kind in _choices(spec):
                st.markdown(f"**{kind}** at {spec.params.image_size} px")
                st.image(list(images), caption=[plain(c) for c in classes], width=120)
                if kind == "none":
                    st.caption("none: the images train as they are")
                    continue
                for view, draw in enumerate(augmented(images, kind, VIEWS, seed), start=1):
                    st.image(list(draw), caption=[plain(f"{kind}, draw {view}")] * len(draw), width=120)


def _data_only(spec: SweepSpec) -> str:
    """What the examples depend on (the data, the folds, the image size), as a cache key."""
    data = spec.to_dict()
    return SweepSpec.from_dict({"name": spec.name, "data": data["data"], "folds": spec.folds,
                                "params": {"image_size": spec.params.image_size}}).to_yaml()
