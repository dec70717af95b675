"""A compose.yaml node as a real process: its own command (``regfed node run --config``) serves,
its own healthcheck command reports SERVING over mutual TLS, and SIGTERM stops it with exit 0.

Only the addresses differ from compose: the database is a fresh PostgreSQL database of the test
server instead of the ``pa-db`` service, and the port a free loopback one (both through the
environment, which overrides the mounted file, as an operator would)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from compose_support import REGFED, container, load_compose, run_certs_job

from conftest import create_postgres_database, drop_postgres_database
from regfed.local.federation import free_base_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def database() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def test_a_compose_node_serves_and_answers_its_own_healthcheck(
    tmp_path: Path, database: str
) -> None:
    compose = load_compose()
    assert run_certs_job(compose, tmp_path).returncode == 0
    pa = container("pa", compose, tmp_path)
    port = free_base_port(1, random.randrange(20_000, 60_000))
    env = {**pa.environment(), "REGFED_DATABASE": database, "REGFED_LISTEN": f"127.0.0.1:{port}"}
    healthcheck = pa.service["healthcheck"]["test"]
    assert healthcheck[:2] == ["CMD", "regfed"]
    probe = [str(REGFED), *(pa.rewrite(a) for a in healthcheck[2:]), "--json"]

    checked = pa.run([str(REGFED), "node", "check", *pa.command()[2:], "--connect"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    log = (tmp_path / "pa.log").open("wb")
    process = subprocess.Popen(
        [str(REGFED), *pa.command()], env=env, cwd=pa.root, stdout=subprocess.PIPE, stderr=log
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline() or b"{}")
        assert ready.get("event") == "ready", (tmp_path / "pa.log").read_text()
        serving = pa.run(probe, env)
        assert serving.returncode == 0, serving.stdout + serving.stderr
        assert json.loads(serving.stdout)["status"] == "SERVING"

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()
    gone = pa.run(probe, env)
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["status"] == "UNREACHABLE"
    assert "SIGTERM: stopping" in (tmp_path / "pa.log").read_text()
