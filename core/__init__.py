"""Transfer Lab engine: datasets, backbones, training, sweeps and the run store.

Nothing in this package imports Streamlit; the pages and the CLI call into it.
Importing `core` is cheap: TensorFlow is only imported by the modules that need it.
"""
