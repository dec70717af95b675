"""compose.yaml, checked without Docker: the certs job runs as compose would run it, and each
state node's own command and environment pass ``regfed node check`` (the real CLI, in a
subprocess) against what the job made, as the oversight service's pass ``regfed oversight
check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from compose_support import (
    NODE_SERVICES,
    OVERSIGHT_SERVICE,
    container,
    load_compose,
    node_argv,
    run_certs_job,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def made(compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("compose")
    job = run_certs_job(compose, tmp)
    assert job.returncode == 0, job.stderr
    return tmp


def test_the_certs_job_is_idempotent(compose: dict[str, Any], made: Path) -> None:
    volumes = made / "volumes"
    before = {p: p.read_bytes() for p in sorted(volumes.rglob("*")) if p.is_file()}
    again = run_certs_job(compose, made)
    assert again.returncode == 0, again.stderr
    after = {p: p.read_bytes() for p in sorted(volumes.rglob("*")) if p.is_file()}
    assert after == before, "a second run of the certs job changed the credentials"
    # The authority's key stays in its own volume, which no node mounts.
    assert (volumes / "authority" / "ca.key").is_file()
    assert not list((volumes / "certs").rglob("ca.key"))


@pytest.mark.parametrize("name", NODE_SERVICES)
def test_each_node_service_passes_its_check_with_its_own_command_and_environment(
    compose: dict[str, Any], made: Path, name: str
) -> None:
    node = container(name, compose, made)
    result = node.run([*node_argv(node, "check"), "--json"], node.environment())
    report = json.loads(result.stdout)
    assert result.returncode == 0, (report, result.stderr)
    assert report["ok"] and report["registry"] == name.upper()
    assert {c["name"] for c in report["checks"] if c["ok"]} >= {
        "certificate_names_registry",
        "tls_key_matches_certificate",
        "directory",
        "directory_lists_node",
        "database",
    }
    # The database comes from the service's environment, the rest from the mounted file.
    assert report["sources"]["database"] == "env REGFED_DATABASE"
    assert report["settings"]["database"].startswith("postgresql")
    assert report["sources"]["certificate"].endswith("node.toml")


@pytest.mark.parametrize("name", NODE_SERVICES)
def test_each_node_is_wired_as_the_design_requires(compose: dict[str, Any], name: str) -> None:
    services = compose["services"]
    node = services[name]
    database = f"{name}-db"
    assert services[database]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services[database]["healthcheck"]["test"])
    assert node["depends_on"] == {
        "certs": {"condition": "service_completed_successfully"},
        database: {"condition": "service_healthy"},
    }
    assert f"@{database}:" in node["environment"]["REGFED_DATABASE"]
    # Health through the gRPC health service, with the same configuration the node runs with.
    test = node["healthcheck"]["test"]
    assert test[:4] == ["CMD", "regfed", "node", "health"]
    assert test[4:] == node["command"][2:]
    # Credentials are mounted read-only into nodes.
    assert "certs:/var/lib/regfed/certs:ro" in node["volumes"]
    # The node's grace is within compose's own before it sends SIGKILL.
    grace = float(node["environment"]["REGFED_SHUTDOWN_GRACE"])
    assert grace < float(node["stop_grace_period"].removesuffix("s"))


def test_nothing_is_published_beyond_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_oversight_service_passes_its_check_with_its_own_command_and_environment(
    compose: dict[str, Any], made: Path
) -> None:
    oversight = container(OVERSIGHT_SERVICE, compose, made)
    result = oversight.run([*node_argv(oversight, "check"), "--json"], oversight.environment())
    report = json.loads(result.stdout)
    assert result.returncode == 0, (report, result.stderr)
    assert report["ok"] and report["code"] == "EPA"
    names = {c["name"] for c in report["checks"] if c["ok"]}
    assert names >= {
        "certificate_names_oversight",
        "tls_key_matches_certificate",
        "directory",
        "directory_lists_node",
    }
    # No registry's steps are run; its own database is its run table, on its own volume.
    assert not {"database", "programs", "crls"} & {c["name"] for c in report["checks"]}
    runs = next(c for c in report["checks"] if c["name"] == "runs")
    assert runs["ok"] and "nightly at 02:00 UTC" in runs["detail"]
    assert report["settings"]["database"] == oversight.rewrite("/var/lib/regfed/oversight/runs.db")
    assert report["sources"]["certificate"].endswith("oversight.toml")
    assert report["sources"]["log_format"] == "env REGFED_LOG_FORMAT"
    listed = next(c for c in report["checks"] if c["name"] == "directory_lists_node")
    assert "endpoint oversight:50051" in listed["detail"]


def test_the_oversight_service_is_wired_as_the_design_requires(compose: dict[str, Any]) -> None:
    service = compose["services"][OVERSIGHT_SERVICE]
    assert service["depends_on"] == {"certs": {"condition": "service_completed_successfully"}}
    assert service["command"][:2] == ["oversight", "run"]
    test = service["healthcheck"]["test"]
    assert test[:4] == ["CMD", "regfed", "oversight", "health"]
    assert test[4:] == service["command"][2:]
    assert "certs:/var/lib/regfed/certs:ro" in service["volumes"]
    assert "oversight-runs:/var/lib/regfed/oversight" in service["volumes"]
    # No database service of its own (its run table is a file on its volume), none set here.
    assert not any("DATABASE" in k for k in service["environment"])
    grace = float(service["environment"]["REGFED_SHUTDOWN_GRACE"])
    assert grace < float(service["stop_grace_period"].removesuffix("s"))
    assert service["ports"] == ["127.0.0.1:9104:9100"]


def test_the_services_are_the_states_their_databases_and_the_oversight_node(
    compose: dict[str, Any],
) -> None:
    assert set(compose["services"]) == {
        "certs",
        OVERSIGHT_SERVICE,
        *NODE_SERVICES,
        *(f"{n}-db" for n in NODE_SERVICES),
    }
