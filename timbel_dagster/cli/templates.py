"""`timbel template`: pipeline templates (generate, validate, version, share, apply)."""

from __future__ import annotations

import click


@click.group()
def template() -> None:
    """Pipeline templates: Jenkinsfile and .gitlab-ci.yml."""
