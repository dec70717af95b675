"""The oversight node's gRPC API (service ``Oversight``): reconcile now, list and show runs,
record a resolution, and serve each registry node its own signed verdict.

Who may do what, from the TLS client certificate alone:

| call | oversight's own certificate | a registry node | a registry's administrator | trader |
|---|---|---|---|---|
| Reconcile, Resolve | yes | no | no | no |
| ListRuns, GetRun | yes | yes | yes | no |
| GetVerdict | no | its own registry's only | no | no |
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from regfed.certs.documents import SignedDocument
from regfed.certs.identity import Identity, Role
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2, reconciliation_pb2_grpc
from regfed.gateway.errors import GatewayError
from regfed.gateway.transport import Callers, Context, _guarded, _Timed, refuse

from .run_errors import RunError
from .runner import RunInProgress, RunManager
from .runs import RunRow

log = logging.getLogger("regfed.oversight")
MAX_NOTE = 2000


def signed_pb(document: SignedDocument) -> reconciliation_pb2.SignedDocument:
    return reconciliation_pb2.SignedDocument(
        payload=document.payload, signature=document.signature, key_id=document.key_id
    )


def stored_document(row: RunRow) -> SignedDocument:
    if row.document is None or row.signature is None or row.key_id is None:
        raise GatewayError("UNKNOWN_RUN", f"run {row.run_id} has no signed result ({row.status})")
    return SignedDocument(row.document, row.signature, row.key_id)


def _store_error(error: RunError) -> GatewayError:
    code = error.code if error.code in ("UNKNOWN_RUN", "NOT_INCONSISTENT") else "INVALID_REQUEST"
    return GatewayError(code, error.message)


class OversightService(_Timed, reconciliation_pb2_grpc.OversightServicer):
    SERVICE = "regfed.reconciliation.v1.Oversight"

    def __init__(self, code: str, runs: RunManager, callers: Callers) -> None:
        self.code = code
        self.runs = runs
        self.callers = callers

    def _oversight_only(self, context: Context, what: str) -> Identity:
        identity = self.callers.identify(context)
        if identity.role is not Role.OVERSIGHT or identity.registry != self.code:
            raise GatewayError(
                "WRONG_ROLE",
                f"only the oversight node's own certificate ({self.code}) may {what}; "
                f"a {identity.registry} {identity.role.value} certificate may not",
            )
        return identity

    def _reader(self, context: Context) -> Identity:
        identity = self.callers.identify(context)
        if identity.role is Role.TRADER:
            raise GatewayError(
                "WRONG_ROLE",
                "reconciliation results are for the oversight node, registry nodes and their "
                "administrators; ask your registry's administrator",
            )
        return identity

    async def Reconcile(  # noqa: N802
        self, request: reconciliation_pb2.ReconcileRequest, context: Context
    ) -> Any:
        try:
            self._oversight_only(context, "start a reconciliation run")
        except GatewayError as error:
            await refuse(context, error)
            return
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[reconciliation_pb2.ReconcileEvent | None] = asyncio.Queue()

        def progress(stage: str, registry: str, done: int, total: int) -> None:
            event = reconciliation_pb2.ReconcileEvent(
                progress=reconciliation_pb2.Progress(
                    stage=stage, registry=registry, done=done, total=total
                )
            )
            loop.call_soon_threadsafe(events.put_nowait, event)

        task = asyncio.ensure_future(asyncio.to_thread(self.runs.run, "on_demand", None, progress))
        task.add_done_callback(lambda _t: loop.call_soon_threadsafe(events.put_nowait, None))
        while (event := await events.get()) is not None:
            yield event
        try:
            row = await task
        except RunInProgress as error:
            await refuse(context, GatewayError("RUN_IN_PROGRESS", str(error)))
            return
        yield reconciliation_pb2.ReconcileEvent(result=signed_pb(stored_document(row)))

    @_guarded
    async def ListRuns(  # noqa: N802
        self, request: reconciliation_pb2.ListRunsRequest, context: Context
    ) -> reconciliation_pb2.ListRunsReply:
        self._reader(context)
        limit = request.limit if 0 < request.limit <= 1000 else 50
        rows = await asyncio.to_thread(self.runs.store.list, limit)
        return reconciliation_pb2.ListRunsReply(
            runs=[json.dumps(r.to_dict(), sort_keys=True) for r in rows]
        )

    @_guarded
    async def GetRun(  # noqa: N802
        self, request: reconciliation_pb2.GetRunRequest, context: Context
    ) -> reconciliation_pb2.SignedDocument:
        self._reader(context)
        if not request.run or len(request.run) > 64:
            raise GatewayError("INVALID_REQUEST", "name a run id (or latest)")
        try:
            row = await asyncio.to_thread(self.runs.store.get, request.run)
        except RunError as error:
            raise _store_error(error) from None
        if row.document is None:
            why = f": {row.reason}" if row.reason else ""
            raise GatewayError("RUN_IN_PROGRESS", f"run {row.run_id} is {row.status}{why}")
        return signed_pb(stored_document(row))

    @_guarded
    async def GetVerdict(  # noqa: N802
        self, request: reconciliation_pb2.GetVerdictRequest, context: Context
    ) -> reconciliation_pb2.SignedDocument:
        identity = self.callers.identify(context)
        if identity.role is not Role.REGISTRY or identity.registry != request.registry:
            raise GatewayError(
                "WRONG_ROLE",
                f"a verdict is fetched by its registry's own node certificate; a "
                f"{identity.registry} {identity.role.value} certificate may not fetch "
                f"{request.registry or '(none)'}'s",
            )
        document = await asyncio.to_thread(self.runs.verdict, request.registry)
        if document is None:
            raise GatewayError(
                "NO_VERDICT", f"no finished run has a verdict for {request.registry}"
            )
        return signed_pb(document)

    @_guarded
    async def Resolve(  # noqa: N802
        self, request: reconciliation_pb2.ResolveRequest, context: Context
    ) -> reconciliation_pb2.SignedDocument:
        self._oversight_only(context, "record a resolution")
        note = request.note.strip()
        by = request.resolved_by.strip()
        if not note or len(note) > MAX_NOTE or not by or len(by) > 160:
            raise GatewayError(
                "INVALID_REQUEST",
                f"a resolution names who resolved it and how (a note of 1-{MAX_NOTE} characters)",
            )
        try:
            await asyncio.to_thread(self.runs.store.resolve, request.run_id, by, note)
            row = await asyncio.to_thread(self.runs.store.get, request.run_id)
        except RunError as error:
            raise _store_error(error) from None
        return signed_pb(
            SignedDocument(row.document or b"", row.signature or b"", row.key_id or "")
        )
