"""Transfer Lab, served by `streamlit run serve.py` (this app behind the server guard, `ui.server_guard`).
The entry runs first whichever page a URL names: it sets the page up, opens the run store, starts the
server's background duties once, lets in only a signed-in user (when a login is configured, `ui.auth`),
draws the shared sidebar, and hands over to the page."""
from __future__ import annotations

import streamlit as st

from ui import auth, state

st.set_page_config(page_title="Transfer Lab", page_icon=":material/biotech:", layout="wide")

PAGES = [
    st.Page("views/1_Dataset.py", title="Dataset", icon=":material/photo_library:", default=True),
    st.Page("views/2_Sweep.py", title="Sweep", icon=":material/tune:"),
    st.Page("views/3_Results.py", title="Results", icon=":material/monitoring:"),
    st.Page("views/4_Predict.py", title="Predict", icon=":material/image_search:"),
]
user = auth.current_user()
page = st.navigation(PAGES, position="sidebar" if user is not None else "hidden")

store = state.require_store()
resumed = state.start_server()     # a server duty: it runs whoever comes first, signed in or not
user = auth.require(user)
if resumed and not st.session_state.get("resumed_seen"):
    st.session_state["resumed_seen"] = True
    st.toast(f"Resumed after a restart: {', '.join(resumed)}", icon=":material/restart_alt:")

with st.sidebar:
    auth.account(user)
    state.dataset_picker()
    st.caption(f"Run store: `{store.url_for_humans}`")

page.run()
