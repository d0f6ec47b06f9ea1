"""`timbel scan` and `timbel analyze-repo`: vulnerability scans and repository analysis."""

from __future__ import annotations

import click


@click.group()
def scan() -> None:
    """Import and run vulnerability scans (Trivy)."""
