"""deploy/healthcheck.py, the image's HEALTHCHECK: the role read from PID 1's command, and the
check of each role against real listeners and real commands."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pytest_httpserver import HTTPServer

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "timbel_image_healthcheck", ROOT / "deploy" / "healthcheck.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load()
Check = healthcheck.Check
GRPC = ("dagster", "api", "grpc-health-check", "--host")


@pytest.mark.parametrize(
    ("pid1", "command"),
    [
        (["/usr/bin/tini", "--", "dagster", "api", "grpc"], ["dagster", "api", "grpc"]),
        (["tini", "-g", "--", "timbel", "api", "serve"], ["timbel", "api", "serve"]),
        (["/usr/bin/tini", "dagster-webserver"], ["dagster-webserver"]),
        (["dagster-daemon", "run"], ["dagster-daemon", "run"]),  # run without tini
        ([], []),
    ],
)
def test_the_role_is_the_command_after_tini(pid1: list[str], command: list[str]) -> None:
    assert healthcheck.role_command(pid1) == command


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (  # the image's default CMD
            "dagster code-server start -h 0.0.0.0 -p 3030 -m timbel_dagster.definitions",
            Check("code server", command=(*GRPC, "127.0.0.1", "--port", "3030")),
        ),
        (  # what the Helm chart runs
            "dagster api grpc -h 0.0.0.0 -p 3031 --module-name timbel_dagster.definitions",
            Check("code server", command=(*GRPC, "127.0.0.1", "--port", "3031")),
        ),
        (
            "/opt/venv/bin/dagster api grpc --host 10.0.0.5 --port=4000 -m m",
            Check("code server", command=(*GRPC, "10.0.0.5", "--port", "4000")),
        ),
        (
            "dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml",
            Check("webserver", url="http://127.0.0.1:3000/server_info"),
        ),
        (
            "python -m dagster_webserver --port 8000",
            Check("webserver", url="http://127.0.0.1:8000/server_info"),
        ),
        (
            "dagster-daemon run -w workspace.yaml",
            Check("daemon", command=("dagster-daemon", "liveness-check")),
        ),
        (
            "timbel api serve --host 0.0.0.0 --port 8080",
            Check("REST API", url="http://127.0.0.1:8080/api/v1/openapi.json"),
        ),
        ("timbel api serve", Check("REST API", url="http://127.0.0.1:8080/api/v1/openapi.json")),
        ("dagster api execute_run {}", Check("no server")),  # a run worker
        ("timbel db upgrade", Check("no server")),
        ("dagster-daemon liveness-check", Check("no server")),
        ("", Check("unknown")),
    ],
)  # fmt: skip
def test_each_role_gets_the_check_its_server_answers(command: str, expected: Check) -> None:
    assert healthcheck.check_for(command.split()) == expected


def test_an_http_server_answering_200_is_healthy(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/server_info").respond_with_json({"dagster_version": "x"})
    healthy, said = healthcheck.run_check(
        Check("webserver", url=httpserver.url_for("/server_info"))
    )
    assert healthy and said.endswith(" 200")


def test_an_http_error_or_nothing_listening_is_unhealthy(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/openapi.json").respond_with_data("no", status=503)
    url = httpserver.url_for("/api/v1/openapi.json")
    assert healthcheck.run_check(Check("REST API", url=url)) == (
        False,
        f"REST API: {url} HTTP Error 503: SERVICE UNAVAILABLE",
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    healthy, said = healthcheck.run_check(Check("webserver", url=f"http://127.0.0.1:{port}/"))
    assert not healthy and "refused" in said.lower()


@pytest.mark.parametrize(
    ("code", "healthy"),
    [
        ("print('ok')", True),
        ("import sys; print('no heartbeat', file=sys.stderr); sys.exit(1)", False),
    ],
)  # fmt: skip
def test_a_command_check_is_its_exit_status_with_its_last_line(code: str, healthy: bool) -> None:
    result = healthcheck.run_check(Check("daemon", command=(sys.executable, "-c", code)))
    assert result == (healthy, f"daemon: {'ok' if healthy else 'no heartbeat'}")


def test_a_missing_or_hanging_command_is_unhealthy() -> None:
    missing = healthcheck.run_check(Check("daemon", command=("/nonexistent/dagster-daemon",)))
    assert missing[0] is False
    slow = Check("code server", command=(sys.executable, "-c", "import time; time.sleep(5)"))
    healthy, said = healthcheck.run_check(slow, timeout=0.2)
    assert not healthy and "timed out" in said


def test_pid1_command_reads_the_nul_separated_cmdline(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/usr/bin/tini\0--\0dagster-webserver\0-p\0003000\0")
    assert healthcheck.pid1_command(cmdline) == [
        "/usr/bin/tini", "--", "dagster-webserver", "-p", "3000",
    ]  # fmt: skip
    assert healthcheck.pid1_command(tmp_path / "missing") == []


def test_main_checks_the_role_pid1_runs(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request("/api/v1/openapi.json").respond_with_json({"openapi": "3.1.0"})
    pid1 = ["/usr/bin/tini", "--", "timbel", "api", "serve", "--port", str(httpserver.port)]
    monkeypatch.setattr(healthcheck, "pid1_command", lambda: pid1)
    assert healthcheck.main() == 0
    assert capsys.readouterr().out.startswith("REST API: http://127.0.0.1:")
    httpserver.clear()  # now nothing answers that path: 500 from pytest-httpserver
    assert healthcheck.main() == 1
