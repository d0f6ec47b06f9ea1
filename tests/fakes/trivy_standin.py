#!/usr/bin/env python3
"""A stand-in for the `trivy` executable: Trivy's command line, recorded reports.

It accepts what `TrivyResource` and people pass to `trivy image|fs|sbom` and answers the way
Trivy does:
- the report is the recorded Trivy JSON (schema version 2) mapped to the target, with
  `ArtifactName` set to the target, `ArtifactType` to what the subcommand scans and
  `CreatedAt` to now, as Trivy writes them; `--severity` filters the findings;
- it goes to `--output` (stdout without it);
- exit code: the `--exit-code` value when findings remain after the severity filter
  (vulnerabilities, failing misconfigurations, secrets, licenses), else 0; 1 with a FATAL
  log line on errors (unknown flag, unknown target);
- logs go to stderr, and `--quiet` silences them all, the FATAL line included, as in Trivy
  (its logger writes to io.Discard then);
- `--skip-check-update` is refused by `sbom`, which has no misconfiguration flags;
- `--` ends the options, as cobra's flag parsing does: what follows is the target even when
  it starts with '-'; before it, `--server=URL` (client mode) and `--config FILE` are options.

The target mapping is a JSON file named by TRIVY_STANDIN_MAP: `{target: spec}` where spec is
`{"report": path}` (relative to the mapping file), `{"crash": message}` (exit 1, FATAL on
stderr), `{"hang": true}` (block until killed) or `{"output": text}` (write `text`, exit 0).
With TRIVY_STANDIN_LOG set, each invocation appends `{"argv": [...], "pid": n, "env": [names]}`
there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

SUBCOMMANDS = {"image": "container_image", "fs": "filesystem", "filesystem": "filesystem",
               "sbom": None}  # fmt: skip
VALUE_FLAGS = {"--format": "format", "-f": "format", "--output": "output", "-o": "output",
               "--exit-code": "exit_code", "--timeout": "timeout", "--cache-dir": "cache_dir",
               "--severity": "severity", "-s": "severity", "--scanners": "scanners",
               "--server": "server", "--config": "config", "-c": "config"}  # fmt: skip
BOOL_FLAGS = {"--quiet": "quiet", "-q": "quiet", "--no-progress": "no_progress",
              "--offline-scan": "offline_scan", "--skip-db-update": "skip_db_update",
              "--skip-java-db-update": "skip_java_db_update", "--debug": "debug", "-d": "debug",
              "--skip-check-update": "skip_check_update"}  # fmt: skip
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")


class Quiet:
    enabled = False


def log(level: str, message: str) -> None:
    if not Quiet.enabled:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{stamp}\t{level}\t{message}", file=sys.stderr, flush=True)


def fatal(message: str) -> None:
    log("FATAL", f"Fatal error\t{message}")
    sys.exit(1)


def usage_error(message: str) -> None:
    # cobra's errors are printed before the logger is set up, so --quiet does not hide them.
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def parse(argv: list[str]) -> tuple[str, str, dict[str, Any]]:
    if not argv or argv[0] in ("--version", "-v", "version"):
        print("Version: 0.0.0-standin")
        sys.exit(0)
    subcommand, rest = argv[0], argv[1:]
    if subcommand not in SUBCOMMANDS:
        usage_error(f'unknown command "{subcommand}" for "trivy"')
    options: dict[str, Any] = {"format": "table", "severity": ",".join(SEVERITIES)}
    targets: list[str] = []
    index = 0
    while index < len(rest):
        argument = rest[index]
        name, equals, inline = argument.partition("=")
        if argument == "--":  # cobra (pflag): everything after it is an argument
            targets += rest[index + 1 :]
            break
        if name in VALUE_FLAGS:
            if not equals:
                index += 1
                if index >= len(rest):
                    usage_error(f"flag needs an argument: {name}")
                inline = rest[index]
            options[VALUE_FLAGS[name]] = inline
        elif argument in BOOL_FLAGS and not (
            subcommand == "sbom" and name == "--skip-check-update"
        ):
            options[BOOL_FLAGS[argument]] = True
        elif argument.startswith("-"):
            usage_error(f"unknown flag: {name}")
        else:
            targets.append(argument)
        index += 1
    if len(targets) != 1:
        usage_error(f'"trivy {subcommand}" requires exactly 1 arg(s), only received {len(targets)}')
    return subcommand, targets[0], options


def mapping() -> tuple[dict[str, Any], Path]:
    path = Path(os.environ.get("TRIVY_STANDIN_MAP", ""))
    if not path.is_file():
        fatal("TRIVY_STANDIN_MAP does not name a mapping file")
    return json.loads(path.read_text()), path.parent


def keep(items: list[dict[str, Any]] | None, severities: set[str]) -> list[dict[str, Any]]:
    return [i for i in items or [] if i.get("Severity", "UNKNOWN") in severities]


def replay(report: dict[str, Any], subcommand: str, target: str, severities: set[str]) -> bool:
    """Rewrite the recorded report as this invocation's; True when it has findings."""
    report["ArtifactName"] = target
    kind = SUBCOMMANDS[subcommand]
    if kind is None:  # sbom: the SBOM's own format
        text = Path(target).read_text() if Path(target).is_file() else ""
        kind = "spdx" if "spdxVersion" in text else "cyclonedx"
    report["ArtifactType"] = kind
    report["CreatedAt"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    failed = False
    for result in report.get("Results") or []:
        for field in ("Vulnerabilities", "Misconfigurations", "Secrets", "Licenses"):
            if field in result:
                result[field] = keep(result[field], severities)
                if not result[field]:
                    del result[field]  # Trivy writes these with omitempty
        failed = failed or bool(
            result.get("Vulnerabilities")
            or result.get("Secrets")
            or result.get("Licenses")
            or any(m.get("Status", "FAIL") == "FAIL" for m in result.get("Misconfigurations", []))
        )
    return failed


def main(argv: list[str]) -> int:
    subcommand, target, options = parse(argv)
    Quiet.enabled = bool(options.get("quiet"))
    if os.environ.get("TRIVY_STANDIN_LOG"):
        with Path(os.environ["TRIVY_STANDIN_LOG"]).open("a") as calls:
            calls.write(json.dumps({"argv": argv, "pid": os.getpid(), "env": sorted(os.environ)}))
            calls.write("\n")
    if options["format"] != "json":
        fatal(f"the stand-in writes --format json only, not {options['format']!r}")
    severities = {s.strip().upper() for s in options["severity"].split(",") if s.strip()}
    if severities - set(SEVERITIES):
        usage_error(f"invalid severity: {','.join(sorted(severities - set(SEVERITIES)))}")
    table, base = mapping()
    spec = table.get(target)
    log("INFO", f"[{'vuln' if subcommand != 'fs' else 'secret'}] scanning {target}")
    if spec is None:
        if subcommand == "image":
            fatal(
                "run error: image scan error: scan error: unable to initialize a scan service: "
                f'unable to find the specified image "{target}" in ["docker" "containerd" '
                '"podman" "remote"]'
            )
        fatal(f"run error: {subcommand} scan error: lstat {target}: no such file or directory")
    if spec.get("crash"):
        fatal(spec["crash"])
    if spec.get("hang"):
        signal.pause()  # blocks until the caller's timeout kills the process
    if "output" in spec:
        text, failed = spec["output"], False
    else:
        report = json.loads((base / spec["report"]).read_text())
        failed = replay(report, subcommand, target, severities)
        text = json.dumps(report, indent=2)
    if options.get("output"):
        Path(options["output"]).write_text(text)
    else:
        sys.stdout.write(text)
    exit_code = int(options.get("exit_code") or 0)
    return exit_code if failed and exit_code else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
