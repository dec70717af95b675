"""The compose.yaml oversight service as a real process: its own command (``regfed oversight run
--config``) serves the gRPC health service over mutual TLS only, its own healthcheck command
reports SERVING, a plaintext call is refused, and SIGTERM stops it with exit 0.

Its credentials come from the compose certs job, run on this host (tests/compose_support.py);
only the addresses differ from compose (a free loopback port for gRPC and for metrics, through
the environment, which overrides the mounted file). No database is involved."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from compose_support import OVERSIGHT_SERVICE, REGFED, container, load_compose, run_certs_job

from regfed.gateway._generated.health.v1 import health_pb2, health_pb2_grpc
from regfed.local.federation import free_base_port

pytestmark = pytest.mark.e2e


def test_the_oversight_node_serves_health_over_mtls_only_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    compose = load_compose()
    job = run_certs_job(compose, tmp_path)
    assert job.returncode == 0, job.stderr
    epa = container(OVERSIGHT_SERVICE, compose, tmp_path)
    port = free_base_port(2, random.randrange(20_000, 60_000))
    env = {
        **epa.environment(),
        "REGFED_LISTEN": f"127.0.0.1:{port}",
        "REGFED_METRICS_LISTEN": f"127.0.0.1:{port + 1}",
    }
    healthcheck = epa.service["healthcheck"]["test"]
    assert healthcheck[:2] == ["CMD", "regfed"]
    probe = [str(REGFED), *(epa.rewrite(a) for a in healthcheck[2:]), "--json"]

    log_path = tmp_path / "oversight.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(REGFED), *epa.command()], env=env, cwd=epa.root, stdout=subprocess.PIPE, stderr=log
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline() or b"{}")
        assert ready.get("event") == "ready", log_path.read_text()
        assert ready["oversight"] == "EPA"

        serving = epa.run(probe, env)
        assert serving.returncode == 0, serving.stdout + serving.stderr
        report = json.loads(serving.stdout)
        assert (report["status"], report["code"]) == ("SERVING", "EPA")

        # Mutual TLS only: a plaintext call never reaches the health service.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        with urllib.request.urlopen(f"http://127.0.0.1:{port + 1}/metrics", timeout=5) as page:
            assert "regfed_directory_version" in page.read().decode()

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        stopped = json.loads(process.stdout.readline() or b"{}")
        assert (stopped.get("event"), stopped.get("signal")) == ("stopped", "SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()
    gone = epa.run(probe, env)
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["status"] == "UNREACHABLE"
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any("SIGTERM: stopping" in line["message"] for line in lines)
