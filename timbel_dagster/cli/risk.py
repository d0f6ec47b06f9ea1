"""`timbel risk`: the deployment-risk advisor on pending requests, and its model."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import click

from timbel_dagster.cli.common import (
    connect,
    friendly_errors,
    print_json,
    settings_or_exit,
    writable_engine,
)
from timbel_dagster.ml.models.store import load_model
from timbel_dagster.ml.risk.advisor import MODEL_NAME
from timbel_dagster.ml.risk.scoring import score_request
from timbel_dagster.ml.risk.words import CONFIDENCE_BASIS, confidence_text, reason_text

WIDTH = 100
NBSP = "\N{NO-BREAK SPACE}"  # textwrap breaks only at ASCII whitespace


@click.group()
def risk() -> None:
    """Deployment-risk advisor: assess a request, show the model, check it for drift."""


def _wrapped(text: str, indent: str) -> list[str]:
    """`text` wrapped to WIDTH columns; a short parenthesis, `(failure odds x2.3)`, is kept
    on one line."""
    glued = re.sub(r"\([^()]{1,24}\)", lambda m: m[0].replace(" ", NBSP), text)
    lines = textwrap.wrap(
        glued, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ", break_long_words=False
    )
    return [line.replace(NBSP, " ") for line in lines]


def _reason_lines(assessment: dict[str, Any], indent: str) -> list[str]:
    return [line for r in assessment["reasons"] for line in _wrapped(reason_text(r), indent)]


def advice_lines(assessment: dict[str, Any], indent: str = "  ") -> list[str]:
    """The advisor's confidence and top reasons in words, wrapped to 100 columns: what
    `timbel deploy` prints under a request's risk."""
    confidence = _wrapped(confidence_text(assessment["confidence"]), indent)
    return confidence + _reason_lines(assessment, indent)


def _print_assessment(a: dict[str, Any]) -> None:
    ships = a.get("ships", {})
    commits = ships.get("commits", 0)
    lines = [
        f"request #{a['request']}  {a['service']} -> {a['environment']}  ({a['image']})",
        f"  probability of failure {a['probability']:.1%}   recommendation "
        f"{a['recommendation'].upper()}   (model v{a['model_version']})",
        *_wrapped(confidence_text(a["confidence"]), "  "),
        f"  ships {commits} commit{'' if commits == 1 else 's'}, "
        f"+{ships.get('lines_added', 0):.0f} -{ships.get('lines_deleted', 0):.0f} lines",
        "  top reasons:",
        *_reason_lines(a, "    "),
        "  most similar past deployments:",
    ]
    lines += [
        f"    {item.get('service', '?'):<18} {item.get('environment', '?'):<8} "
        f"{str(item.get('started_at', ''))[:16]:<17} {item.get('outcome', item['outcome'])}"
        for item in a["similar"]
    ]
    lines += _wrapped(f"({CONFIDENCE_BASIS}.)", "  ")
    click.echo("\n".join(lines))


@risk.command()
@click.argument("request")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def score(request: str, as_json: bool) -> None:
    """Assess deployment REQUEST (number or id prefix) with the newest risk model: failure
    probability, approve/review/reject, top reasons, similar past deployments, confidence.
    The assessment is stored on the request, where approvers see it."""

    settings, engine = writable_engine()
    assessment = score_request(engine, settings, request)
    if as_json:
        print_json(assessment)
        return
    _print_assessment(assessment)


@risk.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def model(as_json: bool) -> None:
    """The newest risk model: when and why it was trained, and its time-ordered evaluation
    beside the baselines."""

    with connect() as connection:
        stored = load_model(connection, MODEL_NAME)
    info = {
        "name": stored.name,
        "version": stored.version,
        "code_version": stored.code_version,
        "trained_at": stored.trained_at,
        "trained_until": stored.trained_until,
        "features": stored.features,
        "evaluation": stored.evaluation,
    }
    if as_json:
        print_json(info)
        return
    e = stored.evaluation
    click.echo(
        f"{stored.name} v{stored.version} ({stored.code_version}), trained "
        f"{stored.trained_at:%Y-%m-%d %H:%M} on {e['n_train'] + e['n_test']} deployments\n"
        f"  AUC {e['auc']:.3f}  (random forest {e['baseline_rf_auc']:.3f}, lines added "
        f"{e['baseline_la_auc']:.3f})\n"
        f"  PR-AUC {e['pr_auc']:.3f}  Brier {e['brier']:.4f}\n"
        f"  recall at 20% effort {e['recall_at_20pct_effort']:.3f}  (smallest first "
        f"{e['baseline_smallest_first_recall_at_20pct_effort']:.3f})"
    )


@risk.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def drift(as_json: bool) -> None:
    """Compare the model's AUC on the last TIMBEL_RISK_DRIFT_WINDOW_DAYS of deployments with
    the AUC it was accepted with (exit code 1 when it should be retrained)."""
    # lazy: sensors.ml loads Dagster; `timbel --help` loads without it
    from timbel_dagster.sensors.ml import drift_verdict

    settings = settings_or_exit()
    verdict = drift_verdict(settings.database_url, settings)
    if as_json:
        print_json(verdict)
    else:
        click.echo(verdict["reason"])
    if verdict["retrain"]:
        raise SystemExit(1)
