"""The layers of DESIGN.md 1b hold: the import-linter contracts in pyproject.toml pass on the
code as it is, and a new import across a layer breaks them (`make lint` runs `lint-imports`).
Checked in process on the grimp graph `lint-imports` builds, so no subprocess and no cache."""

from __future__ import annotations

import ast
import copy
import shutil
import subprocess
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import read_user_options
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_TYPES = {"layers": LayersContract, "forbidden": ForbiddenContract}

LAYERS = "Layers run one way (DESIGN.md 1b)"
CLIENTS = "Clients never import storage: resources speak in records"
STORAGE = "Storage never imports clients, automation, orchestration or faces"
WAREHOUSE = "Storage's sub-packages run one way: the schema at the bottom"
API = "The API never imports orchestration: it records requests, never launches runs"


@pytest.fixture(scope="module")
def contracts() -> dict[str, LayersContract | ForbiddenContract]:
    configuration.configure()  # what `lint-imports` does first: the readers of the config
    options = read_user_options(str(ROOT / "pyproject.toml"))
    built = {}
    for contract_options in options.contracts_options:
        cls = CONTRACT_TYPES[contract_options["type"]]
        built[contract_options["name"]] = cls(
            name=contract_options["name"],
            session_options=options.session_options,
            contract_options=contract_options,
        )
    return built


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("timbel_dagster", cache_dir=None)


def _broken(contract, graph: grimp.ImportGraph) -> bool:
    return not contract.check(copy.deepcopy(graph), verbose=False).kept


def test_the_five_contracts_are_declared(contracts) -> None:
    assert set(contracts) == {LAYERS, CLIENTS, STORAGE, WAREHOUSE, API}


def test_every_contract_holds_today(contracts, graph) -> None:
    broken = [name for name, contract in contracts.items() if _broken(contract, graph)]
    assert broken == []


@pytest.mark.parametrize(
    ("importer", "imported", "breaks"),
    [
        # storage reaching up to automation, clients, orchestration (which import the upper
        # sub-packages of storage, so its own layers break too where the chain comes back;
        # the API reads storage, so through it the API would reach orchestration)
        (
            "timbel_dagster.warehouse.schema.models",
            "timbel_dagster.sensors.builds",
            {LAYERS, STORAGE, WAREHOUSE, API},
        ),
        (
            "timbel_dagster.warehouse.store.upsert",
            "timbel_dagster.resources.jenkins.client",
            {LAYERS, STORAGE},
        ),
        (
            "timbel_dagster.warehouse.engine",
            "timbel_dagster.jobs.deploy",
            {LAYERS, STORAGE, WAREHOUSE, API},
        ),
        # a client reaching down into storage: allowed by the layers, refused by its own rule
        (
            "timbel_dagster.resources.jenkins.client",
            "timbel_dagster.warehouse.schema.models",
            {CLIENTS},
        ),
        # the domain reaching up into orchestration, settings into anything of ours
        # (and the API scores requests with the model, so that would take the API there too)
        ("timbel_dagster.ml.risk.model", "timbel_dagster.assets.definitions", {LAYERS, API}),
        # (storage reads settings, so settings reaching the CLI takes storage there too)
        # (and the CLI runs the demo, which the API must not reach)
        (
            "timbel_dagster.settings",
            "timbel_dagster.cli.app",
            {LAYERS, STORAGE, WAREHOUSE, API},
        ),
        ("timbel_dagster.safe_yaml", "timbel_dagster.warehouse.engine", {LAYERS}),
        # the two faces are strangers: the CLI starts the API by its import string
        ("timbel_dagster.cli.tokens", "timbel_dagster.api.app", {LAYERS}),
        ("timbel_dagster.api.deps", "timbel_dagster.cli.common", {LAYERS}),
        # the API records requests and never launches runs: orchestration, automation and
        # the in-process commands are below it in the layers, but forbidden to it
        ("timbel_dagster.api.routers.executions", "timbel_dagster.jobs.deploy", {API}),
        ("timbel_dagster.api.app", "timbel_dagster.definitions", {API}),
        ("timbel_dagster.api.app", "timbel_dagster.backfill", {API}),
        # the domain never reaches up into a face
        ("timbel_dagster.identity.tokens", "timbel_dagster.api.deps", {LAYERS}),
        # Dagster partitions stay above the domain
        ("timbel_dagster.deploy.rollout", "timbel_dagster.partitions", {LAYERS}),
        # inside storage: the schema imports neither side, the write side not the read side,
        # the audit log no users
        (
            "timbel_dagster.warehouse.schema.models",
            "timbel_dagster.warehouse.store.upsert",
            {WAREHOUSE},
        ),
        (
            "timbel_dagster.warehouse.store.loaders",
            "timbel_dagster.warehouse.read.queries",
            {WAREHOUSE},
        ),
        (
            "timbel_dagster.warehouse.audit.chain",
            "timbel_dagster.warehouse.people.users",
            {WAREHOUSE},
        ),
    ],
)
def test_a_new_crossing_breaks_the_contracts(contracts, graph, importer, imported, breaks) -> None:
    graph = copy.deepcopy(graph)
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="x")
    broken = {name for name, contract in contracts.items() if _broken(contract, graph)}
    assert broken == breaks


def test_a_new_top_level_module_must_be_given_a_layer(contracts, graph) -> None:
    graph = copy.deepcopy(graph)
    graph.add_module("timbel_dagster.newcomer")
    assert _broken(contracts[LAYERS], graph)


def test_a_new_storage_sub_package_must_be_given_a_layer(contracts, graph) -> None:
    graph = copy.deepcopy(graph)
    graph.add_module("timbel_dagster.warehouse.newcomer")
    assert _broken(contracts[WAREHOUSE], graph)


def test_grimp_sees_function_level_imports(tmp_path, monkeypatch) -> None:
    """Most of our crossings sit inside functions; the contracts see them all the same."""
    package = tmp_path / "lazy_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from lazy_probe import high\n    return high\n")
    (package / "high.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = grimp.build_graph("lazy_probe", cache_dir=None)
    assert probe.direct_import_exists(importer="lazy_probe.low", imported="lazy_probe.high")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lint_runs_lint_imports() -> None:
    completed = subprocess.run(
        ["make", "--no-print-directory", "-n", "lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line.strip() for line in completed.stdout.splitlines()]
    assert ".venv/bin/lint-imports --no-cache" in lines
    assert lines.index(".venv/bin/lint-imports --no-cache") > next(
        i for i, line in enumerate(lines) if "bandit" in line
    )


# Crossings removed by issue 14 part 4: each client named here once imported storage and no
# longer does (its ignore_imports line went with it).
CLIENTS_FREE_OF_STORAGE = [
    "timbel_dagster.resources.clusters_file",
    # the sample organisation, now that its loader (sample_load) sits above storage
    "timbel_dagster.resources.sample",
    # deployments derived from stored CI stages: the stages come from the caller
    # (WarehouseResource.stored_stages), as records
    "timbel_dagster.resources.derived",
    "timbel_dagster.resources.sources",
]


@pytest.mark.parametrize("client", CLIENTS_FREE_OF_STORAGE)
def test_the_client_imports_no_storage(graph, client) -> None:
    found = set()
    for module in graph.find_descendants(client) | {client}:
        imported = graph.find_modules_directly_imported_by(module)
        found |= {(module, m) for m in imported if m.startswith("timbel_dagster.warehouse")}
    assert sorted(found) == []


def test_no_client_holds_storage_or_runs_the_domain(graph) -> None:
    """The Dagster resources over the warehouse engine and the alert rules are bindings
    (timbel_dagster.bindings), not clients: no module of resources imports the engine or
    the notify domain."""
    found = set()
    for client in graph.find_descendants("timbel_dagster.resources") | {"timbel_dagster.resources"}:
        for imported in graph.find_modules_directly_imported_by(client):
            if imported == "timbel_dagster.warehouse.engine" or imported.startswith(
                "timbel_dagster.notify"
            ):
                found.add((client, imported))
    assert sorted(found) == []


def test_the_bindings_hold_the_warehouse_and_notifier_resources() -> None:
    from timbel_dagster.bindings.definitions import defs
    from timbel_dagster.bindings.notifier import NotifierResource
    from timbel_dagster.bindings.warehouse import WarehouseResource

    resources = defs().resources
    assert isinstance(resources["warehouse"], WarehouseResource)
    assert isinstance(resources["notifier"], NotifierResource)


def test_no_contract_ignores_a_crossing(contracts) -> None:
    """Every listed crossing is gone (issue 14 part 4): no `ignore_imports` to hide one."""
    ignored = {
        name: contract.contract_options.get("ignore_imports")
        for name, contract in contracts.items()
        if contract.contract_options.get("ignore_imports")
    }
    assert ignored == {}


def test_storage_ingest_takes_records_not_clients(graph) -> None:
    """warehouse/store/ingest.py stores what the caller read (assets/ingestion.py reads the
    source): it imports no client, not even the source Protocols for its type hints."""
    imported = graph.find_modules_directly_imported_by("timbel_dagster.warehouse.store.ingest")
    assert sorted(m for m in imported if m.startswith("timbel_dagster.resources")) == []


def _own(statement: ast.Import | ast.ImportFrom) -> bool:
    names = (
        [statement.module or ""]
        if isinstance(statement, ast.ImportFrom)
        else [alias.name for alias in statement.names]
    )
    return any(name.split(".")[0] == "timbel_dagster" for name in names)


def _unexplained_imports(source: str) -> list[int]:
    """Lines of function-level imports of our own modules whose block (consecutive import
    statements) has no `# lazy: why` comment on the lines just above it or on its lines."""
    lines = source.splitlines()
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for holder in ast.walk(function):
            body = getattr(holder, "body", None)
            if not isinstance(body, list):
                continue
            block: list[ast.Import | ast.ImportFrom] = []
            for statement in [*body, None]:
                if isinstance(statement, ast.Import | ast.ImportFrom):
                    block.append(statement)
                    continue
                if any(_own(s) for s in block):
                    above, index = [], block[0].lineno - 2
                    while index >= 0 and lines[index].strip().startswith("#"):
                        above.append(lines[index])
                        index -= 1
                    text = above + lines[block[0].lineno - 1 : block[-1].end_lineno]
                    if not any("lazy:" in line for line in text):
                        found.append(block[0].lineno)
                block = []
    return found


def test_every_function_level_import_of_our_own_says_why() -> None:
    """An import of our own modules inside a function hides the dependency from a reader (and
    once hid a cycle of 12 packages, issue 14): it stays only with a `# lazy: why` comment,
    e.g. that the module loads SQLAlchemy and the code location loads without it."""
    unexplained = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "timbel_dagster").rglob("*.py"))
        for line in _unexplained_imports(path.read_text())
    ]
    assert unexplained == [], "give each a `# lazy: why` comment, or import at the top"


def test_the_lazy_rule_finds_an_unexplained_import() -> None:
    source = (
        "def f():\n"
        "    # lazy: x loads SQLAlchemy\n"
        "    from timbel_dagster.x import a\n"
        "    from timbel_dagster.y import b\n"
        "    import json\n"
        "\n"
        "def g():\n"
        "    '''Doc.'''\n"
        "    from timbel_dagster.z import c\n"
    )
    assert _unexplained_imports(source) == [9]
