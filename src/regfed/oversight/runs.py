"""The oversight node's durable run table: every reconciliation run, its status and its signed
result, and the resolutions administrators record for inconsistent runs.

A run is begun (``running``, with the next ``sequence``), then finished once with its signed
result, or failed. Registry nodes compare sequences to refuse a result older than one they
hold, so a sequence is given in commit order and never reused. The schema (``run_tables``)
keeps the rules that must hold with two writers: one scheduled run per calendar day, unique
sequences, append-only resolutions. SQLAlchemy calls block: an asyncio caller runs them in a
thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import base64
import builtins
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from regfed.node.storage.engine import WRITE, is_sqlite, make_engine, normalize_url

from .run_errors import (
    AlreadyFinished,
    AlreadyRan,
    InvalidRun,
    NotInconsistent,
    RunIdTaken,
    RunStoreUnusable,
    UnknownRun,
)
from .run_tables import (
    COMPLETED,
    COMPLETED_AFTER_INTERVENTION,
    FAILED,
    INCOMPLETE,
    INCONSISTENT,
    RUNNING,
    TRIGGERS,
    create_tables,
    resolutions,
    run_sequence,
    runs,
)

#: Statuses a run may be finished with by :meth:`RunStore.finish` (``failed`` has :meth:`fail`).
FINISH_STATUSES = (COMPLETED, INCONSISTENT, INCOMPLETE, COMPLETED_AFTER_INTERVENTION)
#: Statuses that carry a verdict on the federation; only these are served to registry nodes.
VERDICT_STATUSES = (COMPLETED, INCONSISTENT, COMPLETED_AFTER_INTERVENTION)
LATEST = "latest"
MAX_LIST = 1000
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """``2025-03-09T07:30:00.000Z``: fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex


@dataclass(frozen=True)
class RunRow:
    run_id: str
    sequence: int
    trigger: str
    scheduled_for: date | None
    status: str
    started_at: str
    finished_at: str | None
    registries: tuple[str, ...]
    missing: tuple[str, ...]
    counts: Mapping[str, Any]
    discrepancies: int
    document: bytes | None
    signature: bytes | None
    key_id: str | None
    follows_up: str | None
    reason: str | None

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    def result(self) -> Any:
        """The signed document, parsed (None while running, or for a failed run)."""
        return None if self.document is None else json.loads(self.document)

    def to_dict(self, *, document: bool = False) -> dict[str, Any]:
        """JSON-ready. The document (base64, the exact signed bytes) only when asked: a list of
        runs does not need each result."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "sequence": self.sequence,
            "trigger": self.trigger,
            "scheduled_for": None if self.scheduled_for is None else self.scheduled_for.isoformat(),
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "registries": list(self.registries),
            "missing": list(self.missing),
            "counts": dict(self.counts),
            "discrepancies": self.discrepancies,
            "key_id": self.key_id,
            "signature": _b64(self.signature),
            "follows_up": self.follows_up,
            "reason": self.reason,
        }
        if document:
            out["document"] = _b64(self.document)
        return out


@dataclass(frozen=True)
class Resolution:
    run_id: str
    resolved_by: str
    note: str
    recorded_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "resolved_by": self.resolved_by,
            "note": self.note,
            "recorded_at": self.recorded_at,
        }


class RunStore:
    """Runs in the oversight node's own database (``OversightConfig.database``)."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utc_now) -> None:
        url = normalize_url(url)
        _make_sqlite_folder(url)
        self.engine = make_engine(url)
        self.clock = clock
        try:
            with self._write() as conn:
                create_tables(conn)
        except RunStoreUnusable:
            self.engine.dispose()
            raise
        except OperationalError as error:
            self.engine.dispose()
            shown = make_url(url).render_as_string(hide_password=True)
            reason = str(error.orig or error).strip().splitlines()[0]
            raise RunStoreUnusable(
                f"cannot open the run database {shown}: {reason}", database=shown
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def begin(
        self, trigger: str, scheduled_for: date | None = None, run_id: str | None = None
    ) -> RunRow:
        """A new ``running`` run with the next sequence number. ``scheduled_for`` is the local
        calendar day of a scheduled run's window (required for ``scheduled``, refused for
        ``on_demand``); a second scheduled run of a day raises :class:`AlreadyRan`, whichever
        process asks."""
        if trigger not in TRIGGERS:
            raise InvalidRun(f"trigger {trigger!r} is not one of {', '.join(TRIGGERS)}")
        if (trigger == "scheduled") != (scheduled_for is not None):
            raise InvalidRun("scheduled_for is given for scheduled runs, and only for them")
        run_id = new_run_id() if run_id is None else run_id
        if _RUN_ID.fullmatch(run_id) is None or run_id == LATEST:
            raise InvalidRun(
                f"run id {run_id!r} is not usable: 1 to 64 letters, digits and . _ : - "
                f"(not {LATEST!r})"
            )
        try:
            with self._write() as conn:
                # The counter first: a concurrent begin waits here until this one commits,
                # then sees its row below (PostgreSQL READ COMMITTED reads per statement).
                sequence = conn.execute(
                    update(run_sequence)
                    .values(last=run_sequence.c.last + 1)
                    .returning(run_sequence.c.last)
                ).scalar_one()
                self._refuse_taken(conn, run_id, scheduled_for)
                conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        sequence=sequence,
                        trigger=trigger,
                        scheduled_for=scheduled_for,
                        status=RUNNING,
                        started_at=iso_utc(self.clock()),
                        registries="[]",
                        missing="[]",
                        counts="{}",
                        discrepancies=0,
                    )
                )
                return self._find(conn, run_id)
        except IntegrityError:
            # The schema's word when the check above did not see a racing writer's row.
            with self._read() as conn:
                self._refuse_taken(conn, run_id, scheduled_for)
            raise

    def finish(
        self,
        run_id: str,
        status: str,
        document: bytes,
        signature: bytes,
        key_id: str,
        *,
        registries: Sequence[str],
        missing: Sequence[str] = (),
        counts: Mapping[str, Any],
        discrepancies: int = 0,
        follows_up: str | None = None,
    ) -> RunRow:
        """Record a running run's signed result. ``registries``: every registry the run set
        out to read; ``missing``: those it could not (then, and only then, the status is
        ``incomplete``). ``discrepancies``: how many the result names (0 for ``completed``).
        ``follows_up``: for ``completed_after_intervention``, the resolved inconsistent run,
        which must still be what :meth:`status_for_clean_run` names (it gives both)."""
        _check_finish(status, registries, missing, discrepancies, follows_up)
        if not document or not signature or not key_id:
            raise InvalidRun("a finished run has its document, its signature and the key id")
        try:
            json.loads(document)
        except ValueError:
            raise InvalidRun("the document is not JSON") from None
        with self._write() as conn:
            self._running(conn, run_id)
            if follows_up is not None:
                self._follows_up_the_resolution(conn, follows_up)
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(
                    status=status,
                    finished_at=iso_utc(self.clock()),
                    registries=_json(builtins.list(registries)),
                    missing=_json(builtins.list(missing)),
                    counts=_json(dict(counts)),
                    discrepancies=discrepancies,
                    document=document,
                    signature=signature,
                    key_id=key_id,
                    follows_up=follows_up,
                )
            )
            return self._find(conn, run_id)

    def fail(self, run_id: str, reason: str) -> RunRow:
        """A running run that ended without a result (an error, a stop)."""
        with self._write() as conn:
            self._running(conn, run_id)
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=FAILED, finished_at=iso_utc(self.clock()), reason=reason)
            )
            return self._find(conn, run_id)

    def abandon_interrupted(self) -> builtins.list[str]:
        """Runs left ``running`` by a process that stopped mid-run become ``failed``; their
        ids, oldest first. Call it at start, before any run begins: one oversight node serves a
        run database, so a ``running`` run found then has no one left to finish it."""
        now = iso_utc(self.clock())
        with self._write() as conn:
            ids = conn.scalars(
                select(runs.c.run_id).where(runs.c.status == RUNNING).order_by(runs.c.sequence)
            ).all()
            conn.execute(
                update(runs)
                .where(runs.c.status == RUNNING)
                .values(
                    status=FAILED,
                    finished_at=now,
                    reason=f"interrupted: the oversight node stopped before the run finished "
                    f"(found at start, {now})",
                )
            )
        return builtins.list(ids)

    def resolve(self, run_id: str, resolved_by: str, note: str) -> Resolution:
        """Record an administrator's resolution of an inconsistent run (append-only; a run may
        get several). The next clean run then ends ``completed_after_intervention``."""
        if not resolved_by.strip() or not note.strip():
            raise InvalidRun("a resolution names who resolved it and says what was done")
        recorded = Resolution(run_id, resolved_by, note, iso_utc(self.clock()))
        with self._write() as conn:
            row = self._find(conn, run_id)
            if row.status != INCONSISTENT:
                raise NotInconsistent(
                    f"run {run_id} is {row.status}, not inconsistent: only an inconsistent run "
                    "is resolved",
                    run_id=run_id,
                    status=row.status,
                )
            conn.execute(resolutions.insert().values(**recorded.to_dict()))
        return recorded

    # -- reading -----------------------------------------------------------------------------

    def get(self, run: str) -> RunRow:
        """A run by id, or ``latest``: the one with the highest sequence, whatever its status."""
        with self._read() as conn:
            if run != LATEST:
                return self._find(conn, run)
            found = conn.execute(select(runs).order_by(runs.c.sequence.desc()).limit(1)).first()
        if found is None:
            raise UnknownRun("no run has been recorded yet", run=run)
        return _to_run(found)

    def list(self, limit: int = 50) -> builtins.list[RunRow]:
        """The newest ``limit`` runs (by sequence), newest first."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidRun(f"limit {limit} is not between 1 and {MAX_LIST}")
        with self._read() as conn:
            found = conn.execute(select(runs).order_by(runs.c.sequence.desc()).limit(limit))
            return [_to_run(r) for r in found]

    def scheduled_on(self, day: date) -> RunRow | None:
        """The scheduled run of a calendar day, in any status (a failed one counts: the day had
        its run), or None."""
        with self._read() as conn:
            found = conn.execute(select(runs).where(runs.c.scheduled_for == day)).first()
        return None if found is None else _to_run(found)

    def resolutions(self, run_id: str) -> builtins.list[Resolution]:
        with self._read() as conn:
            self._find(conn, run_id)
            found = conn.execute(
                select(resolutions).where(resolutions.c.run_id == run_id).order_by(resolutions.c.id)
            )
            return [Resolution(r.run_id, r.resolved_by, r.note, r.recorded_at) for r in found]

    def latest_verdict_run(self) -> RunRow | None:
        """The run with the highest sequence whose status is a verdict (completed, inconsistent,
        completed_after_intervention): what registry nodes are served. Incomplete and failed
        runs never are, and running ones have no result yet."""
        with self._read() as conn:
            found = self._latest_verdict(conn)
        return None if found is None else _to_run(found)

    def status_for_clean_run(self) -> tuple[str, str | None]:
        """The status a run that found no discrepancy ends with, and the run it follows up.

        ``("completed_after_intervention", R)`` when the latest verdict run (as
        :meth:`latest_verdict_run`: incomplete, failed and running runs are passed over, since
        they say nothing of the federation) is R, R is inconsistent, and at least one resolution
        of R has been recorded; otherwise ``("completed", None)``. So a clean run right after an
        unresolved inconsistent run is plain ``completed``: nobody recorded an intervention.
        """
        with self._read() as conn:
            return self._clean_run_status(conn)

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``, the database's write lock)."""
        with self.engine.connect() as raw:
            conn = raw.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin() as tx:
            yield conn
            tx.rollback()

    def _find(self, conn: Connection, run_id: str) -> RunRow:
        found = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
        if found is None:
            raise UnknownRun(f"no run {run_id}", run_id=run_id)
        return _to_run(found)

    def _running(self, conn: Connection, run_id: str) -> None:
        query = select(runs.c.status).where(runs.c.run_id == run_id)
        if not is_sqlite(conn.engine):
            query = query.with_for_update()  # SQLite: BEGIN IMMEDIATE already excludes writers
        status = conn.scalar(query)
        if status is None:
            raise UnknownRun(f"no run {run_id}", run_id=run_id)
        if status != RUNNING:
            raise AlreadyFinished(
                f"run {run_id} already ended {status}", run_id=run_id, status=status
            )

    def _clean_run_status(self, conn: Connection) -> tuple[str, str | None]:
        verdict = self._latest_verdict(conn)
        if verdict is None or verdict.status != INCONSISTENT:
            return COMPLETED, None
        resolved = conn.scalar(
            select(func.count())
            .select_from(resolutions)
            .where(resolutions.c.run_id == verdict.run_id)
        )
        return (COMPLETED_AFTER_INTERVENTION, verdict.run_id) if resolved else (COMPLETED, None)

    def _follows_up_the_resolution(self, conn: Connection, follows_up: str) -> None:
        expected = self._clean_run_status(conn)[1]
        if follows_up != expected:
            now = "no run" if expected is None else f"only {expected}"
            raise InvalidRun(
                f"completed_after_intervention follows up only the latest verdict run when it "
                f"is inconsistent and resolved: {now}, not {follows_up} (ask "
                "status_for_clean_run again, and sign the result with what it says)",
                follows_up=follows_up,
                expected=expected,
            )

    def _refuse_taken(self, conn: Connection, run_id: str, scheduled_for: date | None) -> None:
        if scheduled_for is not None:
            other = conn.scalar(select(runs.c.run_id).where(runs.c.scheduled_for == scheduled_for))
            if other is not None:
                raise AlreadyRan(
                    f"{scheduled_for.isoformat()} already has its scheduled run, {other}",
                    scheduled_for=scheduled_for.isoformat(),
                    run_id=other,
                )
        if conn.scalar(select(runs.c.run_id).where(runs.c.run_id == run_id)) is not None:
            raise RunIdTaken(f"a run {run_id} already exists", run_id=run_id)

    def _latest_verdict(self, conn: Connection) -> Row[Any] | None:
        return conn.execute(
            select(runs)
            .where(runs.c.status.in_(VERDICT_STATUSES))
            .order_by(runs.c.sequence.desc())
            .limit(1)
        ).first()


def _check_finish(
    status: str,
    registries: Sequence[str],
    missing: Sequence[str],
    discrepancies: int,
    follows_up: str | None,
) -> None:
    if status not in FINISH_STATUSES:
        raise InvalidRun(
            f"status {status!r} is not one a run finishes with: {', '.join(FINISH_STATUSES)} "
            "(a run without a result is failed with fail())"
        )
    if isinstance(registries, str) or isinstance(missing, str):
        raise InvalidRun("registries and missing are lists of registry codes")
    absent = sorted(set(missing) - set(registries))
    if absent:
        raise InvalidRun(f"missing {', '.join(absent)} not among the run's registries")
    if (status == INCOMPLETE) != bool(missing):
        raise InvalidRun(
            "a run ends incomplete exactly when it could not reach a registry "
            f"(status {status}, missing {builtins.list(missing)})"
        )
    # An incomplete run's count is of what it could read; it makes no verdict either way.
    consistent_count = status == INCOMPLETE or (status == INCONSISTENT) == (discrepancies > 0)
    if discrepancies < 0 or not consistent_count:
        raise InvalidRun(
            f"status {status} with {discrepancies} discrepancies: inconsistent means at least "
            "one, completed means none"
        )
    if (status == COMPLETED_AFTER_INTERVENTION) != (follows_up is not None):
        raise InvalidRun("follows_up is given for completed_after_intervention, and only for it")


def _to_run(row: Row[Any]) -> RunRow:
    return RunRow(
        run_id=row.run_id,
        sequence=row.sequence,
        trigger=row.trigger,
        scheduled_for=row.scheduled_for,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        registries=tuple(json.loads(row.registries)),
        missing=tuple(json.loads(row.missing)),
        counts=json.loads(row.counts),
        discrepancies=row.discrepancies,
        document=None if row.document is None else bytes(row.document),
        signature=None if row.signature is None else bytes(row.signature),
        key_id=row.key_id,
        follows_up=row.follows_up,
        reason=row.reason,
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _make_sqlite_folder(url: str) -> None:
    """SQLite creates the file on first open, but not its folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
