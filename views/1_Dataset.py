"""Dataset: add one (zip upload), then look at it before training: counts, samples, sizes, problems, split."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import streamlit as st

from core.data.datasets import Dataset, DatasetError, unpack_dataset
from core.data.findings import problems, usable
from core.data.scan import ScanReport
from core.results import charts
from ui import state
from ui.content_duplicates import content_duplicates
from ui.example import example_button
from ui.split_preview import split_preview
from ui.suspects_review import suspects_tab
from ui.widgets import THUMB_SIDE, chart, image_grid, per_row, plain, user_error

SAMPLES_PER_CLASS = per_row(THUMB_SIDE)     # one full row of thumbnails per class

st.title("Dataset")


UPLOAD_EXPANDER = "upload_expander"
UPLOADS = "uploads_extracted"    # zips this session extracted: in the uploader's key, so each starts empty
ADDED = "dataset_added"          # the folder just extracted, confirmed once on the next run


def upload_zip() -> None:
    if ADDED in st.session_state:
        st.session_state[UPLOAD_EXPANDER] = False     # closed again once its zip is extracted
    with st.expander("Add a dataset: upload a zip of class folders", icon=":material/upload:",
                     key=UPLOAD_EXPANDER, on_change="rerun"):
        round_ = st.session_state.get(UPLOADS, 0)
        upload = st.file_uploader("Zip file (one folder per class inside)", type=["zip"],
                                  key=f"zip_upload-{round_}")
        default = re.sub(r"[^A-Za-z0-9_.-]+", "_", upload.name.rsplit(".", 1)[0]) if upload else ""
        name = st.text_input("Name of the new dataset", value=default, max_chars=60,
                             help="letters, digits, '-', '_' and '.'; it becomes a folder in the data folder")
        if not st.button("Extract", disabled=upload is None or not name):
            return
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            st.error(f"'{plain(name)}' is not a usable folder name: use letters, digits, '-', '_' and '.'")
            return
        target = state.settings().upload_root / name
        if target.exists():
            st.error(f"A dataset named '{plain(name)}' already exists in {plain(target.parent)}: choose another name.")
            return
        try:
            with st.spinner(f"Extracting {plain(upload.name)}…"):
                root = unpack_dataset(upload, target)
        except (ValueError, OSError) as error:
            user_error(error, "Fix the archive (class folders of images, no links or paths leaving it) "
                              "and upload it again.")
            return
        state.select_dataset(root)
        st.session_state[UPLOADS] = round_ + 1
        st.session_state[ADDED] = str(root)
        st.rerun()


def confirm_upload(root: Path, dataset: Dataset, report: ScanReport) -> None:
    """Once, after an upload's rerun: what was added, counted as the metrics below count it."""
    if st.session_state.pop(ADDED, None) == str(root):
        st.success(f"Added the dataset **{plain(state.dataset_label(root))}**: {len(report.sizes)} images in "
                   f"{len(dataset.classes)} classes.", icon=":material/check_circle:")


upload_column, example_column = st.columns([3, 1], vertical_alignment="center")
with upload_column:
    upload_zip()
with example_column:
    example_button()
path = state.chosen_dataset()
if path is None:
    st.info("Choose a dataset in the sidebar, upload a zip above, or get the example flower dataset.")
    st.stop()
try:
    dataset, report = state.scan(path)
except DatasetError as error:
    user_error(error, "Fix the folder, or choose another dataset in the sidebar.")
    st.stop()
confirm_upload(path, dataset, report)

st.caption(plain(dataset.root))
cols = st.columns(5)
cols[0].metric("Images", len(report.sizes), help="readable images; bad files are counted apart")
cols[1].metric("Classes", len(dataset.classes))
cols[2].metric("Bad files", len(report.bad_files))
cols[3].metric("Duplicate groups", len(report.duplicate_groups) + len(report.near_duplicate_groups))
cols[4].metric("Label conflicts", len(report.label_conflicts))
if report.single_image_classes:
    st.warning(f"Classes with a single image cannot be split: {plain(', '.join(report.single_image_classes))}. "
               "Add images to them or remove them.")

# keyed tabs keep their selection when a widget inside one reruns the page (else it jumps to the first)
overview, samples, issues, split, suspects = st.tabs(["Overview", "Samples", "Problems", "Split preview",
                                                     "Suspect labels"], key="dataset_tab", on_change="rerun")
with overview:
    left, right = st.columns(2)
    with left:
        chart(charts.class_counts(report.counts), "class counts")
    with right:
        label_of = dict(zip(dataset.paths, (dataset.classes[c] for c in dataset.labels)))
        chart(charts.image_sizes(report.sizes, [label_of.get(p, "?") for p, _, _ in report.sizes]), "image sizes")

with samples:
    seed = st.number_input("Sample seed", min_value=0, value=0, step=1, help="change it for another random sample")
    rng = np.random.default_rng(int(seed))
    readable = usable(dataset, report)
    for index, name in enumerate(readable.classes):
        rows = np.flatnonzero(readable.labels == index)
        chosen = rng.choice(rows, size=min(SAMPLES_PER_CLASS, len(rows)), replace=False)
        st.markdown(f"**{plain(name)}** · {len(rows)} images")
        image_grid([readable.paths[i] for i in chosen], fit="crop")

with issues:
    found = problems(dataset, report)
    if not found:
        st.success("No bad files, duplicates or label conflicts found.")
    for problem in found:
        st.markdown(f"**{problem.kind}**: {plain(problem.reason)}")
        image_grid(problem.paths, problem.captions, side=144)
    content_duplicates(dataset)

with split:
    split_preview(dataset, report)

with suspects:
    suspects_tab(dataset)
