"""A node's Prometheus metrics, served over plain HTTP on a port of their own (loopback unless
the operator names another address); the gRPC port stays mutual-TLS only.

Nothing here touches the database on the hot path: counters move after a commit, from the
status changes the transaction noted (see :mod:`.changes`), and RPC timings in the service
wrappers. What is in flight is read at scrape time, with one grouped query on an index.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from .changes import TransferChange
from .protocol.status import FINAL

log = logging.getLogger("regfed.metrics")
DEFAULT_HOST = "127.0.0.1"
SIDES = ("source", "destination", "local")
IN_FLIGHT_SIDES = ("source", "destination")
FINAL_STATUSES = tuple(sorted(s.value for s in FINAL))
_FINAL = frozenset(FINAL_STATUSES)
#: RPC latency buckets (seconds): peer calls take milliseconds; a proposal or read that waits
#: for settlement (``wait_ms``) is timed whole, up to its wait.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: (side, transfers not settled, the oldest one's created_at as the ledger writes it).
InFlight = Callable[[], Iterable[tuple[str, int, str | None]]]


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, or just ``port`` (on loopback)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 < int(port) < 65_536:
        raise ValueError(f"metrics_listen {text!r} is not host:port")
    return host, int(port)


class NodeMetrics:
    """The metrics of one node, on a registry of their own (not the process-wide default)."""

    def __init__(
        self,
        in_flight: InFlight | None = None,
        directory_version: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self.transfers = Counter(
            "regfed_transfers",
            "Transfers that reached a final status at this node, by side and status",
            ["side", "status"],
            registry=self.registry,
        )
        self.started = Counter(
            "regfed_transfers_started",
            "Transfers first recorded at this node (proposed here, or arrived from a peer)",
            ["side"],
            registry=self.registry,
        )
        self.settled = Counter(
            "regfed_transfers_settled",
            "Transfers settled at this node (nothing more to send or wait for), by side",
            ["side"],
            registry=self.registry,
        )
        self.rpc = Histogram(
            "regfed_rpc_duration_seconds",
            "Time to answer a gRPC call, by service, method and gRPC status",
            ["service", "method", "code"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.send_failures = Counter(
            "regfed_peer_send_failures",
            "Messages to a peer that were refused or not delivered (re-sent later)",
            ["peer", "code"],
            registry=self.registry,
        )
        # Reconciliation (next): its runs and findings get their metrics here, on this same
        # registry, e.g. regfed_reconciliation_runs_total{result} and
        # regfed_reconciliation_last_success_timestamp_seconds.
        for side in SIDES:
            self.started.labels(side)
            self.settled.labels(side)
            for status in FINAL_STATUSES:
                self.transfers.labels(side, status)
        self.registry.register(_StateCollector(in_flight, directory_version, clock))

    def transfer_changed(self, changes: Iterable[TransferChange]) -> None:
        """After a commit, on the writer thread: a few increments, no I/O."""
        for change in changes:
            if change.previous is None:
                self.started.labels(change.side).inc()
            if change.status_changed and change.status in _FINAL:
                self.transfers.labels(change.side, change.status).inc()
            if change.settled:
                self.settled.labels(change.side).inc()

    def rpc_done(self, service: str, method: str, code: str, seconds: float) -> None:
        self.rpc.labels(service, method, code).observe(seconds)

    def send_failed(self, peer: str, code: str) -> None:
        self.send_failures.labels(peer, code).inc()


def _age(created_at: str | None, now: float) -> float:
    if not created_at:
        return 0.0
    return max(0.0, now - datetime.fromisoformat(created_at).timestamp())


class _StateCollector:
    """Gauges read at scrape time: what is in flight and since when, the directory version."""

    def __init__(
        self,
        in_flight: InFlight | None,
        directory_version: Callable[[], int] | None,
        clock: Callable[[], float],
    ) -> None:
        self.in_flight = in_flight
        self.directory_version = directory_version
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        if self.in_flight is not None:
            count = GaugeMetricFamily(
                "regfed_transfers_in_flight",
                "Transfers not yet settled at this node, by side",
                labels=["side"],
            )
            oldest = GaugeMetricFamily(
                "regfed_transfers_oldest_in_flight_age_seconds",
                "Age of the oldest transfer not yet settled at this node (0 when none), by side",
                labels=["side"],
            )
            rows = {side: (n, first) for side, n, first in self.in_flight()}
            now = self.clock()
            for side in IN_FLIGHT_SIDES:
                n, first = rows.get(side, (0, None))
                count.add_metric([side], n)
                oldest.add_metric([side], _age(first, now) if n else 0.0)
            yield count
            yield oldest
        if self.directory_version is not None:
            yield GaugeMetricFamily(
                "regfed_directory_version",
                "Version of the signed membership directory this node uses",
                value=self.directory_version(),
            )


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds is not news."""


class _Server(ThreadingWSGIServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Into the node's log (JSON when asked), not a bare traceback on stderr.
        log.warning("metrics request from %s failed", client_address, exc_info=True)


def only_metrics(app: Callable[..., Any]) -> Callable[..., Any]:
    """The exporter answers ``/metrics`` and nothing else (404)."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics is served here\n"]
        try:
            return app(environ, start_response)
        except Exception:  # a failed collector must not print a bare traceback on stderr
            log.exception("metrics scrape failed")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"scrape failed; see the node's log\n"]

    return serve


class MetricsServer:
    """Serves one registry's metrics over HTTP on ``listen`` (a thread of its own)."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        host, port = parse_listen(listen)
        family, *_rest, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        server = type("_FamilyServer", (_Server,), {"address_family": family})
        try:
            self.httpd: WSGIServer = make_server(
                str(address[0]), port, only_metrics(make_wsgi_app(registry)), server, _Quiet
            )
        except OSError as error:
            raise OSError(f"cannot serve metrics on {listen}: {error}") from None
        if not ipaddress.ip_address(str(address[0])).is_loopback:
            log.warning(
                "metrics served on %s, beyond loopback: plain HTTP, no authentication", listen
            )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="regfed-metrics", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
