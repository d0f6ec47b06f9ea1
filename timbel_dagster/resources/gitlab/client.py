"""HTTP access to GitLab through python-gitlab: rate cap, 429 handling, typed errors.

python-gitlab follows `Link: rel="next"` headers for both offset and keyset pagination, waits
`Retry-After` seconds on a 429 and retries 5xx answers and dropped connections. On top of it:
a client-side cap on requests per second (a shared GitLab is a shared resource), request
counting, and errors that name the project or pipeline.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceNotFoundError,
    TransientSourceError,
)

SYSTEM = "gitlab"
PER_PAGE = 100  # GitLab's maximum
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


def project_ref(project: str) -> str:
    """A numeric id as is; a path (`group/project`) URL-encoded, as the API wants it."""
    return project if project.isdigit() else quote(project, safe="")


def _skip(blocks: Iterator[bytes], skip: int) -> Iterator[bytes]:
    """`blocks` without their first `skip` bytes (the part of a whole body already read)."""
    for block in blocks:
        if skip >= len(block):
            skip -= len(block)
            continue
        yield block[skip:] if skip else block
        skip = 0


class RateCappedSession(requests.Session):
    """A session that sends at most `per_second` requests per second and counts them."""

    def __init__(self, per_second: float) -> None:
        super().__init__()
        self.interval = 1.0 / per_second
        self.requests_made = 0
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self.interval
            self.requests_made += 1
        if wait > 0:
            time.sleep(wait)
        return super().request(*args, **kwargs)


class GitLabHTTP:
    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float = 30.0,
        max_requests_per_second: float = 10.0,
        max_retries: int = 5,
    ) -> None:
        import gitlab

        self.session = RateCappedSession(max_requests_per_second)
        self.gl = gitlab.Gitlab(
            url.rstrip("/"),
            private_token=token,
            timeout=timeout,
            session=self.session,
            retry_transient_errors=True,
            per_page=PER_PAGE,
        )
        self.max_retries = max_retries

    @property
    def requests_made(self) -> int:
        return self.session.requests_made

    def _error(self, error: Exception, obj: str) -> SourceError:
        import gitlab

        if isinstance(error, gitlab.exceptions.GitlabParsingError):
            return SourceDataError(SYSTEM, obj, f"malformed JSON: {error}")
        if isinstance(error, gitlab.exceptions.GitlabAuthenticationError):
            return SourceAuthError(SYSTEM, obj, "access refused (401); check GITLAB_TOKEN")
        if isinstance(error, gitlab.exceptions.GitlabError):
            code = error.response_code
            if code == 404:
                return SourceNotFoundError(SYSTEM, obj, "not found (404)")
            if code == 403:
                return SourceAuthError(SYSTEM, obj, "access refused (403); check GITLAB_TOKEN")
            if code is not None and (code >= 500 or code == 429):
                return TransientSourceError(SYSTEM, obj, f"server error {code} after retries")
            return SourceError(SYSTEM, obj, f"request failed ({code}): {error.error_message}")
        if isinstance(error, requests.RequestException):
            return TransientSourceError(
                SYSTEM, obj, f"cannot reach {self.gl.url}: {type(error).__name__}"
            )
        return SourceError(SYSTEM, obj, str(error))

    def _expect(self, value: Any, kind: type, obj: str) -> Any:
        if isinstance(value, requests.Response):  # python-gitlab hands back non-JSON answers
            body = value.text
            if not body.strip():
                raise SourceDataError(SYSTEM, obj, "the answer was empty (HTTP 200 with no body)")
            raise SourceDataError(
                SYSTEM,
                obj,
                f"expected JSON, got {value.headers.get('Content-Type', 'no content type')}",
            )
        if not isinstance(value, kind):
            raise SourceDataError(
                SYSTEM, obj, f"expected a JSON {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def get(self, path: str, obj: str, **query: Any) -> dict[str, Any]:
        import gitlab

        try:
            value = self.gl.http_get(path, query_data=query, max_retries=self.max_retries)
        except (gitlab.exceptions.GitlabError, requests.RequestException) as error:
            raise self._error(error, obj) from None
        return self._expect(value, dict, obj)

    def pages(self, path: str, obj: str, objects_only: bool = True, **query: Any) -> Iterator[Any]:
        """Every item of a list endpoint, page after page (offset or keyset alike).

        `objects_only`: refuse an item that is not a JSON object; otherwise it is handed on as
        it came, for the caller to keep as a reject.
        """
        import gitlab

        query.setdefault("per_page", PER_PAGE)
        try:
            for item in self.gl.http_list(
                path, query_data=query, iterator=True, max_retries=self.max_retries
            ):
                yield self._expect(item, dict, obj) if objects_only else item
        except (gitlab.exceptions.GitlabError, requests.RequestException) as error:
            raise self._error(error, obj) from None

    @contextmanager
    def stream(
        self, path: str, obj: str, start: int = 0, block_size: int = 1 << 20
    ) -> Iterator[Iterator[bytes]]:
        """A raw body (a job trace) from byte `start` on, as blocks, never held in memory whole.

        Asks for `Range: bytes=<start>-`. A server that honours it answers 206 from the first
        byte its `Content-Range` names; GitLab's own API (`build.trace.raw`) ignores it and
        answers 200 with the whole trace, whose first `start` bytes are then skipped as they
        stream past; 416 means nothing follows `start` yet.
        """
        import gitlab

        headers = {"Range": f"bytes={start}-"} if start else None
        try:
            response = self.gl.http_get(
                path, streamed=True, raw=True, max_retries=self.max_retries, extra_headers=headers
            )
        except gitlab.exceptions.GitlabHttpError as error:
            if start and error.response_code == 416:  # Range Not Satisfiable: no new bytes
                yield iter(())
                return
            raise self._error(error, obj) from None
        except (gitlab.exceptions.GitlabError, requests.RequestException) as error:
            raise self._error(error, obj) from None
        try:
            first = self._first_byte(response, obj) if start else 0
            if first > start:
                raise SourceDataError(
                    SYSTEM, obj, f"the answer starts at byte {first}, not {start}", "Content-Range"
                )
            yield _skip(response.iter_content(block_size), start - first)
        finally:
            response.close()

    @staticmethod
    def _first_byte(response: requests.Response, obj: str) -> int:
        """Where the body starts in the whole resource: 0, or `Content-Range`'s first byte."""
        if response.status_code != 206:
            return 0
        found = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not found:
            raise SourceDataError(SYSTEM, obj, "206 without a byte range", field="Content-Range")
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise SourceDataError(
                SYSTEM, obj, "a byte range of a compressed body", field="Content-Encoding"
            )
        return int(found.group(1))

    def post(self, path: str, obj: str, data: dict[str, Any]) -> dict[str, Any]:
        import gitlab

        try:
            value = self.gl.http_post(path, post_data=data, max_retries=self.max_retries)
        except (gitlab.exceptions.GitlabError, requests.RequestException) as error:
            raise self._error(error, obj) from None
        return self._expect(value, dict, obj)
