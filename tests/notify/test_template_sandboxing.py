"""Notification templates and alert summaries render in the bounded sandbox: an override in
TIMBEL_TEMPLATES_DIR or an alert rule's `summary` (from the rules file or the warehouse)
that reaches for Python internals runs nothing, and one that never ends is stopped without
stopping the alert tick."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import SecurityError
from sqlalchemy import select

from tests.notify.test_alerting import T, _seed_executions
from tests.notify.test_templates import _message
from tests.security.test_template_sandbox import NESTED_LOOPS, UNSAFE, escapes
from timbel_dagster.notify.alerting import GROUP_ABOVE, AlertEvaluator
from timbel_dagster.notify.errors import TemplateRefusedError
from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.rule_store import save_rules, stored_rules
from timbel_dagster.notify.rules import parse_rules
from timbel_dagster.notify.templates import Templates
from timbel_dagster.warehouse.schema.notify import AlertEvent


@pytest.mark.parametrize("payload", list(UNSAFE))
def test_an_override_that_escapes_runs_nothing(payload: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "run_failed.txt").write_text("Hello\n" + escapes(marker)[payload] + "\n")
    with pytest.raises(TemplateRefusedError) as refused:
        Templates(tmp_path).email(_message("run_failed"))
    assert isinstance(refused.value, SecurityError)
    assert (refused.value.filename, refused.value.line) == (str(tmp_path / "run_failed.txt"), 2)
    assert str(refused.value).startswith(
        f"notification template {tmp_path / 'run_failed.txt'}, line 2: {UNSAFE[payload]}"
    )
    assert "\n" not in str(refused.value)
    assert not marker.exists()


def test_an_override_extending_a_packaged_template_is_sandboxed_too(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "run_failed.html").write_text(
        '{% extends "_email.html" %}{% block summary %}'
        + escapes(marker)["cycler"]
        + "{% endblock %}"
    )
    with pytest.raises(TemplateRefusedError, match=UNSAFE["cycler"]):
        Templates(tmp_path).email(_message("run_failed"))
    assert not marker.exists()


@pytest.mark.timeout(10)
def test_an_override_that_never_ends_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "alert_fired.slack.json").write_text('{"text": "x"}\n' + NESTED_LOOPS)
    started = time.perf_counter()
    with pytest.raises(TemplateRefusedError) as refused:
        Templates(tmp_path).slack(_message("alert_fired"))
    assert str(refused.value) == (
        f"notification template {tmp_path / 'alert_fired.slack.json'}, line 2: "
        "rendering stopped after 250,000 steps (limit)"
    )
    print(f"notification override: nested loops refused in {time.perf_counter() - started:.2f} s")


def test_huge_output_from_an_override_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run_failed.txt").write_text("{{ message.title * 1000000 }}")
    with pytest.raises(TemplateRefusedError, match=r"'\*' would build a value longer than"):
        Templates(tmp_path).email(_message("run_failed"))


def test_packaged_html_stays_escaped_in_the_sandbox() -> None:
    mail = Templates().email(_message("run_failed", title="<script>x</script>"))
    assert "&lt;script&gt;x&lt;/script&gt;" in mail.html and "<script>" not in mail.html
    assert "<script>x</script>" in mail.text  # plain text is not HTML


def _rule(summary: str) -> str:
    quoted = summary.replace("'", "''")
    return (
        "rules:\n  - name: failures\n    fact: pipeline_failure_rate\n    threshold: '> 0.2'\n"
        f"    summary: '{quoted}'\n"
    )


def _summaries(engine: Any) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(AlertEvent.summary)).scalars())


def test_a_stored_alert_summary_that_escapes_runs_nothing(engine: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _seed_executions(engine, ["failed"] * 5, T)
    save_rules(engine, _rule(escapes(marker)["cycler"]), "rules.yaml", "ann")
    rules, errors = stored_rules(engine, set(FACTS))
    report = AlertEvaluator(engine).tick(rules, T)
    assert errors == [] and report.errors == {}
    assert [t.kind for t in report.transitions] == ["fired"]  # the tick went on
    assert _summaries(engine) == [
        f"failures: 1 (summary template failed: template summary, line 1: {UNSAFE['cycler']})"
    ]
    assert not marker.exists()


@pytest.mark.timeout(10)
def test_an_alert_summary_that_never_ends_does_not_stall_the_tick(engine: Any) -> None:
    for n in range(GROUP_ABOVE + 2):
        _seed_executions(engine, ["failed"] * 5, T, name=f"svc-{n}/main")
    rules = parse_rules(_rule(NESTED_LOOPS), "rules.yaml", set(FACTS))
    started = time.perf_counter()
    report = AlertEvaluator(engine).tick(rules, T)
    seconds = time.perf_counter() - started
    assert len(report.transitions) == GROUP_ABOVE + 2
    # Summaries have tighter limits, and a refused one is not rendered again in the tick.
    assert set(_summaries(engine)) == {
        "failures: 1 (summary template failed: template summary, line 1: "
        "rendering stopped after 100,000 steps (limit))"
    }
    print(f"alert tick with {GROUP_ABOVE + 2} refused summaries: {seconds:.2f} s")
