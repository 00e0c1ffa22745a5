"""Transfer Lab: `streamlit run app.py`. The entry only sets the page up, starts the server's
background duties once, draws the shared sidebar, and hands over to the chosen page."""
from __future__ import annotations

import streamlit as st

from ui import state

st.set_page_config(page_title="Transfer Lab", page_icon=":material/biotech:", layout="wide")

PAGES = [
    st.Page("pages/1_Dataset.py", title="Dataset", icon=":material/photo_library:", default=True),
    st.Page("pages/2_Sweep.py", title="Sweep", icon=":material/tune:"),
    st.Page("pages/3_Results.py", title="Results", icon=":material/monitoring:"),
    st.Page("pages/4_Predict.py", title="Predict", icon=":material/image_search:"),
]
page = st.navigation(PAGES)

resumed = state.start_server()
if resumed and not st.session_state.get("resumed_seen"):
    st.session_state["resumed_seen"] = True
    st.toast(f"Resumed after a restart: {', '.join(resumed)}", icon=":material/restart_alt:")

with st.sidebar:
    state.dataset_picker()
    st.caption(f"Run store: `{state.store().url_for_humans}`")

page.run()
