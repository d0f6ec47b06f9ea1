"""`timbel ml`, `timbel risk` and `timbel analyze-changes`: the ML models' entry points.

The evaluation commands run the same model code the assets use, on any CSV, so that the
numbers in the README can be reproduced on public data."""

from __future__ import annotations

import click


@click.group()
def ml() -> None:
    """Evaluate the risk model, change-point detector and cost forecaster on your data."""


@click.group()
def risk() -> None:
    """Deployment-risk advisor."""
