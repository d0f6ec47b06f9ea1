"""Model cards: what a model is, what it learnt from, how well it did beside its baselines,
and what it cannot do, as markdown for the asset pages of the ML assets.

A card is a plain dataclass the assets fill in from the run's data and the stored
evaluation; `render` turns it into markdown. Nothing here knows Dagster: a plot is passed in
as the markdown of an image (what `assets/plots.py` draws), and the asset wraps the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One evaluation figure and its baselines measured on the same rows.

    Attributes:
        metric: what is measured, e.g. "ROC AUC (newest 20 %)".
        value: the model's figure (None: not measured in this run).
        baselines: baseline name -> its figure on the same rows (None: not measured).
        better: "higher" or "lower" (which way is better), or "" for a count.
    """

    metric: str
    value: float | None
    baselines: dict[str, float | None] = field(default_factory=dict)
    better: str = "higher"


@dataclass(frozen=True)
class ModelCard:
    """What the asset page says about a model.

    Attributes:
        name: the model's name.
        version: how to find this very model (code version, stored version, chosen rule).
        window: first and last timestamp of the data it learnt from (None: no data).
        data_size: what it learnt from, e.g. {"deployments": 1200, "failed": 80}.
        figures: evaluation figures with their baselines.
        not_evaluated: why there are no figures (shown instead of the table when set, or
            beside it when some figures are missing).
        selection: how its settings were chosen.
        plots: markdown images (`![alt](data:image/png;base64,...)`).
        limits: known limits, one sentence each.
        window_name: what the window is, for a model that learns nothing from its data.
    """

    name: str
    version: str
    window: tuple[Any, Any] | None
    data_size: dict[str, int]
    figures: Sequence[Figure] = ()
    not_evaluated: str | None = None
    selection: str = ""
    plots: Sequence[str] = ()
    limits: Sequence[str] = ()
    window_name: str = "Training window"


def number(value: float | None) -> str:
    """A figure as the card shows it: 4 significant digits, `-` when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    digits = max(0, 3 - math.floor(math.log10(abs(value)))) if value else 0
    return f"{value:,.{digits}f}"


def _when(value: Any) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("T", " ")[:16]


def _figures_table(figures: Sequence[Figure]) -> list[str]:
    """One row per figure and baseline: the model's figure beside each baseline's."""
    lines = [
        "| figure | model | baseline | baseline's figure | better |",
        "|---|---|---|---|---|",
    ]
    for figure in figures:
        pairs = list(figure.baselines.items()) or [("-", None)]
        for name, value in pairs:
            cells = [figure.metric, number(figure.value), name, number(value), figure.better]
            lines.append("| " + " | ".join(c or "-" for c in cells) + " |")
    return lines


def _behind(figures: Sequence[Figure]) -> list[str]:
    """Where the model's figure is worse than a baseline's, said in words."""
    out = []
    for figure in figures:
        if figure.value is None or figure.better not in ("higher", "lower"):
            continue
        for name, value in figure.baselines.items():
            if value is None:
                continue
            worse = value > figure.value if figure.better == "higher" else value < figure.value
            if worse:
                out.append(f"{figure.metric} {number(figure.value)} vs {name} {number(value)}")
    return out


def render(card: ModelCard) -> str:
    """The card as markdown: identity, training window, data size, figures with baselines,
    how the settings were chosen, plots and known limits."""
    lines = [f"### Model card: {card.name}", "", f"**Version:** {card.version}", ""]
    if card.window is None:
        lines.append(f"**{card.window_name}:** no data yet")
    else:
        first, last = card.window
        lines.append(f"**{card.window_name}:** {_when(first)} to {_when(last)} (UTC)")
    lines.append("")
    size = ", ".join(f"{number(v)} {k}" for k, v in card.data_size.items())
    lines += [f"**Data size:** {size or 'none'}", "", "#### Evaluation", ""]
    if card.figures:
        lines += _figures_table(card.figures)
        lines.append("")
        behind = _behind(card.figures)
        if behind:
            lines += [f"**Behind a baseline:** {'; '.join(behind)}", ""]
    if card.not_evaluated:
        lines += [f"Not evaluated: {card.not_evaluated}", ""]
    elif not card.figures:
        lines += ["Not evaluated: no figures were recorded for this model", ""]
    if card.selection:
        lines += [f"**How its settings were chosen:** {card.selection}", ""]
    for image in card.plots:
        lines += [image, ""]
    lines.append("#### Known limits")
    lines.append("")
    lines += [f"- {limit}" for limit in card.limits] or ["- none recorded"]
    return "\n".join(lines)
