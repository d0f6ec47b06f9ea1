"""`security/components`: what each repository is made of, with a CycloneDX SBOM.

The repositories are TIMBEL_ANALYZE_REPOSITORIES (paths or git URLs). In sample mode with
none configured, the asset analyses Timbel's own source checkout (real data: the sample
organisation's repositories have no files); in live mode with none configured it writes
nothing and says how to configure them, so the jobs it is part of keep running.

Each analysis replaces its repository's rows in one transaction. Then, when the scanner
is Trivy and Trivy is installed, each repository's SBOM is scanned (`trivy sbom`) and the
findings are stored under the artifact `repo:<repository>`. A repository that fails to
analyse is reported and the others still run; the materialization fails only when every
repository failed.
"""

# No `from __future__ import annotations`: Dagster reads the asset's annotations at definition.
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

import timbel_dagster
from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.repo_analysis.cyclonedx import to_cyclonedx
from timbel_dagster.repo_analysis.store import analyse, store_analysis
from timbel_dagster.resources.git_repositories import public_url, scrub
from timbel_dagster.resources.sample.organisation import SAMPLE_SOURCE
from timbel_dagster.resources.sources import TRIVY_SOURCE, DeliverySourcesResource
from timbel_dagster.resources.trivy import ScannerError
from timbel_dagster.security.scan_import import record_scan_failure
from timbel_dagster.security.scan_run import store_report
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.audit.chain import append_event

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ACTOR = "dagster"
ACTION = "scan.sbom"
ARTIFACT_PREFIX = "repo:"
COLUMNS = ["repository", "commit", "files", "languages", "dependencies", "sbom_components",
           "vulnerabilities"]  # fmt: skip
CONFIGURE_HINT = (
    "no repositories to analyse: set TIMBEL_ANALYZE_REPOSITORIES to checkout paths or git "
    "URLs, comma-separated (or TIMBEL_SAMPLE_DATA=true to analyse Timbel's own checkout)"
)


def own_checkout() -> Path | None:
    """Timbel's own source checkout (the directory holding `timbel_dagster/` and a
    pyproject.toml), or None when Timbel runs from an installed package."""

    top = Path(timbel_dagster.__file__).resolve().parents[1]
    return top if (top / "pyproject.toml").is_file() else None


def trivy_executable(scanner: Any) -> str | None:
    """The path of the scanner's Trivy executable, None when it is not installed."""

    return shutil.which(getattr(scanner, "executable", None) or get_settings().trivy_binary)


def scan_sbom(
    scanner: Any, engine: "Engine", repository: str, sbom: dict[str, Any]
) -> dict[str, Any]:
    """Scan one repository's SBOM and store the report as artifact `repo:<repository>`;
    a failed scan is stored as such. Returns `{"status", "vulnerabilities", "error"}`."""

    artifact = f"{ARTIFACT_PREFIX}{repository}"
    try:
        with tempfile.TemporaryDirectory(prefix="timbel-sbom-") as workdir:
            path = Path(workdir) / "sbom.cdx.json"
            path.write_text(json.dumps(sbom), encoding="utf-8")
            report = scanner.scan_sbom(path).with_artifact_name(artifact)
        summary = store_report(engine, report, actor=ACTOR, action=ACTION, source=TRIVY_SOURCE)
    except (ScannerError, ValueError) as error:
        with engine.begin() as connection:
            scan_id = record_scan_failure(
                connection,
                source=TRIVY_SOURCE,
                artifact_name=artifact,
                error=str(error),
                artifact_type="cyclonedx",
            )
            append_event(
                connection,
                actor=ACTOR,
                action=ACTION,
                target=artifact,
                details={"status": "failed", "scan_id": scan_id, "error": str(error)[:1000]},
            )
        return {"status": "failed", "vulnerabilities": None, "error": str(error)}
    return {"status": summary["status"], "vulnerabilities": summary["vulnerabilities"]} | {
        "by_severity": summary["by_severity"],
        "error": None,
    }


def _targets(sample: bool, configured: list[str]) -> tuple[list[tuple[str, str | None]], str]:
    """(repository, forced source) pairs to analyse and a note on where they came from."""
    if configured:
        return [(r, None) for r in configured], "repositories from TIMBEL_ANALYZE_REPOSITORIES"
    checkout = own_checkout() if sample else None
    if checkout is None:
        return [], CONFIGURE_HINT
    return [(str(checkout), SAMPLE_SOURCE)], (
        f"sample mode: analysed Timbel's own source checkout at {checkout} (real data, not "
        "invented); set TIMBEL_ANALYZE_REPOSITORIES to analyse other repositories"
    )


@dg.asset(
    key=["security", "components"],
    group_name="security",
    kinds={"python", "sql"},
    owners=OWNERS,
    description="One row per analysed repository: languages, frameworks, build tools, parsed "
    "manifests, dependencies and CI files, with a CycloneDX SBOM.",
)
def components(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
) -> dg.MaterializeResult:
    settings = get_settings()
    targets, note = _targets(sources._mode() == "sample", settings.timbel_analyze_repositories)
    if not targets:
        context.log.warning(f"security/components wrote nothing: {note}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(0),
                "note": dg.MetadataValue.text(note),
            }
        )
    engine = warehouse.engine()
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    # lazy: import-time budget: repo_analysis adds ~40 ms to loading the code location
    from timbel_dagster.repo_analysis.analysis import is_git_url

    for target, forced in targets:
        try:
            analysis, commit = analyse(
                target,
                max_file_bytes=settings.timbel_analyze_max_file_bytes,
                clone_timeout_seconds=settings.timbel_analyze_clone_timeout_seconds,
            )
            sbom = to_cyclonedx(analysis)
            source = forced or ("git" if is_git_url(target) else "local")
            with engine.begin() as connection:
                counts = store_analysis(
                    connection, analysis, source=source, commit=commit, sbom=sbom
                )
        except (ValueError, OSError) as error:
            # Named without the credentials a clone URL may carry (DESIGN 3.9).
            shown, text = public_url(target), scrub(str(error), target)
            message = text if shown in text else f"{shown}: {text}"
            failed.append({"repository": shown, "error": message})
            context.log.warning(f"analysis failed: {message}")
            continue
        context.log.info(
            f"{analysis.repository}: {analysis.files_scanned} files, "
            f"{counts['dependencies']} dependencies ({counts['dependencies_before']} replaced), "
            f"{len(sbom['components'])} SBOM components in {analysis.seconds:.2f}s"
        )
        stored.append(
            {
                "repository": analysis.repository,
                "commit": (commit or "")[:12],
                "files": analysis.files_scanned,
                "languages": ", ".join(list(analysis.languages)[:3]),
                "dependencies": counts["dependencies"],
                "sbom_components": len(sbom["components"]),
                "sbom": sbom,
            }
        )
    if not stored:
        raise dg.Failure(
            description=f"all {len(targets)} repositories failed to analyse: "
            + "; ".join(f["error"] for f in failed),
            metadata={"failed": dg.MetadataValue.json(failed)},
        )
    vulnerabilities = _scan_all(context, sources, engine, stored)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(stored)),
            "dependencies": dg.MetadataValue.int(sum(s["dependencies"] for s in stored)),
            "failed": dg.MetadataValue.json(failed),
            "note": dg.MetadataValue.text(note),
            "dependency_vulnerabilities": dg.MetadataValue.text(vulnerabilities),
            "repositories": markdown_table(stored, COLUMNS),
        }
    )


def _scan_all(
    context: dg.AssetExecutionContext,
    sources: DeliverySourcesResource,
    engine: "Engine",
    stored: list[dict[str, Any]],
) -> str:
    """Scan each stored repository's SBOM when the scanner can; one line on what happened
    (each entry of `stored` gets its `vulnerabilities` count, or `-`)."""
    scanner = sources.scanner()
    for entry in stored:
        entry["vulnerabilities"] = "-"
    if not hasattr(scanner, "scan_sbom"):
        return "dependency vulnerabilities: not scanned (the sample scanner scans images only)"
    if trivy_executable(scanner) is None:
        context.log.warning("dependency vulnerabilities not scanned: trivy not installed")
        return "dependency vulnerabilities: trivy not installed"
    scanned, problems = 0, []
    for entry in stored:
        outcome = scan_sbom(scanner, engine, entry["repository"], entry["sbom"])
        if outcome["error"]:
            problems.append(outcome["error"])
            context.log.warning(f"SBOM scan of {entry['repository']} failed: {outcome['error']}")
            continue
        scanned += 1
        entry["vulnerabilities"] = outcome["vulnerabilities"]
    text = f"dependency vulnerabilities: {scanned} of {len(stored)} SBOMs scanned with trivy"
    return text + (f"; failed: {'; '.join(problems)}" if problems else "")
