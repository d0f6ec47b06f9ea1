"""The SLO file: what it accepts, and errors that name the file, the line, the SLO and the
field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from timbel_dagster.slo.spec import (
    SAMPLE_SLO_FILE,
    SloFileError,
    build_slo,
    load_slo_file,
    parse_slos,
)

GOOD = """\
slos:
  - service: checkout
    name: availability
    objective: 99.9
    sli:
      kind: availability
      total: http_requests_total{service="checkout"}
      errors: http_requests_total{service="checkout", code=~"5.."}
  - service: checkout
    name: latency
    objective: 99
    window: 28d
    sli:
      kind: latency
      histogram: http_request_duration_seconds{service="checkout"}
      le: "0.3"
  - service: payments-api
    name: pipeline-duration
    objective: 90
    sli: {kind: pipeline_duration, threshold: 15m, pipelines: [payments-api/main]}
"""


def test_a_good_file() -> None:
    availability, latency, duration = parse_slos(GOOD, "slos.yaml")
    assert availability.key == "checkout/availability"
    assert availability.objective == pytest.approx(0.999)
    assert availability.window == dt.timedelta(days=30)
    assert availability.sli.bad == 'http_requests_total{service="checkout", code=~"5.."}'
    assert availability.origin == "slos.yaml:2"
    # The histogram's bucket and count, with its matchers.
    assert latency.sli.good == 'http_request_duration_seconds_bucket{service="checkout", le="0.3"}'
    assert latency.sli.total == 'http_request_duration_seconds_count{service="checkout"}'
    assert latency.window == dt.timedelta(days=28)
    assert duration.sli.source == "warehouse"
    assert duration.sli.threshold_seconds == 900
    assert duration.sli.pipelines == ("payments-api/main",)


def test_the_sample_file_is_valid() -> None:
    assert {s.sli.source for s in load_slo_file(SAMPLE_SLO_FILE)} == {"warehouse"}


def test_the_example_file_is_valid_and_has_every_kind() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "slos.example.yaml"
    kinds = {s.sli.kind for s in load_slo_file(example)}
    assert kinds == {"availability", "latency", "pipeline_success", "pipeline_duration"}


def _one(sli: str, extra: str = "") -> str:
    return f"slos:\n  - service: shop\n    name: api\n    objective: 99\n{extra}    sli: {sli}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slos: [", r"^f.yaml:1: not valid YAML"),
        ("rules: []\n", r"^f.yaml:1: expected a top-level 'slos:' list"),
        (
            _one("{kind: availability, total: 'rate(x[5m])', errors: y}"),
            r"^f.yaml:2: slo shop/api: sli.total: 'rate\(x\[5m\]\)' is not a plain selector",
        ),
        (
            _one("{kind: availability, total: 'x{a=}', errors: y}"),
            r"^f.yaml:2: slo shop/api: sli.total: invalid PromQL",
        ),
        (
            _one("{kind: availability, total: x, good: y, errors: z}"),
            r"slo shop/api: sli: give exactly one of 'good' or 'errors'",
        ),
        (
            _one("{kind: availability, total: x offset 1h, good: y}"),
            r"sli.total: a selector with offset or @",
        ),
        (
            _one("{kind: latency, histogram: 'h_bucket{a=\"b\"}', le: '0.3'}"),
            r"sli.histogram: name the histogram without its _bucket/_count suffix",
        ),
        (_one("{kind: latency, histogram: h, le: fast}"), r"sli.le: 'fast' is not a bucket bound"),
        (
            _one("{kind: uptime}"),
            r"sli.kind: must be one of availability, latency, pipeline_success",
        ),
        (
            _one("{kind: pipeline_duration, threshold: soon}"),
            r"sli.threshold: 'soon' is not a duration",
        ),
        (
            _one("{kind: pipeline_success, le: '1'}"),
            r"sli: unknown key\(s\) for pipeline_success: le",
        ),
        (
            _one("{kind: pipeline_success, pipelines: main}"),
            r"sli.pipelines: give a list of pipeline names",
        ),
        (
            "slos:\n  - service: shop\n    name: api\n    objective: 100\n"
            "    sli: {kind: pipeline_success}\n",
            r"slo shop/api: objective: 100 must be above 0 and below 100",
        ),
        (
            "slos:\n  - service: shop\n    name: api\n    objective: '99'\n"
            "    sli: {kind: pipeline_success}\n",
            r"objective: '99' is not a percentage",
        ),
        (
            "slos:\n  - service: shop\n    name: api\n    sli: {kind: pipeline_success}\n",
            r"objective: missing",
        ),
        (
            _one("{kind: pipeline_success}", "    window: 1d\n"),
            r"window: 1d must be from 3d \(the longest burn-rate window\) to 90d",
        ),
        (
            _one("{kind: pipeline_success}", "    owner: ann\n"),
            r"slo shop/api: unknown key\(s\) owner",
        ),
        (
            "slos:\n  - service: 'a b'\n    name: x\n",
            r"f.yaml:2: slo a b/x: service: 'a b' must be",
        ),
        (
            _one("{kind: pipeline_success}")
            + _one("{kind: pipeline_success}").removeprefix("slos:\n"),
            r"^f.yaml:6: slo shop/api is also defined at f.yaml:2",
        ),
    ],
)
def test_errors_name_the_file_line_slo_and_field(text: str, message: str) -> None:
    with pytest.raises(SloFileError, match=message):
        parse_slos(text, "f.yaml")


def test_an_unreadable_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SloFileError, match=r"^TIMBEL_SLO_FILE: cannot read .*missing.yaml"):
        load_slo_file(tmp_path / "missing.yaml")


def _matchers(query: str) -> dict[str, tuple[str, str]]:
    import promql_parser

    selector = promql_parser.parse(query).expr.args[0].vector_selector
    return {m.name: (str(m.op), m.value) for m in selector.matchers.matchers}


def test_label_values_with_quotes_backslashes_and_brackets_keep_their_meaning() -> None:
    from timbel_dagster.slo.counts import increase_query

    histogram = r"""lat{path="/a\"b]", host=~'x\\.y', q!=`it's`}"""
    latency = build_slo(
        {"service": "checkout", "name": "latency", "objective": 99,
         "sli": {"kind": "latency", "histogram": histogram, "le": "0.3"}},
        "slos.yaml:2",
    )  # fmt: skip
    expected = {
        "path": ("MatchOp.Equal", '/a"b]'),
        "host": ("MatchOp.Re", "x\\.y"),
        "q": ("MatchOp.NotEqual", "it's"),
    }
    window = dt.timedelta(days=28)
    assert _matchers(increase_query(latency.sli.total, window)) == expected
    assert _matchers(increase_query(latency.sli.good, window)) == expected | {
        "le": ("MatchOp.Equal", "0.3")
    }


@pytest.mark.parametrize(
    ("sli", "message"),
    [
        ("{kind: latency, histogram: 'lat{a=\"1\" or b=\"2\"}', le: '0.3'}", "`or` between"),
        ("{kind: availability, total: 'req # all', errors: 'err'}", "cannot be wrapped"),
    ],
)
def test_selectors_that_would_change_or_break_the_query_are_refused(sli: str, message: str) -> None:
    text = f"slos:\n  - service: s\n    name: n\n    objective: 99\n    sli: {sli}\n"
    with pytest.raises(SloFileError, match=message):
        parse_slos(text, "slos.yaml")
