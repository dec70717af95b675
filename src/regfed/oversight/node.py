"""The oversight node as a process: its gRPC port over mutual TLS, serving the health service.

It verifies the signed directory and finds itself listed as the oversight member before it
listens (so a misconfigured node fails at start, not at its first reconciliation), prints the
same ``ready`` and ``stopped`` events on stdout as a registry node, and stops on SIGTERM or
SIGINT within ``shutdown_grace`` (health NOT_SERVING first). It never opens a registry database:
issue 5's reconciliation reads registries through their gRPC API.
"""

from __future__ import annotations

import asyncio
import json
import logging

from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Gauge

from regfed.certs.authority import load_signing_key
from regfed.certs.identity import Role
from regfed.gateway import logs
from regfed.gateway._generated.health.v1 import health_pb2_grpc
from regfed.gateway.daemon import grpc_server, listen_secure, load_directory, stop_on_signals
from regfed.gateway.metrics import MetricsServer
from regfed.gateway.transport import HEALTH_SERVICE, HealthService

from .config import OversightConfig

log = logging.getLogger("regfed.oversight")


class OversightHealth(HealthService):
    """The server as a whole ("") is the only service it has so far."""

    SERVICES: tuple[str, ...] = ("",)


def metrics(directory_version: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = Gauge(
        "regfed_directory_version",
        "Version of the signed directory this node verified",
        registry=registry,
    )
    gauge.set(directory_version)
    return registry


async def serve(config: OversightConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    received = stop_on_signals(stop)
    load_signing_key(config.signing_key)  # refused here, not at the first signed result
    directory = load_directory(config)
    member = directory.member(config.code)
    if member is None or member.role is not Role.OVERSIGHT:
        raise ValueError(
            f"directory version {directory.version} lists no oversight member {config.code}: "
            "run `regfed oversight check` with this configuration"
        )
    ca, cert, key = (p.read_bytes() for p in (config.ca, config.certificate, config.key))
    server = grpc_server()
    health = OversightHealth()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if config.reflection:
        reflection.enable_server_reflection((HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    listen_secure(server, config.listen, ca, cert, key)
    exporter = None
    if config.metrics_listen is not None:
        exporter = MetricsServer(config.metrics_listen, metrics(directory.version))
    await server.start()
    ready = {"oversight": config.code, "listen": config.listen, "metrics": config.metrics_listen}
    print(json.dumps({"event": "ready", **ready}), flush=True)
    await stop.wait()
    began = loop.time()
    why = received[0] if received else "stop requested"
    grace = config.shutdown_grace
    log.info("%s: stopping, health NOT_SERVING, up to %.1f s for calls in flight", why, grace)
    health.stop()
    await server.stop(grace=grace)
    if exporter is not None:
        exporter.close()
    took = loop.time() - began
    log.info("stopped cleanly in %.2f s", took)
    stopped = {"event": "stopped", "oversight": config.code, "signal": why}
    print(json.dumps({**stopped, "seconds": round(took, 3)}), flush=True)


def run(config: OversightConfig) -> int:
    logs.configure(config.code, config.log_format)
    asyncio.run(serve(config))
    return 0
