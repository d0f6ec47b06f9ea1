"""Go modules (go.mod) and Rust crates (Cargo.toml with Cargo.lock).

go.mod: `require` lines and blocks (`// indirect` marks an indirect dependency) and
`replace`: a module replaced by another module version is listed as the replacement; one
replaced by a local directory keeps its name with no version (the code is the directory's).
Cargo.toml: `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]`, their
`[target.*]` variants, `[workspace]` members and `[workspace.dependencies]` (for
`dep.workspace = true`); the closest Cargo.lock resolves versions and adds the registry and
git packages nobody declares as indirect dependencies.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from timbel_dagster.repo_analysis.model import Findings
from timbel_dagster.repo_analysis.walk import Tree, parent_of

_DIRECTIVE = re.compile(r"^(?P<verb>module|go|toolchain|require|replace|exclude|retract)\b\s*")


def _strip(line: str) -> tuple[str, bool]:
    """A go.mod line without its comment, and whether the comment said `indirect`."""
    code, _, comment = line.partition("//")
    return code.strip(), comment.strip().startswith("indirect")


def _tokens(code: str) -> list[str]:
    return [t.strip('"`') for t in code.split()]


def parse_go_mod(text: str) -> dict[str, Any]:
    """module, go version, requirements [(path, version, indirect)], replacements."""
    parsed: dict[str, Any] = {"module": None, "go": None, "toolchain": None}
    parsed |= {"require": [], "replace": {}}
    block: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        code, indirect = _strip(raw)
        if not code:
            continue
        if block is not None:
            if code == ")":
                block = None
                continue
            verb, arguments = block, code
        else:
            match = _DIRECTIVE.match(code)
            if match is None:
                raise ValueError(f"line {number}: unknown directive {code.split()[0]!r}")
            verb, arguments = match.group("verb"), code[match.end() :]
            if arguments == "(":
                block = verb
                continue
        tokens = _tokens(arguments)
        if verb in ("module", "go", "toolchain") and tokens:
            parsed[verb] = tokens[0]
        elif verb == "require":
            if len(tokens) != 2:
                raise ValueError(f"line {number}: expected `module version`, got {code!r}")
            parsed["require"].append((tokens[0], tokens[1], indirect))
        elif verb == "replace":
            if "=>" not in tokens:
                raise ValueError(f"line {number}: replace without =>")
            arrow = tokens.index("=>")
            target = tokens[arrow + 1 :]
            parsed["replace"][tokens[0]] = (target[0], target[1] if len(target) > 1 else None)
    if block is not None:
        raise ValueError(f"unclosed {block} ( block")
    return parsed


def _go(tree: Tree, path: str, findings: Findings) -> None:
    parsed = parse_go_mod(tree.read_text(path))
    findings.tool("go", path)
    for module, version, indirect in parsed["require"]:
        name, resolved = module, version
        if module in parsed["replace"]:
            target, target_version = parsed["replace"][module]
            local = target.startswith((".", "/"))
            name, resolved = (module, None) if local else (target, target_version or version)
        findings.depend("golang", name, resolved, "runtime", path, not indirect)
    findings.manifests.append(
        {
            "path": path,
            "kind": "go.mod",
            "module": parsed["module"],
            "go": parsed["go"],
            "toolchain": parsed["toolchain"],
            "replace": {k: " ".join(filter(None, v)) for k, v in parsed["replace"].items()},
            "dependencies": len(parsed["require"]),
        }
    )


def _load_toml(tree: Tree, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(tree.read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from None


def _cargo_tables(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    sections = (("dependencies", "runtime"), ("dev-dependencies", "dev"))
    sections += (("build-dependencies", "dev"),)
    tables = [(scope, data.get(section) or {}) for section, scope in sections]
    for target in (data.get("target") or {}).values():
        tables.extend((scope, target.get(section) or {}) for section, scope in sections)
    return tables


def _cargo(tree: Tree, path: str, findings: Findings, locks: dict[str, Any]) -> None:
    data = _load_toml(tree, path)
    workspace = data.get("workspace") or {}
    root = tree.nearest(parent_of(parent_of(path)), "Cargo.toml") if "/" in path else None
    shared: dict[str, Any] = {}
    if root and not workspace:
        shared = (_load_toml(tree, root).get("workspace") or {}).get("dependencies") or {}
    lock_path = tree.nearest(parent_of(path), "Cargo.lock")
    if lock_path and lock_path not in locks:
        locks[lock_path] = None
        with findings.guarded(lock_path, "Cargo.lock"):
            packages = _load_toml(tree, lock_path).get("package", [])
            locks[lock_path] = packages
            findings.manifests.append(
                {"path": lock_path, "kind": "Cargo.lock", "packages": len(packages)}
            )
    locked: dict[str, set[str]] = {}
    for package in (locks.get(lock_path) if lock_path else None) or []:
        locked.setdefault(package.get("name"), set()).add(package.get("version"))
    findings.tool("cargo", path)
    count = 0
    tables = [*_cargo_tables(data), ("runtime", workspace.get("dependencies") or {})]
    for scope, table in tables:
        for key, spec in table.items():
            if isinstance(spec, dict) and spec.get("workspace"):
                spec = {**_as_table(shared.get(key)), **spec}
            spec = _as_table(spec)
            if "path" in spec and "version" not in spec:
                continue  # a crate of this repository
            name = spec.get("package", key)
            versions = locked.get(name, set())
            version = next(iter(versions)) if len(versions) == 1 else spec.get("version")
            findings.depend("cargo", name, version, scope, path)
            count += 1
    package = data.get("package") or {}
    findings.manifests.append(
        {
            "path": path,
            "kind": "Cargo.toml",
            "name": package.get("name"),
            "version": package.get("version") if isinstance(package.get("version"), str) else None,
            "workspace_members": workspace.get("members", []),
            "lockfile": lock_path if lock_path and locks.get(lock_path) is not None else None,
            "dependencies": count,
        }
    )


def _as_table(spec: Any) -> dict[str, Any]:
    return {"version": spec} if isinstance(spec, str) else dict(spec or {})


def collect(tree: Tree, findings: Findings) -> None:
    """Parse every go.mod and Cargo.toml (with its Cargo.lock) in `tree`."""
    locks: dict[str, Any] = {}
    for path in tree.files:
        name = path.rpartition("/")[2]
        if name == "go.mod":
            with findings.guarded(path, "go.mod"):
                _go(tree, path, findings)
        elif name == "Cargo.toml":
            with findings.guarded(path, "Cargo.toml"):
                _cargo(tree, path, findings, locks)
    direct = {d.name for d in findings.dependencies if d.ecosystem == "cargo"}
    for lock_path, packages in locks.items():
        for package in packages or []:
            if package.get("source") and package.get("name") not in direct:
                findings.depend(
                    "cargo", package["name"], package.get("version"), "runtime", lock_path, False
                )
