"""Component analysis of a generated 10,000-file repository.

The repository is a monorepo of 100 services in six ecosystems (npm with package-lock.json
of 400 packages, Maven with a parent pom, Gradle, pip/Poetry, Go, Cargo, .NET), each with a
Dockerfile, Kubernetes manifests or a Helm chart, a CI file, and source files filling it up
to 10,000 files; plus a node_modules directory the walk must skip.

Figures: `analyze_repository` (median of 3 runs, files cached by the first) against listing
the same tree with `os.walk` and nothing else, measured in the same run. Target: at most 10 s.
Exits non-zero when the target is missed.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report

FILES = 10_000
SERVICES = 100
TARGET_SECONDS = 10.0
ECOSYSTEMS = ("npm", "maven", "gradle", "python", "go", "cargo", "dotnet")


def _npm(index: int) -> dict[str, str]:
    packages = {f"node_modules/pkg-{n}": {"version": f"1.{n}.0"} for n in range(400)}
    packages["node_modules/express"] = {"version": "4.18.2"}
    packages["node_modules/react"] = {"version": "18.2.0"}
    return {
        "package.json": json.dumps(
            {
                "name": f"svc-{index}",
                "dependencies": {"express": "^4.18.2", "react": "^18.2.0"},
                "devDependencies": {f"pkg-{n}": f"^1.{n}.0" for n in range(20)},
            }
        ),
        "package-lock.json": json.dumps({"lockfileVersion": 3, "packages": packages}),
        "src/index.ts": "export const handler = () => 'ok';\n" * 20,
    }


def _maven(index: int) -> dict[str, str]:
    dependencies = "".join(
        f"<dependency><groupId>org.example</groupId><artifactId>lib-{n}</artifactId>"
        f"<version>${{lib.version}}</version></dependency>"
        for n in range(30)
    )
    return {
        "pom.xml": "<project><parent><groupId>org.springframework.boot</groupId>"
        "<artifactId>spring-boot-starter-parent</artifactId><version>3.2.0</version>"
        f"<relativePath/></parent><groupId>com.acme</groupId><artifactId>svc-{index}</artifactId>"
        "<version>1.0.0</version><properties><lib.version>2.1.0</lib.version></properties>"
        "<dependencies><dependency><groupId>org.springframework.boot</groupId>"
        f"<artifactId>spring-boot-starter-web</artifactId></dependency>{dependencies}"
        "</dependencies></project>",
        "src/main/java/App.java": "public class App { }\n" * 20,
    }


def _gradle(index: int) -> dict[str, str]:
    lines = "\n".join(f"    implementation 'org.example:lib-{n}:1.{n}.0'" for n in range(30))
    return {
        "build.gradle": "plugins {\n  id 'org.springframework.boot' version '3.2.0'\n}\n"
        f"dependencies {{\n{lines}\n}}\n",
        "src/main/kotlin/App.kt": 'fun main() = println("hi")\n' * 20,
    }


def _python(index: int) -> dict[str, str]:
    return {
        "requirements.txt": "-r requirements-base.txt\nfastapi==0.104.1\nuvicorn>=0.24\n",
        "requirements-base.txt": "\n".join(f"lib-{n}=={n}.0" for n in range(30)),
        "pyproject.toml": f'[project]\nname = "svc-{index}"\ndependencies = ["django==5.0"]\n',
        "app/main.py": "def handler():\n    return 'ok'\n" * 20,
    }


def _go(index: int) -> dict[str, str]:
    requires = "\n".join(f"\tgithub.com/example/lib{n} v1.{n}.0" for n in range(30))
    return {
        "go.mod": f"module github.com/acme/svc{index}\n\ngo 1.21\n\nrequire (\n"
        f"\tgithub.com/gin-gonic/gin v1.9.1\n{requires}\n)\n",
        "main.go": "package main\n\nfunc main() {}\n" * 10,
    }


def _cargo(index: int) -> dict[str, str]:
    crates = "\n".join(f'lib{n} = "0.{n}"' for n in range(30))
    return {
        "Cargo.toml": f'[package]\nname = "svc{index}"\nversion = "0.1.0"\n\n'
        f'[dependencies]\naxum = "0.7"\n{crates}\n',
        "src/main.rs": "fn main() {}\n" * 20,
    }


def _dotnet(index: int) -> dict[str, str]:
    references = "".join(
        f'<PackageReference Include="Example.Lib{n}" Version="1.{n}.0" />' for n in range(30)
    )
    return {
        f"Svc{index}.csproj": '<Project Sdk="Microsoft.NET.Sdk.Web"><PropertyGroup>'
        f"<TargetFramework>net8.0</TargetFramework></PropertyGroup><ItemGroup>{references}"
        "</ItemGroup></Project>",
        "Program.cs": "var app = WebApplication.Create();\n" * 20,
    }


def _deployment(index: int) -> dict[str, str]:
    if index % 2:
        return {
            "chart/Chart.yaml": f"apiVersion: v2\nname: svc-{index}\nversion: 0.1.0\n",
            "chart/values.yaml": f"image:\n  repository: registry.example.com/svc-{index}\n"
            "  tag: 1.0.0\n",
            "chart/templates/deployment.yaml": "kind: Deployment\nname: {{ .Release.Name }}\n",
        }
    documents = "\n---\n".join(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{index}-{n}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: app\n"
        f"          image: registry.example.com/svc-{index}:1.{n}.0\n"
        for n in range(3)
    )
    return {"k8s/deployment.yaml": documents}


BUILDERS = {
    "npm": _npm,
    "maven": _maven,
    "gradle": _gradle,
    "python": _python,
    "go": _go,
    "cargo": _cargo,
    "dotnet": _dotnet,
}


def generate(root: Path) -> int:
    """Write the monorepo under `root`; returns the number of files the walk will see."""
    files: dict[str, str] = {}
    for index in range(SERVICES):
        service = f"services/svc-{index:03d}"
        content = {
            **BUILDERS[ECOSYSTEMS[index % len(ECOSYSTEMS)]](index),
            **_deployment(index),
            "Dockerfile": "ARG BASE=eclipse-temurin:21\nFROM ${BASE} AS build\n"
            "RUN make\nFROM gcr.io/distroless/java21\nCOPY --from=build /app /app\n",
            "Jenkinsfile": "pipeline { agent any; stages { stage('b') { steps { sh 'x' } } } }\n",
        }
        files.update({f"{service}/{name}": text for name, text in content.items()})
    filler = 0
    while len(files) < FILES:
        service = f"services/svc-{filler % SERVICES:03d}"
        extension = (".py", ".ts", ".java", ".go", ".md", ".json", ".yaml")[filler % 7]
        text = "name: config\nvalue: 1\n" if extension == ".yaml" else f"// file {filler}\n" * 30
        files[f"{service}/src/module{filler // 50}/file{filler}{extension}"] = text
        filler += 1
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    skipped = root / "node_modules"  # installed packages: never walked
    for n in range(200):
        (skipped / f"pkg-{n}").mkdir(parents=True)
        (skipped / f"pkg-{n}" / "package.json").write_text('{"name": "x"}')
    return len(files)


def _list_only(root: Path) -> float:
    started = time.perf_counter()
    count = 0
    for _, directories, names in os.walk(root):
        directories[:] = [d for d in directories if d != "node_modules"]
        count += len(names)
    return time.perf_counter() - started


def main() -> int:
    from timbel_dagster.repo_analysis.analysis import analyze_repository

    with tempfile.TemporaryDirectory(prefix="timbel-bench-repo-") as scratch:
        root = Path(scratch)
        files = generate(root)
        runs, listing = [], []
        for _ in range(3):
            listing.append(_list_only(root))
            started = time.perf_counter()
            analysis = analyze_repository(root)
            runs.append(time.perf_counter() - started)
        seconds, baseline = statistics.median(runs), statistics.median(listing)
        assert analysis.files_scanned == files, (analysis.files_scanned, files)
        errors = [m for m in analysis.manifests if "error" in m]
        assert not errors, errors[:3]
        print(f"analyze_repo_files: {files:,} files", flush=True)
        print(f"analyze_repo_manifests: {len(analysis.manifests):,} manifests", flush=True)
        print(f"analyze_repo_dependencies: {len(analysis.dependencies):,} dependencies")
        report("list_files_seconds", baseline, "s")
        report("analyze_repo_seconds", seconds, "s", seconds / baseline, "listing the files")
    if seconds > TARGET_SECONDS:
        print(f"analyze_repo: {seconds:.2f}s is over the {TARGET_SECONDS:.0f}s target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
