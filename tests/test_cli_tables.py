"""What `timbel` prints for people (cli/tables.py): numbers rounded to what they mean, `-` for
what is missing, headed tables no wider than 100 columns; and, through the commands, every
list saying when it is empty and the alert rules counted the same everywhere."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.test_cli import invoke
from timbel_dagster.cli import tables
from timbel_dagster.cli.tables import Column, right

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RULES = REPO / "timbel_dagster" / "notify" / "sample_rules.yaml"
EXAMPLE_RULES = REPO / "deploy" / "alert-rules.example.yaml"


@pytest.mark.parametrize(
    ("show", "value", "expected"),
    [
        (tables.number, 1.0025439999999999, "1.003"),
        (tables.number, 0.9525568181818183, "0.953"),
        (tables.number, 12345.678, "12,346"),
        (tables.number, 42.0, "42"),
        (tables.number, 13.456, "13.46"),
        (tables.duration, 45.4, "45s"),
        (tables.duration, 192, "3m 12s"),
        (tables.duration, 7500, "2h 05m"),
        (tables.duration, 3 * 86400 + 4 * 3600 + 5, "3d 4h"),
        (tables.percent, 0.975, "97.5%"),
        (tables.percent, 1, "100.0%"),
        (tables.usd, 12.3449, "$12.34"),
        (tables.usd, 1234.5, "$1,234.50"),
        (tables.usd, 0.0042, "<$0.01"),
        (tables.usd, 0.0, "$0.00"),
        (tables.cores, 1.23456, "1.23"),
        (tables.gib, 3.5, "3.50"),
        (tables.count, 1377, "1,377"),
        (tables.days, 2.25, "2.2d"),
        (
            tables.labels,
            {"namespace": "commerce", "cluster": "seoul-prod-01"},
            "cluster=seoul-prod-01, namespace=commerce",
        ),
        (tables.labels, {}, "-"),
        (tables.text, {"a": 1}, "a=1"),
        (tables.text, ["dev", "prod"], "dev, prod"),
        (tables.when, dt.datetime(2026, 11, 1, 14, 5, 59), "2026-11-01 14:05"),
        (tables.when, "2026-11-02T09:00:00+00:00", "2026-11-02 09:00"),
        (tables.when, pd.Timestamp("2026-11-02 09:00", tz="UTC"), "2026-11-02 09:00"),
        (tables.day, pd.Timestamp("2026-11-02 09:00", tz="UTC"), "2026-11-02"),
    ],
)
def test_numbers_are_rounded_to_what_they_mean(
    show: Callable[[Any], str], value: Any, expected: str
) -> None:
    assert show(value) == expected


@pytest.mark.parametrize("value", [None, "", "  ", math.nan, pd.NA, pd.NaT, float("nan")])
@pytest.mark.parametrize(
    "show",
    [tables.text, tables.number, tables.duration, tables.percent, tables.usd, tables.when],
)
def test_missing_values_are_a_dash(show: Callable[[Any], str], value: Any) -> None:
    assert show(value) == "-"


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_a_table_has_headers_and_fits_100_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal still gets at most 100
    rows = [
        {"image": "registry.example.com/" + "very-long-name/" * 12 + "api:1.4.2", "n": 1377,
         "labels": {"cluster": "seoul-prod-01", "namespace": "commerce"}, "cost": 12.3449},
        {"image": "short", "n": None, "labels": {}, "cost": pd.NA},
    ]  # fmt: skip
    text = tables.render(
        rows,
        [
            Column("IMAGE", "image"),
            right("VULNS", "n", tables.count),
            Column("LABELS", "labels", tables.labels),
            right("COST", "cost", tables.usd),
        ],
    )
    lines = _lines(text)
    assert lines[0].split() == ["IMAGE", "VULNS", "LABELS", "COST"]
    assert set(lines[1]) == {"─"}
    assert max(len(line) for line in lines) <= 100
    assert "…" in lines[2] and lines[2].rstrip().endswith("$12.34")
    assert "1,377" in lines[2] and "cluster=seoul-prod-01, namesp" in lines[2]
    assert lines[3].split() == ["short", "-", "-", "-"]
    for word in ("None", "nan", "<NA>", "NaT", "{"):
        assert word not in text


def test_a_narrow_terminal_narrows_the_table_and_keeps_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    rows = [{"name": "x" * 80, "value": 1234567}]
    lines = _lines(tables.render(rows, [Column("NAME", "name"), right("V", "value", tables.count)]))
    assert max(len(line) for line in lines) <= 60 and lines[2].endswith("1,234,567")


def test_a_wrapped_column_folds_instead_of_cutting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    rows = [{"a": "first", "b": "word " * 20}]
    lines = _lines(tables.render(rows, [Column("A", "a"), Column("B", "b", wrap=True)]))
    assert len(lines) > 3 and max(len(line) for line in lines) <= 40
    assert "…" not in "".join(lines)


def test_markup_in_a_cell_is_printed_as_it_is() -> None:
    text = tables.render([{"x": "[bold]not bold[/bold] [1.2]"}], [Column("X", "x")])
    assert "[bold]not bold[/bold] [1.2]" in text


def test_print_table_says_what_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    tables.print_table([], [Column("A", "a")], empty="no things yet: add one", footer="0 things")
    assert capsys.readouterr().out == "no things yet: add one\n"


# --- through the commands (in process, each test in its own directory) ------------------------


@pytest.fixture
def timbel(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """`timbel ARGS` in process (`invoke`), in an empty directory (TIMBEL_HOME `.timbel`,
    SQLite), on a terminal 100 columns wide."""

    def command(*args: str, **env: str) -> subprocess.CompletedProcess:
        return invoke(list(args), tmp_path, **({"COLUMNS": "100"} | env))

    return command


def _json(result: subprocess.CompletedProcess) -> Any:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _fits(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert max(len(line) for line in result.stdout.splitlines()) <= 100, result.stdout
    return result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["alerts", "list"], "no firing alerts: `--state all` shows every state"),
        (["deploy", "list"], "no deployment requests yet: ask for one with `timbel deploy request"),
        (["deploy", "list", "--status", "approved"], "no approved deployment requests"),
        (["notify", "history"], "no notifications sent yet"),
        (["executions", "list"], "no executions yet: load the sample (`timbel sample`)"),
        (["executions", "list", "--status", "failed"], "no executions match these filters"),
        (["executions", "stats"], "no finished executions yet"),
        (["tenant", "list"], "no tenants yet: create one with `timbel tenant create"),
        (["audit", "search", "--actor", "nobody"], "no audit events match these filters"),
        (["scan", "history"], "no deployments with an image yet"),
    ],
)
def test_every_list_says_when_it_is_empty(
    timbel: Callable[..., subprocess.CompletedProcess], args: list[str], expected: str
) -> None:
    assert timbel("db", "upgrade").returncode == 0
    result = timbel(*args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert expected in result.stdout


def test_the_alert_rules_are_counted_alike_everywhere(
    timbel: Callable[..., subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """The rules `alerts rules list` shows are the rules `alerts evaluate` counts, from every
    source: the sample's rules file in sample mode (what `timbel demo` evaluates),
    TIMBEL_ALERT_RULES_FILE when set, and the warehouse."""
    sample = {"TIMBEL_SAMPLE_DATA": "true"}
    listed = _json(timbel("alerts", "rules", "list", "--json", **sample))["rules"]
    assert [r["name"] for r in listed] == [
        "namespace-cpu-near-quota",
        "workload-crash-looping",
        "pipeline-failure-rate",
        # built in
        "ingestion-stale",
        "slo-fast-burn",
        "slo-slow-burn",
        "backup-stale",
        "backup-failed",
        "base-backup-stale",
        "base-backup-failed",
    ]
    assert _json(timbel("alerts", "evaluate", "--json", **sample))["rules"] == 10

    rule = tmp_path / "extra.yaml"
    rule.write_text("rules:\n  - name: extra-rule\n    fact: pipeline_failure_rate\n")
    assert timbel("alerts", "rules", "add", str(rule)).returncode == 0
    example = {"TIMBEL_ALERT_RULES_FILE": str(EXAMPLE_RULES)}  # one of its 3 rules is off
    for env, count, off in ((sample, 11, 0), ({}, 8, 0), (example, 11, 1)):
        listed = _json(timbel("alerts", "rules", "list", "--json", **env))["rules"]
        evaluated = _json(timbel("alerts", "evaluate", "--json", **env))
        assert len(listed) == evaluated["rules"] + off == count, env
        plain = timbel("alerts", "evaluate", **env).stdout
        rules = tables.plural(count, "rule")
        assert plain.startswith(f"{rules}{f' ({off} disabled)' if off else ''}, 0 active")
        table = " ".join(_fits(timbel("alerts", "rules", "list", **env)).split())
        assert (f"({off} disabled: not evaluated)" in table) == bool(off)

    text = _fits(timbel("alerts", "rules", "list", **sample))
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "SEVERITY", "KIND", "FOR", "SOURCE", "ON", "QUERY"]
    sources = {line.split()[0]: line.split()[4] for line in lines[2:-1]}
    assert sources == {
        "namespace-cpu-near-quota": "file",
        "workload-crash-looping": "file",
        "pipeline-failure-rate": "file",
        "extra-rule": "warehouse",
        "ingestion-stale": "built-in",
        "slo-fast-burn": "built-in",
        "slo-slow-burn": "built-in",
        "backup-stale": "built-in",
        "backup-failed": "built-in",
        "base-backup-stale": "built-in",
        "base-backup-failed": "built-in",
    }
    assert lines[-1] == (
        "11 rules: 3 from the sample's rules file, 1 from the warehouse, 7 built in"
    )
    plain = timbel("alerts", "evaluate", **sample)
    assert plain.stdout.startswith("11 rules, 0 active series, 0 transitions, 0 notices sent in ")


def test_alerts_list_rounds_values_prints_labels_and_names_rules_it_cannot_see(
    timbel: Callable[..., subprocess.CompletedProcess], tmp_path: Path
) -> None:
    from sqlalchemy import insert

    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.notify import Alert

    assert timbel("db", "upgrade").returncode == 0
    since = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)
    with get_engine(f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}").begin() as connection:
        connection.execute(
            insert(Alert),
            [
                {
                    "fingerprint": "f1",
                    "rule": "namespace-cpu-near-quota",
                    "severity": "critical",
                    "labels": {"namespace": "commerce", "cluster": "seoul-prod-01"},
                    "state": "firing",
                    "value": 1.0025439999999999,
                    "active_since": since,
                    "firing_since": since,
                }
            ],
        )
    # Not in sample mode: the sample's rule that fired is not among the rules seen now.
    text = _fits(timbel("alerts", "list"))
    lines = text.splitlines()
    assert lines[0].split() == ["STATE", "SEVERITY", "RULE", "LABELS", "VALUE", "SINCE"]
    # A long label set folds within its column rather than widening the table.
    assert "cluster=seoul-prod-01," in lines[2] and lines[3].split() == ["namespace=commerce"]
    assert "1.003" in lines[2] and "2026-11-01 09:30" in lines[2]
    assert "1.00254" not in text and "{" not in text
    assert lines[4] == "1 firing alert"
    assert lines[5].startswith("note: no rule named namespace-cpu-near-quota is configured now")
    assert "TIMBEL_SAMPLE_DATA=true" in text
    sample = timbel("alerts", "list", TIMBEL_SAMPLE_DATA="true").stdout
    assert "note:" not in sample
    # --json keeps the stored value and labels as they are.
    [alert] = _json(timbel("alerts", "list", "--json"))
    assert alert["value"] == 1.0025439999999999
    assert alert["labels"] == {"namespace": "commerce", "cluster": "seoul-prod-01"}


def test_the_sample_organisation_read_by_people(
    timbel: Callable[..., subprocess.CompletedProcess],
) -> None:
    """Loads, executions and their statistics as headed tables within 100 columns, with
    durations and rates rounded (no `907.0`, no `0.8765`)."""
    end = {"TIMBEL_SAMPLE_END_DATE": "2026-11-01"}
    loaded = _fits(timbel("sample", **end)).splitlines()
    assert loaded[1].split() == ["TABLE", "ROWS", "WRITTEN"]
    executions = next(line.split() for line in loaded if line.startswith("pipeline_executions"))
    assert executions[1] == "1,606" and executions[2] == "1,606"

    listed = _fits(timbel("executions", "list", "--limit", "3")).splitlines()
    assert listed[0].split() == ["ID", "STARTED", "STATUS", "DURATION", "PIPELINE", "ERROR"]
    assert listed[5] == "3 executions (the newest 3; --limit shows more)"
    assert all(re.search(r" \d+m \d\ds ", line) for line in listed[2:5])
    assert "duration percentiles of these pipelines:" in listed

    stats = _fits(timbel("executions", "stats")).splitlines()
    assert stats[0].split() == ["PIPELINE", "RUNS", "SUCCESS", "P50", "P90", "P99"]
    assert len(stats) == 2 + 12
    assert all(re.fullmatch(r"\S+ +\d+ +\d+\.\d% +(\d+m \d\ds +){3}", line + " ") for line in
               stats[2:])  # fmt: skip

    [latest] = _json(timbel("executions", "list", "--limit", "1", "--json"))
    shown = _fits(timbel("executions", "show", latest["id"])).splitlines()
    assert re.fullmatch(r"duration +\d+m \d\ds", shown[7])
    assert re.fullmatch(r"started_at +2026-\d\d-\d\d \d\d:\d\d", shown[5])
    assert re.fullmatch(r"typical +p50 \d+m \d\ds, p90 .* over [\d,]+ runs of this pipeline",
                        shown[12])  # fmt: skip
    assert isinstance(latest["duration"], float)  # --json keeps the seconds
