"""The image's HEALTHCHECK: checks whichever role the container runs (deploy/Dockerfile).

One image serves four roles, so the check reads the command of PID 1 (tini, then the role's
command after `--`) and asks that server what it would be asked in production:

- `dagster-webserver`: GET /server_info on its port (default 3000);
- `dagster code-server start` / `dagster api grpc`: `dagster api grpc-health-check` on its
  port (default 3030, the image's);
- `dagster-daemon run`: `dagster-daemon liveness-check` (recent heartbeats in the instance);
- `timbel api serve`: GET /api/v1/openapi.json on its port (default 8080).

Anything else (a run worker's `dagster api execute_run`, a one-off `timbel` command) has no
server to ask and is reported healthy. Exit 0 healthy, 1 unhealthy, as Docker expects.
Standard library only: it runs in the image's Python without importing Timbel or Dagster.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

# `dagster-daemon liveness-check` and `dagster api grpc-health-check` import Dagster first,
# which took 6 s (once over 10 s) on a busy 2-core machine; the HEALTHCHECK allows 30 s.
TIMEOUT_SECONDS = 25.0
LOOPBACK = "127.0.0.1"


class Check(NamedTuple):
    """What to ask: an HTTP URL that must answer 200, or a command that must exit 0."""

    role: str
    url: str | None = None
    command: tuple[str, ...] = ()


def role_command(pid1: Sequence[str]) -> list[str]:
    """The role's command: PID 1's arguments after tini's `--` (or all of them)."""
    args = list(pid1)
    if args and Path(args[0]).name.startswith("tini"):
        return args[args.index("--") + 1 :] if "--" in args else args[1:]
    return args


def _option(args: Sequence[str], names: Sequence[str], default: str) -> str:
    """The value of the first of `names` (`-p 3000`, `--port=3000`), else `default`."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return default


def _host(args: Sequence[str], names: Sequence[str]) -> str:
    """Where to connect: the address the server listens on, loopback for a wildcard."""
    host = _option(args, names, LOOPBACK)
    return LOOPBACK if host in ("0.0.0.0", "::", "", "localhost") else host


def check_for(command: Sequence[str]) -> Check:
    """The check for a container running `command` (after tini)."""
    args = list(command)
    if not args:
        return Check("unknown")
    program = Path(args[0]).name
    rest = args[1:]
    if program in ("python", "python3") and rest[:1] == ["-m"] and len(rest) > 1:
        program, rest = rest[1].replace("_", "-"), rest[2:]
    if program == "dagster-webserver":
        host, port = _host(rest, ("-h", "--host")), _option(rest, ("-p", "--port"), "3000")
        return Check("webserver", url=f"http://{host}:{port}/server_info")
    if program == "dagster-daemon" and rest[:1] == ["run"]:
        return Check("daemon", command=("dagster-daemon", "liveness-check"))
    if program == "dagster" and (rest[:2] in (["code-server", "start"], ["api", "grpc"])):
        host, port = _host(rest, ("-h", "--host")), _option(rest, ("-p", "--port"), "3030")
        health = ("dagster", "api", "grpc-health-check", "--host", host, "--port", port)
        return Check("code server", command=health)
    if program == "timbel" and rest[:2] == ["api", "serve"]:
        host, port = _host(rest, ("--host",)), _option(rest, ("--port",), "8080")
        return Check("REST API", url=f"http://{host}:{port}/api/v1/openapi.json")
    return Check("no server")


def run_check(check: Check, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, what was found)."""
    if check.url is not None:
        try:
            # http to loopback or the server's own address only (check_for builds the URL)
            with urllib.request.urlopen(check.url, timeout=timeout) as response:
                return response.status == 200, f"{check.role}: {check.url} {response.status}"
        except (urllib.error.URLError, OSError) as error:
            return False, f"{check.role}: {check.url} {error}"
    if check.command:
        try:
            done = subprocess.run(  # a fixed command of the image's own tools
                check.command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return False, f"{check.role}: {error}"
        said = (done.stdout + done.stderr).strip().splitlines()
        return done.returncode == 0, f"{check.role}: {said[-1] if said else done.returncode}"
    return True, f"{check.role}: nothing to check"


def pid1_command(proc: Path = Path("/proc/1/cmdline")) -> list[str]:
    """PID 1's arguments ([] when /proc cannot be read)."""
    try:
        raw = proc.read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def main() -> int:
    healthy, said = run_check(check_for(role_command(pid1_command())))
    print(said)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
