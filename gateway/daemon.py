"""One registry node as a process: its database, its gateway, its gRPC port, its re-drive loop.

On start it upgrades the database, verifies the signed directory against the federation CA
(refusing one older than it has seen), serves, and re-drives every transfer that is not settled.
SIGTERM or SIGINT stop it cleanly within ``shutdown_grace`` (health NOT_SERVING first, calls in
flight finish); SIGKILL at any point loses nothing committed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from grpc_reflection.v1alpha import reflection

from regfed.certs.authority import load_signing_key
from regfed.certs.directory import Directory, DirectoryError
from regfed.node import open_registry, program_catalog
from regfed.oversight.config import OversightConfig

from . import logs
from ._generated.client.v1 import client_pb2_grpc
from ._generated.health.v1 import health_pb2_grpc
from ._generated.peer.v1 import peer_pb2_grpc
from ._generated.query.v1 import query_pb2_grpc
from ._generated.reconciliation.v1 import reconciliation_pb2_grpc
from ._generated.report.v1 import report_pb2_grpc
from .crash import protocol_clock
from .dispatch import Dispatcher
from .metrics import MetricsServer, NodeMetrics
from .query_service import REGISTRY_QUERY_SERVICE, RegistryQueryService
from .reconcile_service import RECONCILIATION_SERVICE, ReconciliationService
from .records_service import PUBLIC_RECORDS_SERVICE, PublicRecordsService
from .service import DEFAULT_ASK_AFTER, DEFAULT_HOLD_SECONDS, Gateway
from .store import GatewayRecords
from .transport import (
    CLIENT_SERVICE,
    HEALTH_SERVICE,
    MAX_MESSAGE_BYTES,
    PEER_SERVICE,
    Callers,
    HealthService,
    PeerService,
    RegistryService,
    channel_credentials,
    server_credentials,
)
from .verdicts import VerdictPoller
from .watch import TransferWatch
from .workers import Workers

log = logging.getLogger("regfed.node")


@dataclass(frozen=True)
class NodeConfig:
    registry: str
    database: str
    listen: str
    ca: Path
    certificate: Path
    key: Path
    signing_key: Path
    directory: Path
    hold_seconds: float = DEFAULT_HOLD_SECONDS
    ask_after: float = DEFAULT_ASK_AFTER
    redrive_interval: float = 1.0
    reflection: bool = False
    #: Revocation lists of the registry intermediates whose people may call this node.
    crls: tuple[Path, ...] = ()
    #: The log on stderr: ``text`` for people, ``json`` for one object per line.
    log_format: str = "text"
    #: Where Prometheus metrics are served over plain HTTP, e.g. ``127.0.0.1:9464`` (a bare
    #: port means loopback); None: not served.
    metrics_listen: str | None = None
    #: A JSON list of program rules overriding the built-in programs (docs/ledger.md), as
    #: ``regfed ledger --programs`` takes; None: the built-in rules.
    programs: Path | None = None
    #: Seconds a stopping node (SIGTERM) gives calls in flight before cancelling them; whatever
    #: is cancelled then is re-driven after a restart, so this bounds only how long a stop takes.
    shutdown_grace: float = 10.0
    #: Seconds between asks for this registry's reconciliation verdict at the oversight node
    #: (quarantine of disputed blocks, release after a clean run); 0: never ask.
    verdict_poll: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return {
            k: str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "crls" else v
            for k, v in self.__dict__.items()
        }


def load_directory(config: NodeConfig | OversightConfig) -> Directory:
    ca = x509.load_pem_x509_certificate(config.ca.read_bytes())
    return Directory.verify(json.loads(config.directory.read_text()), ca)


class DirectoryWatch:
    """Installs a newer signed directory when its file changes; an older one is refused."""

    def __init__(self, config: NodeConfig, gateway: Gateway) -> None:
        self.config = config
        self.gateway = gateway
        self.seen = config.directory.stat().st_mtime_ns

    def poll(self) -> None:
        mtime = self.config.directory.stat().st_mtime_ns
        if mtime == self.seen:
            return
        self.seen = mtime
        try:
            directory = load_directory(self.config)
            self.gateway.install_directory(directory)
            log.info("directory version %d installed", directory.version)
        except (DirectoryError, ValueError, OSError) as error:
            log.error(
                "directory file refused, keeping version %d: %s",
                self.gateway.directory.version,
                error,
            )


def stop_on_signals(stop: asyncio.Event) -> list[str]:
    """SIGTERM and SIGINT set ``stop`` from now on; the list returned names the signal(s)
    received (for the log and the ``stopped`` event)."""
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return received


def grpc_server() -> grpc.aio.Server:
    """A node's gRPC server, with the federation's message size limits."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return grpc.aio.server(options=options)


def listen_secure(server: grpc.aio.Server, listen: str, ca: bytes, cert: bytes, key: bytes) -> None:
    """Mutual TLS only: every caller presents a certificate chaining to the federation CA."""
    port = server.add_secure_port(listen, server_credentials(ca, cert, key))
    if port == 0:
        raise OSError(f"cannot listen on {listen}: is another node using that port?")


async def serve(config: NodeConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before anything else: a SIGTERM while the database is upgraded or opened is then noted
    # and honoured once the node is up (a clean stop), instead of killing it mid-migration.
    received = stop_on_signals(stop)
    registry = open_registry(
        config.database, config.registry, programs=program_catalog(config.programs)
    )
    gateway = Gateway(
        registry,
        load_signing_key(config.signing_key),
        load_directory(config),
        hold_seconds=config.hold_seconds,
        ask_after=config.ask_after,
        clock=protocol_clock(),
    )
    ca, cert, key = (p.read_bytes() for p in (config.ca, config.certificate, config.key))
    store = registry.ledger.store
    # SQLite has one writer anyway: group its inputs into one commit. PostgreSQL keeps one
    # transaction per input, so row locks are held no longer than one decision needs.
    workers = Workers(batch=store.batch if store.sqlite else None)
    dispatcher = Dispatcher(gateway, workers, channel_credentials(ca, cert, key))
    server = grpc_server()
    callers = Callers(config.ca, config.crls)
    peers = PeerService(gateway, workers, callers)
    peer_pb2_grpc.add_PeerServicer_to_server(peers, server)
    settlements = TransferWatch(asyncio.get_running_loop())
    gateway.on_settled = settlements.settled
    clients = RegistryService(gateway, workers, callers, dispatcher.submit, settlements)
    client_pb2_grpc.add_RegistryServicer_to_server(clients, server)
    reconciler = ReconciliationService(gateway, callers)
    reconciliation_pb2_grpc.add_ReconciliationServicer_to_server(reconciler, server)
    queries = RegistryQueryService(gateway, callers)
    query_pb2_grpc.add_RegistryQueryServicer_to_server(queries, server)
    records = PublicRecordsService(gateway, callers)
    report_pb2_grpc.add_PublicRecordsServicer_to_server(records, server)
    health = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if config.reflection:
        names = (
            PEER_SERVICE,
            CLIENT_SERVICE,
            RECONCILIATION_SERVICE,
            REGISTRY_QUERY_SERVICE,
            PUBLIC_RECORDS_SERVICE,
            HEALTH_SERVICE,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
    listen_secure(server, config.listen, ca, cert, key)
    exporter = instrument(
        config.metrics_listen,
        gateway,
        dispatcher,
        peers,
        clients,
        reconciler,
        queries,
        records,
    )
    await server.start()
    # Everything allocated so far (modules, tables, stubs) lives as long as the process: keep
    # it out of the collector's full passes, which otherwise stalled every thread for 60-100 ms
    # under load (measured with gc.callbacks during `regfed bench transfers`; 4-10 ms after).
    gc.freeze()
    watch = DirectoryWatch(config, gateway)
    driver = loop.create_task(dispatcher.redrive_forever(config.redrive_interval, watch.poll))
    verdicts = VerdictPoller(gateway, channel_credentials(ca, cert, key))
    poller = (
        loop.create_task(verdicts.run_forever(config.verdict_poll)) if config.verdict_poll else None
    )
    ready = {"registry": config.registry, "listen": config.listen}
    print(json.dumps({"event": "ready", **ready, "metrics": config.metrics_listen}), flush=True)
    await stop.wait()
    # Stop in the order that leaves nothing half-done: every state change is one committed
    # transaction, and anything not yet sent or answered is re-driven from the database by the
    # next start. So: report NOT_SERVING, refuse new calls, let calls in flight finish (long
    # polls answer at once with what they have), then let background sends finish, all within
    # the grace period; what is still running then is cut off, never half-committed.
    began = loop.time()
    grace = config.shutdown_grace
    why = received[0] if received else "stop requested"
    log.info("%s: stopping, health NOT_SERVING, up to %.1f s for calls in flight", why, grace)
    health.stop()
    settlements.close()
    driver.cancel()
    if poller is not None:
        poller.cancel()
    await server.stop(grace=grace)
    reconciler.close()
    queries.close()
    records.close()
    unsent = await dispatcher.drain(grace - (loop.time() - began))
    if exporter is not None:
        exporter.close()
    await dispatcher.close()
    await verdicts.close()
    workers.close()
    registry.close()
    took = loop.time() - began
    log.info(
        "stopped cleanly in %.2f s (%d background send(s) cut short, re-driven on restart)",
        took,
        unsent,
    )
    stopped = {"event": "stopped", "registry": config.registry, "signal": why}
    print(json.dumps({**stopped, "seconds": round(took, 3), "unsent": unsent}), flush=True)


def instrument(
    listen: str | None,
    gateway: Gateway,
    dispatcher: Dispatcher,
    *services: PeerService
    | RegistryService
    | ReconciliationService
    | RegistryQueryService
    | PublicRecordsService,
) -> MetricsServer | None:
    """Count and time what the node does, and serve it on ``listen``; nothing when None."""
    if listen is None:
        return None
    metrics = NodeMetrics(
        in_flight=lambda: gateway.read(lambda tx: GatewayRecords(tx).in_flight_summary()),
        directory_version=lambda: gateway.directory.version,
    )
    gateway.on_changes = metrics.transfer_changed
    dispatcher.failed = metrics.send_failed
    for service in services:
        service.observe_rpc = metrics.rpc_done
    return MetricsServer(listen, metrics.registry)


def run(config: NodeConfig) -> int:
    logs.configure(config.registry, config.log_format)
    asyncio.run(serve(config))
    return 0
