"""Who uses the app: an optional login for a shared server, read from `.streamlit/secrets.toml`.

- An `[auth]` provider configured: Streamlit's own OIDC login (`st.login`, `st.user`).
- Else `[login] password` and/or `[login.users]` (a password per name): a name and a password, kept in
  the session once accepted (a reload asks again). A name listed in `[login.users]` signs in with its own
  password only, and is then verified; any other name with the shared password is the team's word,
  not a proof. Wrong passwords slow the next attempts down (`ui.sign_in_limits`).
- Else off: a server reachable only on localhost needs none. `[login] required = true` lets nobody
  in while neither is configured, so a team server is never opened by a forgotten password.

Policy: any signed-in user may watch, launch, stop and resume any sweep (a stuck sweep must be
stoppable by the team); deleting one is for the verified user who launched it last and for verified
`[login] admins` (OIDC users are verified; a name typed with the shared password never is); with login
off, everyone may.

A password sign-in is bound to the browser it came from (the guard's HttpOnly client cookie,
`ui.server_guard`): a session reached from elsewhere (its id replayed on a new websocket) is signed out.
Each run tells the guard whether this session is let in, which is what lets its uploads through.
"""
from __future__ import annotations

import hmac
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

import streamlit as st
from streamlit import config as st_config
from streamlit import runtime
from streamlit.errors import StreamlitAuthError
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.runs.records import SweepRecord
from ui import server_guard
from ui.sign_in_limits import SignInLimits
from ui.widgets import plain

USER_KEY = "auth.user"
VERIFIED_KEY = "auth.verified"      # True: the user's own password proved the name
BROWSER_KEY = "auth.browser"        # the proof of the browser the password came from (server_guard.proof)
NAME_MAX = 60
LIMITS = SignInLimits()             # one per server process: every session's attempts count together


class Mode(str, Enum):
    OFF = "off"
    PASSWORD = "password"
    OIDC = "oidc"
    LOCKED = "locked"          # required, but neither a provider nor a password is configured


@dataclass(frozen=True)
class LoginConfig:
    password: str = ""                             # the shared (team) password
    users: tuple[tuple[str, str], ...] = ()       # (case-folded name, its own password)
    admins: frozenset[str] = frozenset()          # case-folded user names or e-mails
    required: bool = False
    providers: tuple[str | None, ...] = ()        # OIDC providers for st.login; None is [auth]'s own

    @property
    def mode(self) -> Mode:
        if self.providers:
            return Mode.OIDC
        if self.password or self.users:
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
    users = login.get("users", {})
    return LoginConfig(password=str(login.get("password", "")),
                       users=tuple((str(name).casefold(), str(password)) for name, password in users.items())
                       if isinstance(users, Mapping) else (),
                       admins=frozenset(str(a).casefold() for a in login.get("admins", ())),
                       required=bool(login.get("required", False)), providers=_providers(_section("auth")))


def _oidc_user() -> str | None:
    if not st.user.get("is_logged_in"):
        return None
    return str(st.user.get("email") or st.user.get("name") or st.user.get("sub") or "")


def _browser() -> str:
    """The proof of the browser this run's connection came from ("" without the guard's cookie)."""
    return server_guard.proof(st.context.cookies.get(server_guard.CLIENT_COOKIE))


def _sign_out() -> None:
    for key in (USER_KEY, VERIFIED_KEY, BROWSER_KEY):
        st.session_state.pop(key, None)


def _password_user() -> str | None:
    """The session's password sign-in, if this run comes from the browser that gave the password."""
    name = st.session_state.get(USER_KEY)
    if name is not None and st.session_state.get(BROWSER_KEY) != _browser():
        _sign_out()                # the session id replayed from another browser: not what proved it
        return None
    return name


def current_user() -> str | None:
    """Who is signed in: "" with login off, None while nobody is (the page must not run)."""
    mode = config().mode
    if mode == Mode.OFF:
        return ""
    if mode == Mode.OIDC:
        return _oidc_user()
    if mode == Mode.PASSWORD:
        return _password_user()
    return None


def verified() -> bool:
    """Whether the signed-in user's identity was proved (an OIDC login, or the user's own password)."""
    mode = config().mode
    return mode == Mode.OIDC or (mode == Mode.PASSWORD and bool(st.session_state.get(VERIFIED_KEY)))


def user() -> str:
    """The signed-in user for the records a page writes ("" with login off); app.py lets no one else in."""
    return current_user() or ""


def may_delete(sweep: SweepRecord, user: str | None) -> bool:
    """With login off anyone; else a verified user who launched the sweep last, or a verified admin (any
    case). A name typed with the shared password proves nothing, so it gets neither right."""
    settings = config()
    if settings.mode == Mode.OFF:
        return True
    return bool(user) and verified() and user.casefold() in settings.admins | {sweep.launched_by.casefold()}


def _matches(given: str, password: str) -> bool:
    return bool(password) and hmac.compare_digest(given.encode(), password.encode())


def _check(settings: LoginConfig, name: str, given: str) -> bool | None:
    """None for a wrong password; else whether the name is verified. A listed name takes its own
    password only (the shared one must not sign anyone in as alice)."""
    own = dict(settings.users).get(name.casefold())
    if own is not None:
        return True if _matches(given, own) else None
    return False if _matches(given, settings.password) else None


def _wait_line(wait_s: float) -> str:
    return f"Too many wrong passwords: wait {math.ceil(wait_s)} s before trying again."


def _password_form(settings: LoginConfig) -> None:
    with st.form("login"):
        name = st.text_input("Your name", key="auth.name", max_chars=NAME_MAX,
                             help="recorded with the sweeps you launch or stop. With the team password it "
                                  "is your word, not a proof: deleting others' sweeps and admin rights need "
                                  "your own password ([login.users])")
        given = st.text_input("Password (your own, or the team's)" if settings.users else "Team password",
                              type="password", key="auth.password")
        if not st.form_submit_button("Sign in", type="primary", icon=":material/login:"):
            return
    address = st.context.ip_address
    keys = [f"name:{name.strip().casefold()}", f"address:{address if isinstance(address, str) else ''}"]
    if not name.strip():
        st.error("Enter your name: sweeps record who launched or stopped them.")
    elif server_guard.installed() and not _browser():        # nothing to bind the sign-in to
        st.error("This browser sent no session cookie: allow cookies for this site, reload, and sign in "
                 "again.")
    elif (wait_s := LIMITS.wait_s(keys)) > 0:
        st.error(_wait_line(wait_s))                 # refused before the password is even compared
    elif (proved := _check(settings, name.strip(), given)) is None:
        LIMITS.failed(keys)
        wait_s = LIMITS.wait_s(keys)
        st.error("Wrong password." + (f" {_wait_line(wait_s)}" if wait_s > 0 else ""))
    else:
        LIMITS.succeeded(keys)
        st.session_state.update({USER_KEY: name.strip(), VERIFIED_KEY: proved, BROWSER_KEY: _browser()})
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
            _password_form(settings)
        else:
            st.error("This server requires a login ([login] required = true) but has none: set "
                     "[login] password or an [auth] provider in .streamlit/secrets.toml.")
    st.stop()


def _serving_unguarded() -> bool:
    """A real server (not AppTest's stand-in) started without `serve.py`'s guard: `streamlit run app.py`."""
    return type(runtime.get_instance()) is runtime.Runtime and not server_guard.installed()


def _admit(user: str | None) -> None:
    """Tell the guard whether this session is let in (its uploads go through) and from which browser."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    if user is None:
        server_guard.dismiss(ctx.session_id)
    else:
        server_guard.forget_ended(runtime.get_instance().is_active_session)
        server_guard.admit(ctx.session_id, _browser())


def require(user: str | None) -> str:
    """The signed-in user (`current_user()`); for nobody, the sign-in page and the end of the run."""
    if config().mode != Mode.OFF and _serving_unguarded():
        st.error("This server has a login but was started without its guard, so uploads would bypass the "
                 "login: start it with `streamlit run serve.py`.", icon=":material/error:")
        st.stop()
    _admit(user)
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
    left.caption(f"Signed in as {plain(user)}" + ("" if verified() else " (a name, not verified: no delete "
                                                                      "or admin rights)"))
    if right.button("Sign out", key="auth.sign_out", type="tertiary"):
        if mode == Mode.OIDC:
            st.logout()
        _sign_out()
        st.rerun()
