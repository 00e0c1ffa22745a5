"""Streamlit's own endpoints behind the login (issue 18, items 3, 10, 16), on a real server on loopback
(`serve.py`, as `make run` starts it) with real Chromium sessions, and requests made as the probe made
them: the session id read from the websocket, the file id made up, a signed-in session's id replayed
on a websocket of another browser."""
from __future__ import annotations

import http.client
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import png_zip, write_class_folders
from google.protobuf.message import DecodeError
from browser import VIEWPORT, serve, server_env, settle

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
BIG = 200 * 2**20            # the probe's upload size


def watch_session_ids(page) -> list[str]:
    """The session ids the server announces to `page` on its websocket (one per script run), as they come."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    ids: list[str] = []

    def frame(payload: bytes | str) -> None:
        message = ForwardMsg()
        try:
            message.ParseFromString(payload if isinstance(payload, bytes) else payload.encode())
        except DecodeError:
            return
        if message.WhichOneof("type") == "new_session" and message.new_session.initialize.session_id:
            ids.append(message.new_session.initialize.session_id)
    page.on("websocket", lambda ws: ws.on("framereceived", frame))
    return ids


def _headers(page) -> dict[str, str]:
    """The cookies `page`'s browser sends to the server, and the XSRF header its uploads carry."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "X-Xsrftoken": cookies.get("_streamlit_xsrf", "")}


def put_file(url: str, session: str, headers: dict[str, str], data: bytes = b"a small file\n") -> int:
    """PUT one file to Streamlit's upload endpoint under a made-up file id: the HTTP status."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.zip\"\r\n"
            f"Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
    try:
        connection.request("PUT", f"/_stcore/upload_file/{session}/{uuid.uuid4()}", body,
                           headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return connection.getresponse().status
    finally:
        connection.close()


def answer_before_the_body(url: str, session: str, headers: dict[str, str]) -> int:
    """Announce a 200 MB upload and send none of it: a server that refuses before reading answers at once
    (it keeps nothing); one that reads the body waits for it (a timeout here)."""
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=20)
    try:
        connection.putrequest("PUT", f"/_stcore/upload_file/{session}/{uuid.uuid4()}")
        announced = headers | {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(BIG)}
        for name, value in announced.items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


REPLAY = """async ([url, protocols, message]) => {
    const socket = new WebSocket(url, protocols);
    socket.binaryType = "arraybuffer";
    const frames = [];
    socket.onmessage = (event) => frames.push(Array.from(new Uint8Array(event.data)));
    await new Promise((opened, failed) => { socket.onopen = opened; socket.onerror = failed; });
    socket.send(new Uint8Array(message));
    await new Promise((done) => setTimeout(done, 10000));
    socket.close();
    return frames;
}"""


def replay(page, url: str, session: str) -> str:
    """Open a websocket from `page`'s browser that presents `session` (as a reconnect does), ask for a
    script run, and return what the server sent, as text."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ClientState_pb2 import ClientState
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    xsrf = {c["name"]: c["value"] for c in page.context.cookies()}.get("_streamlit_xsrf", "")
    rerun = BackMsg(rerun_script=ClientState()).SerializeToString()
    frames = page.evaluate(REPLAY, [url.replace("http", "ws", 1) + "/_stcore/stream",
                                    ["streamlit", xsrf, session], list(rerun)])
    text = []
    for frame in frames:
        message = ForwardMsg()
        message.ParseFromString(bytes(frame))
        text.append(str(message))
    return "\n".join(text)


def get_status(url: str, path: str) -> int:
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_uploads_need_a_signed_in_session_from_its_own_browser_and_metrics_are_closed(
        tmp_path: Path, chromium) -> None:
    write_class_folders(tmp_path / "data" / "colours", per_class=6)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[login]\npassword = "{PASSWORD}"\n')
    stranger = chromium.new_context(viewport=VIEWPORT).new_page()
    member = chromium.new_context(viewport=VIEWPORT).new_page()
    strangers_ids, members_ids = watch_session_ids(stranger), watch_session_ids(member)
    try:
        with serve(tmp_path, server_env(tmp_path), "--secrets.files", str(secrets)) as url:
            stranger.goto(url)
            settle(stranger)
            assert stranger.get_by_role("button", name="Sign in").count() == 1 and strangers_ids
            assert answer_before_the_body(url, strangers_ids[-1], _headers(stranger)) == 403
            assert put_file(url, strangers_ids[-1], _headers(stranger)) == 403, "the sign-in page's session"

            member.goto(url)
            settle(member)
            member.get_by_role("textbox", name="Your name").fill("ann")
            member.get_by_role("textbox", name="Team password").fill(PASSWORD)
            member.get_by_role("button", name="Sign in").click()
            settle(member)
            member.get_by_role("heading", name="Dataset").first.wait_for(timeout=60_000)
            session = members_ids[-1]
            assert put_file(url, session, _headers(member)) == 204, "a signed-in session uploads"
            member.get_by_text("Add a dataset: upload a zip of class folders").click()
            pets = png_zip({"cats": (200, 40, 40), "dogs": (40, 60, 200)}, per_class=3)
            member.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
                files=[{"name": "pets.zip", "mimeType": "application/zip", "buffer": pets}])
            settle(member)
            name = member.get_by_role("textbox", name="Name of the new dataset")
            assert name.input_value() == "pets", "the page's own uploader reached the script"
            assert put_file(url, session, _headers(stranger)) == 403, "its id from another browser: refused"
            assert answer_before_the_body(url, session, _headers(stranger)) == 403

            for headers in (_headers(stranger), _headers(member)):
                connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
                connection.request("GET", "/_stcore/metrics", headers=headers)
                response = connection.getresponse()
                body = response.read().decode(errors="replace")
                connection.close()
                assert response.status == 404 and "cache" not in body, body[:300]
            assert get_status(url, "/_stcore/health") == 200

            replayed = replay(stranger, url, session)          # last: it signs the session out
            assert "Team password" in replayed and "Signed in as" not in replayed, replayed[-2000:]
    finally:
        stranger.context.close()
        member.context.close()


def test_a_server_with_a_login_started_without_its_guard_lets_nobody_in(tmp_path: Path,
                                                                         chromium) -> None:  # noqa: F811
    """`streamlit run app.py`, the old command: its upload endpoint is open, so its login must not pretend."""
    write_class_folders(tmp_path / "data" / "colours", per_class=6)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[login]\npassword = "{PASSWORD}"\n')
    page = chromium.new_page(viewport=VIEWPORT)
    try:
        with serve(tmp_path, server_env(tmp_path), "--secrets.files", str(secrets), script="app.py") as url:
            page.goto(url)
            settle(page)
            errors = page.locator('[data-testid="stAlertContentError"]')
            assert errors.count() == 1 and "streamlit run serve.py" in errors.inner_text()
            assert page.get_by_role("button", name="Sign in").count() == 0
    finally:
        page.close()
