"""SonarQube quality gates through its Web API, one `quality_gates` row per analysis.

Three GETs per project, with a user token as the basic-auth user name (empty password):
`api/components/show` for the date of the latest analysis, `api/qualitygates/project_status`
for the gate's status and conditions, and `api/measures/component` for the headline
measures (METRICS). A project never analysed has no date: nothing is stored for it. Storing
is an idempotent upsert on (project_key, analysed_at): importing the same analysis again
changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.security_issues import QualityGate
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SYSTEM = "sonarqube"
SOURCE = "sonarqube"
METRICS = (
    "bugs",
    "vulnerabilities",
    "code_smells",
    "coverage",
    "duplicated_lines_density",
    "security_hotspots",
)
STATUSES = ("OK", "WARN", "ERROR", "NONE")


@dataclass(frozen=True)
class QualityGateReport:
    """One project's gate as SonarQube reports it now."""

    project_key: str
    analysed_at: dt.datetime | None  # None: never analysed
    status: str  # OK, WARN (SonarQube before 7.6), ERROR or NONE (no gate, no analysis)
    conditions: list[dict[str, Any]]
    measures: dict[str, float | str]


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value  # ratings and levels are text


def _time(value: Any, obj: str, field: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise SourceDataError(SYSTEM, obj, f"not a time: {value!r}", field) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def parse_project_status(payload: Any, project_key: str) -> tuple[str, list[dict[str, Any]]]:
    """The status and conditions of an `api/qualitygates/project_status` answer."""
    obj = f"project {project_key} quality gate"
    status = payload.get("projectStatus") if isinstance(payload, dict) else None
    if not isinstance(status, dict):
        raise SourceDataError(SYSTEM, obj, "expected an object", "projectStatus")
    if status.get("status") not in STATUSES:
        raise SourceDataError(
            SYSTEM, obj, f"expected one of {', '.join(STATUSES)}, got {status.get('status')!r}",
            "projectStatus.status",
        )  # fmt: skip
    conditions = status.get("conditions")
    conditions = [] if conditions is None else conditions
    if not isinstance(conditions, list):
        raise SourceDataError(SYSTEM, obj, "expected an array", "projectStatus.conditions")
    for i, condition in enumerate(conditions):
        if not isinstance(condition, dict) or not isinstance(condition.get("metricKey"), str):
            raise SourceDataError(
                SYSTEM, obj, "expected an object with a metricKey",
                f"projectStatus.conditions[{i}]",
            )  # fmt: skip
    return status["status"], conditions


def parse_measures(payload: Any, project_key: str) -> dict[str, float | str]:
    """Metric key -> value of an `api/measures/component` answer (numbers as floats)."""
    obj = f"project {project_key} measures"
    component = payload.get("component") if isinstance(payload, dict) else None
    if not isinstance(component, dict):
        raise SourceDataError(SYSTEM, obj, "expected an object", "component")
    measures = component.get("measures")
    measures = [] if measures is None else measures
    if not isinstance(measures, list):
        raise SourceDataError(SYSTEM, obj, "expected an array", "component.measures")
    found: dict[str, float | str] = {}
    for i, measure in enumerate(measures):
        if not isinstance(measure, dict) or not isinstance(measure.get("metric"), str):
            raise SourceDataError(
                SYSTEM, obj, "expected an object with a metric", f"component.measures[{i}]"
            )
        # A project's own measures carry `value`; `period.value` is the new-code one.
        value = measure.get("value", (measure.get("period") or {}).get("value"))
        if isinstance(value, str):
            found[measure["metric"]] = _number(value)
    return found


class SonarQubeClient:
    """A SonarQube server's Web API.

    Args:
        url: the server, e.g. `https://sonar.example.com`.
        token: a user token (sent as the basic-auth user); None for anonymous access.
        timeout: seconds per request.
        retries: attempts after a 429, a 5xx or a dropped connection (GETs only).
        backoff: urllib3's backoff factor between those attempts.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        if token:
            self.session.auth = (token, "")
        retry = Retry(
            total=retries,
            backoff_factor=backoff,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session.mount(self.url, HTTPAdapter(max_retries=retry))

    def get(self, path: str, obj: str, **params: str) -> dict[str, Any]:
        """The JSON object at `path`, or a typed error naming `obj`."""
        import requests

        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as error:
            raise TransientSourceError(
                SYSTEM, obj, f"cannot reach {self.url}: {type(error).__name__}"
            ) from None
        code = response.status_code
        if code >= 400:
            raise _http_error(response, obj)
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise SourceDataError(SYSTEM, obj, f"expected JSON, got {kind}") from None
        if not isinstance(data, dict):
            raise SourceDataError(SYSTEM, obj, f"expected a JSON object, got {type(data).__name__}")
        return data

    def quality_gate(self, project_key: str) -> QualityGateReport:
        """The project's latest analysis date, gate status, conditions and METRICS."""
        obj = f"project {project_key}"
        component = self.get("/api/components/show", obj, component=project_key)
        analysed = (component.get("component") or {}).get("analysisDate")
        status, conditions = parse_project_status(
            self.get("/api/qualitygates/project_status", obj, projectKey=project_key), project_key
        )
        measures = parse_measures(
            self.get(
                "/api/measures/component", obj, component=project_key, metricKeys=",".join(METRICS)
            ),
            project_key,
        )
        return QualityGateReport(
            project_key,
            _time(analysed, obj, "component.analysisDate") if analysed else None,
            status,
            conditions,
            measures,
        )


def _http_error(response: Any, obj: str) -> SourceError:
    code = response.status_code
    try:
        messages = [e.get("msg") for e in response.json().get("errors", []) if e.get("msg")]
    except (ValueError, AttributeError):
        messages = []
    said = f": {'; '.join(messages)}" if messages else ""
    if code == 401:
        return SourceAuthError(SYSTEM, obj, "access refused (401); check SONARQUBE_TOKEN")
    if code == 403:
        return SourceAuthError(SYSTEM, obj, f"access refused (403){said}; the token needs Browse")
    if code == 404:
        return SourceNotFoundError(SYSTEM, obj, f"not found (404){said}")
    if code == 429 or code >= 500:
        return TransientSourceError(SYSTEM, obj, f"server error {code} after retries{said}")
    return SourceError(SYSTEM, obj, f"request failed ({code}){said}")


def store_quality_gate(
    connection: Connection, report: QualityGateReport, source: str = SOURCE
) -> dict[str, Any]:
    """Upsert the report's row (inside the caller's transaction); a project never analysed
    stores nothing. Returns the row's values and `written` (0 when already stored as is)."""

    summary = {
        "project_key": report.project_key,
        "analysed_at": report.analysed_at.isoformat() if report.analysed_at else None,
        "status": report.status,
        "conditions": report.conditions,
        "measures": report.measures,
    }
    if report.analysed_at is None:
        return summary | {"written": 0, "note": "never analysed: nothing stored"}
    if len(report.project_key) > 400:
        raise ValueError(f"project key {report.project_key[:40]}... is longer than 400 characters")
    row = {
        "id": stable_id("quality_gates", report.project_key, report.analysed_at.isoformat()),
        "source": source,
        "project_key": report.project_key,
        "analysed_at": report.analysed_at,
        "status": report.status,
        "conditions": report.conditions,
        "measures": report.measures,
    }
    written = bulk_upsert(
        connection, QualityGate.__table__, [row], ("project_key", "analysed_at")
    ).written
    return summary | {"written": written}


def import_quality_gate(
    connection: Connection, client: SonarQubeClient, project_key: str
) -> dict[str, Any]:
    """Fetch the project's gate and store it (see `store_quality_gate`)."""
    return store_quality_gate(connection, client.quality_gate(project_key))
