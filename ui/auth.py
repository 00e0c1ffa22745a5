"""Who uses the app: an optional login for a shared server, read from `.streamlit/secrets.toml`.

- An `[auth]` provider configured: Streamlit's own OIDC login (`st.login`, `st.user`).
- Else `[login] password`: one shared password, and a name so that sweeps record who launched or
  stopped them (kept in the session once accepted; a reload asks again). The password keeps
  strangers out; the name is the team's word, not a proof: OIDC gives verified identities.
- Else off: a server reachable only on localhost needs none. `[login] required = true` lets nobody
  in while neither is configured, so a team server is never opened by a forgotten password.

Policy: any signed-in user may watch, launch, stop and resume any sweep (a stuck sweep must be
stoppable by the team); deleting one is for the user who launched it last and for `[login] admins`;
with login off, everyone may.
"""
from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

import streamlit as st
from streamlit import config as st_config
from streamlit.errors import StreamlitAuthError

from core.runs.records import SweepRecord
from ui.widgets import plain

USER_KEY = "auth.user"
NAME_MAX = 60


class Mode(str, Enum):
    OFF = "off"
    PASSWORD = "password"
    OIDC = "oidc"
    LOCKED = "locked"          # required, but neither a provider nor a password is configured


@dataclass(frozen=True)
class LoginConfig:
    password: str = ""
    admins: frozenset[str] = frozenset()          # case-folded user names or e-mails
    required: bool = False
    providers: tuple[str | None, ...] = ()        # OIDC providers for st.login; None is [auth]'s own

    @property
    def mode(self) -> Mode:
        if self.providers:
            return Mode.OIDC
        if self.password:
            return Mode.PASSWORD
        return Mode.LOCKED if self.required else Mode.OFF


def _section(name: str) -> Mapping[str, Any]:
    try:
        value = st.secrets.get(name, {})
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {}
    return value if isinstance(value, Mapping) else {}


def _providers(auth: Mapping[str, Any]) -> tuple[str | None, ...]:
    """`[auth]` itself when it names a client, else each `[auth.NAME]` that does (Streamlit's layout)."""
    if "client_id" in auth:
        return (None,)
    return tuple(name for name, value in auth.items() if isinstance(value, Mapping) and "client_id" in value)


def config() -> LoginConfig:
    login = _section("login")
    return LoginConfig(password=str(login.get("password", "")),
                       admins=frozenset(str(a).casefold() for a in login.get("admins", ())),
                       required=bool(login.get("required", False)), providers=_providers(_section("auth")))


def _oidc_user() -> str | None:
    if not st.user.get("is_logged_in"):
        return None
    return str(st.user.get("email") or st.user.get("name") or st.user.get("sub") or "")


def current_user() -> str | None:
    """Who is signed in: "" with login off, None while nobody is (the page must not run)."""
    mode = config().mode
    if mode == Mode.OFF:
        return ""
    if mode == Mode.OIDC:
        return _oidc_user()
    if mode == Mode.PASSWORD:
        return st.session_state.get(USER_KEY)
    return None


def user() -> str:
    """The signed-in user for the records a page writes ("" with login off); app.py lets no one else in."""
    return current_user() or ""


def may_delete(sweep: SweepRecord, user: str | None) -> bool:
    """With login off anyone; else the user who launched the sweep last, or an admin (any case)."""
    settings = config()
    if settings.mode == Mode.OFF:
        return True
    return bool(user) and user.casefold() in settings.admins | {sweep.launched_by.casefold()}


def _password_form(password: str) -> None:
    with st.form("login"):
        name = st.text_input("Your name", key="auth.name", max_chars=NAME_MAX,
                             help="recorded with the sweeps you launch or stop")
        given = st.text_input("Team password", type="password", key="auth.password")
        if not st.form_submit_button("Sign in", type="primary", icon=":material/login:"):
            return
    if not name.strip():
        st.error("Enter your name: sweeps record who launched or stopped them.")
    elif not hmac.compare_digest(given.encode(), password.encode()):
        st.error("Wrong password.")
    else:
        st.session_state[USER_KEY] = name.strip()
        st.rerun()


def _oidc_buttons(providers: tuple[str | None, ...]) -> None:
    for provider in providers:
        label = f"Sign in with {provider}" if provider else "Sign in"
        if st.button(label, type="primary", icon=":material/login:", key=f"auth.oidc.{provider}"):
            try:
                st.login(provider)
            except StreamlitAuthError as error:      # e.g. Authlib missing, or [auth] incomplete
                st.error(f"Sign-in is misconfigured on this server: {plain(error)}")


def _login_page() -> NoReturn:
    """Draw the sign-in and end the run: nothing of any page is drawn for a stranger."""
    settings = config()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Transfer Lab")
        if settings.mode == Mode.OIDC:
            st.write("Sign in to use this team server.")
            _oidc_buttons(settings.providers)
        elif settings.mode == Mode.PASSWORD:
            _password_form(settings.password)
        else:
            st.error("This server requires a login ([login] required = true) but has none: set "
                     "[login] password or an [auth] provider in .streamlit/secrets.toml.")
    st.stop()


def require(user: str | None) -> str:
    """The signed-in user (`current_user()`); for nobody, the sign-in page and the end of the run."""
    if user is None:
        _login_page()
    return user


def _reachable_from_network() -> bool:
    address = st_config.get_option("server.address") or ""     # unset: every interface
    if address == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True


def account(user: str) -> None:
    """The sidebar's line about who is signed in, with Sign out; or a warning when anyone may come in."""
    mode = config().mode
    if mode == Mode.OFF:
        if _reachable_from_network():
            st.warning("No login: anyone who reaches this server can use it. Set [login] password in "
                       ".streamlit/secrets.toml.", icon=":material/lock_open:")
        return
    left, right = st.columns([3, 2], vertical_alignment="center")
    left.caption(f"Signed in as {plain(user)}")
    if right.button("Sign out", key="auth.sign_out", type="tertiary"):
        if mode == Mode.OIDC:
            st.logout()
        st.session_state.pop(USER_KEY, None)
        st.rerun()
