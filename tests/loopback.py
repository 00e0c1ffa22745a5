"""A real HTTP server on 127.0.0.1 serving a folder the test builds, recording what it was asked for."""
from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    url: str  # base URL of the folder, no trailing slash
    requests: list[str] = field(default_factory=list)  # request paths, in order


class _RecordingHandler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.served.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_folder(site: Path) -> Iterator[Served]:
    """Serve `site` over loopback HTTP until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RecordingHandler, directory=str(site)))
    server.served = Served(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.served
    finally:
        server.shutdown()
        server.server_close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
