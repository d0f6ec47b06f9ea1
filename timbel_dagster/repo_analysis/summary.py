"""A repository analysis as a few readable lines (what `timbel analyze-repo` prints)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis

TOP_LANGUAGES = 8


def summary_lines(analysis: RepositoryAnalysis) -> list[str]:
    """One line per section: languages by share, frameworks, build tools, manifests (and
    every malformed one), dependencies by ecosystem, Dockerfiles and CI files."""
    lines = [f"{analysis.repository}: {analysis.files_scanned:,} files scanned"]
    total = sum(analysis.languages.values()) or 1
    shares = [
        f"{name} {100 * size / total:.1f}%"
        for name, size in list(analysis.languages.items())[:TOP_LANGUAGES]
    ]
    lines.append(f"languages: {', '.join(shares) or 'none recognised'}")
    frameworks = [
        f"{f['name']} {f['version'] or '(version unknown)'} ({f['evidence']})"
        for f in analysis.frameworks
    ]
    lines.append(f"frameworks: {', '.join(frameworks) or 'none recognised'}")
    tools = [
        f"{t['name']} ({len(t['paths'])}{', used by scripts' if t.get('used') else ''})"
        for t in analysis.build_tools
    ]
    lines.append(f"build tools: {', '.join(tools) or 'none recognised'}")
    broken = [m for m in analysis.manifests if "error" in m]
    lines.append(f"manifests: {len(analysis.manifests)} ({len(broken)} with problems)")
    lines.extend(f"  problem: {m['error']}" for m in broken)
    ecosystems = Counter(d.ecosystem for d in analysis.dependencies)
    direct = sum(1 for d in analysis.dependencies if d.direct)
    by_ecosystem = ", ".join(f"{name} {count}" for name, count in sorted(ecosystems.items()))
    lines.append(
        f"dependencies: {len(analysis.dependencies)} ({direct} direct)"
        + (f": {by_ecosystem}" if by_ecosystem else "")
    )
    for dockerfile in analysis.dockerfiles:
        images = ", ".join(dockerfile["base_images"]) or "no external base image"
        lines.append(f"dockerfile {dockerfile['path']}: {images}")
    for ci in analysis.ci_files:
        lines.append(f"ci {ci['system']}: {ci['path']}")
    return lines
