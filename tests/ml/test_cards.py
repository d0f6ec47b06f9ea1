"""Model cards: the markdown a card renders to, whatever it holds or lacks."""

from __future__ import annotations

import datetime as dt

import pytest

from timbel_dagster.ml.cards import Figure, ModelCard, number, render

START = dt.datetime(2026, 9, 1, 8, 30, tzinfo=dt.UTC)


def _card(**changes: object) -> ModelCard:
    fields: dict[str, object] = {
        "name": "risk_model",
        "version": "v3 (code risk-1)",
        "window": (START, START + dt.timedelta(days=60)),
        "data_size": {"deployments": 1200, "failed": 80},
        "figures": [
            Figure("ROC AUC", 0.81, {"lines added": 0.72, "random forest": 0.79}),
            Figure("Brier score", 0.05, {"training failure rate": 0.06}, "lower"),
        ],
        "selection": "one time-ordered split",
        "plots": ["![calibration](data:image/png;base64,iVBORw0KGgo=)"],
        "limits": ["One split of 240 deployments."],
    }
    return ModelCard(**(fields | changes))  # type: ignore[arg-type]


def test_a_card_has_its_window_sizes_figures_with_baselines_plots_and_limits() -> None:
    text = render(_card())
    assert text.startswith("### Model card: risk_model")
    assert "**Version:** v3 (code risk-1)" in text
    assert "**Training window:** 2026-09-01 08:30 to 2026-10-31 08:30 (UTC)" in text
    assert "**Data size:** 1,200 deployments, 80 failed" in text
    assert "| figure | model | baseline | baseline's figure | better |" in text
    assert "| ROC AUC | 0.8100 | lines added | 0.7200 | higher |" in text
    assert "| ROC AUC | 0.8100 | random forest | 0.7900 | higher |" in text
    assert "| Brier score | 0.05000 | training failure rate | 0.06000 | lower |" in text
    assert "**How its settings were chosen:** one time-ordered split" in text
    assert "![calibration](data:image/png;base64,iVBORw0KGgo=)" in text
    assert text.endswith("#### Known limits\n\n- One split of 240 deployments.")
    assert "Behind a baseline" not in text and "Not evaluated" not in text


def test_a_figure_behind_its_baseline_is_said_in_words() -> None:
    figures = [
        Figure("ROC AUC", 0.70, {"lines added": 0.72, "random forest": 0.65}),
        Figure("Brier score", 0.07, {"training failure rate": 0.06}, "lower"),
        Figure("regressions found", 3, better=""),
    ]
    text = render(_card(figures=figures))
    assert (
        "**Behind a baseline:** ROC AUC 0.7000 vs lines added 0.7200; "
        "Brier score 0.07000 vs training failure rate 0.06000"
    ) in text
    assert "| regressions found | 3 | - | - | - |" in text


def test_no_evaluation_says_why_and_does_not_crash() -> None:
    text = render(
        _card(
            window=None,
            data_size={},
            figures=[],
            not_evaluated="the stored evaluation of v3 has no auc",
            plots=[],
            limits=[],
        )
    )
    assert "**Training window:** no data yet" in text
    assert "**Data size:** none" in text
    assert "Not evaluated: the stored evaluation of v3 has no auc" in text
    assert "| figure |" not in text and "- none recorded" in text
    assert "Not evaluated: no figures were recorded" in render(_card(figures=[]))


@pytest.mark.parametrize(
    "change",
    [
        {"data_size": {"deployments": 1201, "failed": 80}},
        {"window": (START, START + dt.timedelta(days=61))},
        {"figures": [Figure("ROC AUC", 0.811, {"lines added": 0.72})]},
        {"figures": [Figure("ROC AUC", 0.81, {"lines added": 0.721})]},
        {"version": "v4 (code risk-1)"},
    ],
)
def test_every_figure_comes_from_the_card(change: dict) -> None:
    assert render(_card(**change)) != render(_card())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (12345, "12,345"),
        (0.9525568, "0.9526"),
        (0.000123456, "0.0001235"),
        (1234.5678, "1,235"),
        (0.0, "0"),
    ],
)
def test_numbers_show_four_significant_digits(value: float | None, text: str) -> None:
    assert number(value) == text
