"""What the Dagster UI shows of a materialization: numbers rounded to what they mean, and
plots where a trend is the point.

A metric computed in floating point (an AUC of 0.9525568181818183, a cost of
0.012345678901 USD) is rounded to `SIGNIFICANT` digits, never below the units: 12,345.678 USD
shows as 12,346. Plots are PNG images in `MetadataValue.md` (a `data:` URI: the Dagster UI
renders base64 images in markdown metadata, as Dagster's own tutorial does), drawn with
matplotlib's object API (no pyplot, no global state), imported only when a plot is drawn.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIGNIFICANT = 4


def significant(value: float, digits: int = SIGNIFICANT) -> float:
    """`value` rounded to `digits` significant digits, but never below the units
    (0.9525568 -> 0.9526, 0.000123456 -> 0.0001235, 12345.678 -> 12346.0)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def number_text(value: float, digits: int = SIGNIFICANT) -> str:
    """`value` as a table shows it: `significant`, with thousands separators."""
    if not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{round(value, decimals):,.{decimals}f}"


def _round_json(data: Any) -> Any:
    if isinstance(data, float):
        return significant(data)
    if isinstance(data, Mapping):
        return {key: _round_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_round_json(value) for value in data]
    return data


def rounded(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata` with every float (plain, `MetadataValue.float` or inside
    `MetadataValue.json`) rounded by `significant`; other values unchanged."""
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        if isinstance(value, float):
            value = significant(value)
        elif isinstance(value, dg.FloatMetadataValue) and value.value is not None:
            value = dg.MetadataValue.float(significant(value.value))
        elif isinstance(value, dg.JsonMetadataValue):
            value = dg.MetadataValue.json(_round_json(value.data))
        out[name] = value
    return out


def cell_text(value: Any) -> str:
    """One cell of a markdown table: numbers by `number_text`, None as `-`."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return number_text(value)
    return str(value).replace("|", "\\|")


def plot(draw: Callable[[Figure], None], alt: str, size: tuple[float, float] = (7, 3.2)) -> Any:
    """`MetadataValue.md` holding a PNG of the figure `draw` fills in, with `alt` as its
    text (shown where images are not)."""
    # matplotlib is a heavy import: only the runs that draw a plot pay for it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
