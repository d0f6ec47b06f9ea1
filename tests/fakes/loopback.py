"""A threaded HTTP server on 127.0.0.1 and a free port, for the fake CI servers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Subclasses give `handler()`; `url` ends with `url_suffix` (Jenkins wants a slash)."""

    url_suffix = ""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.url_suffix}"

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self.url

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
