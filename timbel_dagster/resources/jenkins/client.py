"""HTTP access to Jenkins through python-jenkins: retries, typed errors, request counting.

python-jenkins holds the session and the API-token basic auth (sent with every request, so
no password round trip per call). On top of it: retries with exponential backoff on 5xx,
timeouts and dropped connections only; a CSRF crumb fetched only when Jenkins asks for one
(requests authenticated with an API token are exempt on Jenkins 2.96+); and errors that name
the job or build.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.payload import parse_json

SYSTEM = "jenkins"
_STATUS_IN_MESSAGE = re.compile(r"\[(\d{3})")
_QUERY = re.compile(r"(https?://[^\s?#]+)\?\S*")


def job_path(full_name: str) -> str:
    """`team/api/main` -> `job/team/job/api/job/main` (each segment URL-quoted)."""
    return "/".join(f"job/{quote(segment, safe='')}" for segment in full_name.split("/") if segment)


class JenkinsHTTP:
    """One Jenkins server. `requests_made` counts every HTTP request sent, retries included."""

    def __init__(
        self,
        url: str,
        user: str | None,
        token: str | None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import jenkins

        self.base = url.rstrip("/") + "/"
        self._server = jenkins.Jenkins(self.base, username=user, password=token, timeout=timeout)
        self.retries, self.backoff_seconds, self._sleep = retries, backoff_seconds, sleep
        self.requests_made = 0
        self._crumb: dict[str, str] | None = None

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        stream: bool,
        data: dict[str, str] | None = None,
    ) -> Any:
        import requests

        self.requests_made += 1
        request = requests.Request(
            method, self.base + path.lstrip("/"), params=params, headers=headers, data=data
        )
        return self._server.jenkins_request(request, add_crumb=False, stream=stream)

    def _classify(self, error: Exception, obj: str) -> SourceError:
        import jenkins
        import requests

        status = None
        if isinstance(error, requests.HTTPError) and error.response is not None:
            status = error.response.status_code
        elif isinstance(error, jenkins.NotFoundException):
            status = 404
        elif isinstance(error, jenkins.JenkinsException):
            found = _STATUS_IN_MESSAGE.search(str(error))
            status = int(found.group(1)) if found else None
        if isinstance(error, (jenkins.TimeoutException, requests.Timeout)):
            return TransientSourceError(SYSTEM, obj, f"timed out: {error}")
        if isinstance(error, requests.ConnectionError):
            return TransientSourceError(SYSTEM, obj, f"cannot connect to {self.base}")
        if status == 404:
            return SourceNotFoundError(SYSTEM, obj, "not found (404)")
        if status in (401, 403):
            return SourceAuthError(
                SYSTEM, obj, f"access refused ({status}); check JENKINS_USER and JENKINS_TOKEN"
            )
        if status is not None and (status >= 500 or status == 429):
            return TransientSourceError(SYSTEM, obj, f"server error {status}")
        # requests names the URL, whose query carries buildWithParameters' values: some
        # may be secrets (DB_PASSWORD=...), so the message keeps the URL without its query.
        reason = _QUERY.sub(r"\1", str(error).splitlines()[0])
        return SourceError(SYSTEM, obj, f"request failed: {reason}")

    def request(
        self,
        method: str,
        path: str,
        obj: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        data: dict[str, str] | None = None,
    ) -> Any:
        """Send one request, retrying transient failures with exponential backoff; `data`
        is sent as a form body."""
        import jenkins
        import requests

        attempt = 0
        while True:
            try:
                return self._send(method, path, params, dict(headers or {}), stream, data)
            except (jenkins.JenkinsException, requests.RequestException) as raw:
                error = self._classify(raw, obj)
                if not isinstance(error, TransientSourceError) or attempt >= self.retries:
                    raise error from None
                self._sleep(self.backoff_seconds * 2**attempt)
                attempt += 1

    def get_json(self, path: str, obj: str, params: dict[str, Any] | None = None) -> Any:
        response = self.request("GET", path, obj, params=params)
        return parse_json(SYSTEM, obj, response.content, response.headers.get("Content-Type", ""))

    def post(
        self,
        path: str,
        obj: str,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> Any:
        """POST (`data` as a form body), adding a CSRF crumb only if Jenkins refuses the
        request without one."""
        headers = dict(self._crumb or {})
        try:
            return self.request("POST", path, obj, params=params, headers=headers, data=data)
        except SourceAuthError:
            if self._crumb is not None:
                raise
            crumb = self.get_json("crumbIssuer/api/json", "crumb issuer")
            self._crumb = {crumb["crumbRequestField"]: crumb["crumb"]}
            return self.request("POST", path, obj, params=params, headers=self._crumb, data=data)
