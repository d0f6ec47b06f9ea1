"""`timbel scan` and `timbel analyze-repo`: vulnerability scans and repository analysis."""

from __future__ import annotations

from pathlib import Path

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine
from timbel_dagster.cli.scan_followup import FOLLOW_UP
from timbel_dagster.repo_analysis.analysis import analyze_source
from timbel_dagster.repo_analysis.cyclonedx import write_cyclonedx
from timbel_dagster.repo_analysis.summary import summary_lines
from timbel_dagster.resources.trivy_report import load_report


@click.group()
def scan() -> None:
    """Import and run vulnerability scans (Trivy)."""


def _show(summary: dict, as_json: bool) -> None:
    # lazy: security.scan_run loads Dagster; `timbel --help` loads without it
    from timbel_dagster.security.scan_run import describe

    if as_json:
        print_json(summary)
        return
    click.echo(f"{summary['artifact']} ({summary['artifact_key']}), scan {summary['scan_id']}")
    click.echo(f"  {describe(summary)}")


@scan.command("import")
@click.argument("report_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--artifact",
    help="Store the scan under this artifact name instead of the report's ArtifactName "
    "(an image keeps its digest as its identity).",
)
@click.option("--source", default="trivy", show_default=True, help="Recorded as the source.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def import_report(report_file: Path, artifact: str | None, source: str, as_json: bool) -> None:
    """Store REPORT_FILE, a Trivy JSON report (`trivy ... --format json`, schema version 2):
    one scan row, and its findings kept across scans of the same artifact."""
    # lazy: security.scan_run loads Dagster; `timbel --help` loads without it
    from timbel_dagster.security.scan_run import store_report

    report = load_report(report_file)  # a bad file is refused before the warehouse is touched
    if artifact:
        report = report.with_artifact_name(artifact)
    settings, engine = writable_engine()
    summary = store_report(
        engine,
        report,
        actor=settings.timbel_user,
        action="scan.import",
        source=source,
        details={"file": str(report_file)},
    )
    _show(summary, as_json)


@scan.command("image")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def scan_image(ref: str, as_json: bool) -> None:
    """Scan image REF (`host/repo:tag` or `host/repo@sha256:...`) with Trivy and store the
    report. Uses TRIVY_BINARY, TRIVY_CACHE_DIR, TRIVY_TIMEOUT_SECONDS and TRIVY_OFFLINE."""
    # lazy: resources.trivy loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.trivy import TrivyResource
    from timbel_dagster.security.scan_run import scan_image as run_scan

    settings, engine = writable_engine()
    summary = run_scan(
        TrivyResource.from_settings(settings), engine, ref, actor=settings.timbel_user
    )
    _show(summary, as_json)


@click.command("analyze-repo")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print the whole analysis as JSON.")
@click.option(
    "--sbom",
    "sbom_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the dependencies as a CycloneDX 1.5 JSON SBOM to this file.",
)
@friendly_errors
def analyze_repo(source: str, as_json: bool, sbom_file: Path | None) -> None:
    """Analyse SOURCE, a directory or a git URL (cloned with --depth 1 into a temporary
    directory): languages, frameworks, build tools, manifests, dependencies, Dockerfiles and
    CI files."""

    analysis = analyze_source(source)
    written = None
    if sbom_file is not None:
        bom = write_cyclonedx(analysis, sbom_file)
        written = f"wrote {sbom_file}: {len(bom['components'])} components"
    if as_json:
        print_json(analysis.to_dict())
    else:
        for line in summary_lines(analysis):
            click.echo(line)
    if written:
        click.echo(written, err=as_json)


# `scan gate`, `scan history`, `scan issues sync`, `scan sonar import` (cli/scan_followup.py).
for _command in FOLLOW_UP:
    scan.add_command(_command)
