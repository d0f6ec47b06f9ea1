"""SLO definitions: the YAML file TIMBEL_SLO_FILE names, parsed and checked.

```yaml
slos:
  - service: checkout                  # the service the SLO belongs to
    name: availability                 # unique per service
    objective: 99.9                    # percent of valid events that must be good
    window: 30d                        # rolling window (default 30d, at least 3d)
    sli:                               # availability: good (or bad) over total requests
      kind: availability
      total: http_requests_total{service="checkout"}
      errors: http_requests_total{service="checkout", code=~"5.."}   # or good: ...
  - service: checkout
    name: latency
    objective: 99
    sli:                               # latency: requests in the `le` bucket over _count
      kind: latency
      histogram: http_request_duration_seconds{service="checkout"}
      le: "0.3"                        # the bucket's le label exactly as it is exposed
  - service: payments-api
    name: pipeline-success
    objective: 95
    sli: {kind: pipeline_success}      # successful over finished executions (warehouse)
  - service: payments-api
    name: pipeline-duration
    objective: 90
    sli: {kind: pipeline_duration, threshold: 15m, pipelines: [payments-api/main]}
```
The selectors are counters (or a histogram) as PromQL vector selectors, without a range:
Timbel asks Prometheus for `sum(increase(SELECTOR[WINDOW]))` over each window. Every error
names the file, the line, the SLO and the field.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.slo.budget import BURN_WINDOWS

PROMETHEUS_KINDS = ("availability", "latency")
WAREHOUSE_KINDS = ("pipeline_success", "pipeline_duration")
KINDS = PROMETHEUS_KINDS + WAREHOUSE_KINDS
DEFAULT_WINDOW = dt.timedelta(days=30)
# The longest burn-rate window: a shorter SLO window would make the ticket policy read more
# than the window's whole budget.
SHORTEST_WINDOW = max(BURN_WINDOWS.values())
LONGEST_WINDOW = dt.timedelta(days=90)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_SLO_KEYS = {"service", "name", "objective", "window", "description", "sli"}
_SLI_KEYS = {
    "availability": {"kind", "total", "good", "errors"},
    "latency": {"kind", "histogram", "le"},
    "pipeline_success": {"kind", "pipelines"},
    "pipeline_duration": {"kind", "threshold", "pipelines"},
}


class SloFileError(ValueError):
    """The SLO file is wrong; the message names the file, the line, the SLO and the field."""


@dataclass(frozen=True)
class Sli:
    """What counts as good and as valid. Prometheus kinds carry the two selectors whose
    increase over a window gives good (or bad) and total events; warehouse kinds the
    pipelines and the duration threshold."""

    kind: str
    total: str | None = None  # PromQL vector selector of all valid events
    good: str | None = None  # ... of good events (availability and latency)
    bad: str | None = None  # ... of bad events (availability given `errors`)
    pipelines: tuple[str, ...] = ()  # warehouse kinds: empty = every pipeline of the service
    threshold_seconds: float | None = None  # pipeline_duration: at most this long is good
    le: str | None = None  # latency: the bucket's label value, for display

    @property
    def source(self) -> str:
        return "prometheus" if self.kind in PROMETHEUS_KINDS else "warehouse"


@dataclass(frozen=True)
class Slo:
    service: str
    name: str
    objective: float  # a fraction: 99.5 % is 0.995
    window: dt.timedelta
    sli: Sli
    description: str = ""
    origin: str = ""  # file:line

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"


def duration_text(delta: dt.timedelta) -> str:
    """`30d`, `6h`, `1h30m`: the units the file takes."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def parse_duration(value: Any, field: str) -> dt.timedelta:
    match = _DURATION.match(str(value).strip()) if value not in (None, "") else None
    if not match or not any(match.groups()) or isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a duration like 30d, 6h or 15m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _selector(value: Any, field: str) -> Any:
    """A PromQL vector selector (metric name and matchers, no range, offset or @)."""
    import promql_parser

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{field}: give a PromQL selector like http_requests_total{{job="api"}}')
    try:
        parsed = promql_parser.parse(value)
    except ValueError as error:
        raise ValueError(f"{field}: invalid PromQL: {error}") from None
    if not isinstance(parsed, promql_parser.VectorSelector):
        raise ValueError(
            f"{field}: {value.strip()!r} is not a plain selector; give the counter and its "
            "label matchers (Timbel wraps it in sum(increase(...[window])))"
        )
    if parsed.offset is not None or parsed.at is not None:
        raise ValueError(f"{field}: a selector with offset or @ is not evaluated at now")
    try:  # the text is wrapped as it is given: a trailing `# comment` would swallow the rest
        promql_parser.parse(f"sum(increase({value.strip()}[1d]))")
    except ValueError as error:
        raise ValueError(
            f"{field}: cannot be wrapped in sum(increase(...[window])): {error}"
        ) from None
    return parsed


# PromQL's matcher operators, by promql_parser's MatchOp names.
_MATCH_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def _matcher(matcher: Any) -> str:
    """A label matcher as PromQL, its value quoted and escaped (promql_parser's str() writes
    the value back unescaped: a quote or backslash in it would change the query)."""
    op = _MATCH_OPS[str(matcher.op).rpartition(".")[2]]
    return f"{matcher.name}{op}{json.dumps(matcher.value, ensure_ascii=False)}"


def _latency(raw: dict[str, Any]) -> Sli:
    histogram = _selector(raw.get("histogram"), "sli.histogram")
    name = histogram.name
    if not name or name.endswith(("_bucket", "_count", "_sum")):
        raise ValueError(
            "sli.histogram: name the histogram without its _bucket/_count suffix "
            "(http_request_duration_seconds{...})"
        )
    le = raw.get("le")
    try:
        bound = float(str(le))
    except ValueError:
        bound = math.nan
    if le is None or isinstance(le, bool) or math.isnan(bound) or bound <= 0:
        raise ValueError(
            f'sli.le: {le!r} is not a bucket bound; give the le label as exposed, e.g. "0.3"'
        )
    le = str(le)
    if histogram.matchers.or_matchers:
        raise ValueError("sli.histogram: `or` between matchers is not supported for latency")
    matchers = [
        _matcher(m) for m in histogram.matchers.matchers if m.name not in ("__name__", "le")
    ]
    inner = ", ".join(matchers)
    with_le = ", ".join([*matchers, f'le="{le}"'])
    return Sli(
        kind="latency",
        good=f"{name}_bucket{{{with_le}}}",
        total=f"{name}_count{{{inner}}}" if inner else f"{name}_count",
        le=le,
    )


def _availability(raw: dict[str, Any]) -> Sli:
    _selector(raw.get("total"), "sli.total")
    good, errors = raw.get("good"), raw.get("errors")
    if (good is None) == (errors is None):
        raise ValueError("sli: give exactly one of 'good' or 'errors' beside 'total'")
    if good is not None:
        _selector(good, "sli.good")
    else:
        _selector(errors, "sli.errors")
    return Sli(
        kind="availability",
        total=str(raw["total"]).strip(),
        good=str(good).strip() if good is not None else None,
        bad=str(errors).strip() if errors is not None else None,
    )


def _pipelines(raw: dict[str, Any]) -> tuple[str, ...]:
    found = raw.get("pipelines") or []
    if not isinstance(found, list) or not all(isinstance(p, str) and p for p in found):
        raise ValueError("sli.pipelines: give a list of pipeline names (as `timbel ci` shows)")
    return tuple(found)


def _sli(raw: Any) -> Sli:
    if not isinstance(raw, dict):
        raise ValueError("sli: must be a mapping with a 'kind'")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"sli.kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    unknown = set(raw) - _SLI_KEYS[kind]
    if unknown:
        raise ValueError(f"sli: unknown key(s) for {kind}: {', '.join(sorted(map(str, unknown)))}")
    if kind == "availability":
        return _availability(raw)
    if kind == "latency":
        return _latency(raw)
    if kind == "pipeline_success":
        return Sli(kind=kind, pipelines=_pipelines(raw))
    threshold = parse_duration(raw.get("threshold"), "sli.threshold")
    return Sli(kind=kind, pipelines=_pipelines(raw), threshold_seconds=threshold.total_seconds())


def _objective(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"objective: {value!r} is not a percentage like 99.5")
    if not 0 < value < 100:
        raise ValueError(
            f"objective: {value!r} must be above 0 and below 100 (a percentage; 100 leaves no "
            "error budget to measure)"
        )
    return value / 100


def build_slo(raw: Any, origin: str) -> Slo:
    """One SLO from its mapping; `origin` (file:line) starts every error."""
    if not isinstance(raw, dict):
        raise SloFileError(f"{origin}: an SLO must be a mapping, not {type(raw).__name__}")
    service, name = raw.get("service"), raw.get("name")
    where = f"{origin}: slo {service}/{name}" if service and name else f"{origin}: slo"
    try:
        for field, value in (("service", service), ("name", name)):
            if not isinstance(value, str) or not _NAME.match(value):
                raise ValueError(f"{field}: {value!r} must be letters, digits, '-', '_', '.', '/'")
        unknown = set(raw) - _SLO_KEYS
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        window = parse_duration(raw.get("window", "30d"), "window")
        if not SHORTEST_WINDOW <= window <= LONGEST_WINDOW:
            raise ValueError(
                f"window: {duration_text(window)} must be from {duration_text(SHORTEST_WINDOW)} "
                f"(the longest burn-rate window) to {duration_text(LONGEST_WINDOW)}"
            )
        if "objective" not in raw:
            raise ValueError("objective: missing (a percentage like 99.5)")
        return Slo(
            service=service,
            name=name,
            objective=_objective(raw["objective"]),
            window=window,
            sli=_sli(raw.get("sli")),
            description=str(raw.get("description") or ""),
            origin=origin,
        )
    except ValueError as error:
        raise SloFileError(f"{where}: {error}") from None


def parse_slos(text: str, source: str) -> list[Slo]:
    """The SLOs of a YAML text; `source` (the path) names it in errors."""
    import yaml

    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
        data = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or error
        raise SloFileError(f"{source}{line}: not valid YAML: {problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get("slos"), list):
        raise SloFileError(f"{source}:1: expected a top-level 'slos:' list")
    lines = _item_lines(document)
    slos = [
        build_slo(raw, f"{source}:{lines[i] if i < len(lines) else '?'}")
        for i, raw in enumerate(data["slos"])
    ]
    seen: dict[str, str] = {}
    for slo in slos:
        if slo.key in seen:
            raise SloFileError(f"{slo.origin}: slo {slo.key} is also defined at {seen[slo.key]}")
        seen[slo.key] = slo.origin
    return slos


def _item_lines(document: Any) -> list[int]:
    """The 1-based line where each item of the top-level `slos` list starts."""
    for key, value in getattr(document, "value", []) or []:
        if getattr(key, "value", None) == "slos" and isinstance(value.value, list):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_slo_file(path: Path, setting: str | None = "TIMBEL_SLO_FILE") -> list[Slo]:
    """The SLOs of a file; `setting` names where the path came from when it cannot be read."""
    try:
        text = path.read_text()
    except OSError as error:
        where = f"{setting}: " if setting else ""
        raise SloFileError(f"{where}cannot read {path}: {error.strerror}") from None
    return parse_slos(text, str(path))


# The sample organisation's SLOs (pipeline success and duration from the warehouse): what
# `timbel demo` evaluates, and so what sample mode lists.
SAMPLE_SLO_FILE = Path(__file__).with_name("sample_slos.yaml")


def slo_file(settings: Any) -> Path | None:
    """TIMBEL_SLO_FILE, else in sample mode the sample's SLOs; None when neither."""
    if settings.timbel_slo_file:
        return Path(settings.timbel_slo_file)
    return SAMPLE_SLO_FILE if settings.timbel_sample_data else None
