"""The optional login in Streamlit's AppTest: refused without it, admitted with it (a shared password, an
OIDC provider through st.login, a server requiring a login it does not have), who launched and stopped a
sweep, and who may delete it.

AppTest runs app.py on its first run only: it resets Streamlit's old-multipage flag before every run
(this app has a views/ folder), so later runs execute the page alone. The entry's gate is checked on
first runs here, the sign-in form in a script of its own, and deep links on a real server in
test_browser.py.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from apptest import APP, button, tiny_spec
from conftest import app_data_root
from streamlit.testing.v1 import AppTest
from apptest import TF_TIMEOUT, fill_tiny_sweep

PASSWORD = "correct horse battery"
OWN = {"ann": "ann's own passphrase", "carol": "carol's own passphrase"}
TEAM = {"login": {"password": PASSWORD, "admins": ["Carol", "Boss"], "users": OWN}}
PAGES = {"Dataset", "Sweep", "Results", "Predict"}
OIDC = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "random-secret",
                 "client_id": "transferlab", "client_secret": "s3cret",
                 "server_metadata_url": "http://127.0.0.1:1/.well-known/openid-configuration"}}


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with a tiny dataset and a run store of this test alone."""
    return app_data_root(tmp_path, monkeypatch, per_class=6)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The server's sign-in counts, fresh for each test, on a clock the test moves (`clock[0] += s`)."""
    from ui import auth
    from ui.sign_in_limits import SignInLimits
    now = [1000.0]
    monkeypatch.setattr(auth, "LIMITS", SignInLimits(clock=lambda: now[0]))
    return now


def app(secrets: dict, *, user: dict | None = None, signed_in: str = "", verified: bool = True,
        browser: str = "", sweep: str = "", timeout: float = 60) -> AppTest:
    """The app's first run, with these secrets, this OIDC user, a session signed in with a password (its
    own when `verified`) from the browser of proof `browser` (AppTest's runs have no cookie: "")."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.secrets.update(secrets)
    if user is not None:
        at.user = user
    if signed_in:
        signed = {"auth.user": signed_in, "auth.verified": verified, "auth.browser": browser}
        for key, value in signed.items():
            at.session_state[key] = value
    if sweep:
        at.query_params["sweep"] = sweep
    return at.run()


def shown_pages(at: AppTest) -> set[str]:
    assert not at.exception, [e.value for e in at.exception]
    return {t.value for t in at.title} & PAGES


def refused(at: AppTest) -> bool:
    """Nothing of any page and no sidebar: only the sign-in."""
    return not shown_pages(at) and not at.metric and not at.selectbox and not at.get("plotly_chart")


def store():
    from core.runs.store import RunStore
    return RunStore()


def test_the_entry_refuses_a_stranger_and_admits_a_signed_in_session(data_root: Path) -> None:
    at = app(TEAM)
    assert refused(at) and [b.label for b in at.button] == ["Sign in"]
    at = app(TEAM, signed_in="ann")
    assert shown_pages(at) == {"Dataset"} and any("Signed in as ann" in c.value for c in at.caption)
    assert any(b.label == "Sign out" for b in at.button)


def gated() -> None:
    """A page behind the gate, as app.py puts every page."""
    import streamlit as st

    from ui import auth
    user = auth.require(auth.current_user())
    st.title(f"Inside as {user}")
    auth.account(user)


def sign_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="auth.name").input(name)
    at.text_input(key="auth.password").input(password)
    return button(at, "Sign in").click().run()


def test_the_password_form_wants_a_name_and_the_password(data_root: Path) -> None:
    at = AppTest.from_function(gated, default_timeout=30)
    at.secrets.update(TEAM)
    at.run()
    inside = lambda: [t.value for t in at.title if t.value.startswith("Inside")]    # noqa: E731
    assert not inside()
    sign_in(at, "dan", "guess")
    assert not inside() and [e.value for e in at.error] == ["Wrong password."]
    sign_in(at, "  ", PASSWORD)
    assert not inside() and "name" in at.error[0].value
    sign_in(at, " dan ", PASSWORD)
    assert inside() == ["Inside as dan"] and not at.error
    at.run()
    assert inside() == ["Inside as dan"], "kept for the session"
    button(at, "Sign out").click().run()
    assert not inside()


def test_wrong_passwords_slow_the_next_attempts_down_for_the_name_and_the_address(data_root: Path,
                                                                                 clock: list[float]) -> None:
    """Server-wide: a second session (another tab, another stranger) meets the same wait."""
    def session() -> AppTest:
        at = AppTest.from_function(gated, default_timeout=30)
        at.secrets.update(TEAM)
        return at.run()

    at = session()
    for _ in range(3):
        assert [e.value for e in sign_in(at, "dan", "guess").error] == ["Wrong password."]
    sign_in(at, "dan", "guess")
    assert at.error[0].value.startswith("Wrong password. Too many wrong passwords: wait 2 s")
    clock[0] += 1
    for name in ("dan", "eve"):              # the name, and the address (AppTest's sessions share one)
        other = sign_in(session(), name, PASSWORD)
        assert not [t for t in other.title if t.value.startswith("Inside")], name
        assert "wait 1 s before trying again" in other.error[0].value, name
    clock[0] += 1
    sign_in(at, "dan", "guess")                # a failure after the wait waits longer
    assert "wait 4 s" in at.error[0].value
    clock[0] += 4
    assert [t.value for t in sign_in(session(), "dan", PASSWORD).title] == ["Inside as dan"]


def test_delete_and_admin_rights_follow_the_password_not_the_typed_name(data_root: Path) -> None:
    """Issue 18's probe: "ALICE" with the team password deleted alice's sweep, "BOSS" became admin."""
    from ui import auth
    store().create_sweep(tiny_spec("carols-sweep", data_root / "colours"))
    store().set_launched_by("carols-sweep", "carol")
    at = AppTest.from_function(gated, default_timeout=30)
    at.secrets.update(TEAM)
    at.run()
    sign_in(at, "CAROL", PASSWORD)              # a name with its own password: not with the team's
    assert not [t for t in at.title if t.value.startswith("Inside")]
    assert at.error[0].value == "Wrong password."
    sign_in(at, "Boss", PASSWORD)               # an admin's name, typed with the team password
    assert [t.value for t in at.title] == ["Inside as Boss"]
    assert any("not verified" in c.value for c in at.caption), [c.value for c in at.caption]
    unverified = signed_in_on("carols-sweep", "Boss", verified=False)
    assert button(unverified, "Delete").disabled, "a typed admin name is no admin"
    assert button(signed_in_on("carols-sweep", "carol", verified=False), "Delete").disabled, \
        "a typed launcher name is not the launcher"
    button(at, "Sign out").click().run()
    sign_in(at, "Carol", OWN["carol"])
    assert [t.value for t in at.title] == ["Inside as Carol"] and at.session_state[auth.VERIFIED_KEY]
    assert not any("not verified" in c.value for c in at.caption)
    assert not button(signed_in_on("carols-sweep", "Carol"), "Delete").disabled


def test_a_session_reached_from_another_browser_is_signed_out(data_root: Path) -> None:
    """The session was signed in from the browser whose client cookie has proof `browser`; this run comes
    with no such cookie (a replayed session id on a new websocket): signed out, nothing drawn."""
    from ui import server_guard
    at = app(TEAM, signed_in="ann", browser=server_guard.proof("the signed-in browser's cookie"))
    assert refused(at) and [b.label for b in at.button] == ["Sign in"]
    assert "auth.user" not in at.session_state
    assert shown_pages(app(TEAM, signed_in="ann", browser="")) == {"Dataset"}, "the same browser stays in"


def test_oidc_provider_refuses_a_signed_out_user_and_admits_a_signed_in_one(data_root: Path) -> None:
    at = app(TEAM | OIDC, user={"is_logged_in": False})
    assert refused(at) and [b.label for b in at.button] == ["Sign in"]
    assert not at.text_input, "with a provider, no password is asked"
    at = app(TEAM | OIDC, user={"is_logged_in": True, "email": "ann@example.org", "name": "Ann"})
    assert shown_pages(at) == {"Dataset"}


def test_a_required_login_that_is_not_configured_lets_nobody_in(data_root: Path) -> None:
    at = app({"login": {"required": True}})
    assert refused(at) and not at.text_input and not at.button
    assert len(at.error) == 1 and "[login]" in at.error[0].value


def signed_in_on(sweep: str, name: str, verified: bool = True) -> AppTest:
    return app(TEAM, signed_in=name, verified=verified, sweep=sweep).switch_page("views/2_Sweep.py").run()


def test_who_launched_and_stopped_is_recorded_shown_and_decides_who_deletes(data_root: Path) -> None:
    at = app(TEAM, signed_in="ann", timeout=TF_TIMEOUT).switch_page("views/2_Sweep.py").run()
    fill_tiny_sweep(at, "anns-sweep")
    button(at, "Launch").click().run()
    assert not at.exception, at.exception
    sweep = store().sweep("anns-sweep")
    os.killpg(sweep.driver.pid, signal.SIGKILL)       # its driver (own session) is not what is tested
    assert sweep.launched_by == "ann"

    bob = signed_in_on("anns-sweep", "bob")
    assert any("ann" in c.value for c in bob.caption), [c.value for c in bob.caption]
    button(bob, "Stop").click().run().run()             # (the second run is the live panel's next poll)
    assert store().sweep("anns-sweep").stopped_by == "bob"
    assert any("bob" in c.value for c in bob.caption), [c.value for c in bob.caption]
    assert button(bob, "Delete").disabled, "only who launched it, or an admin, deletes a sweep"

    other = tiny_spec("daves-sweep", data_root / "colours")
    store().create_sweep(other)
    store().set_launched_by(other.name, "dave")
    carol = signed_in_on(other.name, "carol")          # an admin, whatever the case of her name
    button(carol, "Delete").click().run()
    button(carol, "Delete for good").click().run()
    assert other.name not in store().sweep_names()

    ann = signed_in_on("anns-sweep", "ann")
    button(ann, "Delete").click().run()
    button(ann, "Delete for good").click().run()
    assert not ann.exception and store().sweep_names() == []


@pytest.mark.parametrize("address, warned",
                         [("0.0.0.0", True), ("", True), ("127.0.0.1", False), ("localhost", False)])
def test_a_server_open_to_the_network_without_a_login_says_so(address: str, warned: bool,
                                                             data_root: Path) -> None:
    from streamlit import config
    saved = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        open_door = [w.value for w in app({}).warning if "anyone who reaches this server" in w.value]
        assert bool(open_door) == warned, (address, open_door)
        assert not [w.value for w in app(TEAM, signed_in="ann").warning if "anyone" in w.value]
    finally:
        config.set_option("server.address", saved)
