"""A node's metrics: counts from committed status changes, gauges read at scrape time."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY, make_wsgi_app

from regfed.gateway.changes import TransferChange
from regfed.gateway.metrics import NodeMetrics, only_metrics, parse_listen

NOW = datetime(2026, 11, 23, 8, 1, 0, tzinfo=UTC).timestamp()


def value(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_transfer_is_counted_once_by_its_final_status_and_once_settled() -> None:
    metrics = NodeMetrics()
    source = [
        TransferChange("t", "source", "NY", "proposed", False, None),
        TransferChange("t", "source", "NY", "completed", False, "proposed"),
        TransferChange("t", "source", "NY", "completed", True, "completed"),
    ]
    for change in source:
        metrics.transfer_changed([change])
    metrics.transfer_changed([TransferChange("u", "local", "PA", "rejected", True, None, "X")])
    total = "regfed_transfers_total"
    assert value(metrics, total, side="source", status="completed") == 1
    assert value(metrics, total, side="local", status="rejected") == 1
    assert value(metrics, total, side="destination", status="completed") == 0  # present at 0
    assert value(metrics, "regfed_transfers_started_total", side="source") == 1
    assert value(metrics, "regfed_transfers_settled_total", side="source") == 1


def test_rpc_timings_and_send_failures_have_their_labels() -> None:
    metrics = NodeMetrics()
    metrics.rpc_done("peer", "Exchange", "OK", 0.003)
    metrics.send_failed("NY", "UNAVAILABLE")
    labels = {"service": "peer", "method": "Exchange", "code": "OK"}
    assert value(metrics, "regfed_rpc_duration_seconds_count", **labels) == 1
    assert value(metrics, "regfed_rpc_duration_seconds_bucket", **labels, le="0.005") == 1
    assert value(metrics, "regfed_peer_send_failures_total", peer="NY", code="UNAVAILABLE") == 1


def test_in_flight_and_its_oldest_age_are_read_at_scrape_time() -> None:
    reads: list[int] = []

    def in_flight() -> Iterable[tuple[str, int, str | None]]:
        reads.append(1)
        return [("source", 2, "2026-11-23T08:00:00.000000Z")]

    metrics = NodeMetrics(in_flight, lambda: 3, clock=lambda: NOW)
    assert reads == []  # nothing is read until a scrape
    assert value(metrics, "regfed_transfers_in_flight", side="source") == 2
    assert value(metrics, "regfed_transfers_in_flight", side="destination") == 0
    oldest = "regfed_transfers_oldest_in_flight_age_seconds"
    assert value(metrics, oldest, side="source") == 60
    assert value(metrics, oldest, side="destination") == 0
    assert value(metrics, "regfed_directory_version") == 3


def test_the_metrics_are_not_on_the_process_wide_registry() -> None:
    NodeMetrics().transfer_changed([TransferChange("t", "source", "NY", "proposed", False, None)])
    assert REGISTRY.get_sample_value("regfed_transfers_started_total", {"side": "source"}) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
        (":9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
    ],
)
def test_a_listen_address_without_a_host_is_loopback(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "127.0.0.1:70000"])
def test_a_listen_address_without_a_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="metrics_listen"):
        parse_listen(text)


def call(app: Any, path: str) -> tuple[str, bytes]:
    seen: list[str] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": ""}
    environ["wsgi.input"] = io.BytesIO()
    body = b"".join(app(environ, lambda status, _headers: seen.append(status)))
    return seen[0], body


def test_the_exporter_answers_metrics_and_nothing_else() -> None:
    app = only_metrics(make_wsgi_app(NodeMetrics().registry))
    status, body = call(app, "/metrics")
    assert status.startswith("200") and b"regfed_transfers_total" in body
    for path in ("/", "/favicon.ico", "/metrics/x"):
        assert call(app, path)[0].startswith("404")
