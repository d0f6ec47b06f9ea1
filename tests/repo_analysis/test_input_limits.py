"""Resource limits on repository files (issue 13, finding 5): a small file must never cost
minutes or gigabytes. YAML alias bombs are refused by node count before anything walks
them; the parsers' regexes are linear, so their worst inputs parse in milliseconds.

Each attack runs against the real component under a timeout: before the fix the YAML bombs
took 25-131 s (and 3.3 GB), the requirement line and the Gradle script 7.5-47 s, and the
10x-bigger inputs would have taken hours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.repo_analysis.helpers import deps, manifest, write_files
from timbel_dagster import safe_yaml
from timbel_dagster.cli.app import main
from timbel_dagster.repo_analysis.analysis import RepositoryAnalysis
from timbel_dagster.repo_analysis.manifests_gradle import blocks, strip_comments
from timbel_dagster.repo_analysis.requirements_txt import parse_requirement
from timbel_dagster.repo_analysis.tool_usage import command_lines

# 473 bytes: nine levels of nine aliases, 490 million values once expanded.
K8S_BOMB = """apiVersion: v1
kind: ConfigMap
metadata: {name: laughs}
data:
  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""
K8S_BOMB_ERROR = (
    "k8s/laughs.yaml: YAML aliases expand 38 written nodes to 490,329,074, over the limit "
    "of 3,800 for a document this size (excessive aliasing)"
)


def _merge_bomb(levels: int = 9) -> str:
    """Merge keys (`<<: [*a, *a, ...]`): PyYAML's own constructor copies every merged pair."""
    lines = ["services:", "  s0: &s0 {image: 'nginx:1', a: 1}"]
    for level in range(1, levels + 1):
        sources = ", ".join([f"*s{level - 1}"] * 9)
        lines.append(f"  s{level}: &s{level} {{<<: [{sources}], image: 'nginx:1'}}")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(10)
def test_kubernetes_alias_bomb_is_refused_by_analyze_repo(tmp_path: Path) -> None:
    assert len(K8S_BOMB.encode()) <= 500
    repository = write_files(tmp_path / "repo", {"k8s/laughs.yaml": K8S_BOMB})

    result = CliRunner().invoke(main, ["analyze-repo", str(repository), "--json"])

    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)["manifests"]
    assert entries == [{"path": "k8s/laughs.yaml", "kind": "kubernetes", "error": K8S_BOMB_ERROR}]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("path", "kind"),
    [("docker-compose.yml", "docker-compose"), ("chart/values.yaml", "helm-chart")],
)
def test_merge_key_bombs_in_compose_and_helm_files_are_refused(
    analyse: Callable[[dict[str, str]], RepositoryAnalysis], path: str, kind: str
) -> None:
    files = {path: _merge_bomb()}
    if kind == "helm-chart":
        files["chart/Chart.yaml"] = "apiVersion: v2\nname: chart\nversion: 1.0.0\n"
    analysis = analyse(files)
    entry = manifest(analysis, "chart/Chart.yaml" if kind == "helm-chart" else path)
    assert "(excessive aliasing)" in entry["error"]
    assert "over the limit of" in entry["error"]


def test_ordinary_anchors_in_a_manifest_still_work(
    analyse: Callable[[dict[str, str]], RepositoryAnalysis],
) -> None:
    template = "  - name: {0}\n    <<: *container\n"
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n"
        "  volumes: []\n  x-base: &container\n    image: nginx:1.25\n"
        "    resources: {limits: {cpu: 100m, memory: 64Mi}}\n  containers:\n"
        + "".join(template.format(f"c{i}") for i in range(40))
    )
    entry = manifest(analyse({"k8s/pod.yaml": text}), "k8s/pod.yaml")
    assert "error" not in entry
    assert entry["images"] == ["nginx:1.25"]


def test_go_yamls_allowance() -> None:
    """Small documents may alias freely; beyond 1,000 nodes at most 99% may come from
    aliases up to 400,000 nodes, a share falling to 10% at 4,000,000 (go-yaml v3)."""
    assert [safe_yaml.allowed_yaml_nodes(n) for n in (5, 25, 4_000, 10_000, 1_000_000)] == [
        1_000, 2_500, 400_000, 449_531, 2_198_998
    ]  # fmt: skip


def test_cycles_depth_and_streams() -> None:
    with pytest.raises(safe_yaml.YamlTooLargeError) as cycle:
        safe_yaml.load_yaml("a: &x\n  b: [1, *x]\n")
    assert str(cycle.value) == "line 1: an alias refers to the node that contains it"

    with pytest.raises(safe_yaml.YamlTooLargeError) as deep:
        safe_yaml.load_yaml("a: " + "[" * 160 + "]" * 160)
    assert str(deep.value).startswith("YAML nested ") and str(deep.value).endswith(
        "levels deep, over the limit of 150"
    )

    # the allowance is for the whole file: 20 documents of 1,000-fold expansion each add up
    document = "a: &a [" + ", ".join(["x"] * 30) + "]\nb: [" + ", ".join(["*a"] * 30) + "]\n"
    assert len(safe_yaml.load_yaml_documents(document)) == 1
    with pytest.raises(safe_yaml.YamlTooLargeError, match="excessive aliasing"):
        safe_yaml.load_yaml_documents("---\n".join([document * 1] * 3 + [_merge_bomb(4)]))

    # still only safe types, still one document for load_yaml
    with pytest.raises(yaml.YAMLError):
        safe_yaml.load_yaml("!!python/object/apply:os.system ['id']")
    with pytest.raises(yaml.YAMLError, match="single document"):
        safe_yaml.load_yaml("a: 1\n---\nb: 2\n")
    assert safe_yaml.load_yaml("") is None


# Worst cases of the regexes that backtracked (30 kB and 60 kB as reported, then 10x).
@pytest.mark.timeout(10)
@pytest.mark.parametrize("scale", [1, 10])
def test_requirement_line_worst_case_is_linear(
    analyse: Callable[[dict[str, str]], RepositoryAnalysis], scale: int
) -> None:
    hostile = "flask" + "<1 " * (10_000 * scale) + "\x00"  # 30 kB / 300 kB
    assert parse_requirement(hostile) is None
    assert parse_requirement("flask" + " " * (30_000 * scale) + "x") is None
    analysis = analyse({"requirements.txt": f"{hostile}\ndjango>=4.2, <5 ; python_version>'3'\n"})
    assert deps(analysis, "pypi") == {"django": (">=4.2,<5", "runtime", "requirements.txt", True)}
    assert "line 1: not a requirement" in manifest(analysis, "requirements.txt")["error"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("requests>=2.31,<3", ("requests", ">=2.31,<3")),
        ("requests (>=2.31)", ("requests", ">=2.31")),
        ("pkg==1!2.0", ("pkg", "1!2.0")),
        ("pkg==1!=2", ("pkg", "1!=2")),
        ("pkg >=1 <2", ("pkg", ">=1<2")),
        ("pkg[extra] ==1.0 ; python_version < '3.12'", ("pkg", "1.0")),
        ("pkg @ https://example.com/pkg.whl", ("pkg", None)),
        ("pkg ==", None),
        ("pkg ,==1", None),
    ],
)
def test_specifiers_still_read_as_before(line: str, expected: tuple | None) -> None:
    assert parse_requirement(line) == expected


@pytest.mark.timeout(10)
@pytest.mark.parametrize("scale", [1, 10])
def test_gradle_script_worst_cases_are_linear(
    analyse: Callable[[dict[str, str]], RepositoryAnalysis], scale: int
) -> None:
    size = 30_000 * scale  # units of two characters: 60 kB / 600 kB
    assert strip_comments('"\\' * size) == '"\\' * size  # an open string runs to the end
    assert strip_comments("/* " * size) == ""  # an open comment runs to the end
    assert blocks("plugins {" * (size // 4), "plugins") == ""  # never closed
    assert blocks("plugins { plugins { id 'a' } }", "plugins") == " plugins { id 'a' } "
    script = "_" * (2 * size) + "\nplugins { id 'java' }\ndependencies {\n"
    script += "  implementation 'org.slf4j:slf4j-api:2.0.9'\n}\n" + "dependencies {" * (size // 7)
    analysis = analyse({"build.gradle": script})
    assert deps(analysis, "maven")["org.slf4j:slf4j-api"][0] == "2.0.9"


@pytest.mark.timeout(10)
def test_property_references_and_prose_lines_are_linear(
    analyse: Callable[[dict[str, str]], RepositoryAnalysis],
) -> None:
    nested = "${" * 300_000
    pom = (
        "<project><groupId>g</groupId><artifactId>a</artifactId><version>1</version>"
        f"<dependencies><dependency><groupId>x</groupId><artifactId>y</artifactId>"
        f"<version>{nested}</version></dependency></dependencies></project>"
    )
    csproj = (
        '<Project Sdk="Microsoft.NET.Sdk"><ItemGroup><PackageReference Include="A" '
        f'Version="{"$(" * 300_000}" /></ItemGroup></Project>'
    )
    analysis = analyse({"pom.xml": pom, "app/app.csproj": csproj})
    assert deps(analysis, "maven")["x:y"][0] == nested
    assert list(command_lines(" " * 600_000 + "npm ci\n")) == [(1, "npm ci", ["npm"])]
