"""One reconciliation run over the network: signed snapshots in, a result out.

The run opens one ``Snapshot`` stream per registry (each node takes one consistent read and
records its journal position), merges them through the sans-IO core as they arrive (neither side
holds a whole registry), then fetches each node's journal after its position up to now and lets
:func:`regfed.reconciliation.explain` account for transfers that settled between two reads.
Any registry that cannot be reached, or whose stream breaks or does not verify, makes the run
``incomplete``: its name and the reason are kept; nothing is concluded from the others.

Blocking gRPC (the sync API): the core pulls from the streams lazily through ``heapq.merge``,
and gRPC's flow control holds each node back to what the merge has consumed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.certs.directory import Directory, MemberStatus
from regfed.certs.identity import Role
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2, reconciliation_pb2_grpc
from regfed.gateway.snapshot_stream import read_journal, read_snapshot
from regfed.gateway.transport import MAX_MESSAGE_BYTES
from regfed.reconciliation import (
    JournalWindow,
    MalformedSnapshot,
    ReconciliationResult,
    RegistrySnapshot,
    explain,
    reconcile,
    records_wanted,
)

#: (stage, registry, done, total): total 0 when not known in advance.
Progress = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class Target:
    """A registry to read: where it listens and the signing key pinned for it."""

    code: str
    endpoint: str
    key: ed25519.Ed25519PublicKey
    key_id: str


def targets_of(directory: Directory) -> list[Target]:
    """Every registry of the directory that still holds units: suspended ones too (a suspended
    member's units exist and must be accounted for); removed ones not."""
    return [
        Target(m.code, m.endpoint, m.public_key, m.key_id)
        for m in directory.members
        if m.role is Role.REGISTRY and m.status is not MemberStatus.REMOVED
    ]


@dataclass
class Outcome:
    """What a run found: ``missing`` (registry -> why) empty, and a result; or missing ones."""

    missing: dict[str, str] = field(default_factory=dict)
    result: ReconciliationResult | None = None
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)


def _quiet(stage: str, registry: str, done: int, total: int) -> None:
    pass


class Reconciler:
    def __init__(
        self,
        credentials: grpc.ChannelCredentials,
        *,
        settlement_limit_s: float,
        connect_timeout: float = 10.0,
        progress: Progress = _quiet,
        between_reads: Callable[[str], None] | None = None,
    ) -> None:
        self.credentials = credentials
        self.settlement_limit_s = settlement_limit_s
        self.connect_timeout = connect_timeout
        self.progress = progress
        #: Called with each registry's code once its read has begun (a test hook: it lets a
        #: test settle a transfer between two registries' reads, deterministically).
        self.between_reads = between_reads
        self._calls: list[Any] = []
        self.cancelled = False

    def cancel(self) -> None:
        """Stop a run in flight from another thread: its streams end, the run is incomplete."""
        self.cancelled = True
        for call in list(self._calls):
            call.cancel()

    def run(self, run_id: str, targets: list[Target]) -> Outcome:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        channels = {
            t.code: grpc.secure_channel(t.endpoint, self.credentials, options) for t in targets
        }
        calls = self._calls
        try:
            return self._run(run_id, targets, channels, calls)
        finally:
            for call in calls:
                call.cancel()
            for channel in channels.values():
                channel.close()

    def _run(
        self,
        run_id: str,
        targets: list[Target],
        channels: dict[str, grpc.Channel],
        calls: list[Any],
    ) -> Outcome:
        outcome = Outcome()
        for i, t in enumerate(targets):
            self.progress("connect", t.code, i, len(targets))
            try:
                grpc.channel_ready_future(channels[t.code]).result(timeout=self.connect_timeout)
            except grpc.FutureTimeoutError:
                outcome.missing[t.code] = (
                    f"UNREACHABLE: no connection to {t.endpoint} within {self.connect_timeout:g} s"
                )
        if outcome.missing:
            return outcome

        snapshots: list[RegistrySnapshot] = []
        infos: dict[str, Any] = {}

        def open_snapshot(code: str) -> Any:
            stub = reconciliation_pb2_grpc.ReconciliationStub(channels[code])
            call = stub.Snapshot(reconciliation_pb2.SnapshotRequest(run_id=run_id))
            calls.append(call)
            return call

        # A node starts its read when its call arrives: open every call first, so that the
        # nodes' first parts (their issuance ranges) take the time of one node, not the sum.
        # Unless a hook must run between one registry's read and the next.
        opened = {t.code: open_snapshot(t.code) for t in targets if self.between_reads is None}
        for t in targets:
            call = opened[t.code] if t.code in opened else open_snapshot(t.code)
            try:
                snapshot, info = read_snapshot(
                    _parts(call, t.code), registry=t.code, run_id=run_id, key=t.key, key_id=t.key_id
                )
            except MalformedSnapshot as error:
                outcome.missing[t.code] = error.reason
                continue
            snapshots.append(snapshot)
            infos[t.code] = info
            if self.between_reads is not None:
                self.between_reads(t.code)
        if outcome.missing:
            return outcome

        stop = threading.Event()
        reporter = threading.Thread(target=self._report_blocks, args=(infos, stop), daemon=True)
        reporter.start()
        try:
            result = reconcile(snapshots, settlement_limit_s=self.settlement_limit_s)
        except MalformedSnapshot as error:
            outcome.missing[error.registry or "?"] = error.reason
            return outcome
        finally:
            stop.set()
            reporter.join()
        unverified = sorted(code for code, info in infos.items() if not info.verified)
        if unverified:  # a reader ends each stream on its trailer; never believe one without
            for code in unverified:
                outcome.missing[code] = "TRUNCATED: the snapshot's trailer was never verified"
            return outcome
        for code, info in infos.items():
            outcome.positions[code] = {
                "journal_position": info.journal_position,
                "journal_hash": info.journal_hash,
                "read_at": info.read_at,
            }

        windows = self._windows(run_id, targets, channels, infos, result, outcome)
        if outcome.missing:
            return outcome
        self.progress("explain", "", 0, len(result.discrepancies))
        outcome.result = explain(result, windows)
        return outcome

    def _report_blocks(self, infos: dict[str, Any], stop: threading.Event) -> None:
        while not stop.wait(0.25):
            self.progress("sweep", "", sum(i.blocks_read for i in infos.values()), 0)
        self.progress("sweep", "", sum(i.blocks_read for i in infos.values()), 0)

    def _windows(
        self,
        run_id: str,
        targets: list[Target],
        channels: dict[str, grpc.Channel],
        infos: dict[str, Any],
        result: ReconciliationResult,
        outcome: Outcome,
    ) -> dict[str, JournalWindow]:
        by_code = {t.code: t for t in targets}
        asked = sorted({tid for d in result.discrepancies for tid in d.transfer_ids})
        windows: dict[str, JournalWindow] = {}
        for i, t in enumerate(targets):
            self.progress("journal", t.code, i, len(targets))
            after = int(infos[t.code].journal_position)
            window = self._journal(run_id, t, channels[t.code], after, asked, outcome)
            if window is not None:
                windows[t.code] = window
        if outcome.missing:
            return windows
        # The other side's records of transfers one window moved.
        for code, ids in sorted(records_wanted(result, windows).items()):
            if code not in windows or not ids:
                continue
            more = self._journal(
                run_id, by_code[code], channels[code], windows[code].upto, sorted(ids), outcome
            )
            if more is not None:
                windows[code] = JournalWindow(
                    code,
                    windows[code].after,
                    more.upto,
                    (*windows[code].moves, *more.moves),
                    {**windows[code].records, **more.records},
                )
        for code, w in windows.items():
            outcome.windows[code] = {"after": w.after, "upto": w.upto, "moves": len(w.moves)}
        return windows

    def _journal(
        self,
        run_id: str,
        t: Target,
        channel: grpc.Channel,
        after: int,
        transfer_ids: list[str],
        outcome: Outcome,
    ) -> JournalWindow | None:
        stub = reconciliation_pb2_grpc.ReconciliationStub(channel)
        request = reconciliation_pb2.JournalRequest(
            run_id=run_id, after=after, transfer_ids=transfer_ids
        )
        try:
            window, _info = read_journal(
                _parts(stub.Journal(request), t.code),
                registry=t.code,
                run_id=run_id,
                key=t.key,
                key_id=t.key_id,
                after=after,
            )
        except MalformedSnapshot as error:
            outcome.missing[t.code] = error.reason
            return None
        return window


def _parts(call: Iterator[Any], registry: str) -> Iterator[Any]:
    """The stream's parts; a broken stream is a registry that could not be read."""
    try:
        yield from call
    except grpc.RpcError as error:
        code = error.code() if hasattr(error, "code") else None
        name = code.name if code is not None else "UNKNOWN"
        details = error.details() if hasattr(error, "details") else str(error)
        raise MalformedSnapshot(registry, f"STREAM_FAILED: {name}: {details}") from None
