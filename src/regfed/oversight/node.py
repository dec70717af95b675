"""The oversight node as a process: its gRPC port over mutual TLS serving the ``Oversight``
service (reconciliation runs, results, verdicts) and health; its run table; its nightly schedule.

It verifies the signed directory and finds itself listed as the oversight member before it
listens (so a misconfigured node fails at start, not at its first reconciliation), marks runs a
crash left ``running`` as failed, prints the same ``ready`` and ``stopped`` events on stdout as
a registry node, and stops on SIGTERM or SIGINT within ``shutdown_grace`` (health NOT_SERVING
first; a run in flight is cut short and ends incomplete). It never opens a registry database:
it reads registries through their gRPC API, and a newer directory file is picked up at the next
run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date

from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Gauge

from regfed.certs.authority import load_signing_key
from regfed.certs.identity import Role
from regfed.gateway import logs
from regfed.gateway._generated.health.v1 import health_pb2_grpc
from regfed.gateway._generated.query.v1 import query_pb2_grpc
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2_grpc
from regfed.gateway.daemon import grpc_server, listen_secure, load_directory, stop_on_signals
from regfed.gateway.metrics import MetricsServer
from regfed.gateway.transport import HEALTH_SERVICE, Callers, HealthService, channel_credentials

from .config import OversightConfig
from .hooks import pause_between_reads
from .queries import FEDERATION_QUERY_SERVICE, FederationQueryService
from .run_errors import AlreadyRan
from .runner import RunManager
from .runs import RunStore
from .schedule import NightlySchedule
from .service import OversightService

OVERSIGHT_SERVICE = "regfed.reconciliation.v1.Oversight"

log = logging.getLogger("regfed.oversight")


class OversightHealth(HealthService):
    """The server as a whole (""), its reconciliation API and its federation queries."""

    SERVICES: tuple[str, ...] = ("", OVERSIGHT_SERVICE, FEDERATION_QUERY_SERVICE)


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
    store = RunStore(config.database)
    for run_id in store.abandon_interrupted():
        log.warning("run %s was interrupted by a stop or crash: marked failed", run_id)
    runs = RunManager(
        config.code,
        store,
        lambda: load_directory(config),
        load_signing_key(config.signing_key),
        channel_credentials(ca, cert, key),
        settlement_limit_s=config.settlement_limit,
        connect_timeout=config.registry_timeout,
        between_reads=pause_between_reads(),
    )
    server = grpc_server()
    health = OversightHealth()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    service = OversightService(config.code, runs, Callers(config.ca))
    reconciliation_pb2_grpc.add_OversightServicer_to_server(service, server)
    queries = FederationQueryService(
        config.code,
        lambda: load_directory(config),
        channel_credentials(ca, cert, key),
        Callers(config.ca),
        config.registry_timeout,
    )
    query_pb2_grpc.add_FederationQueryServicer_to_server(queries, server)
    if config.reflection:
        names = (
            HEALTH_SERVICE,
            OVERSIGHT_SERVICE,
            FEDERATION_QUERY_SERVICE,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
    listen_secure(server, config.listen, ca, cert, key)

    async def nightly(day: date) -> None:
        try:
            await asyncio.to_thread(runs.run, "scheduled", day)
        except AlreadyRan:
            log.info("the scheduled run of %s was already made", day)

    schedule = NightlySchedule.from_config(config, store, nightly)
    exporter = None
    if config.metrics_listen is not None:
        exporter = MetricsServer(config.metrics_listen, metrics(directory.version))
    await server.start()
    if schedule is not None:
        schedule.start()
    ready = {"oversight": config.code, "listen": config.listen, "metrics": config.metrics_listen}
    print(json.dumps({"event": "ready", **ready}), flush=True)
    await stop.wait()
    began = loop.time()
    why = received[0] if received else "stop requested"
    grace = config.shutdown_grace
    log.info("%s: stopping, health NOT_SERVING, up to %.1f s for calls in flight", why, grace)
    health.stop()
    runs.cancel()
    if schedule is not None:
        await schedule.shutdown()
    await server.stop(grace=grace)
    if exporter is not None:
        exporter.close()
    if not await asyncio.to_thread(runs.idle, max(grace - (loop.time() - began), 1.0)):
        log.warning("a reconciliation run was still finishing at the end of the grace period")
    store.close()
    took = loop.time() - began
    log.info("stopped cleanly in %.2f s", took)
    stopped = {"event": "stopped", "oversight": config.code, "signal": why}
    print(json.dumps({**stopped, "seconds": round(took, 3)}), flush=True)


def run(config: OversightConfig) -> int:
    logs.configure(config.code, config.log_format)
    asyncio.run(serve(config))
    return 0
