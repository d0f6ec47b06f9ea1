"""Case-insensitive substring matching of user text (`ILIKE '%text%'`), the way the trigram
indexes of migration 0021 serve it on PostgreSQL."""

from __future__ import annotations

from typing import Any

# pg_trgm serves `ILIKE '%text%'` from the trigrams (3 letters or digits in a row) of the
# text: a shorter text has none, and the index would hand back every row to recheck.
MIN_SEARCH_CHARS = 3
ESCAPE = "\\"


def check_search(text: str) -> None:
    """Refuse a search text the index cannot serve.

    Raises:
        ValueError: the text is empty or shorter than MIN_SEARCH_CHARS (spaces around it
            not counted).
    """
    if not text.strip():
        raise ValueError("the search pattern is empty")
    if len(text.strip()) < MIN_SEARCH_CHARS:
        raise ValueError(
            f"the search pattern {text!r} is too short: give at least {MIN_SEARCH_CHARS} "
            "characters (shorter text would read every stored log)"
        )


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's wildcards and the escape character in `text` escaped, so that
    `50%`, `a_b` and `C:\\path` match themselves."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def contains_text(column: Any, text: str) -> Any:
    """`column ILIKE '%text%' ESCAPE '\\'`: `text` anywhere in `column`, case-insensitively
    (ASCII only on SQLite, as its `lower`)."""
    return column.ilike(like_pattern(text), escape=ESCAPE)
