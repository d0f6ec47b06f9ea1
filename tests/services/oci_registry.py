"""A real OCI registry on a loopback port, as fixtures; `Registry.push` puts small test images
in it through the HTTP API (`oci_push`).

The registry is Debian's `docker-registry` (the CNCF distribution registry, 2.8): filesystem
storage under the test's tmp_path, deletes enabled, readiness polled on `/v2/`. Variants:
- `oci_registry`: open; `oci_registry_tls`: open, on HTTPS with a self-signed certificate;
- `oci_registry_basic`: htpasswd basic auth (bcrypt, as the registry requires);
- `oci_registry_redirecting`: basic auth, and blob GETs redirected (the registry's `redirect`
  storage middleware) to a static file server over its storage, as S3 or a CDN would be;
- `oci_registry_token`: the registry's real token auth (it verifies the JWTs' signatures,
  issuer, audience, expiry and granted scopes itself) with a loopback *token server*
  (pytest-httpserver) standing in for the authorization service only: it checks basic
  credentials and signs a JWT granting the scopes asked for, per the Docker token spec. The
  token server is on HTTPS (self-signed, trusted through REQUESTS_CA_BUNDLE) on the
  registry's host, so the client may send it the credentials;
- `oci_registry_token_plain`: the same with the token server on plain HTTP, which the client
  must not send credentials to unless TIMBEL_REGISTRY_TOKEN_REALMS allows it.

Under CI=true a missing `docker-registry` fails the tests (`missing_service`).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing_service
from tests.services.oci_push import push_image, push_index
from tests.services.oci_registry_auth import (
    PASSWORD,
    USER,
    TokenIssuer,
    bcrypt_hash,
    write_tls,
)

BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_registry(
    workdir: Path,
    auth: dict[str, Any] | None = None,
    tls: bool = False,
    blobs_at: str | None = None,
    notifications: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Start `docker-registry` with its storage in `workdir/storage`, yield its URL, stop it.

    Args:
        auth: the config's `auth` section.
        tls: serve HTTPS with a self-signed certificate (`workdir/tls.crt`).
        blobs_at: answer blob GETs with a redirect to this base URL plus the blob's storage
            path (the `redirect` storage middleware, as with S3 or a CDN in production).
        notifications: the config's `notifications` section (endpoints the registry posts
            its events to).
    """
    if shutil.which(BINARY) is None:
        raise FileNotFoundError(f"{BINARY} is not installed (Debian package `docker-registry`)")
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if auth:
        config["auth"] = auth
    if tls:
        config["http"]["tls"] = write_tls(workdir)
    if notifications:
        config["notifications"] = notifications
    if blobs_at:
        config["middleware"] = {"storage": [{"name": "redirect", "options": {"baseurl": blobs_at}}]}
    path = workdir / "registry.yml"
    path.write_text(yaml.safe_dump(config))
    log = (workdir / "registry.log").open("wb")
    server = subprocess.Popen([BINARY, "serve", str(path)], stdout=log, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(workdir / "tls.crt")) if tls else None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/", timeout=2, context=context):
                    break
            except urllib.error.HTTPError:  # 401 from an auth-protected registry: it is up
                break
            except OSError:
                if server.poll() is not None:
                    log.flush()
                    tail = (workdir / "registry.log").read_text()[-2000:]
                    raise RuntimeError(f"{BINARY} exited: {tail}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{BINARY} did not answer on {url}/v2/ in 30 s") from None
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


@dataclass
class Registry:
    """A running registry and what a test needs to push to it and read it."""

    url: str
    username: str | None = None
    password: str | None = None
    issuer: TokenIssuer | None = None
    realm: str | None = None  # the token server's URL, with token auth
    pushed: dict[str, str] = field(default_factory=dict)  # repository:tag -> digest
    blob_requests: list[dict[str, str]] = field(default_factory=list)  # redirect targets hit

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def push_auth(self, repository: str) -> Any:
        if self.issuer is not None:
            return self.issuer.auth(repository)
        return (self.username, self.password) if self.username else None

    def push(self, repository: str, tag: str, **kwargs: Any) -> str:
        digest = push_image(self.url, repository, tag, auth=self.push_auth(repository), **kwargs)
        self.pushed[f"{repository}:{tag}"] = digest
        return digest

    def push_index(self, repository: str, tag: str, **kwargs: Any) -> str:
        digest = push_index(self.url, repository, tag, auth=self.push_auth(repository), **kwargs)
        self.pushed[f"{repository}:{tag}"] = digest
        return digest


@contextmanager
def blob_store(root: Path) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A static file server over the registry's storage: where its redirects point. Yields
    its URL and the headers of every request it received."""
    received: list[dict[str, str]] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            received.append(dict(self.headers))
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _registry_or_skip(
    workdir: Path, auth: dict[str, Any] | None = None, **kwargs: Any
) -> Iterator[str]:
    try:
        with running_registry(workdir, auth, **kwargs) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[Registry]:
    """An empty, open registry."""
    with _registry_or_skip(tmp_path) as url:
        yield Registry(url)


@pytest.fixture
def oci_registry_tls(tmp_path: Path) -> Iterator[Registry]:
    """An empty, open registry on HTTPS with a self-signed certificate (`tmp_path/tls.crt`)."""
    with _registry_or_skip(tmp_path, tls=True) as url:
        yield Registry(url)


@pytest.fixture
def oci_registry_basic(tmp_path: Path) -> Iterator[Registry]:
    """An empty registry behind htpasswd basic auth (user `alice`)."""
    try:
        line = f"{USER}:{bcrypt_hash(PASSWORD)}\n"
    except FileNotFoundError as error:
        missing_service(str(error))
    (tmp_path / "htpasswd").write_text(line)
    auth = {"htpasswd": {"realm": "timbel-test", "path": str(tmp_path / "htpasswd")}}
    with _registry_or_skip(tmp_path, auth) as url:
        yield Registry(url, USER, PASSWORD)


@pytest.fixture
def oci_registry_redirecting(tmp_path: Path) -> Iterator[Registry]:
    """A registry behind basic auth that redirects blob GETs to a separate file server."""
    try:
        line = f"{USER}:{bcrypt_hash(PASSWORD)}\n"
    except FileNotFoundError as error:
        missing_service(str(error))
    (tmp_path / "htpasswd").write_text(line)
    auth = {"htpasswd": {"realm": "timbel-test", "path": str(tmp_path / "htpasswd")}}
    (tmp_path / "storage").mkdir()
    with (
        blob_store(tmp_path / "storage") as (blobs_url, received),
        _registry_or_skip(tmp_path, auth, blobs_at=blobs_url) as url,
    ):
        yield Registry(url, USER, PASSWORD, blob_requests=received)


@contextmanager
def token_server(issuer: TokenIssuer, tls_dir: Path | None = None) -> Iterator[str]:
    """The issuer's token endpoint on 127.0.0.1, on HTTPS with a self-signed certificate
    written to `tls_dir/tls.crt` when `tls_dir` is given; yields the realm URL."""
    from pytest_httpserver import HTTPServer

    context = None
    if tls_dir is not None:
        tls_dir.mkdir(parents=True, exist_ok=True)
        files = write_tls(tls_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files["certificate"], files["key"])
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.expect_request("/token").respond_with_handler(issuer.handle)
    server.start()
    try:
        yield server.url_for("/token")
    finally:
        server.clear()
        server.stop()


@contextmanager
def token_registry(
    workdir: Path, tls: bool = True, realm: Callable[[str], str] | None = None
) -> Iterator[Registry]:
    """A registry with token auth and its token server (`registry.issuer`), on HTTPS unless
    `tls` is false. `realm` turns the token server's URL into the realm the registry names
    (another spelling of its host, say)."""
    issuer = TokenIssuer(workdir, {USER: PASSWORD})
    with token_server(issuer, workdir / "token-tls" if tls else None) as served:
        named = realm(served) if realm else served
        auth = {
            "token": {
                "realm": named,
                "service": issuer.service,
                "issuer": issuer.issuer,
                "rootcertbundle": str(issuer.cert_path),
            }
        }
        with _registry_or_skip(workdir, auth) as url:
            yield Registry(url, USER, PASSWORD, issuer, named)


@pytest.fixture
def oci_registry_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """An empty registry with token auth; its token server (`registry.issuer`) is on HTTPS on
    the registry's host, its certificate trusted through REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "token-tls" / "tls.crt"))
    with token_registry(tmp_path) as registry:
        yield registry


@pytest.fixture
def oci_registry_token_plain(tmp_path: Path) -> Iterator[Registry]:
    """An empty registry with token auth whose token server is on plain HTTP."""
    with token_registry(tmp_path, tls=False) as registry:
        yield registry
