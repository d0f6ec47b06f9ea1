"""Alert rules: YAML parsing and its errors, durations and thresholds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.rules import RuleError, load_rules_file, parse_duration, parse_rules

GOOD = """\
rules:
  - name: namespace-cpu-near-quota
    severity: critical
    expr: |
      sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))
        / sum by (cluster, namespace) (kube_resourcequota{type="hard", resource="requests.cpu"})
        > 0.9
    for: 10m
    renotify: 1h
    labels: {team: platform}
    summary: "{{ labels.namespace }} uses {{ (value * 100) | round | int }} %"
  - name: pipeline-failure-rate
    severity: high
    fact: pipeline_failure_rate
    params: {window: 1h, min_executions: 5}
    threshold: "> 0.2"
"""


def test_a_good_file_parses() -> None:
    quota, failures = parse_rules(GOOD, "rules.yaml", set(FACTS))
    assert quota.kind == "promql" and failures.kind == "warehouse"
    assert quota.for_ == dt.timedelta(minutes=10) and quota.renotify == dt.timedelta(hours=1)
    assert quota.labels == {"team": "platform"} and quota.origin == "rules.yaml:2"
    assert failures.origin == "rules.yaml:12"
    assert failures.threshold is not None and failures.threshold.holds(0.25)
    assert not failures.threshold.holds(0.2)
    assert failures.renotify == dt.timedelta(hours=4)  # the default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", r"rules\.yaml:1: not valid YAML"),
        ("alerts: []", r"rules\.yaml:1: expected a top-level 'rules:' list"),
        (
            "rules:\n  - name: a\n    expr: sum(rate(x[5m])\n",
            r"rules\.yaml:2: rule 'a': invalid PromQL: unclosed left parenthesis",
        ),
        (
            "rules:\n  - name: ok\n    expr: up == 0\n"
            "  - name: b\n    expr: up\n    for: 10 minutes\n",
            r"rules\.yaml:4: rule 'b': '10 minutes' is not a duration",
        ),
        (
            "rules:\n  - name: c\n    fact: nope\n",
            r"rules\.yaml:2: rule 'c': unknown fact 'nope'; facts are .*pipeline_failure_rate",
        ),
        (
            "rules:\n  - name: d\n    expr: up\n    severity: urgent\n",
            r"rule 'd': severity must be one of critical, high, warning, info, not 'urgent'",
        ),
        ("rules:\n  - name: e\n", r"rule 'e': give exactly one of 'expr' \(PromQL\) or 'fact'"),
        (
            "rules:\n  - name: f\n    fact: pipeline_failure_rate\n    threshold: above 2\n",
            r"rule 'f': threshold 'above 2' is not like '> 0.2'",
        ),
        (
            "rules:\n  - name: g\n    expr: up\n    colour: red\n",
            r"rule 'g': unknown key\(s\) colour",
        ),
        (
            "rules:\n  - name: h\n    expr: up\n  - name: h\n    expr: up\n",
            r"rules\.yaml:4: rule 'h' is also defined at rules\.yaml:2",
        ),
        ("rules:\n  - expr: up\n", r"rules\.yaml:2: rule: 'name' must be"),
        ("rules:\n  - just a string\n", r"rules\.yaml:2: a rule must be a mapping"),
    ],
)
def test_bad_rules_name_the_line_and_rule(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules(text, "rules.yaml", set(FACTS))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", dt.timedelta(seconds=30)),
        ("10m", dt.timedelta(minutes=10)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("2d", dt.timedelta(days=2)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "1x", "m", None, "-5m"])
def test_bad_durations(text) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"cannot read .*nope\.yaml"):
        load_rules_file(tmp_path / "nope.yaml")
