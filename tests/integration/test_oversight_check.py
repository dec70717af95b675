"""``regfed oversight check`` refuses a broken oversight configuration, naming the check and what
to fix; it runs the node checks that apply to a member without a database.

Each case starts from the oversight service of compose.yaml (credentials made by its certs job)
and breaks one thing: the real CLI runs in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_support import (
    OVERSIGHT_SERVICE,
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
def epa(tmp_path_factory: pytest.TempPathFactory) -> Container:
    tmp = tmp_path_factory.mktemp("oversight-check")
    compose = load_compose()
    job = run_certs_job(compose, tmp)
    assert job.returncode == 0, job.stderr
    return container(OVERSIGHT_SERVICE, compose, tmp)


def test_a_states_certificate_is_not_the_oversight_nodes(epa: Container) -> None:
    status, report, text = run_check(
        epa, {"REGFED_CERTIFICATE": f"{CERTS}/PA/tls.pem", "REGFED_KEY": f"{CERTS}/PA/tls.key"}
    )
    assert status == 1 and not report["ok"]
    found = problem(report, "certificate_names_oversight")
    assert (
        "urn:regfed:registry:PA, not the oversight node urn:regfed:oversight:EPA"
        in (found["detail"])
    )
    assert "--oversight" in found["hint"]
    assert "what to do (certificate_names_oversight)" in text


def test_a_states_code_is_not_an_oversight_member(epa: Container) -> None:
    status, report, _ = run_check(epa, {"REGFED_CODE": "PA"})
    assert status == 1
    found = problem(report, "directory_lists_node")
    assert "lists PA as a registry member, not oversight" in found["detail"]


def test_a_signing_key_the_directory_does_not_list(epa: Container) -> None:
    status, report, _ = run_check(epa, {"REGFED_SIGNING_KEY": f"{CERTS}/PA/signing.key"})
    assert status == 1
    assert (
        "is not the signing key the directory lists for EPA"
        in (problem(report, "directory_lists_node")["detail"])
    )


def test_a_missing_setting_says_which_and_where(epa: Container, tmp_path: Path) -> None:
    config = tmp_path / "oversight.toml"
    config.write_text('listen = "127.0.0.1:1"\n')
    result = epa.run([str(REGFED), "oversight", "check", "--config", str(config)], {})
    assert result.returncode == 1
    assert "missing setting(s) code, ca" in result.stderr
    assert "REGFED_CODE" in result.stderr
    assert "deploy/compose/oversight.toml" in result.stderr
