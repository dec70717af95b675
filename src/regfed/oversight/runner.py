"""Runs of reconciliation as the oversight node keeps them: one at a time, each begun in the
durable run table, read over the network, judged, signed and stored; and each registry's
verdict (its disputed blocks, or a release) derived from the newest run that may be served.

Statuses: ``incomplete`` when a registry could not be read (nothing is concluded, nothing
released); ``inconsistent`` when discrepancies remain after explanation; ``completed`` when
clean, or ``completed_after_intervention`` when clean after an administrator recorded a
resolution of the inconsistent run before it; ``failed`` when the run itself broke.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.certs.directory import Directory
from regfed.certs.documents import SignedDocument, sign_document
from regfed.gateway.verdicts import VERDICT_FORMAT
from regfed.reconciliation import ReconciliationResult

from .reconciler import Outcome, Progress, Reconciler, Target, _quiet, targets_of
from .runs import RunRow, RunStore

log = logging.getLogger("regfed.oversight")

RESULT_FORMAT = "regfed-reconciliation/1"
CLEAN_STATUSES = frozenset({"completed", "completed_after_intervention"})


class RunInProgress(RuntimeError):
    code = "RUN_IN_PROGRESS"


def utc_text(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time at a glance, unique by its random tail."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"run-{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def disputed_blocks(result: ReconciliationResult) -> dict[str, list[dict[str, Any]]]:
    """Per registry, the serial ranges it holds that an unexplained discrepancy names."""
    out: dict[str, set[tuple[str, str, str, int, int, int]]] = {}
    for d in result.discrepancies:
        if d.start is None or d.end is None:
            continue
        holders = {p.registry for p in d.pieces} or set(d.registries)
        for registry in holders:
            out.setdefault(registry, set()).add(
                (d.issuer, d.program, d.unit_type, d.vintage, d.start, d.end)
            )
    keys = ("issuer", "program", "unit_type", "vintage", "start", "end")
    return {r: [dict(zip(keys, b, strict=True)) for b in sorted(v)] for r, v in out.items()}


class RunManager:
    """The oversight node's runs. Thread-safe; reconciliation itself runs on the caller's
    thread (blocking gRPC), so async callers use ``asyncio.to_thread``."""

    def __init__(
        self,
        code: str,
        store: RunStore,
        directory: Callable[[], Directory],
        signing_key: ed25519.Ed25519PrivateKey,
        credentials: grpc.ChannelCredentials,
        *,
        settlement_limit_s: float,
        connect_timeout: float,
        between_reads: Callable[[str], None] | None = None,
    ) -> None:
        self.code = code
        self.store = store
        self.directory = directory
        self.signing_key = signing_key
        self.credentials = credentials
        self.settlement_limit_s = settlement_limit_s
        self.connect_timeout = connect_timeout
        self.between_reads = between_reads
        self._lock = threading.Lock()
        self._current: str | None = None
        self._reconciler: Reconciler | None = None
        self._verdicts: dict[str, dict[str, Any]] = {}

    def run(
        self, trigger: str, scheduled_for: date | None = None, progress: Progress = _quiet
    ) -> RunRow:
        """Run now. An on-demand run is refused while another runs (``RunInProgress``); a
        scheduled one waits for it."""
        if not self._lock.acquire(blocking=trigger == "scheduled"):
            raise RunInProgress(
                f"run {self._current} is in progress; wait for it and see `regfed reconcile show "
                f"latest`, or try again when it has finished"
            )
        try:
            row = self.store.begin(trigger, scheduled_for, run_id=new_run_id())
            self._current = row.run_id
            try:
                return self._run(row, progress)
            except Exception as error:
                log.exception("run %s failed", row.run_id)
                self.store.fail(row.run_id, f"{type(error).__name__}: {error}"[:2000])
                raise
        finally:
            self._current = None
            self._reconciler = None
            self._lock.release()

    def idle(self, timeout: float) -> bool:
        """Wait until no run is in progress (at most ``timeout`` seconds)."""
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        self._lock.release()
        return True

    def cancel(self) -> None:
        """Cut a run in flight short (the node is stopping): it ends incomplete."""
        reconciler = self._reconciler
        if reconciler is not None:
            reconciler.cancel()

    def _run(self, row: RunRow, progress: Progress) -> RunRow:
        directory = self.directory()
        targets = targets_of(directory)
        started = utc_text()
        reconciler = Reconciler(
            self.credentials,
            settlement_limit_s=self.settlement_limit_s,
            connect_timeout=self.connect_timeout,
            progress=progress,
            between_reads=self.between_reads,
        )
        self._reconciler = reconciler
        outcome = reconciler.run(row.run_id, targets)
        if reconciler.cancelled:
            outcome.missing = outcome.missing or {
                t.code: "CANCELLED: the oversight node stopped during the run" for t in targets
            }
        follows: str | None = None
        if outcome.missing:
            status = "incomplete"
        elif outcome.result is not None and outcome.result.clean:
            status, follows = self.store.status_for_clean_run()
        else:
            status = "inconsistent"
        progress("sign", "", 0, 1)
        document = self._document(row, status, follows, started, directory, targets, outcome)
        signed = sign_document(document, self.signing_key)
        counts = dict(outcome.result.counts) if outcome.result is not None else {}
        finished = self.store.finish(
            row.run_id,
            status,
            signed.payload,
            signed.signature,
            signed.key_id,
            registries=[t.code for t in targets],
            missing=sorted(outcome.missing),
            counts=counts,
            discrepancies=len(outcome.result.discrepancies) if outcome.result else 0,
            follows_up=follows,
        )
        log.info(
            "run %s (%s) %s: %d discrepancies, %d explained, missing %s",
            row.run_id,
            row.trigger,
            status,
            len(outcome.result.discrepancies) if outcome.result else 0,
            len(outcome.result.explained) if outcome.result else 0,
            sorted(outcome.missing) or "none",
        )
        return finished

    def _document(
        self,
        row: RunRow,
        status: str,
        follows: str | None,
        started: str,
        directory: Directory,
        targets: list[Target],
        outcome: Outcome,
    ) -> dict[str, Any]:
        result = outcome.result
        return {
            "format": RESULT_FORMAT,
            "oversight": self.code,
            "run_id": row.run_id,
            "sequence": row.sequence,
            "trigger": row.trigger,
            "scheduled_for": row.scheduled_for.isoformat() if row.scheduled_for else None,
            "status": status,
            "follows_resolution_of": follows,
            "started_at": started,
            "finished_at": utc_text(),
            "directory_version": directory.version,
            "settlement_limit_s": self.settlement_limit_s,
            "registries": sorted(t.code for t in targets),
            "missing": [
                {"registry": r, "reason": why} for r, why in sorted(outcome.missing.items())
            ],
            "positions": outcome.positions,
            "windows": outcome.windows,
            "result": result.to_dict() if result is not None else None,
            "verdicts": disputed_blocks(result)
            if result is not None and not outcome.missing
            else {},
        }

    # -- what registries fetch -----------------------------------------------------------------

    def verdict(self, registry: str) -> SignedDocument | None:
        """``registry``'s verdict from the newest run that may be served, signed; None when
        there is none (no such run yet, or the registry was not part of it)."""
        row = self.store.latest_verdict_run()
        if row is None:
            return None
        document = self._verdicts.get(row.run_id)
        if document is None:
            if row.document is None:
                return None
            document = json.loads(row.document)
            self._verdicts = {row.run_id: document}  # only the newest is ever asked for
        if registry not in document.get("registries", []):
            return None
        release = row.status in CLEAN_STATUSES
        body = {
            "format": VERDICT_FORMAT,
            "oversight": self.code,
            "run_id": row.run_id,
            "sequence": row.sequence,
            "status": row.status,
            "registry": registry,
            "finished_at": document.get("finished_at"),
            "release": release,
            "disputed": [] if release else document.get("verdicts", {}).get(registry, []),
        }
        return sign_document(body, self.signing_key)
