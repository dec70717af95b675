"""compose.yaml, checked without Docker: the certs job runs as compose would run it, and each
state node's own command and environment pass ``regfed node check`` (the real CLI, in a
subprocess) against what the job made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from compose_support import (
    NODE_SERVICES,
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


def test_no_oversight_node_is_invented(compose: dict[str, Any]) -> None:
    # A later issue creates it; until then compose.yaml only has a commented placeholder.
    assert not {"oversight", "epa"} & set(compose["services"])
    assert set(compose["services"]) == {
        "certs",
        *NODE_SERVICES,
        *(f"{n}-db" for n in NODE_SERVICES),
    }
