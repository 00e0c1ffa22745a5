"""What the HTTP server refuses before Streamlit sees a request, and the cookie that ties a browser to its
sign-in. Installed once, at server start, by `serve.py` (`st.App(..., middleware=server_guard.middleware())`).

Streamlit 1.67 (Starlette) accepts a PUT to `/_stcore/upload_file/<session>/<file id>` from anyone who
names an active session: it checks neither the file id (any id is stored) nor who the session belongs
to, and the session id is handed to every browser that opens the sign-in page. XSRF protection does not
help (a stranger's own browser gets a valid token), nor does drawing `st.file_uploader` only after
sign-in (the endpoint never asks which ids were issued). So the login's gate (`ui.auth`) admits each
session it lets in here, and this middleware refuses uploads for any other session before reading
the body. It also closes `/_stcore/metrics` (cache names and hit counts; Streamlit has no option to
turn it off) and sets an HttpOnly cookie whose value a password sign-in is bound to.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLIENT_COOKIE = "transferlab_client"
_UPLOAD = re.compile(r"(?:/.*)?/_stcore/upload_file/([^/]+)/[^/]+/?")
_METRICS = re.compile(r"(?:/.*)?/_stcore/metrics/?")

_admitted: dict[str, str] = {}       # session id -> proof of the browser the gate let in
_lock = threading.Lock()
_installed = threading.Event()


def proof(cookie: object) -> str:
    """What ties a session to one browser: a digest of its client cookie ("" without one; AppTest's
    stand-in context gives no string)."""
    return hashlib.sha256(cookie.encode()).hexdigest() if isinstance(cookie, str) and cookie else ""


def admit(session_id: str, browser: str) -> None:
    """The gate let this session in, from the browser of proof `browser`: uploads to the session from
    that browser are accepted (until `dismiss`)."""
    with _lock:
        _admitted[session_id] = browser


def dismiss(session_id: str) -> None:
    """This session is not (or no longer) signed in: its uploads are refused."""
    with _lock:
        _admitted.pop(session_id, None)


def admitted(session_id: str, browser: str) -> bool:
    with _lock:
        return _admitted.get(session_id) == browser


def forget_ended(active: Callable[[str], bool]) -> None:
    """Drop the sessions that have ended (`active` says which still are), so the table stays small."""
    with _lock:
        for session_id in [s for s in _admitted if not active(s)]:
            del _admitted[session_id]


def installed() -> bool:
    """Whether this process's HTTP server runs the guard (started with `streamlit run serve.py`)."""
    return _installed.is_set()


async def _refuse(send: Send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(text)).encode())]})
    await send({"type": "http.response.body", "body": text})


class SessionGuard:
    """ASGI middleware: uploads only for admitted sessions from the browser admitted, no metrics, a client
    cookie on the app's page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if _METRICS.fullmatch(path):
            await _refuse(send, 404, b"Not found")
            return
        cookie = HTTPConnection(scope).cookies.get(CLIENT_COOKIE)
        upload = _UPLOAD.fullmatch(path)
        if upload and scope.get("method") != "OPTIONS" and not admitted(upload.group(1), proof(cookie)):
            await _refuse(send, 403, b"Sign in first")
            return
        if cookie:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._with_cookie(scope, send))

    @staticmethod
    def _with_cookie(scope: Scope, send: Send) -> Send:
        """`send`, adding a new random client cookie to an HTML page (the app's index)."""
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{CLIENT_COOKIE}={secrets.token_urlsafe(32)}; Path=/; HttpOnly; SameSite=Lax{secure}"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    message = {**message, "headers": headers + [(b"set-cookie", cookie.encode())]}
            await send(message)
        return sending


def middleware() -> list[Middleware]:
    """The guard, for `st.App(middleware=...)`; marks this process as guarded."""
    _installed.set()
    return [Middleware(SessionGuard)]
