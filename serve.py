"""Transfer Lab's server: `streamlit run serve.py`. The app is app.py; this adds the guard that keeps
Streamlit's upload endpoint behind the login and closes its metrics (`ui.server_guard`)."""
import streamlit as st

from ui import server_guard

app = st.App("app.py", middleware=server_guard.middleware())
