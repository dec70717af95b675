"""Fetching what the reports are made from, as the oversight node (its own certificate): every
registry's public records at once, and the oversight node's reconciliation runs with their
signed results verified.

Credentials come from a local federation's ``federation.json`` (the oversight credential it
lists) or, on the oversight host, from the oversight node's own configuration, as
``regfed reconcile`` finds them. The registries to read are those of the signed directory that
still hold units (suspended ones too; removed ones not), at the endpoints it lists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc

from regfed.certs.directory import Directory
from regfed.certs.documents import DocumentRefused
from regfed.certs.identity import Role
from regfed.gateway._generated.report.v1 import report_pb2, report_pb2_grpc
from regfed.gateway.daemon import load_directory
from regfed.gateway.transport import MAX_MESSAGE_BYTES, channel_credentials
from regfed.local.client import TransferFailed, refusal
from regfed.local.federation import Federation
from regfed.local.oversight import OversightClient
from regfed.oversight.config import OversightConfig
from regfed.oversight.reconciler import targets_of

from .records import RegistryRecords, RunRecord
from .stream import RecordsRefused, read_records

#: Seconds a registry's whole stream may take once connected (a node that stalls mid-stream
#: makes the publication wait this long at most, then counts as not answering).
STREAM_DEADLINE = 600.0
#: Runs of the reconciliation report, newest first.
RUNS = 20
#: Registries read at once.
MAX_PARALLEL = 16
#: (registry, what happened): "records" when read, "missing" when not.
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Source:
    """Where and as whom to read: the oversight credential, the directory, the oversight node."""

    credentials: grpc.ChannelCredentials
    directory: Directory
    oversight: Callable[[], OversightClient]
    #: Where to reach each registry (code -> host:port): the directory's endpoints.
    endpoints: dict[str, str]


def _endpoints(directory: Directory) -> dict[str, str]:
    return {t.code: t.endpoint for t in targets_of(directory)}


def source_from_federation(federation: Federation, timeout: float) -> Source:
    registry = federation.registries[0]
    chain, key = federation.credential(registry, Role.OVERSIGHT)
    credentials = channel_credentials(
        federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes()
    )
    directory = federation.directory()
    return Source(
        credentials,
        directory,
        lambda: OversightClient(federation, Role.OVERSIGHT, timeout=timeout),
        _endpoints(directory),
    )


def source_from_config(config: OversightConfig, timeout: float) -> Source:
    ca, cert, key = (p.read_bytes() for p in (config.ca, config.certificate, config.key))
    directory = load_directory(config)
    return Source(
        channel_credentials(ca, cert, key),
        directory,
        lambda: OversightClient.from_config(config, timeout=timeout),
        _endpoints(directory),
    )


def fetch_one(
    code: str, endpoint: str, credentials: grpc.ChannelCredentials, timeout: float
) -> RegistryRecords:
    """One registry's records, or :class:`RecordsRefused` saying why not."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.secure_channel(endpoint, credentials, options) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise RecordsRefused(
                code, f"UNREACHABLE: no connection to {endpoint} within {timeout:g} s"
            ) from None
        stub = report_pb2_grpc.PublicRecordsStub(channel)
        try:
            parts = stub.Records(report_pb2.RecordsRequest(), timeout=STREAM_DEADLINE)
            return read_records(parts, code)
        except grpc.RpcError as error:
            failed = refusal(error)
            raise RecordsRefused(code, f"{failed.code}: {failed.message}") from None


def fetch_records(
    source: Source, timeout: float, progress: Progress | None = None
) -> tuple[dict[str, RegistryRecords], dict[str, str]]:
    """Every registry's records, read at once: (records by registry, why each other one is
    missing)."""
    records: dict[str, RegistryRecords] = {}
    missing: dict[str, str] = {}

    def one(code: str) -> None:
        try:
            records[code] = fetch_one(code, source.endpoints[code], source.credentials, timeout)
            if progress is not None:
                progress(code, "records")
        except RecordsRefused as refused:
            missing[code] = refused.reason
            if progress is not None:
                progress(code, "missing")

    workers = max(1, min(MAX_PARALLEL, len(source.endpoints)))
    with ThreadPoolExecutor(workers, thread_name_prefix="regfed-report") as pool:
        for future in [pool.submit(one, code) for code in sorted(source.endpoints)]:
            future.result()
    return records, missing


def _run(client: OversightClient, row: dict[str, Any]) -> RunRecord:
    kinds: tuple[tuple[str, int], ...] = ()
    verified = False
    if row.get("signature"):
        # What the report says of a finished run comes from its signed result, verified
        # against the oversight key pinned in the directory, not from the listing.
        document = client.show(str(row["run_id"]))
        found = (document.get("result") or {}).get("discrepancies") or []
        kinds = tuple(sorted(Counter(str(d.get("kind")) for d in found).items()))
        verified = True
        row = {
            **row,
            "status": document.get("status"),
            "finished_at": document.get("finished_at"),
            "registries": document.get("registries") or [],
            "missing": [m.get("registry") for m in document.get("missing") or []],
            "discrepancies": len(found),
        }
    return RunRecord(
        run_id=str(row["run_id"]),
        sequence=int(row["sequence"]),
        trigger=str(row["trigger"]),
        status=str(row["status"]),
        started_at=str(row["started_at"]),
        finished_at=str(row.get("finished_at") or ""),
        registries=tuple(sorted(str(r) for r in row.get("registries") or ())),
        missing=tuple(sorted(str(m) for m in row.get("missing") or ())),
        discrepancies=int(row.get("discrepancies") or 0),
        kinds=kinds,
        verified=verified,
    )


def fetch_runs(source: Source, limit: int = RUNS) -> list[RunRecord]:
    """The oversight node's latest runs, each signed result verified; raises
    :class:`RecordsRefused` (registry: the oversight node's code) when it cannot be read."""
    code = next((m.code for m in source.directory.members if m.role is Role.OVERSIGHT), "")
    try:
        with source.oversight() as client:
            return [_run(client, row) for row in client.runs(limit)]
    except TransferFailed as failed:
        raise RecordsRefused(code, f"{failed.code}: {failed.message}") from None
    except DocumentRefused as refused:
        raise RecordsRefused(code, f"a run's result does not verify: {refused}") from None


__all__ = [
    "RUNS",
    "STREAM_DEADLINE",
    "Source",
    "fetch_one",
    "fetch_records",
    "fetch_runs",
    "source_from_config",
    "source_from_federation",
]
