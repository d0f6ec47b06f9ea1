"""go.mod, Cargo.toml with Cargo.lock and workspaces, .NET projects."""

from __future__ import annotations

import pytest

from tests.repo_analysis.helpers import deps, frameworks, manifest, tool_paths

GO_MOD = """
    module github.com/acme/api

    go 1.21

    toolchain go1.21.5

    require github.com/gin-gonic/gin v1.9.1

    require (
        github.com/labstack/echo/v4 v4.11.3
        golang.org/x/net v0.17.0 // indirect
        github.com/acme/shared v0.0.0-00010101000000-000000000000
        github.com/old/lib v1.0.0
    )

    replace github.com/acme/shared => ../shared

    replace (
        github.com/old/lib v1.0.0 => github.com/new/lib v1.2.0
    )

    exclude golang.org/x/net v0.16.0
"""


def test_go_mod_requires_indirect_and_replace(analyse) -> None:
    analysis = analyse({"go.mod": GO_MOD})

    assert deps(analysis) == {
        "github.com/gin-gonic/gin": ("v1.9.1", "runtime", "go.mod", True),
        "github.com/labstack/echo/v4": ("v4.11.3", "runtime", "go.mod", True),
        "golang.org/x/net": ("v0.17.0", "runtime", "go.mod", False),
        "github.com/acme/shared": (None, "runtime", "go.mod", True),
        "github.com/new/lib": ("v1.2.0", "runtime", "go.mod", True),
    }
    entry = manifest(analysis, "go.mod")
    assert (entry["module"], entry["go"]) == ("github.com/acme/api", "1.21")
    assert entry["replace"] == {
        "github.com/acme/shared": "../shared",
        "github.com/old/lib": "github.com/new/lib v1.2.0",
    }
    assert frameworks(analysis) == {("Gin", "v1.9.1"), ("Echo", "v4.11.3")}
    assert tool_paths(analysis) == [{"name": "go", "paths": ["go.mod"]}]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("module x\nrequire (\n  a v1\n", "unclosed require ( block"),
        ("module x\nrequire a\n", "line 2: expected `module version`"),
        ("module x\nfrobnicate y\n", "line 2: unknown directive 'frobnicate'"),
    ],
)
def test_malformed_go_mod(analyse, text: str, problem: str) -> None:
    assert problem in manifest(analyse({"go.mod": text}), "go.mod")["error"]


def test_cargo_workspace_with_lockfile(analyse) -> None:
    analysis = analyse(
        {
            "Cargo.toml": """
                [workspace]
                members = ["server"]

                [workspace.dependencies]
                tokio = { version = "1.34", features = ["full"] }
            """,
            "server/Cargo.toml": """
                [package]
                name = "server"
                version = "0.1.0"
                edition = "2021"

                [dependencies]
                axum = "0.7"
                actix-web = { version = "4.4" }
                tokio = { workspace = true }
                json = { package = "serde_json", version = "1" }
                common = { path = "../common" }

                [dev-dependencies]
                tower = "0.4"

                [target.'cfg(unix)'.dependencies]
                nix = "0.27"
            """,
            "Cargo.lock": """
                version = 3

                [[package]]
                name = "axum"
                version = "0.7.2"
                source = "registry+https://github.com/rust-lang/crates.io-index"

                [[package]]
                name = "tokio"
                version = "1.34.0"
                source = "registry+https://github.com/rust-lang/crates.io-index"

                [[package]]
                name = "serde_json"
                version = "1.0.108"
                source = "registry+https://github.com/rust-lang/crates.io-index"

                [[package]]
                name = "hyper"
                version = "1.0.1"
                source = "registry+https://github.com/rust-lang/crates.io-index"

                [[package]]
                name = "server"
                version = "0.1.0"
            """,
        }
    )

    assert deps(analysis) == {
        "tokio": ("1.34.0", "runtime", "server/Cargo.toml", True),
        "axum": ("0.7.2", "runtime", "server/Cargo.toml", True),
        "actix-web": ("4.4", "runtime", "server/Cargo.toml", True),
        "serde_json": ("1.0.108", "runtime", "server/Cargo.toml", True),
        "tower": ("0.4", "dev", "server/Cargo.toml", True),
        "nix": ("0.27", "runtime", "server/Cargo.toml", True),
        "hyper": ("1.0.1", "runtime", "Cargo.lock", False),
    }
    assert manifest(analysis, "Cargo.toml")["workspace_members"] == ["server"]
    assert manifest(analysis, "server/Cargo.toml")["lockfile"] == "Cargo.lock"
    assert frameworks(analysis) == {("Axum", "0.7.2"), ("Actix", "4.4")}


WEB_PROJECT = """
    <Project Sdk="Microsoft.NET.Sdk.Web">
      <PropertyGroup>
        <TargetFramework>net8.0</TargetFramework>
        <SerilogVersion>3.1.1</SerilogVersion>
      </PropertyGroup>
      <ItemGroup>
        <PackageReference Include="Microsoft.AspNetCore.OpenApi" Version="8.0.0" />
        <PackageReference Include="Serilog.AspNetCore" Version="$(SerilogVersion)" />
        <PackageReference Include="Newtonsoft.Json">
          <Version>13.0.3</Version>
        </PackageReference>
        <PackageReference Include="Dapper" />
        <PackageReference Include="StyleCop.Analyzers" Version="1.1.118" PrivateAssets="all" />
      </ItemGroup>
    </Project>
"""
TEST_PROJECT = """
    <Project Sdk="Microsoft.NET.Sdk">
      <PropertyGroup>
        <TargetFrameworks>net8.0;net6.0</TargetFrameworks>
      </PropertyGroup>
      <ItemGroup>
        <PackageReference Include="Microsoft.NET.Test.Sdk" Version="17.8.0" />
        <PackageReference Include="xunit" Version="2.6.2" />
      </ItemGroup>
    </Project>
"""


def test_dotnet_projects_central_versions_and_test_projects(analyse) -> None:
    analysis = analyse(
        {
            "Shop.sln": "Microsoft Visual Studio Solution File, Format Version 12.00\n",
            "Directory.Packages.props": """
                <Project>
                  <ItemGroup>
                    <PackageVersion Include="Dapper" Version="2.1.24" />
                  </ItemGroup>
                </Project>
            """,
            "src/Shop.Api/Shop.Api.csproj": "\ufeff" + WEB_PROJECT.strip(),
            "tests/Shop.Tests/Shop.Tests.csproj": TEST_PROJECT,
        }
    )

    api = "src/Shop.Api/Shop.Api.csproj"
    tests = "tests/Shop.Tests/Shop.Tests.csproj"
    assert deps(analysis) == {
        "Microsoft.AspNetCore.OpenApi": ("8.0.0", "runtime", api, True),
        "Serilog.AspNetCore": ("3.1.1", "runtime", api, True),
        "Newtonsoft.Json": ("13.0.3", "runtime", api, True),
        "Dapper": ("2.1.24", "runtime", api, True),
        "StyleCop.Analyzers": ("1.1.118", "dev", api, True),
        "Microsoft.NET.Test.Sdk": ("17.8.0", "test", tests, True),
        "xunit": ("2.6.2", "test", tests, True),
    }
    assert manifest(analysis, tests)["target_frameworks"] == ["net8.0", "net6.0"]
    assert manifest(analysis, api)["sdk"] == "Microsoft.NET.Sdk.Web"
    assert frameworks(analysis) == {("ASP.NET Core", "8.0")}
    assert tool_paths(analysis) == [{"name": "dotnet", "paths": ["Shop.sln", api, tests]}]


def test_dotnet_packages_lock_and_packages_config(analyse) -> None:
    analysis = analyse(
        {
            "App/App.csproj": TEST_PROJECT.replace("Microsoft.NET.Test.Sdk", "Polly"),
            "App/packages.lock.json": """
                {"version": 1, "dependencies": {"net8.0": {
                  "Polly": {"type": "Direct", "requested": "[17.8.0, )", "resolved": "17.8.1"},
                  "Polly.Core": {"type": "Transitive", "resolved": "8.2.0"}}}}
            """,
            "Legacy/packages.config": """
                <?xml version="1.0" encoding="utf-8"?>
                <packages>
                  <package id="log4net" version="2.0.15" targetFramework="net48" />
                  <package id="NUnit" version="3.14.0" developmentDependency="true" />
                </packages>
            """,
        }
    )

    found = {name: (v[0], v[1], v[3]) for name, v in deps(analysis).items()}
    assert found == {
        "Polly": ("17.8.1", "runtime", True),
        "xunit": ("2.6.2", "runtime", True),
        "Polly.Core": ("8.2.0", "runtime", False),
        "log4net": ("2.0.15", "runtime", True),
        "NUnit": ("3.14.0", "dev", True),
    }
