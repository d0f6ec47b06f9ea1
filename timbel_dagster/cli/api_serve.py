"""`timbel api serve`: the REST API under uvicorn.

uvicorn is given the import string of the app factory, so the CLI never imports the API
(they are strangers in the layers contract) and `--workers` could load it in each worker.
"""

from __future__ import annotations

import click

from timbel_dagster.cli.common import connect, friendly_errors

APP_FACTORY = "timbel_dagster.api.app:create_app"


@click.group()
def api() -> None:
    """The REST API (/api/v1, Swagger UI at /api/docs)."""


@api.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on.")  # fmt: skip
@friendly_errors
def serve(host: str, port: int) -> None:
    """Serve the API until interrupted. Clients authenticate with a token from
    `timbel token create`."""
    # lazy: uvicorn loads asyncio and its protocols; `timbel --help` stays fast without it
    import uvicorn

    # The same one-line refusal as every command when the warehouse is missing or outdated,
    # before uvicorn starts (the app would otherwise fail inside its factory).
    connect().close()
    click.echo(f"Timbel API on http://{host}:{port}/api/v1 (docs: /api/docs)", err=True)
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, log_level="info")
