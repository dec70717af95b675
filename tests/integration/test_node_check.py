"""``regfed node check`` refuses a broken node configuration, naming the check and what to fix.

Each case starts from the PA service of compose.yaml (credentials made by its certs job) and
breaks one thing, as an operator could: the real CLI runs in a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from compose_support import (
    REGFED,
    Container,
    container,
    load_compose,
    problem,
    run_certs_job,
    run_check,
)

pytestmark = pytest.mark.integration

CERTS = "/var/lib/regfed/certs"


@pytest.fixture(scope="module")
def pa(tmp_path_factory: pytest.TempPathFactory) -> Container:
    tmp = tmp_path_factory.mktemp("check")
    compose = load_compose()
    job = run_certs_job(compose, tmp)
    assert job.returncode == 0, job.stderr
    return container("pa", compose, tmp)


def test_the_unbroken_configuration_passes(pa: Container) -> None:
    status, report, text = run_check(pa)
    assert status == 0 and report["ok"], report
    assert "all checks passed" in text


def test_a_tls_key_that_is_not_the_certificates(pa: Container) -> None:
    status, report, text = run_check(pa, {"REGFED_KEY": f"{CERTS}/NY/tls.key"})
    assert status == 1 and not report["ok"]
    found = problem(report, "tls_key_matches_certificate")
    assert "is not the key of the certificate" in found["detail"]
    assert "what to do (tls_key_matches_certificate)" in text


def test_another_registrys_certificate(pa: Container) -> None:
    status, report, _ = run_check(
        pa, {"REGFED_CERTIFICATE": f"{CERTS}/NY/tls.pem", "REGFED_KEY": f"{CERTS}/NY/tls.key"}
    )
    assert status == 1
    found = problem(report, "certificate_names_registry")
    assert "urn:regfed:registry:NY, but this node is registry PA" in found["detail"]
    assert (
        "not the certificate the directory lists"
        in problem(report, "directory_lists_node")["detail"]
    )


def test_a_persons_certificate_is_not_a_nodes(pa: Container) -> None:
    trader = f"{CERTS}/PA/traders/trader1"
    status, report, _ = run_check(
        pa, {"REGFED_CERTIFICATE": f"{trader}/chain.pem", "REGFED_KEY": f"{trader}/tls.key"}
    )
    assert status == 1
    assert "a person, not a node" in problem(report, "certificate_names_registry")["detail"]


def test_a_signing_key_the_directory_does_not_list(pa: Container) -> None:
    status, report, _ = run_check(pa, {"REGFED_SIGNING_KEY": f"{CERTS}/NY/signing.key"})
    assert status == 1
    found = problem(report, "directory_lists_node")
    assert "is not the signing key the directory lists for PA" in found["detail"]


def test_a_directory_from_another_federation(pa: Container, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([str(REGFED), "certs", "authority", str(other)], check=True, capture_output=True)
    status, report, _ = run_check(pa, {"REGFED_DIRECTORY": str(other / "directory.json")})
    assert status == 1
    assert "DIRECTORY_BAD_SIGNATURE" in problem(report, "directory")["detail"]
    # The checks that need a verified directory are skipped, not reported as passing.
    listed = next(c for c in report["checks"] if c["name"] == "directory_lists_node")
    assert listed["status"] == "skipped"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://regfed@db/registry", "dialect 'mysql' is not one of sqlite, postgresql"),
        ("postgresql://regfed@db:port/registry", "database URL not accepted"),
    ],
)
def test_a_database_url_that_is_not_accepted(pa: Container, url: str, expected: str) -> None:
    status, report, _ = run_check(pa, {"REGFED_DATABASE": url})
    assert status == 1
    assert expected in problem(report, "database")["detail"]


def test_a_missing_file_says_which_setting(pa: Container) -> None:
    status, report, _ = run_check(pa, {"REGFED_CA": f"{CERTS}/federation/nope.pem"})
    assert status == 1
    found = problem(report, "ca")
    assert "nope.pem" in found["detail"] and "REGFED_CA" in found["hint"]


def test_an_unknown_key_in_the_file_is_refused_by_name(pa: Container, tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(pa.path("/etc/regfed/node.toml").read_text() + "listen_port = 50051\n")
    status, report, text = run_check(pa, config=config)
    assert status == 1
    assert report["error"]["key"] == "listen_port"
    assert "unknown key 'listen_port'; the keys are: registry, database, listen" in text
    assert "what to do" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--federation", "fed/federation.json"], "--federation needs --registry CODE"),
        (["--config", "node.toml", "--registry", "PA"], "--config and --registry do not mix"),
    ],
)
def test_node_run_takes_a_config_or_a_local_federation_not_both(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    from regfed.cli import main

    assert main(["node", "run", *args]) == 1
    assert expected in capsys.readouterr().err


def test_a_negative_number_of_seconds(pa: Container) -> None:
    status, report, _ = run_check(pa, {"REGFED_SHUTDOWN_GRACE": "-1", "REGFED_ASK_AFTER": "0"})
    assert status == 1
    found = problem(report, "timings")
    assert "ask_after = 0.0, shutdown_grace = -1.0" in found["detail"]


def test_an_unknown_log_format_or_a_bad_metrics_address(pa: Container) -> None:
    status, report, _ = run_check(pa, {"REGFED_LOG_FORMAT": "xml"})
    assert status == 1 and "'xml'" in problem(report, "observability")["detail"]
    status, report, _ = run_check(pa, {"REGFED_METRICS_LISTEN": "here:port"})
    assert status == 1 and "host:port" in problem(report, "observability")["detail"]
    status, report, _ = run_check(pa)  # compose publishes the container's port on host loopback
    found = next(c for c in report["checks"] if c["name"] == "observability")
    assert (status, found["detail"]) == (0, "log json, metrics on 0.0.0.0:9100 (beyond loopback)")


def test_program_rules_are_read_as_the_node_reads_them(pa: Container, tmp_path: Path) -> None:
    rules = tmp_path / "programs.json"
    rules.write_text('{"code": "CAT"}')  # an object, not a list
    status, report, _ = run_check(pa, {"REGFED_PROGRAMS": str(rules)})
    assert status == 1 and "JSON list" in problem(report, "programs")["detail"]
    rules.write_text('[{"code": "CAT", "compliance_account_may_send": false}]')
    status, report, _ = run_check(pa, {"REGFED_PROGRAMS": str(rules)})
    found = next(c for c in report["checks"] if c["name"] == "programs")
    assert status == 0 and "CAT" in found["detail"], found


def test_health_without_its_credentials_says_to_run_the_check(pa: Container) -> None:
    argv = [str(REGFED), "node", "health", "--config", str(pa.path("/etc/regfed/node.toml"))]
    env = {**pa.environment(), "REGFED_KEY": str(pa.path(f"{CERTS}/PA/absent.key"))}
    result = pa.run([*argv, "--json"], env)
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert "absent.key" in error["message"] and "regfed node check" in error["hint"]
