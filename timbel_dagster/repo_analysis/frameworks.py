"""Frameworks, recognised from direct dependencies and from manifest evidence.

A framework is reported once per manifest that shows it, with the version that manifest
gives (a lockfile's resolution when there is one); evidence with a version wins over
evidence without one from the same file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from timbel_dagster.repo_analysis.model import Dependency, FrameworkHint

# (framework, ecosystem, dependency name, or a prefix ending in `*`)
RULES: tuple[tuple[str, str, str], ...] = (
    ("Spring Boot", "maven", "org.springframework.boot:*"),
    ("Quarkus", "maven", "io.quarkus:*"),
    ("Quarkus", "maven", "io.quarkus.platform:*"),
    ("Micronaut", "maven", "io.micronaut:*"),
    ("Express", "npm", "express"),
    ("NestJS", "npm", "@nestjs/core"),
    ("React", "npm", "react"),
    ("Vue", "npm", "vue"),
    ("Angular", "npm", "@angular/core"),
    ("Next.js", "npm", "next"),
    ("Nuxt", "npm", "nuxt"),
    ("Svelte", "npm", "svelte"),
    ("Fastify", "npm", "fastify"),
    ("Django", "pypi", "django"),
    ("Flask", "pypi", "flask"),
    ("FastAPI", "pypi", "fastapi"),
    ("Dagster", "pypi", "dagster"),
    ("Gin", "golang", "github.com/gin-gonic/gin"),
    ("Echo", "golang", "github.com/labstack/echo"),
    ("Echo", "golang", "github.com/labstack/echo/v*"),
    ("Fiber", "golang", "github.com/gofiber/fiber*"),
    ("Actix", "cargo", "actix-web"),
    ("Axum", "cargo", "axum"),
    ("Rocket", "cargo", "rocket"),
    ("ASP.NET Core", "nuget", "Microsoft.AspNetCore.*"),
)
_EXACT = {(ecosystem, name): framework for framework, ecosystem, name in RULES if "*" not in name}
_PREFIXES = [(e, n[:-1], f) for f, e, n in RULES if n.endswith("*")]


def framework_of(dependency: Dependency) -> str | None:
    """The framework a dependency is, or None."""
    found = _EXACT.get((dependency.ecosystem, dependency.name))
    if found is None:
        for ecosystem, prefix, framework in _PREFIXES:
            if dependency.ecosystem == ecosystem and dependency.name.startswith(prefix):
                return framework
    return found


def detect(
    dependencies: Iterable[Dependency], hints: Iterable[FrameworkHint]
) -> list[dict[str, Any]]:
    """Frameworks with name, version and the manifest that shows them.

    Args:
        dependencies: Every dependency found; only direct ones count.
        hints: Evidence from manifests that is not a dependency (parents, plugins, SDKs).

    Returns:
        One entry per (framework, manifest), sorted by name then path.
    """
    found: dict[tuple[str, str], str | None] = {}
    evidence = [
        FrameworkHint(f, d.version, d.manifest)
        for d in dependencies
        if d.direct and (f := framework_of(d))
    ]
    for hint in [*hints, *evidence]:
        key = (hint.name, hint.path)
        if key not in found or (found[key] is None and hint.version):
            found[key] = hint.version
    return [
        {"name": name, "version": version, "evidence": path}
        for (name, path), version in sorted(found.items())
    ]
