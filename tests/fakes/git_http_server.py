"""Git's own "smart HTTP" server (`git http-backend`, run as a CGI program) on loopback,
behind HTTP basic authentication, serving the repositories under one directory.

Every request is recorded with the credentials it carried, so a test can show which user
name and password reached the server and that the first request had none (git asks its
credential helper only after a 401, as with a real server).
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes.loopback import LoopbackServer

BACKEND = Path("/usr/lib/git-core/git-http-backend")


@dataclass
class GitHttpServer(LoopbackServer):
    root: Path
    user: str
    password: str
    requests: list[tuple[str, str, tuple[str, str] | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _credentials(self) -> tuple[str, str] | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user, password

            def _serve(self, method: str) -> None:
                given = self._credentials()
                split = urlsplit(self.path)
                fake.requests.append((method, self.path, given))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if given != (fake.user, fake.password):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(fake.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": method,
                    "PATH_INFO": split.path,
                    "QUERY_STRING": split.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_USER": given[0],
                    "REMOTE_ADDR": "127.0.0.1",
                }
                out = subprocess.run(
                    [str(BACKEND)], input=body, env=env, capture_output=True, check=False
                ).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if line]
                status = next((int(v.split()[0]) for k, v in headers if k == "Status"), 200)
                self.send_response(status)
                for key, value in headers:
                    if key != "Status":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


def record_git_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every git command Timbel runs through `subprocess.run` from now on (the test's
    end undoes it): its argv and the environment it was given."""
    calls: list[dict[str, Any]] = []
    real = subprocess.run

    def recording(command: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(command, list) and command and command[0] == "git":
            calls.append({"argv": list(command), "env": kwargs.get("env")})
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording)
    return calls
