"""What `timbel` prints for people: headed tables that fit 100 columns, and numbers rounded to
what they mean. `--json` output never goes through here: it stays as the functions return it.

A list command builds its rows, names its columns (`Column`, with one of the formatters
below) and calls `print_table`, which prints the `empty` sentence instead of a table when
there is nothing to show, so that an empty list always says so and how to get data.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import shutil
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import click
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

WIDTH = 100  # the most a table takes, whatever the terminal
MISSING = "-"


def missing(value: Any) -> bool:
    """None, "", NaN, and pandas' NA and NaT: what a table shows as `-`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in {"NAType", "NaTType"}


def _or_missing(format_value: Callable[[Any], str]) -> Callable[[Any], str]:
    def checked(value: Any) -> str:
        return MISSING if missing(value) else format_value(value)

    checked.__name__ = format_value.__name__
    checked.__doc__ = format_value.__doc__
    return checked


@_or_missing
def text(value: Any) -> str:
    """Any value as text (a mapping as labels, a list comma-separated)."""
    if isinstance(value, Mapping):
        return labels(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value) or MISSING
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dt.datetime):
        return when(value)
    return str(value)


@_or_missing
def count(value: Any) -> str:
    """A whole number with thousands separators: 1,377."""
    return f"{int(value):,}"


@_or_missing
def number(value: Any) -> str:
    """A measured value: 4 significant digits, no float noise (1.0025439999999999 -> 1.003)."""
    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    size = abs(value)
    if size < 1:
        return f"{value:.3g}"
    decimals = 0 if size >= 1000 else 1 if size >= 100 else 2 if size >= 10 else 3
    return f"{value:,.{decimals}f}"


@_or_missing
def duration(seconds: Any) -> str:
    """Seconds as people say them: 45s, 3m 12s, 2h 05m, 3d 4h."""
    total = round(float(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@_or_missing
def days(value: Any) -> str:
    """A number of days: 2.5d."""
    return f"{float(value):.1f}d"


@_or_missing
def percent(ratio: Any) -> str:
    """A ratio (0..1) as a percentage with one decimal: 0.975 -> 97.5%."""
    return f"{float(ratio) * 100:.1f}%"


@_or_missing
def fraction(value: Any) -> str:
    """A value between 0 and 1 with 2 decimals, so a column lines up: 0.9, 0 -> 0.90, 0.00."""
    return f"{float(value):.2f}"


@_or_missing
def usd(value: Any) -> str:
    """Dollars and cents: $12.34 (an amount under a cent but not nothing: <$0.01)."""
    value = float(value)
    if 0 < abs(value) < 0.005:
        return "<$0.01" if value > 0 else "-<$0.01"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


@_or_missing
def cores(value: Any) -> str:
    """CPU cores with 2 decimals: 1.25."""
    return f"{float(value):.2f}"


@_or_missing
def gib(value: Any) -> str:
    """GiB with 2 decimals: 3.50."""
    return f"{float(value):.2f}"


@_or_missing
def when(value: Any) -> str:
    """A moment to the minute (UTC as stored): 2026-11-01 14:05."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        return value.to_pydatetime().strftime("%Y-%m-%d %H:%M")
    return str(value)


@_or_missing
def day(value: Any) -> str:
    """A moment to the day: 2026-11-01."""
    return when(value)[:10]


@_or_missing
def labels(value: Any) -> str:
    """Labels as `k=v, k=v` (sorted by key), never as a Python dict."""
    if not isinstance(value, Mapping):
        return str(value)
    return ", ".join(f"{k}={text(v)}" for k, v in sorted(value.items())) or MISSING


@dataclass(frozen=True)
class Column:
    """One column: its HEADER, where its value comes from (a row key, or a function of the
    row) and how it is shown. Long cells are cut with `…` (at the start when `keep_end`)
    unless `wrap`."""

    header: str
    value: str | Callable[[Any], Any]
    show: Callable[[Any], str] = text
    justify: Literal["left", "right"] = "left"
    max_width: int | None = None
    wrap: bool = False
    keep_end: bool = False  # cut at the start (`…shop/api:1.4.2`): the end tells rows apart
    cut: bool = True  # False: never cut, like a number: a short state (`disabled 2026-11-30`)

    def cell(self, row: Any) -> str:
        raw = self.value(row) if callable(self.value) else _get(row, self.value)
        return self.show(raw)


def _get(row: Any, key: str) -> Any:
    return row[key] if isinstance(row, Mapping) else getattr(row, key)


def right(header: str, value: str | Callable[[Any], Any], show: Callable[[Any], str]) -> Column:
    """A right-aligned (numeric) column."""
    return Column(header, value, show, justify="right")


def width() -> int:
    """The terminal's width (COLUMNS when set), at most WIDTH; WIDTH when not a terminal."""
    return max(40, min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns))


GAP = 3  # between two columns: a space of padding either side of a blank divider


def fit(natural: list[int], floors: list[int], budget: int) -> list[int]:
    """Column widths whose sum fits `budget`: the widest shrinkable column (floor below its
    width) gives a character at a time, so short columns keep their width."""
    widths = list(natural)
    while sum(widths) > budget:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def render(rows: Iterable[Any], columns: list[Column]) -> str:
    """The rows as a headed table no wider than `width()`, without trailing spaces."""
    cells = [[column.cell(row) for column in columns] for row in rows]
    natural = [
        min(
            max([cell_len(column.header)] + [cell_len(line[i]) for line in cells]),
            column.max_width or WIDTH,
        )
        for i, column in enumerate(columns)
    ]
    # Numbers (and columns that say so) are never cut; other text gives way down to its
    # header (at least 6 characters).
    floors = [
        natural[i]
        if column.justify == "right" or not column.cut
        else min(natural[i], max(6, len(column.header)))
        for i, column in enumerate(columns)
    ]
    widths = fit(natural, floors, width() - GAP * (len(columns) - 1))
    for i, column in enumerate(columns):
        if column.keep_end:
            for line in cells:
                if cell_len(line[i]) > widths[i]:
                    line[i] = "…" + line[i][len(line[i]) - widths[i] + 1 :]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column, size in zip(columns, widths, strict=True):
        table.add_column(
            Text(column.header),
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold" if column.wrap else "ellipsis",
            width=size,
        )
    for line in cells:
        table.add_row(*(Text(cell) for cell in line))
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=WIDTH * 2, color_system=None, highlight=False, emoji=False, markup=False
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines() if line.strip())


def print_table(
    rows: Iterable[Any],
    columns: list[Column],
    *,
    empty: str,
    footer: str | None = None,
    title: str | None = None,
) -> None:
    """Print the rows as a table (after `title`, then `footer`), or the `empty` sentence."""
    rows = list(rows)
    if title:
        click.echo(title)
    if not rows:
        say(empty)
        return
    click.echo(render(rows, columns))
    if footer:
        say(footer)


def say(sentence: str) -> None:
    """Print a sentence wrapped to `width()` (lines after the first indented by two)."""
    click.echo(
        textwrap.fill(
            sentence,
            width(),
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def print_counts(tables: Mapping[str, Mapping[str, int]]) -> None:
    """What a load did per warehouse table: rows offered and written (changed or new)."""
    print_table(
        [{"table": name} | dict(counts) for name, counts in tables.items()],
        [
            Column("TABLE", "table"),
            right("ROWS", "offered", count),
            right("WRITTEN", "written", count),
        ],
        empty="no tables were loaded",
    )


def plural(n: int, singular: str, many: str | None = None) -> str:
    """`1 rule`, `3 rules`, `1,377 images`."""
    return f"{n:,} {singular if n == 1 else (many or singular + 's')}"
